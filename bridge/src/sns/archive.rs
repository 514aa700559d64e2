//! Message archiving and replay for FIFO topics.
//!
//! ArchivePolicy `{"MessageRetentionPeriod":"N"}` (days) gives the topic a durable
//! core queue `sns-archive.<topic>` (a name SQS cannot list: it has a dot) with
//! `x-message-ttl` N days: every message published to the topic is also enqueued
//! there, persistent, so the archive is journaled, survives kill -9, pages out like
//! any queue and expires at its head without a sweeper of ours. Copies carry no
//! group id, so the queue keeps one lane in publish order (a plain queue would serve
//! groups in turns); the group travels in a header.
//!
//! A subscription's ReplayPolicy `{"PointType":"Timestamp","StartingPoint":…,
//! "EndingPoint":…}` starts a replay task: it leases the whole archive (the lease
//! is how the core hands messages out without deleting them), copies those
//! published in the window, in order, into the subscription's queue with their
//! MessageId, Timestamp, group and deduplication id, then gives every lease back
//! (set to end now: the messages return to their places). Replays of one topic
//! take turns. ReplayStatus (Pending, Running, Completed, Failed) is a record
//! `replay/<topic>/<subscription id>` in the `sns` key space; a replay that was
//! pending or running at a crash runs again at start-up (a FIFO subscriber queue's
//! deduplication window drops what it had already received).

use super::meta::{SubMeta, TopicMeta};
use super::notification::REPLAYED_HEADER;
use super::{SNS_SPACE, Sns, SnsError, core_error};
use crate::sigv4::{format_iso_ms, parse_iso_ms};
use crate::sqs::meta::json_record;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use switchboard_api::{Delivery, Message, PublishOptions, QueueDecl, Table, Value};

const DAY_MS: u64 = 86_400_000;
/// Leased archive messages stay invisible this long at most: a replay that dies
/// (crash) gives them back by itself.
const REPLAY_LEASE: Duration = Duration::from_secs(900);
const REPLAY_BATCH: usize = 1000;
/// The group id of an archived message (the copy itself has none: see above).
const GROUP_HEADER: &str = "x-sns-message-group-id";

pub fn queue_name(topic: &str) -> String {
    format!("sns-archive.{topic}")
}

/// The retention period an ArchivePolicy sets, in days; `None` for `{}`, which
/// turns archiving off.
pub fn retention_days(policy: &str) -> Result<Option<u64>, SnsError> {
    let bad = |why: &str| SnsError::bad(format!("ArchivePolicy Reason: {why}"));
    let Ok(Json::Object(map)) = serde_json::from_str::<Json>(policy) else {
        return Err(bad("failed to parse JSON"));
    };
    if let Some(k) = map.keys().find(|k| *k != "MessageRetentionPeriod") {
        return Err(bad(&format!("Unknown key {k}")));
    }
    let Some(v) = map.get("MessageRetentionPeriod") else {
        return Ok(None);
    };
    let days = match v {
        Json::String(s) => s.parse::<u64>().ok(),
        Json::Number(n) => n.as_u64(),
        _ => None,
    };
    match days {
        Some(d @ 1..=365) => Ok(Some(d)),
        _ => Err(bad(
            "MessageRetentionPeriod must be an integer between 1 and 365",
        )),
    }
}

/// Whether the topic archives what is published to it.
pub fn active(meta: &TopicMeta) -> bool {
    meta.fifo()
        && meta
            .attributes
            .get("ArchivePolicy")
            .is_some_and(|p| matches!(retention_days(p), Ok(Some(_))))
}

/// GetTopicAttributes' BeginningArchiveTime: the earliest a replay can start from,
/// the later of when archiving began and the retention period ago.
pub fn beginning(meta: &TopicMeta) -> Option<String> {
    let days = retention_days(meta.attributes.get("ArchivePolicy")?).ok()??;
    let since = switchboard_api::wall_ms().saturating_sub(days * DAY_MS);
    Some(format_iso_ms(since.max(meta.archive_since_ms) as i64))
}

/// A checked ReplayPolicy: the window in Unix ms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    start: u64,
    end: Option<u64>,
}

