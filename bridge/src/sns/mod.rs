//! Amazon SNS on the core, Query protocol only (SNS has no JSON protocol).
//!
//! A topic is a durable fanout exchange `sns.<name>` in the SQS vhost, so any
//! protocol's queue bound to it receives what Publish sends. An `sqs` subscription
//! is a binding of the SQS queue to that exchange, carrying the filter policy as
//! binding arguments (`x-filter-policy`, `x-filter-policy-scope`) for the core's
//! binding filter. Attributes, tags and subscriptions live in the durable keyed
//! store ([`meta`]), so they survive a restart.
//!
//! The SNS envelope depends on the subscription (raw or not, its UnsubscribeURL),
//! so Publish stores one message with the attributes as headers and SQS asks SNS to
//! render the envelope when it hands the message out ([`Sns`] implements
//! [`crate::sqs::Notifications`]).
//!
//! An `http` subscription waits for ConfirmSubscription (`confirm.rs`); confirmed,
//! it gets an internal durable queue `sns-http.<id>` bound like an SQS queue, and a
//! worker that leases from it and POSTs each message (`delivery.rs`), retrying per
//! the DeliveryPolicy (`policy.rs`) by setting the lease's end to the next retry —
//! so pending deliveries and their schedule are journaled and survive kill -9.
//! Every document is signed (`signing.rs`). `https` is the same over rustls
//! (`tls.rs`); `email` and `email-json` are the same with SMTP as the transport
//! (`email.rs`, `mail.rs`, `smtp.rs`), through the relay in `sns.smtp_relay`.
//!
//! FIFO topics (`fifo.rs`) deduplicate before routing, against a window in a key
//! space of their own, and number their messages; the group and deduplication ids
//! travel with the message, so FIFO SQS subscribers keep the order per group and
//! drop repeats too. Their ArchivePolicy and ReplayPolicy are `archive.rs`.
//!
//! Not yet: sms/application/lambda/firehose subscriptions, data protection
//! policies. Topic policies (AddPermission, RemovePermission, `Policy`) are kept
//! and returned, not enforced: the broker's own users and permissions decide.

mod access;
mod archive;
mod batch;
mod catalog;
mod confirm;
mod delivery;
mod email;
mod error;
mod fifo;
pub mod fuzz;
mod mail;
mod meta;
mod notification;
mod outbound;
mod params;
mod permissions;
mod policy;
mod publish;
mod signing;
mod smtp;
mod subscriptions;
mod tls;
mod topics;
pub mod xml;

pub use error::SnsError;
pub use params::Params;

use crate::Config;
use crate::sqs::{Ctx, Sqs};
use signing::Signer;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use switchboard_api::{Broker, BrokerError, ErrorKind, KeySpace};

/// Topics and subscriptions, in the core's durable keyed store.
const SNS_SPACE: KeySpace = KeySpace::new("sns");

/// SNS's action names, for telling an unsigned SNS request without `Version` from
/// an SQS one (Add/RemovePermission are left out: SQS has them too).
pub const ACTIONS: &[&str] = &[
    "CheckIfPhoneNumberIsOptedOut",
    "ConfirmSubscription",
    "CreatePlatformApplication",
    "CreatePlatformEndpoint",
    "CreateTopic",
    "DeleteEndpoint",
    "DeletePlatformApplication",
    "DeleteTopic",
    "GetDataProtectionPolicy",
    "GetSubscriptionAttributes",
    "GetTopicAttributes",
    "ListSubscriptions",
    "ListSubscriptionsByTopic",
    "ListTagsForResource",
    "ListTopics",
    "Publish",
    "PublishBatch",
    "SetSubscriptionAttributes",
    "SetTopicAttributes",
    "Subscribe",
    "TagResource",
    "Unsubscribe",
    "UntagResource",
];

/// The Query protocol version SNS clients send.
pub const VERSION: &str = "2010-03-31";

/// One page of ListTopics / ListSubscriptions, as on AWS.
const PAGE: usize = 100;

pub struct Sns {
    broker: Arc<dyn Broker>,
    cfg: Config,
    sqs: Arc<Sqs>,
    me: Weak<Sns>,
    /// Loaded (or made) on first need: making a key takes a while.
    signer: tokio::sync::OnceCell<Arc<Signer>>,
    http: outbound::HttpClient,
    /// Mail goes through it; `None` without `sns.smtp_relay`.
    smtp: Option<smtp::SmtpClient>,
    /// The delivery worker of each confirmed pushed subscription, by id.
    workers: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    /// FIFO publishes take turns here (`fifo.rs`).
    fifo: Mutex<fifo::FifoState>,
    /// Replays of one topic's archive take turns (`archive.rs`).
    replays: Mutex<archive::Turns>,
}

