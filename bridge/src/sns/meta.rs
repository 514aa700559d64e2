//! What SNS keeps beyond the topic's exchange and the subscriptions' bindings:
//! attributes, tags, and each subscription's endpoint and options. JSON in the
//! durable keyed store, under `topic/<name>` and `sub/<topic>/<id>` (so a topic's
//! subscriptions are one prefix scan away).

use super::{SNS_SPACE, Sns, SnsError};
use crate::sqs::meta::json_record;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use switchboard_api::Message;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TopicMeta {
    /// Attributes as the user set them.
    pub attributes: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    /// FIFO: when the ArchivePolicy was turned on (wall-clock ms), for
    /// BeginningArchiveTime.
    #[serde(default)]
    pub archive_since_ms: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SubMeta {
    pub topic: String,
    pub id: String,
    pub protocol: String,
    pub endpoint: String,
    /// The core queue bound to the topic's exchange: the SQS queue for `sqs`, the
    /// subscription's own internal queue for the pushed protocols
    /// (`delivery::queue_name`).
    pub queue: String,
    /// RawMessageDelivery, FilterPolicy, FilterPolicyScope as set.
    pub attributes: BTreeMap<String, String>,
    /// Pushed protocols: the confirmation token. Kept after confirming, so that confirming
    /// again answers the same subscription, as AWS does.
    #[serde(default)]
    pub token: Option<String>,
    /// When the token was made (wall-clock ms): AWS's tokens last 3 days.
    #[serde(default)]
    pub token_ms: u64,
    /// Waiting for ConfirmSubscription; nothing is delivered meanwhile.
    #[serde(default)]
    pub pending: bool,
    /// Confirmed by a signed ConfirmSubscription (not the SubscribeURL's GET).
    #[serde(default = "confirmed_by_owner")]
    pub authenticated: bool,
    /// Unsubscribe must then be signed (the UnsubscribeURL's GET is refused).
    #[serde(default)]
    pub authenticate_on_unsubscribe: bool,
    /// Scheme, host and port the subscriber reached the broker at, for the URLs in
    /// what is sent to the endpoint later (no request is at hand then).
    #[serde(default)]
    pub base_url: String,
}

/// SQS subscriptions, confirmed at once by their owner's Subscribe.
fn confirmed_by_owner() -> bool {
    true
}

impl SubMeta {
    /// `http` or `https`.
    pub fn is_http(&self) -> bool {
        matches!(self.protocol.as_str(), "http" | "https")
    }

    /// `email` or `email-json`.
    pub fn is_email(&self) -> bool {
        matches!(self.protocol.as_str(), "email" | "email-json")
    }

    /// Confirmed by its endpoint, then delivered by a worker from a queue of its
    /// own (rather than bound to an SQS queue).
    pub fn pushed(&self) -> bool {
        self.is_http() || self.is_email()
    }

    /// Whether its queue is bound to the topic (a pending pushed subscription's is
    /// not there yet).
    pub fn bound(&self) -> bool {
        !self.pending
    }

    pub fn raw(&self) -> bool {
        self.attributes
            .get("RawMessageDelivery")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// The signing key and certificate (`signing.rs`).
#[derive(Serialize, Deserialize)]
pub struct SigningRecord {
    pub key: String,
    pub cert: String,
}

const SIGNING_KEY: &str = "signing/rsa";

fn topic_key(name: &str) -> String {
    format!("topic/{name}")
}

fn sub_key(topic: &str, id: &str) -> String {
    format!("sub/{topic}/{id}")
}

/// SQS's record format for the keyed store (persistent JSON).
fn record(v: &impl Serialize) -> Result<Message, SnsError> {
    Ok(json_record(v)?)
}

impl Sns {
    pub(super) fn topic(&self, name: &str) -> Option<TopicMeta> {
        let m = self
            .broker
            .keyed_get(&self.cfg.vhost, SNS_SPACE, &topic_key(name))?;
        serde_json::from_slice(&m.body).ok()
    }

    /// Topic names, sorted.
    pub(super) fn topic_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .broker
            .keyed_scan(&self.cfg.vhost, SNS_SPACE, &mut |k| k.starts_with("topic/"))
            .into_iter()
            .filter_map(|(k, _)| k.strip_prefix("topic/").map(str::to_string))
            .collect();
        names.sort();
        names
    }

    /// Stores `meta` (or removes the topic with `None`) and waits until it is durable.
    pub(super) async fn put_topic(
        &self,
        name: &str,
        meta: Option<&TopicMeta>,
    ) -> Result<(), SnsError> {
        let value = meta.map(record).transpose()?;
        let lsn = self
            .broker
            .keyed_put(&self.cfg.vhost, SNS_SPACE, &topic_key(name), value)
            .map_err(super::core_error)?;
        Ok(self.sqs.durable(lsn).await?)
    }

    pub(super) fn signing_record(&self) -> Option<SigningRecord> {
        let m = self
            .broker
            .keyed_get(&self.cfg.vhost, SNS_SPACE, SIGNING_KEY)?;
        serde_json::from_slice(&m.body).ok()
    }

    pub(super) async fn put_signing_record(&self, r: &SigningRecord) -> Result<(), SnsError> {
        let lsn = self
            .broker
            .keyed_put(&self.cfg.vhost, SNS_SPACE, SIGNING_KEY, Some(record(r)?))
            .map_err(super::core_error)?;
        Ok(self.sqs.durable(lsn).await?)
    }

    pub(super) fn sub(&self, topic: &str, id: &str) -> Option<SubMeta> {
        let m = self
            .broker
            .keyed_get(&self.cfg.vhost, SNS_SPACE, &sub_key(topic, id))?;
        serde_json::from_slice(&m.body).ok()
    }

    /// A topic's subscriptions (every topic's with `None`), in key order.
    pub(super) fn subs(&self, topic: Option<&str>) -> Vec<SubMeta> {
        let prefix = match topic {
            Some(t) => sub_key(t, ""),
            None => "sub/".to_string(),
        };
        self.broker
            .keyed_scan(&self.cfg.vhost, SNS_SPACE, &mut |k| k.starts_with(&prefix))
            .into_iter()
            .filter_map(|(_, m)| serde_json::from_slice::<SubMeta>(&m.body).ok())
            // `sub/eu-west-1/` is also the start of region eu-west-1's topics' keys.
            .filter(|s| topic.is_none_or(|t| s.topic == t))
            .collect()
    }

    pub(super) async fn put_sub(&self, sub: &SubMeta, keep: bool) -> Result<(), SnsError> {
        let value = if keep { Some(record(sub)?) } else { None };
        let lsn = self
            .broker
            .keyed_put(
                &self.cfg.vhost,
                SNS_SPACE,
                &sub_key(&sub.topic, &sub.id),
                value,
            )
            .map_err(super::core_error)?;
        Ok(self.sqs.durable(lsn).await?)
    }
}
