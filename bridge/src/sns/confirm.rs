//! The life of a subscription SNS pushes to (http, https, email, email-json):
//! Subscribe stores it pending with a token and sends a SubscriptionConfirmation
//! (POSTed, or mailed: `email.rs`); ConfirmSubscription (signed, or the
//! SubscribeURL's GET) makes its queue, binds it and starts its worker; Unsubscribe
//! POSTs an UnsubscribeConfirmation to http(s) endpoints. Tokens and pending state
//! are in the subscription's record, so they survive a restart.

use super::delivery::Outgoing;
use super::meta::SubMeta;
use super::outbound::{self, Post};
use super::signing::SignatureVersion;
use super::xml::Out;
use super::{Params, Sns, SnsError, core_error, delivery};
use crate::sigv4::format_iso_ms;
use crate::sqs::Ctx;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::time::Duration;
use switchboard_api::QueueDecl;

/// AWS's confirmation tokens are valid for three days.
const TOKEN_LIFETIME_MS: u64 = 3 * 86_400_000;
/// Confirmation messages are tried this often (they are not journaled: a lost one
/// is sent again by subscribing again, as on AWS).
const CONFIRMATION_ATTEMPTS: u32 = 3;
const CONFIRMATION_PAUSE: Duration = Duration::from_secs(2);

/// A fresh token: 256 random bits, hex (AWS's are long hex strings too).
fn new_token() -> String {
    (0..2)
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect()
}

fn invalid_token() -> SnsError {
    SnsError::bad("Token")
}

impl Sns {
    /// Subscribe for a pushed protocol: a new pending subscription (or the
    /// existing one for the same endpoint, whose confirmation is sent again while
    /// it is pending).
    pub(super) async fn subscribe_pushed(
        &self,
        topic: &str,
        protocol: &str,
        endpoint: &str,
        attributes: BTreeMap<String, String>,
        ctx: &Ctx,
    ) -> Result<SubMeta, SnsError> {
        if !super::email::valid_endpoint(protocol, endpoint) {
            return Err(SnsError::bad("Endpoint must match the specified protocol"));
        }
        if let Some(s) = self
            .subs(Some(topic))
            .into_iter()
            .find(|s| s.protocol == protocol && s.endpoint == endpoint)
        {
            if s.pending {
                self.send_confirmation(&s, "SubscriptionConfirmation");
            }
            return Ok(s);
        }
        let id = uuid::Uuid::new_v4().to_string();
        let sub = SubMeta {
            topic: topic.to_string(),
            queue: delivery::queue_name(protocol, &id),
            id,
            protocol: protocol.into(),
            endpoint: endpoint.to_string(),
            attributes,
            token: Some(new_token()),
            token_ms: switchboard_api::wall_ms(),
            pending: true,
            authenticated: false,
            authenticate_on_unsubscribe: false,
            base_url: ctx.base_url.clone(),
        };
        self.put_sub(&sub, true).await?;
        self.send_confirmation(&sub, "SubscriptionConfirmation");
        Ok(sub)
    }

    pub(super) async fn confirm_subscription(
        &self,
        p: &Params,
        ctx: &Ctx,
    ) -> Result<Out, SnsError> {
        let topic = self.topic_of(p.req("TopicArn")?)?;
        let token = p.req("Token")?;
        let mut sub = self
            .subs(Some(&topic))
            .into_iter()
            .find(|s| s.token.as_deref() == Some(token))
            .ok_or_else(invalid_token)?;
        if sub.pending {
            if switchboard_api::wall_ms().saturating_sub(sub.token_ms) > TOKEN_LIFETIME_MS {
                return Err(invalid_token());
            }
            sub.pending = false;
            sub.authenticated = ctx.signed;
            sub.authenticate_on_unsubscribe = p
                .get("AuthenticateOnUnsubscribe")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            self.activate(&sub)?;
            self.put_sub(&sub, true).await?;
            self.start_worker(&sub);
        }
        let mut out = Out::default();
        out.el("SubscriptionArn", &self.sub_arn(&sub.topic, &sub.id));
        Ok(out)
    }

