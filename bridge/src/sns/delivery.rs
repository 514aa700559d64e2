//! Pushed deliveries. A confirmed `http`/`https` subscription's messages wait in
//! its own durable core queue (`sns-http.<id>`; `sns-email.<id>` for email and
//! email-json), bound to the topic's exchange with the filter policy like an SQS
//! subscriber's queue. A worker per subscription leases a few at a time (the lease
//! is journaled), POSTs or mails each, and then:
//! - 2xx (for mail: the relay's 250 after the data): settles it;
//! - otherwise, with retries left: sets the lease to end at the next retry's time,
//!   so the message comes back then — after a kill -9 too, since the new end is
//!   journaled and the delivery count (the attempt number) comes back with it;
//! - retries spent: moves it to the RedrivePolicy's SQS queue, or drops it, as AWS
//!   does.

use super::meta::SubMeta;
use super::notification::{self, MESSAGE_ID_HEADER, TOPIC_ARN_HEADER};
use super::outbound::{self, DeliveryError, Post};
use super::policy;
use super::signing::SignatureVersion;
use super::smtp::Mail;
use super::{Sns, SnsError};
use bytes::Bytes;
use std::sync::{Arc, Weak};
use std::time::Duration;
use switchboard_api::{Delivery, Message, Properties, PublishOptions, Table, Value};

/// Messages one subscription has in flight at once.
const BATCH: usize = 10;
/// A leased message's lease while its POST runs: longer than a POST can take, so
/// only a crash lets it come back (and be delivered again: at least once). Also
/// how late a retry can be after a crash that beat the retry's lease to disk.
const LEASE: Duration = Duration::from_secs(30);
/// How long an idle worker waits for its queue before looking again anyway (a
/// retry's lease ending is not always announced).
const IDLE_POLL: Duration = Duration::from_millis(500);

pub fn queue_name(protocol: &str, id: &str) -> String {
    match protocol {
        "email" | "email-json" => format!("sns-email.{id}"),
        _ => format!("sns-http.{id}"),
    }
}

/// What one delivery sends, by the subscription's transport.
pub enum Outgoing {
    Post(Post),
    /// The mail, and what goes to the dead-letter queue if it cannot be sent.
    Mail(Mail, Bytes),
}

impl Outgoing {
    /// The body a dead-letter queue receives: what was POSTed, or the mail's text.
    fn into_body(self) -> Bytes {
        match self {
            Outgoing::Post(p) => p.body,
            Outgoing::Mail(_, text) => text,
        }
    }
}