pub fn check_replay_policy(value: &str) -> Result<Window, SnsError> {
    let bad = |why: &str| SnsError::bad(format!("ReplayPolicy Reason: {why}"));
    let Ok(Json::Object(map)) = serde_json::from_str::<Json>(value) else {
        return Err(bad("failed to parse JSON"));
    };
    if let Some(k) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "PointType" | "StartingPoint" | "EndingPoint"))
    {
        return Err(bad(&format!("Unknown key {k}")));
    }
    if map.get("PointType").and_then(Json::as_str) != Some("Timestamp") {
        return Err(bad("PointType must be Timestamp"));
    }
    let time = |k: &str| -> Result<Option<u64>, SnsError> {
        match map.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .and_then(parse_iso_ms)
                .and_then(|ms| u64::try_from(ms).ok())
                .map(Some)
                .ok_or_else(|| bad(&format!("{k} must be an ISO 8601 timestamp"))),
        }
    };
    let start = time("StartingPoint")?.ok_or_else(|| bad("StartingPoint is required"))?;
    let end = time("EndingPoint")?;
    if end.is_some_and(|e| e <= start) {
        return Err(bad("EndingPoint must be later than StartingPoint"));
    }
    if start > switchboard_api::wall_ms() {
        return Err(bad("StartingPoint must not be in the future"));
    }
    Ok(Window { start, end })
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct ReplayRecord {
    policy: String,
    status: String,
}

fn record_key(topic: &str, id: &str) -> String {
    format!("replay/{topic}/{id}")
}

impl Sns {
    /// Makes, resizes or removes the topic's archive queue after its ArchivePolicy
    /// was set.
    pub(super) fn apply_archive(&self, topic: &str, meta: &TopicMeta) -> Result<(), SnsError> {
        let queue = queue_name(topic);
        let vhost = &self.cfg.vhost;
        let days = meta
            .attributes
            .get("ArchivePolicy")
            .filter(|_| meta.fifo())
            .map(|p| retention_days(p))
            .transpose()?
            .flatten();
        let Some(days) = days else {
            if self.broker.queue_exists(vhost, &queue) {
                self.broker
                    .delete_queue(vhost, &queue, false, false, 0)
                    .map_err(core_error)?;
            }
            return Ok(());
        };
        let mut args = Table::new();
        args.insert("x-message-ttl".into(), Value::I64((days * DAY_MS) as i64));
        if self.broker.queue_exists(vhost, &queue) {
            self.broker
                .set_queue_arguments(vhost, &queue, &args)
                .map_err(core_error)?;
        } else {
            let decl = QueueDecl {
                name: queue,
                durable: true,
                arguments: args,
                ..Default::default()
            };
            self.broker
                .declare_queue(vhost, &decl, 0)
                .map_err(core_error)?;
        }
        Ok(())
    }

    /// Enqueues the archive's copy of a message about to be published.
    pub(super) fn archive_copy(&self, queue: &str, m: &Message) -> Result<u64, SnsError> {
        let mut copy = m.clone();
        copy.exchange = String::new();
        copy.routing_key = queue.to_string();
        if let (Some(g), Some(h)) = (copy.group_id.take(), copy.properties.headers.as_mut()) {
            h.insert(GROUP_HEADER.into(), Value::string(g));
        }
        let outcome = self
            .broker
            .publish(&self.cfg.vhost, copy, PublishOptions::default())
            .map_err(core_error)?;
        Ok(outcome.lsn)
    }

    /// The ReplayStatus GetSubscriptionAttributes shows, if a replay was asked for.
    pub(super) fn replay_status(&self, sub: &SubMeta) -> Option<String> {
        self.replay_record(&sub.topic, &sub.id).map(|r| r.status)
    }

    fn replay_record(&self, topic: &str, id: &str) -> Option<ReplayRecord> {
        let m = self
            .broker
            .keyed_get(&self.cfg.vhost, SNS_SPACE, &record_key(topic, id))?;
        serde_json::from_slice(&m.body).ok()
    }

    async fn put_replay_record(
        &self,
        sub: &SubMeta,
        r: Option<&ReplayRecord>,
    ) -> Result<(), SnsError> {
        let value = r.map(json_record).transpose()?;
        let key = record_key(&sub.topic, &sub.id);
        let lsn = self
            .broker
            .keyed_put(&self.cfg.vhost, SNS_SPACE, &key, value)
            .map_err(core_error)?;
        Ok(self.sqs.durable(lsn).await?)
    }

    /// Subscribe or SetSubscriptionAttributes set a ReplayPolicy: checked against
    /// the topic, recorded as Pending (durably, before the answer) and started.
    pub(super) async fn start_replay(&self, sub: &SubMeta) -> Result<(), SnsError> {
        let Some(policy) = sub.attributes.get("ReplayPolicy").filter(|p| !p.is_empty()) else {
            return Ok(());
        };
        self.check_replay_target(&sub.topic, Some(policy))?;
        let record = ReplayRecord {
            policy: policy.clone(),
            status: "Pending".into(),
        };
        self.put_replay_record(sub, Some(&record)).await?;
        self.spawn_replay(sub.clone(), record);
        Ok(())
    }

