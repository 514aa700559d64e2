//! ReceiveMessage: leases from the core queue, with long polling woken by arrivals.

use super::convert::{self, SEQUENCE_HEADER, TRACE_HEADER};
use super::digest::{md5_hex, md5_of_attributes};
use super::reply::{self, Output, Received};
use super::typed::Request;
use super::{Ctx, Sqs, SqsError, receipt};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use switchboard_api::{Delivery, Value as HeaderValue};

/// How long a FIFO ReceiveRequestAttemptId is remembered (AWS: 5 minutes).
const ATTEMPT_WINDOW: Duration = Duration::from_secs(300);
/// Attempts remembered at once, at most (each holds up to ten messages).
const MAX_ATTEMPTS: usize = 1_000;

/// FIFO receive retries: (queue, attempt id) → the reply the first attempt got.
#[derive(Default)]
pub struct AttemptCache(HashMap<(String, String), (Instant, Received)>);

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
    pub(super) async fn receive_message(
        &self,
        i: &Request<'_>,
        ctx: &Ctx,
    ) -> Result<Output, SqsError> {
        let name = self.queue_name(i, ctx)?;
        let meta = self.meta(&name);
        let max = i
            .max_number_of_messages
            .int_in("MaxNumberOfMessages", 1, 10)?
            .unwrap_or(1) as usize;
        let visibility = match i.visibility_timeout.opt_int("VisibilityTimeout")? {
            Some(v) if !(0..=43_200).contains(&v) => {
                return Err(SqsError::invalid_parameter_value(format!(
                    "Value {v} for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and 43200, if provided."
                )));
            }
            Some(v) => v,
            None => meta.int("VisibilityTimeout"),
        };
        let wait = match i.wait_time_seconds.opt_int("WaitTimeSeconds")? {
            Some(v) if !(0..=20).contains(&v) => {
                return Err(SqsError::invalid_parameter_value(format!(
                    "Value {v} for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided."
                )));
            }
            Some(v) => v,
            None => meta.int("ReceiveMessageWaitTimeSeconds"),
        };
        let mut system = i.attribute_names.get("AttributeNames")?;
        system.extend(
            i.message_system_attribute_names
                .get("MessageSystemAttributeNames")?,
        );
        for s in &system {
            if *s != "All" && !SYSTEM_ATTRIBUTES.contains(s) {
                return Err(SqsError::invalid_attribute_name(format!(
                    "Unknown Attribute {s}."
                )));
            }
        }
        let wanted = i.message_attribute_names.get("MessageAttributeNames")?;
        let attempt = if meta.fifo() {
            i.receive_request_attempt_id
                .opt_str("ReceiveRequestAttemptId")?
                .map(str::to_string)
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
                return Ok(Output::Received(reply.clone()));
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
        let reply = Received {
            messages: got
                .iter()
                .map(|d| self.message_out(&name, d, &system, &wanted, &ctx.base_url))
                .collect(),
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
        Ok(Output::Received(reply))
    }

    fn message_out(
        &self,
        queue: &str,
        d: &Delivery,
        system: &[&str],
        wanted: &[&str],
        base_url: &str,
    ) -> reply::Message {
        let m = &d.message;
        // An SNS notification: the envelope replaces body and attributes.
        let envelope = self
            .notifications()
            .and_then(|n| n.envelope(queue, m, base_url));
        let enveloped = envelope.is_some();
        let body = match envelope {
            Some(e) => e,
            None => String::from_utf8_lossy(&m.body).into_owned(),
        };
        let headers = m.properties.headers.as_ref();
        let header = |k: &str| headers.and_then(|h| h.get(k)).and_then(HeaderValue::as_str);
        let id = m
            .properties
            .message_id
            .clone()
            .unwrap_or_else(|| derived_id(queue, d.seq, m.timestamp_ms));
        let all = system.contains(&"All");
        let want = |k: &str| all || system.contains(&k);
        let mut attrs = BTreeMap::new();
        let mut put = |k: &'static str, v: Option<String>| {
            if let Some(v) = v
                && want(k)
            {
                attrs.insert(k, v);
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
        let mut user = convert::from_headers(headers);
        user.retain(|k, _| !enveloped && wanted_attribute(wanted, k));
        let md5_of_message_attributes =
            md5_of_attributes(user.iter().map(|(k, v)| (k.as_str(), v)));
        reply::Message {
            message_id: id,
            receipt_handle: receipt::encode(queue, d.seq, d.delivery_count),
            md5_of_body: md5_hex(body.as_bytes()),
            body,
            attributes: attrs,
            message_attributes: md5_of_message_attributes.is_some().then_some(user),
            md5_of_message_attributes,
        }
    }
}

/// `All`, `.*` or `*` (every name), `prefix.*` (names that start with `prefix`:
/// `Hel.*` takes `Hello` and `Help.Me`, as AWS does) or an exact name.
fn wanted_attribute(wanted: &[&str], name: &str) -> bool {
    wanted.iter().any(|&w| {
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
        let w = |v: &[&'static str]| v.to_vec();
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