impl Sns {
    /// Starts the subscription's worker (a running one is replaced).
    pub(super) fn start_worker(&self, sub: &SubMeta) {
        let (me, topic, id) = (self.me.clone(), sub.topic.clone(), sub.id.clone());
        let task = tokio::spawn(run(me, topic, id.clone())).abort_handle();
        let old = self
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, task);
        if let Some(old) = old {
            old.abort();
        }
    }

    pub(super) fn stop_worker(&self, id: &str) {
        let task = self
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        if let Some(t) = task {
            t.abort();
        }
    }

    /// Delivers one leased message and settles it one way or another.
    async fn deliver(&self, sub: &SubMeta, d: Delivery) {
        let topic_meta = self.topic(&sub.topic).unwrap_or_default();
        let version = SignatureVersion::of(
            topic_meta
                .attributes
                .get("SignatureVersion")
                .map(String::as_str),
        );
        // A message published over AMQP, MQTT or STOMP gets the ids Publish gives.
        let ingress;
        let m: &Message = if notification::from_publish(&d.message) {
            &d.message
        } else {
            ingress = notification::as_published(&d.message, self.topic_arn(&sub.topic));
            &ingress
        };
        // Mail has AWS's fixed schedule; HTTP the effective DeliveryPolicy.
        let (retry, out) = if sub.is_email() {
            let mail = self.notification_mail(sub, &topic_meta, m, version).await;
            (
                super::email::retry_policy(),
                mail.map(|(m, text)| Outgoing::Mail(m, text)),
            )
        } else {
            let pol = policy::effective(
                topic_meta
                    .attributes
                    .get("DeliveryPolicy")
                    .map(String::as_str),
                sub.attributes.get("DeliveryPolicy").map(String::as_str),
            );
            let post = self.notification(sub, m, version, &pol.content_type).await;
            (pol.retry, post.map(Outgoing::Post))
        };
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                // Nothing sent: try again later, as for a failed POST.
                tracing::warn!(sub = %sub.id, "SNS delivery not prepared: {e}");
                let _ = d.queue.set_visibility(d.seq, Some(d.delivery_count), LEASE);
                return;
            }
        };
        let result = self.transmit(&out).await;
        let n = d.delivery_count;
        match result {
            Ok(()) => {
                d.queue.settle_leased(d.seq, n);
            }
            Err(e) => match retry.delay(n) {
                Some(delay) => {
                    tracing::debug!(sub = %sub.id, attempt = n, ?delay, "SNS delivery failed: {e}");
                    // Waited for, so the retry's time is on disk before the worker
                    // moves on (a crash then keeps the schedule).
                    if let Ok(lsn) = d.queue.set_visibility(d.seq, Some(n), delay) {
                        let _ = self.sqs.durable(lsn).await;
                    }
                }
                None => {
                    tracing::info!(sub = %sub.id, attempts = n, "SNS delivery given up: {e}");
                    self.dead_letter(sub, &d, out.into_body()).await;
                }
            },
        }
    }

    /// Sends one POST or mail.
    pub(super) async fn transmit(&self, out: &Outgoing) -> Result<(), DeliveryError> {
        match out {
            Outgoing::Post(p) => self.http.post(p).await,
            Outgoing::Mail(m, _) => Ok(self.smtp()?.send(m).await?),
        }
    }

    /// Retries spent: the message goes to the subscription's dead-letter queue if
    /// it has one (as the body that was POSTed, attributes as SQS message
    /// attributes when raw), else it is dropped.
    async fn dead_letter(&self, sub: &SubMeta, d: &Delivery, body: Bytes) {
        let target = sub
            .attributes
            .get("RedrivePolicy")
            .and_then(|r| dead_letter_arn(r))
            .and_then(|arn| self.sqs.name_from_arn(&arn))
            .filter(|q| self.broker.queue_exists(&self.cfg.vhost, q));
        if let Some(queue) = target {
            let mut headers = Table::new();
            if sub.raw()
                && let Some(h) = &d.message.properties.headers
            {
                for (k, v) in h.iter().filter(|(k, _)| !k.starts_with("x-sns-")) {
                    headers.insert(k.clone(), v.clone());
                }
            }
            let m = Message {
                exchange: String::new(),
                routing_key: queue.clone(),
                properties: Properties {
                    delivery_mode: Some(2),
                    message_id: Some(uuid::Uuid::new_v4().to_string()),
                    headers: (!headers.is_empty()).then_some(headers),
                    ..Default::default()
                },
                body,
                ..Default::default()
            };
            match self
                .broker
                .publish(&self.cfg.vhost, m, PublishOptions::default())
            {
                // Settled once the copy is durable: a crash in between delivers
                // the copy twice rather than never.
                Ok(o) => {
                    if let Err(e) = self.sqs.durable(o.lsn).await {
                        tracing::warn!(%queue, "SNS dead letter not durable: {e}");
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(%queue, "SNS dead letter refused: {e}");
                    return;
                }
            }
        }
        d.queue.settle_leased(d.seq, d.delivery_count);
    }

    /// The POST for one message: the signed Notification document, or with
    /// RawMessageDelivery the message text alone.
    async fn notification(
        &self,
        sub: &SubMeta,
        m: &Message,
        version: SignatureVersion,
        content_type: &str,
    ) -> Result<Post, SnsError> {
        let h = m.properties.headers.as_ref();
        let text = |k: &str| h.and_then(|h| h.get(k)).and_then(Value::as_str);
        let message_id = text(MESSAGE_ID_HEADER).unwrap_or("").to_string();
        let topic_arn =
            text(TOPIC_ARN_HEADER).map_or_else(|| self.topic_arn(&sub.topic), str::to_string);
        let sub_arn = self.sub_arn(&sub.topic, &sub.id);
        // MessageStructure=json: the `http` or `https` text if the publisher gave one.
        let body = notification::text_for(m, &sub.protocol);
        let raw = sub.raw();
        let body = if raw {
            Bytes::from(body)
        } else {
            let signer = self.signer().await?;
            let base = self.delivery_base_url(sub);
            let mut doc = notification::notification_doc(&sub_arn, m, &body, &base);
            // RSA on a blocking thread: the delivery workers share the async ones.
            let doc = tokio::task::spawn_blocking(move || {
                signer.sign_doc(&mut doc, version, &base);
                doc
            })
            .await
            .map_err(|e| SnsError::internal(e.to_string()))?;
            Bytes::from(serde_json::Value::Object(doc).to_string())
        };
        Ok(Post {
            url: sub.endpoint.clone(),
            headers: outbound::headers(
                "Notification",
                &message_id,
                &topic_arn,
                Some(&sub_arn),
                content_type,
                raw,
            ),
            body,
        })
    }

    /// The base of the URLs in what is sent to an endpoint: the configured one, or
    /// the one the subscriber used.
    pub(super) fn delivery_base_url(&self, sub: &SubMeta) -> String {
        match &self.cfg.base_url {
            Some(b) => b.trim_end_matches('/').to_string(),
            None => sub.base_url.clone(),
        }
    }
}

