//! FIFO topics (`name.fifo`, FifoTopic=true): the checks CreateTopic, Subscribe and
//! Publish make for them, SequenceNumbers, and the topic's deduplication window.
//!
//! Where the window lives: a topic is a fanout exchange, and the core's dedup windows
//! belong to queues (each queue drops a duplicate for itself only). SNS drops a
//! duplicate once, before routing, so that no subscriber gets it, and answers it
//! with the original MessageId and SequenceNumber, which a queue's window does not
//! keep. So the window is a durable key space of its own (`sns-dedup`): one record
//! per deduplication id, `<topic>\n<id>` → {MessageId, SequenceNumber}, appended to
//! the journal before Publish answers (kill -9 keeps it) and carrying a 5-minute TTL
//! that the core records with it and honours after a restart too. A space of its own
//! keeps these short-lived keys out of the scans of `sns`, which lists subscriptions
//! on every SNS message SQS hands out.
//!
//! Order: one mutex covers "look up, number, publish, record" for every FIFO
//! publish, so SequenceNumbers grow in the order messages reach the subscribers'
//! queues, and two publishes of one id cannot both pass the check.

use super::meta::TopicMeta;
use super::notification::{Prepared, SEQUENCE_HEADER};
use super::{Sns, SnsError, core_error};
use crate::sqs::convert::SEQUENCE_HEADER as SQS_SEQUENCE_HEADER;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::MutexGuard;
use std::time::Duration;
use switchboard_api::{KeySpace, Message, Properties, PublishOptions, Value};

const DEDUP_SPACE: KeySpace = KeySpace::new("sns-dedup");
/// SNS FIFO's deduplication interval.
const DEDUP_WINDOW_MS: u64 = 300_000;
/// How often records nobody asked for again are swept out once expired (a lookup
/// drops an expired record by itself).
const SWEEP: Duration = Duration::from_secs(60);

/// FIFO state that is not durable: the last SequenceNumber handed out.
#[derive(Default)]
pub struct FifoState {
    last_sequence: u128,
}

/// What one published (or deduplicated) message is answered with.
pub struct Sent {
    pub message_id: String,
    pub sequence: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct DedupRecord {
    message_id: String,
    sequence: String,
}

impl TopicMeta {
    pub fn fifo(&self) -> bool {
        self.attributes
            .get("FifoTopic")
            .is_some_and(|v| v == "true")
    }

