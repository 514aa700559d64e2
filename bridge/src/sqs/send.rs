//! SendMessage and SendMessageBatch.

use super::convert::{self, SEQUENCE_HEADER, TRACE_HEADER, valid_chars};
use super::digest::{content_dedup_id, md5_hex, md5_of_attributes};
use super::meta::QueueMeta;
use super::reply::{Batch, Failure, Output, Sent};
use super::typed::{Field, Request};
use super::{Ctx, Sqs, SqsError, batch, input, no_queue};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use switchboard_api::{Message, Properties, PublishOptions, Table};

/// SQS FIFO's deduplication interval.
const DEDUP_WINDOW: Duration = Duration::from_secs(300);
/// Replies remembered for duplicates, at most.
const DEDUP_REPLIES: usize = 50_000;

/// Replies to FIFO sends within the deduplication window, so a duplicate is answered
/// with the original's MessageId and SequenceNumber.
#[derive(Default)]
pub struct DedupCache {
    replies: HashMap<(String, String), (Instant, Sent)>,
    order: VecDeque<(Instant, String, String)>,
}

impl DedupCache {
    fn get(&mut self, queue: &str, key: &str) -> Option<Sent> {
        let now = Instant::now();
        while let Some((t, q, k)) = self.order.front() {
            if now.duration_since(*t) < DEDUP_WINDOW {
                break;
            }
            if self
                .replies
                .get(&(q.clone(), k.clone()))
                .is_some_and(|(at, _)| at == t)
            {
                self.replies.remove(&(q.clone(), k.clone()));
            }
            self.order.pop_front();
        }
        self.replies
            .get(&(queue.to_string(), key.to_string()))
            .map(|(_, v)| v.clone())
    }

    /// PurgeQueue clears a FIFO queue's deduplication window (AWS): the replies go
    /// with it. (The stale entries in `order` expire on their own.)
    pub(super) fn forget_queue(&mut self, queue: &str) {
        self.replies.retain(|(q, _), _| q != queue);
    }

    fn put(&mut self, queue: &str, key: &str, reply: Sent) {
        // Bounded: past this many ids in the window a duplicate is still dropped
        // (the core's window), only its reply gets a fresh MessageId.
        if self.order.len() >= DEDUP_REPLIES {
            return;
        }
        let now = Instant::now();
        self.order
            .push_back((now, queue.to_string(), key.to_string()));
        self.replies
            .insert((queue.to_string(), key.to_string()), (now, reply));
    }
}

/// A checked message, ready to publish, and the reply it earns.
struct Prepared {
    message: Message,
    reply: Sent,
    /// FIFO: the deduplication key, scoped as the queue's DeduplicationScope says.
    dedup: Option<String>,
}

/// An entry's size as AWS counts it for the batch limit: body and attributes (an
/// entry too malformed to parse counts its body only; it fails on its own later).
fn entry_size(e: &Request<'_>) -> usize {
    let body = e.message_body.as_str().map_or(0, str::len);
    let attrs = e
        .message_attributes
        .get("MessageAttributes")
        .ok()
        .and_then(|a| convert::parse(a, "user").ok())
        .map_or(0, |a| convert::size(&a));
    body + attrs
}

