//! ReceiveMessage: leases from the core queue, with long polling woken by arrivals.

use super::convert::{self, SEQUENCE_HEADER, TRACE_HEADER};
use super::digest::{md5_hex, md5_of_attributes};
use super::{Ctx, Sqs, SqsError, input, receipt};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use switchboard_api::{Delivery, Value as HeaderValue};

/// How long a FIFO ReceiveRequestAttemptId is remembered (AWS: 5 minutes).
const ATTEMPT_WINDOW: Duration = Duration::from_secs(300);
/// Attempts remembered at once, at most (each holds up to ten messages).
const MAX_ATTEMPTS: usize = 1_000;

/// FIFO receive retries: (queue, attempt id) → the reply the first attempt got.
#[derive(Default)]
pub struct AttemptCache(HashMap<(String, String), (Instant, Value)>);

const SYSTEM_ATTRIBUTES: &[&str] = &[
    "SenderId",
    "SentTimestamp",
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageDeduplicationId",
    "MessageGroupId",
    "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
];

impl Sqs {
    pub(super) async fn receive_message(&self, i: &Value, ctx: &Ctx) -> Result<Value, SqsError> {
        let name = self.queue_name(i, ctx)?;
        let meta = self.meta(&name);
        let max = input::int_in(i, "MaxNumberOfMessages", 1, 10)?.unwrap_or(1) as usize;
        let visibility = match input::opt_int(i, "VisibilityTimeout")? {
            Some(v) if !(0..=43_200).contains(&v) => {
                return Err(SqsError::invalid_parameter_value(format!(
                    "Value {v} for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and 43200, if provided."
                )));
            }
            Some(v) => v,
            None => meta.int("VisibilityTimeout"),
        };
        let wait = match input::opt_int(i, "WaitTimeSeconds")? {
            Some(v) if !(0..=20).contains(&v) => {
                return Err(SqsError::invalid_parameter_value(format!(
                    "Value {v} for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided."
                )));
            }
            Some(v) => v,
            None => meta.int("ReceiveMessageWaitTimeSeconds"),
        };
        let mut system = input::strs(i, "AttributeNames")?;
        system.extend(input::strs(i, "MessageSystemAttributeNames")?);
        for s in &system {
            if s != "All" && !SYSTEM_ATTRIBUTES.contains(&s.as_str()) {
                return Err(SqsError::invalid_attribute_name(format!(
                    "Unknown Attribute {s}."
                )));
            }
        }
        let wanted = input::strs(i, "MessageAttributeNames")?;
        let attempt = if meta.fifo() {
            input::opt_str(i, "ReceiveRequestAttemptId")?.map(str::to_string)
        } else {
            None
        };
        if let Some(a) = &attempt {
            let mut st = self.lock();
            let now = Instant::now();
            st.attempts
                .0
                .retain(|_, (t, _)| now.duration_since(*t) < ATTEMPT_WINDOW);
            if let Some((_, reply)) = st.attempts.0.get(&(name.clone(), a.clone())) {
                return Ok(reply.clone());
            }
        }
        let handle = self
            .broker
            .queue_handle(&self.cfg.vhost, &name)
            .ok_or_else(super::no_queue)?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(wait as u64);
        let lease = Duration::from_secs(visibility as u64);
        let got = loop {
            let notify = handle.ready_notify();
            let arrived = notify.notified();
            tokio::pin!(arrived);
            // Registered before looking, so an arrival in between still wakes us.
            arrived.as_mut().enable();
            let got = self
                .broker
                .receive(&self.cfg.vhost, &name, max, lease)
                .map_err(super::core_error)?;
            if !got.is_empty() || tokio::time::Instant::now() >= deadline {
                break got;
            }
            tokio::select! {
                _ = arrived => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        };
        // In flight only once the leases are on disk: a crash after the reply must
        // not hand the messages to someone else before their visibility ends.
        let lsn = got.iter().map(|d| d.lease_lsn).max().unwrap_or(0);
        self.durable(lsn).await?;
        if let Some(n) = self.notifications() {
            let ms: Vec<&switchboard_api::Message> = got.iter().map(|d| &*d.message).collect();
            n.ready(&name, &ms).await;
        }
        let messages: Vec<Value> = got
            .iter()
            .map(|d| self.message_json(&name, d, &system, &wanted, &ctx.base_url))
            .collect();
        let reply = if messages.is_empty() {
            json!({})
        } else {
            json!({ "Messages": messages })
        };
        if let Some(a) = attempt {
            let mut st = self.lock();
            // Bounded: a retry past this many recent attempts just receives anew.
            if st.attempts.0.len() < MAX_ATTEMPTS {
                st.attempts
                    .0
                    .insert((name, a), (Instant::now(), reply.clone()));
            }
        }
        Ok(reply)
    }

    fn message_json(
        &self,
        queue: &str,
        d: &Delivery,
        system: &[String],
        wanted: &[String],
        base_url: &str,
    ) -> Value {
        let m = &d.message;
        // An SNS notification: the envelope replaces body and attributes.
        let envelope = self
            .notifications()
            .and_then(|n| n.envelope(queue, m, base_url));
        let body = match &envelope {
            Some(e) => std::borrow::Cow::Borrowed(e.as_str()),
            None => String::from_utf8_lossy(&m.body),
        };
        let headers = m.properties.headers.as_ref();
        let header = |k: &str| headers.and_then(|h| h.get(k)).and_then(HeaderValue::as_str);
        let mut out = Map::new();
        let id = m
            .properties
            .message_id
            .clone()
            .unwrap_or_else(|| derived_id(queue, d.seq, m.timestamp_ms));
        out.insert("MessageId".into(), json!(id));
        out.insert(
            "ReceiptHandle".into(),
            json!(receipt::encode(queue, d.seq, d.delivery_count)),
        );
        out.insert("MD5OfBody".into(), json!(md5_hex(body.as_bytes())));
        out.insert("Body".into(), json!(body));
        let all = system.iter().any(|s| s == "All");
        let want = |k: &str| all || system.iter().any(|s| s == k);
        let mut attrs = Map::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v
                && want(k)
            {
                attrs.insert(k.to_string(), json!(v));
            }
        };
        put(
            "SenderId",
            Some(
                m.properties
                    .user_id
                    .clone()
                    .unwrap_or_else(|| self.cfg.account_id.clone()),
            ),
        );
        put("SentTimestamp", Some(m.timestamp_ms.to_string()));
        put(
            "ApproximateReceiveCount",
            Some(d.delivery_count.to_string()),
        );
        put(
            "ApproximateFirstReceiveTimestamp",
            Some(d.first_delivered_ms.to_string()),
        );
        put(
            "SequenceNumber",
            header(SEQUENCE_HEADER).map(str::to_string),
        );
        // Standard queues take a MessageGroupId too (fair queues, 2025) and hand it
        // back; deduplication ids are FIFO's alone.
        put("MessageGroupId", m.group_id.clone());
        if m.group_id.is_some() && header(SEQUENCE_HEADER).is_some() {
            put(
                "MessageDeduplicationId",
                m.dedup_id
                    .as_deref()
                    .map(|d| d.rsplit('\u{0}').next().unwrap_or(d).to_string()),
            );
        }
        put("AWSTraceHeader", header(TRACE_HEADER).map(str::to_string));
        put(
            "DeadLetterQueueSourceArn",
            dead_letter_source(headers).map(|q| self.queue_arn(&q)),
        );
        if !attrs.is_empty() {
            out.insert("Attributes".into(), Value::Object(attrs));
        }
        let mut user = convert::from_headers(headers);
        user.retain(|k, _| envelope.is_none() && wanted_attribute(wanted, k));
        if let Some(md5) = md5_of_attributes(user.iter().map(|(k, v)| (k.as_str(), v))) {
            out.insert("MD5OfMessageAttributes".into(), json!(md5));
            out.insert(
                "MessageAttributes".into(),
                serde_json::to_value(&user).unwrap_or_default(),
            );
        }
        Value::Object(out)
    }
}