    /// A ReplayPolicy (if any) is well formed and its topic has an archive.
    pub(super) fn check_replay_target(
        &self,
        topic: &str,
        policy: Option<&String>,
    ) -> Result<(), SnsError> {
        let Some(policy) = policy.filter(|p| !p.is_empty()) else {
            return Ok(());
        };
        check_replay_policy(policy)?;
        let meta = self.topic(topic).ok_or_else(SnsError::no_topic)?;
        if !active(&meta) {
            return Err(SnsError::bad(
                "ReplayPolicy Reason: the topic has no ArchivePolicy",
            ));
        }
        Ok(())
    }

    /// Unsubscribe: the replay's record goes with the subscription.
    pub(super) async fn forget_replay(&self, sub: &SubMeta) -> Result<(), SnsError> {
        if self.replay_record(&sub.topic, &sub.id).is_some() {
            self.put_replay_record(sub, None).await?;
        }
        Ok(())
    }

    /// Start-up: replays a crash interrupted run again.
    pub(super) fn resume_replays(&self) {
        let records = self
            .broker
            .keyed_scan(&self.cfg.vhost, SNS_SPACE, &mut |k| {
                k.starts_with("replay/")
            });
        for (key, m) in records {
            let Ok(r) = serde_json::from_slice::<ReplayRecord>(&m.body) else {
                continue;
            };
            if !matches!(r.status.as_str(), "Pending" | "Running") {
                continue;
            }
            let sub = key
                .strip_prefix("replay/")
                .and_then(|rest| rest.rsplit_once('/'))
                .and_then(|(topic, id)| self.sub(topic, id));
            if let Some(sub) = sub {
                self.spawn_replay(sub, r);
            }
        }
    }

    fn spawn_replay(&self, sub: SubMeta, record: ReplayRecord) {
        let Some(me) = self.me.upgrade() else { return };
        tokio::spawn(async move {
            let turn = me.replay_turn(&sub.topic);
            let _turn = turn.lock().await;
            let status = match me.replay(&sub, &record).await {
                Ok(n) => {
                    tracing::info!(sub = %sub.id, messages = n, "SNS replay completed");
                    "Completed"
                }
                Err(e) => {
                    tracing::warn!(sub = %sub.id, "SNS replay failed: {e}");
                    "Failed"
                }
            };
            // A newer ReplayPolicy (or Unsubscribe) replaced this one meanwhile:
            // its own task reports on it.
            if me
                .replay_record(&sub.topic, &sub.id)
                .is_some_and(|r| r.policy == record.policy)
            {
                let done = ReplayRecord {
                    status: status.into(),
                    ..record
                };
                if let Err(e) = me.put_replay_record(&sub, Some(&done)).await {
                    tracing::warn!(sub = %sub.id, "SNS replay status: {e}");
                }
            }
        });
    }

    /// One lock per topic, so that two replays do not lease from one archive at once.
    fn replay_turn(&self, topic: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self.replays.lock().unwrap_or_else(|e| e.into_inner());
        turns.retain(|_, t| Arc::strong_count(t) > 1);
        turns.entry(topic.to_string()).or_default().clone()
    }

    /// Copies the archived messages of the window into the subscription's queue;
    /// returns how many.
    async fn replay(&self, sub: &SubMeta, record: &ReplayRecord) -> Result<usize, SnsError> {
        let window = check_replay_policy(&record.policy)?;
        if !sub.bound() || self.sub(&sub.topic, &sub.id).is_none() {
            return Err(SnsError::not_found("Subscription does not exist"));
        }
        let running = ReplayRecord {
            status: "Running".into(),
            ..record.clone()
        };
        self.put_replay_record(sub, Some(&running)).await?;
        let archive = queue_name(&sub.topic);
        // A replay delivers what the subscription's filter policy lets through, as
        // live delivery does.
        let filter = super::notification::filter_args(&sub.attributes);
        // Messages published from now on reach the subscriber live: stop there.
        let until = window.end.unwrap_or_else(switchboard_api::wall_ms);
        let mut leased: Vec<Delivery> = Vec::new();
        let mut copied = 0;
        let mut lsn = 0;
        let result = loop {
            let batch =
                match self
                    .broker
                    .receive(&self.cfg.vhost, &archive, REPLAY_BATCH, REPLAY_LEASE)
                {
                    Ok(b) => b,
                    Err(e) => break Err(core_error(e)),
                };
            if batch.is_empty() {
                break Ok(());
            }
            let mut past_end = false;
            for d in batch {
                let at = d.message.timestamp_ms;
                if at > until {
                    past_end = true;
                } else if at >= window.start && self.admits(&filter, &d.message) {
                    match self.replayed_copy(&sub.queue, &d.message) {
                        Ok(l) => {
                            lsn = lsn.max(l);
                            copied += 1;
                        }
                        Err(e) => {
                            leased.push(d);
                            return self.give_back(leased, Err(e));
                        }
                    }
                }
                leased.push(d);
            }
            if past_end {
                break Ok(());
            }
        };
        let result = match result {
            Ok(()) => self.sqs.durable(lsn).await.map_err(SnsError::from),
            Err(e) => Err(e),
        };
        self.give_back(leased, result.map(|()| copied))
    }