impl Sqs {
    fn prepare(
        &self,
        queue: &str,
        meta: &QueueMeta,
        e: &Request<'_>,
        ctx: &Ctx,
    ) -> Result<Prepared, SqsError> {
        let body = match &e.message_body {
            Field::Str(s) => &**s,
            Field::Absent => return Err(input::missing("MessageBody")),
            _ => {
                return Err(SqsError::invalid_parameter_value(
                    "MessageBody must be a string.",
                ));
            }
        };
        if body.is_empty() {
            return Err(SqsError::invalid_parameter_value(
                "The request must contain the parameter MessageBody.",
            ));
        }
        if !valid_chars(body) {
            return Err(SqsError::invalid_message_contents(
                "Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF",
            ));
        }
        let attrs = convert::parse(e.message_attributes.get("MessageAttributes")?, "user")?;
        let system = convert::parse(
            e.message_system_attributes.get("MessageSystemAttributes")?,
            "system",
        )?;
        if let Some(k) = system.keys().find(|k| *k != "AWSTraceHeader") {
            return Err(SqsError::invalid_parameter_value(format!(
                "Message system attribute name '{k}' is invalid."
            )));
        }
        let size = body.len() + convert::size(&attrs);
        let max = meta.int("MaximumMessageSize") as usize;
        if size > max {
            return Err(SqsError::invalid_parameter_value(format!(
                "One or more parameters are invalid. Reason: Message must be shorter than {max} bytes."
            )));
        }
        let fifo = meta.fifo();
        let delay = e.delay_seconds.int_in("DelaySeconds", 0, 900)?;
        // AWS takes an explicit 0 on a FIFO queue; only a real delay is refused.
        if fifo && delay.is_some_and(|d| d != 0) {
            return Err(SqsError::invalid_parameter_value(format!(
                "Value {} for parameter DelaySeconds is invalid. Reason: The request include parameter that is not valid for this queue type.",
                delay.unwrap_or(0)
            )));
        }
        let group = e.message_group_id.opt_str("MessageGroupId")?;
        let dedup_id = e
            .message_deduplication_id
            .opt_str("MessageDeduplicationId")?;
        for (what, v) in [
            ("MessageGroupId", group),
            ("MessageDeduplicationId", dedup_id),
        ] {
            if let Some(v) = v
                && (v.is_empty() || v.len() > 128 || !v.bytes().all(|b| b.is_ascii_graphic()))
            {
                return Err(SqsError::invalid_parameter_value(format!(
                    "Value {v} for parameter {what} is invalid. Reason: {what} can only include alphanumeric and punctuation characters. 1 to 128 in length."
                )));
            }
        }
        let mut dedup = None;
        if fifo {
            let Some(g) = group else {
                return Err(input::missing("MessageGroupId"));
            };
            let id = match dedup_id {
                Some(d) => d.to_string(),
                None if meta.flag("ContentBasedDeduplication") => content_dedup_id(body.as_bytes()),
                None => {
                    return Err(SqsError::invalid_parameter_value(
                        "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
                    ));
                }
            };
            dedup = Some(if meta.attr("DeduplicationScope") == Some("messageGroup") {
                format!("{g}\u{0}{id}")
            } else {
                id
            });
        } else if dedup_id.is_some() {
            return Err(SqsError::invalid_parameter_value(
                "The request include parameter MessageDeduplicationId that is not valid for this queue type",
            ));
        }
        let message_id = uuid::Uuid::new_v4().to_string();
        let mut reply = Sent {
            id: None,
            message_id: message_id.clone(),
            md5_of_body: md5_hex(body.as_bytes()),
            md5_of_attributes: md5_of_attributes(attrs.iter().map(|(k, v)| (k.as_str(), v))),
            md5_of_system_attributes: md5_of_attributes(
                system.iter().map(|(k, v)| (k.as_str(), v)),
            ),
            sequence_number: None,
        };
        let mut headers = Table::new();
        convert::to_headers(&attrs, &mut headers);
        if let Some(t) = system
            .get("AWSTraceHeader")
            .and_then(|a| a.string_value.clone())
        {
            headers.insert(TRACE_HEADER.into(), switchboard_api::Value::string(t));
        }
        if fifo {
            let seq = self.next_sequence();
            headers.insert(
                SEQUENCE_HEADER.into(),
                switchboard_api::Value::string(seq.clone()),
            );
            reply.sequence_number = Some(seq);
        }
        let sender = ctx
            .user
            .as_ref()
            .map_or_else(|| self.cfg.account_id.clone(), |u| u.name.clone());
        let message = Message {
            exchange: String::new(),
            routing_key: queue.to_string(),
            properties: Properties {
                delivery_mode: Some(2),
                message_id: Some(message_id),
                user_id: Some(sender),
                headers: (!headers.is_empty()).then_some(headers),
                ..Default::default()
            },
            body: Bytes::copy_from_slice(body.as_bytes()),
            group_id: group.map(str::to_string),
            dedup_id: dedup.clone(),
            delay_ms: delay.map(|d| d as u64 * 1000),
            timestamp_ms: 0,
        };
        Ok(Prepared {
            message,
            reply,
            dedup,
        })
    }

    /// FIFO sequence numbers: increasing across the broker's life, also over
    /// restarts (they start from the clock).
    fn next_sequence(&self) -> String {
        let now = u128::from(switchboard_api::wall_ms()) * 1_000_000;
        let mut st = self.lock();
        st.last_sequence = (st.last_sequence + 1).max(now);
        format!("{:020}", st.last_sequence)
    }