impl Sns {
    pub fn new(sqs: Arc<Sqs>) -> Arc<Sns> {
        let sns = Arc::new_cyclic(|me| Sns {
            broker: sqs.broker().clone(),
            cfg: sqs.config().clone(),
            sqs: sqs.clone(),
            me: me.clone(),
            signer: tokio::sync::OnceCell::new(),
            http: outbound::HttpClient::new(&sqs.config().sns),
            smtp: sqs
                .config()
                .sns
                .smtp_relay
                .as_deref()
                .map(|relay| smtp::SmtpClient::new(relay, &sqs.config().sns.smtp_from)),
            workers: Mutex::default(),
            fifo: Mutex::default(),
            replays: Mutex::default(),
        });
        sqs.set_notifications(sns.clone());
        // Topics made before they were bound to `amq.topic` (or whose bindings an
        // operator removed) get them back; binding again changes nothing.
        for name in sns.topic_names() {
            let fifo = sns.topic(&name).is_some_and(|m| m.fifo());
            if let Err(e) = sns.bind_topic_exchange(&name, fifo) {
                tracing::warn!(topic = %name, "cannot bind the topic to amq.topic: {e}");
            }
        }
        // A key made earlier is read now (cheap), so envelopes can be signed at once.
        if let Some(r) = sns.signing_record() {
            match Signer::from_pem(&r.key, &r.cert) {
                Ok(s) => {
                    let _ = sns.signer.set(Arc::new(s));
                }
                Err(e) => tracing::error!("SNS signing key unreadable: {e}"),
            }
        }
        for sub in sns.subs(None) {
            if sub.pushed() && !sub.pending {
                sns.start_worker(&sub);
            }
        }
        sns.resume_replays();
        sns.start_dedup_sweeper();
        sns
    }

    /// The signing key, loaded or made (and stored durably) the first time.
    async fn signer(&self) -> Result<Arc<Signer>, SnsError> {
        self.signer
            .get_or_try_init(|| async {
                if let Some(r) = self.signing_record() {
                    let s = Signer::from_pem(&r.key, &r.cert)
                        .map_err(|e| SnsError::internal(e.to_string()))?;
                    return Ok(Arc::new(s));
                }
                let s = tokio::task::spawn_blocking(Signer::generate)
                    .await
                    .map_err(|e| SnsError::internal(e.to_string()))?
                    .map_err(|e| SnsError::internal(e.to_string()))?;
                // Durable before the first signature, so that a crash cannot leave
                // signed messages out there that no stored certificate verifies.
                let r = meta::SigningRecord {
                    key: s.key_pem().to_string(),
                    cert: s.cert_pem().to_string(),
                };
                self.put_signing_record(&r).await?;
                tracing::info!(path = %s.cert_path(), "SNS signing key made");
                Ok(Arc::new(s))
            })
            .await
            .cloned()
    }

    /// Starts making the signing key in the background if there is none yet, so the
    /// first message to sign does not wait for it.
    fn warm_signer(&self) {
        if self.signer.initialized() {
            return;
        }
        if let Some(me) = self.me.upgrade() {
            tokio::spawn(async move {
                if let Err(e) = me.signer().await {
                    tracing::error!("SNS signing key: {e}");
                }
            });
        }
    }

    /// The signing certificate (PEM) if `path` is where it is served.
    pub fn certificate(&self, path: &str) -> Option<String> {
        let s = self.signer.get()?;
        (s.cert_path() == path).then(|| s.cert_pem().to_string())
    }

    /// Runs one action; `Ok(None)` for actions whose reply has no Result element.
    pub async fn call(
        &self,
        action: &str,
        p: &Params,
        ctx: &Ctx,
    ) -> Result<Option<xml::Out>, SnsError> {
        self.authorize(action, p, ctx)?;
        self.warm_signer();
        match action {
            "CreateTopic" => self.create_topic(p, ctx).await.map(Some),
            "DeleteTopic" => self.delete_topic(p).await.map(|()| None),
            "ListTopics" => self.list_topics(p, ctx).map(Some),
            "GetTopicAttributes" => self.get_topic_attributes(p).map(Some),
            "SetTopicAttributes" => self.set_topic_attributes(p).await.map(|()| None),
            "TagResource" => self.tag_resource(p).await.map(Some),
            "UntagResource" => self.untag_resource(p).await.map(Some),
            "ListTagsForResource" => self.list_tags_for_resource(p).map(Some),
            "Subscribe" => self.subscribe(p, ctx).await.map(Some),
            "ConfirmSubscription" => self.confirm_subscription(p, ctx).await.map(Some),
            "Unsubscribe" => self.unsubscribe(p, ctx).await.map(|()| None),
            "ListSubscriptions" => {
                let region = self.sqs.region(ctx);
                self.list_subscriptions(p, Err(region)).map(Some)
            }
            "ListSubscriptionsByTopic" => {
                let topic = self.topic_of(p.req("TopicArn")?)?;
                self.list_subscriptions(p, Ok(&topic)).map(Some)
            }
            "GetSubscriptionAttributes" => self.get_subscription_attributes(p).map(Some),
            "SetSubscriptionAttributes" => self.set_subscription_attributes(p).await.map(|()| None),
            "AddPermission" => self.add_permission(p).await.map(|()| None),
            "RemovePermission" => self.remove_permission(p).await.map(|()| None),
            "Publish" => self.publish(p, ctx).await.map(Some),
            "PublishBatch" => self.publish_batch(p, ctx).await.map(Some),
            other => Err(SnsError::invalid_action(format!(
                "The action {other} is not valid for this endpoint."
            ))),
        }
    }