/// The `deadLetterTargetArn` of a RedrivePolicy.
pub fn dead_letter_arn(policy: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(policy).ok()?;
    v.get("deadLetterTargetArn")?.as_str().map(str::to_string)
}

/// One subscription's worker: lease, deliver, repeat, until the subscription is
/// gone (or the worker is aborted by Unsubscribe).
async fn run(sns: Weak<Sns>, topic: String, id: String) {
    loop {
        let Some(me) = sns.upgrade() else { return };
        let Some(sub) = me.sub(&topic, &id).filter(|s| !s.pending) else {
            return;
        };
        let Some(q) = me.broker.queue_handle(&me.cfg.vhost, &sub.queue) else {
            return;
        };
        let notify = q.ready_notify();
        let woken = notify.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let batch = match me.broker.receive(&me.cfg.vhost, &sub.queue, BATCH, LEASE) {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(queue = %sub.queue, "SNS worker: {e}");
                return;
            }
        };
        if batch.is_empty() {
            drop(me);
            let _ = tokio::time::timeout(IDLE_POLL, woken).await;
            continue;
        }
        let me2: Arc<Sns> = me.clone();
        let mut set = tokio::task::JoinSet::new();
        for d in batch {
            let (me, sub) = (me2.clone(), sub.clone());
            set.spawn(async move { me.deliver(&sub, d).await });
        }
        drop(me);
        drop(me2);
        while set.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redrive_policy_names_the_queue() {
        assert_eq!(
            dead_letter_arn(r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:0:dlq"}"#).as_deref(),
            Some("arn:aws:sqs:us-east-1:0:dlq")
        );
        assert_eq!(dead_letter_arn("{}"), None);
        assert_eq!(dead_letter_arn("nope"), None);
        assert_eq!(queue_name("http", "abc"), "sns-http.abc");
        assert_eq!(queue_name("https", "abc"), "sns-http.abc");
        assert_eq!(queue_name("email-json", "abc"), "sns-email.abc");
    }
}