    fn admits(&self, filter: &switchboard_api::Table, m: &Message) -> bool {
        self.broker.binding_admits(filter, m).unwrap_or_else(|e| {
            tracing::warn!("SNS replay: filter policy refused by the core: {e}");
            false
        })
    }

    /// Ends the replay's leases at once: the archive keeps its messages, in place.
    fn give_back<T>(
        &self,
        leased: Vec<Delivery>,
        result: Result<T, SnsError>,
    ) -> Result<T, SnsError> {
        for d in leased {
            let _ = d
                .queue
                .set_visibility(d.seq, Some(d.delivery_count), Duration::ZERO);
        }
        result
    }

    /// Enqueues a replayed copy of an archived message into a subscriber's queue.
    fn replayed_copy(&self, queue: &str, archived: &Message) -> Result<u64, SnsError> {
        let mut m = archived.clone();
        m.exchange = String::new();
        m.routing_key = queue.to_string();
        if let Some(h) = m.properties.headers.as_mut() {
            m.group_id = h
                .remove(GROUP_HEADER)
                .and_then(|g| g.as_str().map(str::to_string));
            h.insert(REPLAYED_HEADER.into(), Value::Bool(true));
        }
        let outcome = self
            .broker
            .publish(&self.cfg.vhost, m, PublishOptions::default())
            .map_err(core_error)?;
        Ok(outcome.lsn)
    }
}

/// Replay turns by topic (see [`Sns::replay_turn`]).
pub type Turns = HashMap<String, Arc<tokio::sync::Mutex<()>>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_policy_days() {
        assert_eq!(
            retention_days(r#"{"MessageRetentionPeriod":"30"}"#),
            Ok(Some(30))
        );
        assert_eq!(
            retention_days(r#"{"MessageRetentionPeriod":365}"#),
            Ok(Some(365))
        );
        assert_eq!(retention_days("{}"), Ok(None));
        assert!(retention_days(r#"{"MessageRetentionPeriod":"0"}"#).is_err());
        assert!(retention_days(r#"{"MessageRetentionPeriod":"366"}"#).is_err());
        assert!(retention_days(r#"{"Other":"1"}"#).is_err());
        assert!(retention_days("nope").is_err());
    }

    #[test]
    fn replay_policy_window() {
        let w = check_replay_policy(
            r#"{"PointType":"Timestamp","StartingPoint":"2024-01-01T00:00:00Z","EndingPoint":"2024-01-01T00:00:01.5+00:00"}"#,
        )
        .unwrap();
        assert_eq!(w.start, 1_704_067_200_000);
        assert_eq!(w.end, Some(1_704_067_201_500));
        let offset = check_replay_policy(
            r#"{"PointType":"Timestamp","StartingPoint":"2024-01-01T01:00:00+01:00"}"#,
        )
        .unwrap();
        assert_eq!(offset.start, 1_704_067_200_000);
        for bad in [
            r#"{"PointType":"Sequence","StartingPoint":"2024-01-01T00:00:00Z"}"#,
            r#"{"PointType":"Timestamp"}"#,
            r#"{"PointType":"Timestamp","StartingPoint":"yesterday"}"#,
            r#"{"PointType":"Timestamp","StartingPoint":"2024-01-01T00:00:00Z","EndingPoint":"2023-01-01T00:00:00Z"}"#,
            r#"{"PointType":"Timestamp","StartingPoint":"2999-01-01T00:00:00Z"}"#,
        ] {
            assert!(check_replay_policy(bad).is_err(), "{bad}");
        }
    }
}