    // A topic belongs to the region of the request that created it, named as SQS
    // names queues (`sqs::region`): the configured region's topic `t` is `t` (exchange
    // `sns.t`, as before regions), another region's is `<region>/t`.

    fn topic_arn(&self, topic: &str) -> String {
        let (region, name) = self.sqs.split_core(topic);
        format!("arn:aws:sns:{region}:{}:{name}", self.cfg.account_id)
    }

    fn exchange(topic: &str) -> String {
        format!("sns.{topic}")
    }

    /// The topic's routing key on `amq.topic`: `sns.<name>`, a region's `/` as `.`
    /// (MQTT `sns/eu-west-1/orders`).
    fn routing_key(topic: &str) -> String {
        format!("sns.{}", topic.replace('/', "."))
    }

    /// The topic a message published elsewhere than Publish came through: straight
    /// to its exchange, or to `amq.topic` with its routing key.
    fn topic_of_message(&self, m: &switchboard_api::Message) -> Option<String> {
        if let Some(t) = m.exchange.strip_prefix("sns.") {
            return Some(t.to_string());
        }
        let key = m.routing_key.strip_prefix("sns.")?;
        self.topic_names()
            .into_iter()
            .find(|t| t.replace('/', ".") == key)
    }

    /// The topic an ARN names (in the ARN's region); it must exist.
    fn topic_of(&self, arn: &str) -> Result<String, SnsError> {
        let topic = self
            .arn_parts(arn)
            .and_then(|(topic, rest)| rest.is_none().then_some(topic))
            .ok_or_else(|| SnsError::bad("TopicArn"))?;
        if self.topic(&topic).is_none() {
            return Err(SnsError::no_topic());
        }
        Ok(topic)
    }

    /// (topic, id) of a subscription ARN of this broker.
    fn sub_of(&self, arn: &str) -> Option<(String, String)> {
        let (topic, id) = self.arn_parts(arn)?;
        Some((topic, id?.to_string()))
    }

    /// The topic of `arn:aws:sns:<region>:<account>:<name>[:<subscription id>]` and
    /// the subscription id, if any.
    fn arn_parts<'a>(&self, arn: &'a str) -> Option<(String, Option<&'a str>)> {
        let mut parts = arn.strip_prefix("arn:aws:sns:")?.splitn(4, ':');
        let (region, account, name) = (parts.next()?, parts.next()?, parts.next()?);
        let id = parts.next();
        let ok = account == self.cfg.account_id
            && crate::sqs::valid_region(region)
            && !name.is_empty()
            && id.is_none_or(|i| !i.is_empty());
        ok.then(|| (self.sqs.core_name(region, name), id))
    }

    fn sub_arn(&self, topic: &str, id: &str) -> String {
        format!("{}:{id}", self.topic_arn(topic))
    }
}

/// Which page of a sorted list a NextToken points at: the token is the last item of
/// the previous page.
fn page<'a, T>(
    items: &'a [T],
    key: impl Fn(&T) -> &str,
    token: Option<&str>,
) -> (&'a [T], Option<String>) {
    let start = token.map_or(0, |t| items.partition_point(|i| key(i) <= t));
    let end = (start + PAGE).min(items.len());
    let next = (end < items.len()).then(|| key(&items[end - 1]).to_string());
    (&items[start..end], next)
}

/// A core error in SNS's words.
fn core_error(e: BrokerError) -> SnsError {
    match e.kind() {
        ErrorKind::NotFound => SnsError::not_found(e.to_string()),
        ErrorKind::PreconditionFailed | ErrorKind::NotAllowed | ErrorKind::InvalidArgument => {
            SnsError::bad(e)
        }
        ErrorKind::AccessRefused | ErrorKind::ResourceLocked => {
            SnsError::authorization_error(e.to_string())
        }
        ErrorKind::ResourceError | ErrorKind::Internal => SnsError::internal(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::page;

    #[test]
    fn pages_follow_the_last_item() {
        let items: Vec<String> = (0..250).map(|i| format!("t{i:03}")).collect();
        let (first, next) = page(&items, |s| s, None);
        assert_eq!(first.len(), 100);
        assert_eq!(next.as_deref(), Some("t099"));
        let (second, next) = page(&items, |s| s, next.as_deref());
        assert_eq!(second[0], "t100");
        let (third, next) = page(&items, |s| s, next.as_deref());
        assert_eq!(third.len(), 50);
        assert!(next.is_none());
    }
}