    /// Publishes a prepared message; returns the LSN to wait for and the reply.
    fn publish(&self, queue: &str, p: Prepared) -> Result<(u64, Sent), SqsError> {
        if let Some(key) = &p.dedup
            && let Some(original) = self.lock().dedup.get(queue, key)
        {
            // AWS answers a duplicate with the original's MessageId and
            // SequenceNumber but the digests of *this* request's body and
            // attributes: SDKs check them against what they just sent.
            let mut reply = p.reply;
            reply.message_id = original.message_id;
            if original.sequence_number.is_some() {
                reply.sequence_number = original.sequence_number;
            }
            return Ok((0, reply));
        }
        let outcome = self
            .broker
            .publish(&self.cfg.vhost, p.message, PublishOptions::default())
            .map_err(super::core_error)?;
        if outcome.queues == 0 {
            return Err(no_queue());
        }
        let reply = p.reply;
        if let Some(key) = &p.dedup {
            self.lock().dedup.put(queue, key, reply.clone());
        }
        Ok((outcome.lsn, reply))
    }

    /// Refuses publishes while a resource alarm holds publishers back: a 503 that
    /// SDKs retry.
    pub(crate) fn check_alarm(&self) -> Result<(), SqsError> {
        if let Some(w) = self.broker.alarm_watch()
            && let Some(reason) = w.borrow().as_ref()
        {
            return Err(SqsError::service_unavailable(format!(
                "The broker holds publishers back: {reason}"
            )));
        }
        Ok(())
    }

    pub(super) async fn send_message(
        &self,
        i: &Request<'_>,
        ctx: &Ctx,
    ) -> Result<Output, SqsError> {
        let name = self.queue_name(i, ctx)?;
        let meta = self.meta(&name);
        let p = self.prepare(&name, &meta, i, ctx)?;
        self.check_alarm()?;
        let (lsn, reply) = self.publish(&name, p)?;
        self.durable(lsn).await?;
        Ok(Output::Sent(reply))
    }

    pub(super) async fn send_message_batch(
        &self,
        i: &Request<'_>,
        ctx: &Ctx,
    ) -> Result<Output, SqsError> {
        let name = self.queue_name(i, ctx)?;
        let meta = self.meta(&name);
        let entries = i.entries.get("Entries")?;
        let ids = batch::check(entries, "SendMessageBatchRequestEntry")?;
        // A FIFO batch with an entry lacking its group fails whole, as on AWS.
        if meta.fifo() && entries.iter().any(|e| e.message_group_id.is_absent()) {
            return Err(SqsError::invalid_parameter_value(
                "The request must contain the parameter MessageGroupId.",
            ));
        }
        // So does one without a deduplication id when the queue cannot derive one.
        if meta.fifo()
            && !meta.flag("ContentBasedDeduplication")
            && entries
                .iter()
                .any(|e| e.message_deduplication_id.is_absent())
        {
            return Err(SqsError::invalid_parameter_value(
                "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
            ));
        }
        // The request's size is checked before any entry's own (AWS: one entry of
        // 1 MiB + 1 byte fails the whole batch, not just itself).
        let max = meta.int("MaximumMessageSize") as usize;
        let total: usize = entries.iter().map(entry_size).sum();
        if total > max {
            return Err(SqsError::batch_request_too_long(format!(
                "Batch requests cannot be longer than {max} bytes. You have sent {total} bytes."
            )));
        }
        let prepared: Vec<_> = ids
            .iter()
            .zip(entries)
            .map(|(id, e)| (id, self.prepare(&name, &meta, e, ctx)))
            .collect();
        self.check_alarm()?;
        let mut out = Batch::default();
        let mut lsn = 0;
        for (id, p) in prepared {
            match p.and_then(|p| self.publish(&name, p)) {
                Ok((l, mut reply)) => {
                    lsn = lsn.max(l);
                    reply.id = Some((*id).to_owned());
                    out.successful.push(reply);
                }
                Err(e) => out.failed.push(Failure::new(id, &e)),
            }
        }
        self.durable(lsn).await?;
        Ok(Output::SentBatch(out))
    }
}