    /// A confirmed HTTP subscription's queue and binding. Both are idempotent, so
    /// a confirmation that crashed before its record was stored can be repeated.
    fn activate(&self, sub: &SubMeta) -> Result<(), SnsError> {
        let decl = QueueDecl {
            name: sub.queue.clone(),
            durable: true,
            ..Default::default()
        };
        self.broker
            .declare_queue(&self.cfg.vhost, &decl, 0)
            .map_err(core_error)?;
        self.bind(sub)
    }

    /// Stops an HTTP subscription's deliveries and removes its queue (what it still
    /// held is dropped, as on AWS).
    pub(super) fn deactivate(&self, sub: &SubMeta) {
        self.stop_worker(&sub.id);
        if sub.pushed()
            && let Err(e) = self
                .broker
                .delete_queue(&self.cfg.vhost, &sub.queue, false, false, 0)
            && e.kind() != switchboard_api::ErrorKind::NotFound
        {
            tracing::warn!(queue = %sub.queue, "SNS subscription queue not deleted: {e}");
        }
    }

    /// Sends a SubscriptionConfirmation or UnsubscribeConfirmation in the
    /// background (a few tries; the caller's reply does not wait for the endpoint).
    pub(super) fn send_confirmation(&self, sub: &SubMeta, doc_type: &'static str) {
        let Some(me) = self.me.upgrade() else { return };
        let sub = sub.clone();
        tokio::spawn(async move {
            let out = if sub.is_email() {
                me.confirmation_mail(&sub)
                    .await
                    .map(|m| Outgoing::Mail(m, Bytes::new()))
            } else {
                me.confirmation_post(&sub, doc_type)
                    .await
                    .map(Outgoing::Post)
            };
            let out = match out {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(sub = %sub.id, "SNS {doc_type} not sent: {e}");
                    return;
                }
            };
            for attempt in 1..=CONFIRMATION_ATTEMPTS {
                match me.transmit(&out).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::info!(sub = %sub.id, attempt, "SNS {doc_type} failed: {e}");
                    }
                }
                tokio::time::sleep(CONFIRMATION_PAUSE).await;
            }
        });
    }

    /// A confirmation document, signed, and its message id.
    pub(super) async fn confirmation_doc(
        &self,
        sub: &SubMeta,
        doc_type: &'static str,
    ) -> Result<(serde_json::Map<String, serde_json::Value>, String), SnsError> {
        let signer = self.signer().await?;
        let topic_arn = self.topic_arn(&sub.topic);
        let sub_arn = self.sub_arn(&sub.topic, &sub.id);
        let base = self.delivery_base_url(sub);
        let token = sub.token.clone().unwrap_or_default();
        let message_id = uuid::Uuid::new_v4().to_string();
        let version = SignatureVersion::of(
            self.topic(&sub.topic)
                .and_then(|t| t.attributes.get("SignatureVersion").cloned())
                .as_deref(),
        );
        let mut doc = outbound::confirmation(
            doc_type,
            &message_id,
            &topic_arn,
            &token,
            &outbound::subscribe_url(&base, &topic_arn, &token),
            &sub_arn,
            &format_iso_ms(switchboard_api::wall_ms() as i64),
        );
        signer.sign_doc(&mut doc, version, &base);
        Ok((doc, message_id))
    }

    async fn confirmation_post(
        &self,
        sub: &SubMeta,
        doc_type: &'static str,
    ) -> Result<Post, SnsError> {
        let (doc, message_id) = self.confirmation_doc(sub, doc_type).await?;
        let topic_arn = self.topic_arn(&sub.topic);
        let sub_arn = self.sub_arn(&sub.topic, &sub.id);
        // A pending subscription has no ARN to name yet.
        let named = (doc_type != "SubscriptionConfirmation").then_some(sub_arn.as_str());
        Ok(Post {
            url: sub.endpoint.clone(),
            headers: outbound::headers(
                doc_type,
                &message_id,
                &topic_arn,
                named,
                "text/plain; charset=UTF-8",
                false,
            ),
            body: Bytes::from(serde_json::Value::Object(doc).to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_long_and_fresh() {
        let (a, b) = (super::new_token(), super::new_token());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