    pub fn content_based_dedup(&self) -> bool {
        self.attributes
            .get("ContentBasedDeduplication")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// FifoThroughputScope `MessageGroup` scopes deduplication to the group.
    fn dedup_per_group(&self) -> bool {
        self.attributes
            .get("FifoThroughputScope")
            .is_some_and(|v| v == "MessageGroup")
    }
}

fn valid_base(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// CreateTopic's name rules: `.fifo` exactly when FifoTopic is true.
pub fn check_name(name: &str, fifo: bool) -> Result<(), SnsError> {
    if fifo {
        let ok = name.len() <= 256 && name.strip_suffix(".fifo").is_some_and(valid_base);
        if !ok {
            return Err(SnsError::invalid_parameter(
                "Fifo Topic names must end with .fifo and must be made up of only uppercase and lowercase ASCII letters, numbers, underscores, and hyphens, and must be between 1 and 256 characters long.",
            ));
        }
    } else if name.len() > 256 || !valid_base(name) {
        // A `.fifo` name without FifoTopic=true lands here too, as on AWS.
        return Err(SnsError::bad("Topic Name"));
    }
    Ok(())
}

/// Topic attributes that only a FIFO topic takes, and their values.
pub fn check_attribute(name: &str, value: &str, fifo: bool) -> Result<(), SnsError> {
    let fifo_only = matches!(
        name,
        "ContentBasedDeduplication" | "FifoThroughputScope" | "ArchivePolicy"
    );
    if fifo_only && !fifo {
        return Err(SnsError::bad(format!(
            "Attributes Reason: {name} is only valid for FIFO topics"
        )));
    }
    match name {
        "ContentBasedDeduplication" if !matches!(value, "true" | "false") => {
            Err(SnsError::bad(format!(
                "ContentBasedDeduplication Reason: Invalid value [{value}]. Must be true or false."
            )))
        }
        "FifoThroughputScope" if !matches!(value, "Topic" | "MessageGroup") => {
            Err(SnsError::bad(format!(
                "FifoThroughputScope Reason: Invalid value [{value}]. Please use either Topic or MessageGroup"
            )))
        }
        "ArchivePolicy" => super::archive::retention_days(value).map(|_| ()),
        _ => Ok(()),
    }
}

/// A group or deduplication id: 1 to 128 printable ASCII characters.
fn check_id(what: &str, v: &str) -> Result<(), SnsError> {
    if v.is_empty() || v.len() > 128 || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SnsError::bad(format!(
            "{what} Reason: {what} can only include alphanumeric and punctuation characters. 1 to 128 in length."
        )));
    }
    Ok(())
}

/// Publish's MessageGroupId and MessageDeduplicationId for `meta`'s topic: the
/// group, and for a FIFO topic the deduplication id (explicit, or the SHA-256 of
/// the message with ContentBasedDeduplication).
pub fn ids(
    meta: &TopicMeta,
    group: Option<&str>,
    dedup: Option<&str>,
    message: &str,
) -> Result<(Option<String>, Option<String>), SnsError> {
    if let Some(g) = group {
        check_id("MessageGroupId", g)?;
    }
    if let Some(d) = dedup {
        check_id("MessageDeduplicationId", d)?;
    }
    if !meta.fifo() {
        if dedup.is_some() {
            return Err(SnsError::bad(
                "MessageDeduplicationId Reason: The request includes MessageDeduplicationId parameter that is not valid for this topic type",
            ));
        }
        // A standard topic passes a group on (SQS fair queues), as AWS now does.
        return Ok((group.map(str::to_string), None));
    }
    let Some(group) = group else {
        return Err(missing_group());
    };
    let dedup = match dedup {
        Some(d) => d.to_string(),
        None if meta.content_based_dedup() => {
            crate::sqs::digest::content_dedup_id(message.as_bytes())
        }
        None => return Err(missing_dedup()),
    };
    Ok((Some(group.to_string()), Some(dedup)))
}

pub fn missing_group() -> SnsError {
    SnsError::bad("The MessageGroupId parameter is required for FIFO topics")
}

pub fn missing_dedup() -> SnsError {
    SnsError::bad(
        "The topic should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
    )
}

fn dedup_key(topic: &str, meta: &TopicMeta, m: &Message) -> Option<String> {
    let id = m.dedup_id.as_deref()?;
    Some(match (meta.dedup_per_group(), m.group_id.as_deref()) {
        (true, Some(g)) => format!("{topic}\n{g}\n{id}"),
        _ => format!("{topic}\n\n{id}"),
    })
}

impl Sns {
    fn fifo_state(&self) -> MutexGuard<'_, FifoState> {
        self.fifo.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribe's rules for an SQS endpoint, checked before anything is made: a
    /// FIFO queue may not subscribe to a standard topic (AWS); a standard queue may
    /// subscribe to a FIFO topic (it then gets the messages without FIFO's order), as
    /// AWS allows since 2023; a ReplayPolicy needs an archive to replay from.
    pub(super) fn check_sqs_subscription(
        &self,
        topic: &str,
        endpoint: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<(), SnsError> {
        let fifo_topic = self.topic(topic).is_some_and(|t| t.fifo());
        if endpoint.ends_with(".fifo") && !fifo_topic {
            return Err(SnsError::bad(
                "Invalid parameter: Endpoint Reason: FIFO SQS Queues can not be subscribed to standard SNS topics",
            ));
        }
        self.check_replay_target(topic, attributes.get("ReplayPolicy"))
    }

    /// Publishes to a FIFO topic: each message is checked against the window, and
    /// a new one numbered, routed, archived and recorded. The LSN to wait for is
    /// the highest appended.
    pub(super) fn publish_fifo(
        &self,
        topic: &str,
        meta: &TopicMeta,
        items: Vec<Result<Prepared, SnsError>>,
    ) -> (Vec<Result<Sent, SnsError>>, u64) {
        let archive = super::archive::active(meta).then(|| super::archive::queue_name(topic));
        let mut lsn = 0;
        let mut st = self.fifo_state();
        let out = items
            .into_iter()
            .map(|p| {
                let mut p = p?;
                let key = dedup_key(topic, meta, &p.message);
                if let Some(original) = key.as_deref().and_then(|k| self.dedup_record(k)) {
                    return Ok(Sent {
                        message_id: original.message_id,
                        sequence: Some(original.sequence),
                    });
                }
                let now = u128::from(switchboard_api::wall_ms()) * 1_000_000;
                st.last_sequence = (st.last_sequence + 1).max(now);
                let sequence = format!("{:020}", st.last_sequence);
                if let Some(h) = p.message.properties.headers.as_mut() {
                    h.insert(SEQUENCE_HEADER.into(), Value::string(sequence.clone()));
                    // The subscriber queue's SQS SequenceNumber: the topic's own.
                    h.insert(SQS_SEQUENCE_HEADER.into(), Value::string(sequence.clone()));
                }
                if let Some(q) = &archive {
                    lsn = lsn.max(self.archive_copy(q, &p.message)?);
                }
                let outcome = self
                    .broker
                    .publish(&self.cfg.vhost, p.message, PublishOptions::default())
                    .map_err(core_error)?;
                lsn = lsn.max(outcome.lsn);
                if let Some(k) = key {
                    let record = DedupRecord {
                        message_id: p.id.clone(),
                        sequence: sequence.clone(),
                    };
                    lsn = lsn.max(self.put_dedup_record(&k, &record)?);
                }
                Ok(Sent {
                    message_id: p.id,
                    sequence: Some(sequence),
                })
            })
            .collect();
        (out, lsn)
    }

    fn dedup_record(&self, key: &str) -> Option<DedupRecord> {
        let m = self.broker.keyed_get(&self.cfg.vhost, DEDUP_SPACE, key)?;
        serde_json::from_slice(&m.body).ok()
    }

    fn put_dedup_record(&self, key: &str, r: &DedupRecord) -> Result<u64, SnsError> {
        let body = serde_json::to_vec(r).map_err(|e| SnsError::internal(e.to_string()))?;
        let m = Message {
            body: body.into(),
            properties: Properties {
                delivery_mode: Some(2),
                expiration: Some(DEDUP_WINDOW_MS.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        self.broker
            .keyed_put(&self.cfg.vhost, DEDUP_SPACE, key, Some(m))
            .map_err(core_error)
    }

    /// DeleteTopic: a topic made again under the same name starts with an empty
    /// window.
    pub(super) fn forget_dedup(&self, topic: &str) {
        let prefix = format!("{topic}\n");
        let keys = self
            .broker
            .keyed_scan(&self.cfg.vhost, DEDUP_SPACE, &mut |k| {
                k.starts_with(&prefix)
            });
        for (k, _) in keys {
            let _ = self
                .broker
                .keyed_put(&self.cfg.vhost, DEDUP_SPACE, &k, None);
        }
    }

    /// Drops expired records now and then (a scan removes the expired entries it
    /// walks past), so a quiet topic does not keep its last window in memory.
    pub(super) fn start_dedup_sweeper(&self) {
        let me = self.me.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SWEEP).await;
                let Some(sns) = me.upgrade() else { return };
                sns.broker
                    .keyed_scan(&sns.cfg.vhost, DEDUP_SPACE, &mut |_| false);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(attrs: &[(&str, &str)]) -> TopicMeta {
        TopicMeta {
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn names_end_in_fifo_exactly_for_fifo_topics() {
        assert!(check_name("t.fifo", true).is_ok());
        assert!(check_name("t", true).is_err());
        assert!(check_name(".fifo", true).is_err());
        assert!(check_name("t.fifo", false).is_err());
        assert!(check_name("t", false).is_ok());
        assert!(check_name(&format!("{}.fifo", "a".repeat(252)), true).is_err());
    }

    #[test]
    fn fifo_ids_are_required_or_derived() {
        let fifo = topic(&[("FifoTopic", "true")]);
        assert_eq!(ids(&fifo, None, Some("d"), "m"), Err(missing_group()));
        assert_eq!(ids(&fifo, Some("g"), None, "m"), Err(missing_dedup()));
        let cbd = topic(&[("FifoTopic", "true"), ("ContentBasedDeduplication", "true")]);
        let (g, d) = ids(&cbd, Some("g"), None, "hello").unwrap();
        assert_eq!(g.as_deref(), Some("g"));
        assert_eq!(
            d.as_deref(),
            Some("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
        );
        let standard = topic(&[]);
        assert!(ids(&standard, None, Some("d"), "m").is_err());
        assert_eq!(
            ids(&standard, Some("g"), None, "m").unwrap(),
            (Some("g".into()), None)
        );
        assert!(ids(&fifo, Some("g g"), Some("d"), "m").is_err());
    }

    #[test]
    fn group_scope_keys_include_the_group() {
        let m = Message {
            group_id: Some("g".into()),
            dedup_id: Some("d".into()),
            ..Default::default()
        };
        let per_topic = topic(&[("FifoTopic", "true")]);
        let per_group = topic(&[
            ("FifoTopic", "true"),
            ("FifoThroughputScope", "MessageGroup"),
        ]);
        assert_eq!(dedup_key("t.fifo", &per_topic, &m).unwrap(), "t.fifo\n\nd");
        assert_eq!(dedup_key("t.fifo", &per_group, &m).unwrap(), "t.fifo\ng\nd");
    }
}