/// `All`, `.*` or `*` (every name), `prefix.*` (names that start with `prefix`:
/// `Hel.*` takes `Hello` and `Help.Me`, as AWS does) or an exact name.
fn wanted_attribute(wanted: &[String], name: &str) -> bool {
    wanted.iter().any(|w| {
        w == "All"
            || w == ".*"
            || w == "*"
            || w == name
            || w.strip_suffix(".*").is_some_and(|p| name.starts_with(p))
    })
}

/// The queue a dead-lettered message came from: the latest `x-death` entry (first).
fn dead_letter_source(headers: Option<&switchboard_api::Table>) -> Option<String> {
    let HeaderValue::Array(deaths) = headers?.get("x-death")? else {
        return None;
    };
    let HeaderValue::Table(first) = deaths.first()? else {
        return None;
    };
    first.get("queue")?.as_str().map(str::to_string)
}

/// A stable MessageId for a message published without one (by AMQP, MQTT, STOMP).
fn derived_id(queue: &str, seq: u64, ts: u64) -> String {
    let h = md5_hex(format!("{queue}/{seq}/{ts}").as_bytes());
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::wanted_attribute;

    #[test]
    fn attribute_name_filters() {
        let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(wanted_attribute(&w(&["All"]), "x"));
        assert!(wanted_attribute(&w(&[".*"]), "x"));
        assert!(wanted_attribute(&w(&["*"]), "x"));
        assert!(wanted_attribute(&w(&["bar.*"]), "bar.baz"));
        assert!(wanted_attribute(&w(&["Hel.*"]), "Hello"));
        assert!(wanted_attribute(&w(&["Hel.*"]), "Help.Me"));
        assert!(!wanted_attribute(&w(&["Hel.*"]), "Yes"));
        assert!(wanted_attribute(&w(&["color"]), "color"));
        assert!(!wanted_attribute(&w(&[]), "color"));
    }
}
