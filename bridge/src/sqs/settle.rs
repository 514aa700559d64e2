//! DeleteMessage(Batch) and ChangeMessageVisibility(Batch): settling leases by
//! receipt handle.

use super::receipt::{self, Receipt};
use super::reply::{Batch, Output, Settled};
use super::typed::Request;
use super::{Ctx, Sqs, SqsError, batch};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use switchboard_api::{BrokerError, ErrorKind};

/// How many deletions are remembered; older ones are forgotten first.
const DELETED_MEMORY: usize = 100_000;

/// Recently deleted messages, by queue and sequence number. Keyed by queue first,
/// the queue's name shared with the eviction order: a delete (and a lookup) then
/// allocates nothing once its queue is known, where a `(String, u64)` key cost two
/// copies of the name per delete and one per lookup.
#[derive(Default)]
pub struct Deleted {
    by_queue: HashMap<Arc<str>, HashSet<u64>>,
    order: VecDeque<(Arc<str>, u64)>,
}

impl Deleted {
    fn insert(&mut self, queue: &str, seq: u64) {
        let name = match self.by_queue.get_key_value(queue) {
            Some((name, _)) => name.clone(),
            None => Arc::from(queue),
        };
        if self.by_queue.entry(name.clone()).or_default().insert(seq) {
            self.order.push_back((name, seq));
        }
        while self.order.len() > DELETED_MEMORY {
            if let Some((q, seq)) = self.order.pop_front()
                && let Some(set) = self.by_queue.get_mut(&q)
            {
                set.remove(&seq);
                if set.is_empty() {
                    self.by_queue.remove(&q);
                }
            }
        }
    }
    fn contains(&self, queue: &str, seq: u64) -> bool {
        self.by_queue.get(queue).is_some_and(|s| s.contains(&seq))
    }
}

fn expired(h: &str) -> SqsError {
    SqsError::invalid_parameter_value(format!(
        "Value {h} for parameter ReceiptHandle is invalid. Reason: The receipt handle has expired."
    ))
}

fn invalid_handle(h: &str) -> SqsError {
    SqsError::receipt_handle_is_invalid(format!(
        "The input receipt handle \"{h}\" is not a valid receipt handle."
    ))
}

impl Sqs {
    /// The receipt a handle stands for; it must belong to `queue`.
    fn receipt(&self, queue: &str, h: &str) -> Result<Receipt, SqsError> {
        receipt::decode_for(h, queue).ok_or_else(|| invalid_handle(h))
    }

    /// Deletes a leased message and returns the LSN to wait for. On a standard
    /// queue a stale handle (the lease ended) succeeds without deleting, as AWS
    /// documents; a FIFO queue refuses it, as AWS does.
    fn delete_one(&self, queue: &str, h: &str, fifo: bool) -> Result<u64, SqsError> {
        let r = self.receipt(queue, h)?;
        let q = self.broker.queue_handle(&self.cfg.vhost, queue);
        let settled = q.as_ref().and_then(|q| {
            q.settle_leased(r.seq, r.delivery_count)
                // A standard queue's handle still deletes the message after its
                // visibility timeout ended, as AWS does; FIFO's does not.
                .or_else(|| if fifo { None } else { q.settle_visible(r.seq) })
        });
        let mut st = self.lock();
        match settled {
            Some(lsn) => {
                st.deleted.insert(queue, r.seq);
                Ok(lsn)
            }
            None if fifo && !st.deleted.contains(queue, r.seq) => Err(expired(h)),
            None => Ok(0),
        }
    }

    /// Returns the LSN to wait for.
    fn change_one(&self, queue: &str, h: &str, timeout: i64) -> Result<u64, SqsError> {
        if !(0..=43_200).contains(&timeout) {
            return Err(SqsError::invalid_parameter_value(format!(
                "Value {timeout} for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and 43200."
            )));
        }
        let r = self.receipt(queue, h)?;
        let q = self
            .broker
            .queue_handle(&self.cfg.vhost, queue)
            .ok_or_else(super::no_queue)?;
        let not_inflight = || {
            SqsError::message_not_inflight(
                "Message does not exist or is not available for visibility timeout change.",
            )
        };
        // A standard queue's handle stays good after the message was received
        // again (AWS applies it to the current lease); FIFO's names one receive.
        let count = self.meta(queue).fifo().then_some(r.delivery_count);
        match q.set_visibility(r.seq, count, Duration::from_secs(timeout as u64)) {
            Ok(lsn) => Ok(lsn),
            Err(BrokerError::DeliveredAgain) => Err(expired(h)),
            // Deleted: AWS says the handle is invalid. Visible again (the lease
            // ended): AWS answers 200 and changes nothing.
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if self.lock().deleted.contains(queue, r.seq) {
                    Err(SqsError::invalid_parameter_value(format!(
                        "Value {h} for parameter ReceiptHandle is invalid. Reason: Message does not exist or is not available for visibility timeout change."
                    )))
                } else {
                    Ok(0)
                }
            }
            Err(_) => Err(not_inflight()),
        }
    }

    pub(super) async fn delete_message(
        &self,
        i: &Request<'_>,
        ctx: &Ctx,
    ) -> Result<Output, SqsError> {
        let name = self.queue_name(i, ctx)?;
        let h = i.receipt_handle.req_str("ReceiptHandle")?;
        let fifo = self.meta(&name).fifo();
        let lsn = self.delete_one(&name, h, fifo)?;
        self.durable(lsn).await?;
        Ok(Output::empty())
    }

    pub(super) async fn delete_message_batch(
        &self,
        i: &Request<'_>,
        ctx: &Ctx,
    ) -> Result<Output, SqsError> {
        let name = self.queue_name(i, ctx)?;
        let entries = i.entries.get("Entries")?;
        let ids = batch::check(entries, "DeleteMessageBatchRequestEntry")?;
        let fifo = self.meta(&name).fifo();
        let (reply, lsn) = batch::each(&ids, entries, |e| {
            self.delete_one(&name, e.receipt_handle.req_str("ReceiptHandle")?, fifo)
        });
        self.durable(lsn).await?;
        Ok(Output::Settled(reply))
    }

    pub(super) async fn change_message_visibility(
        &self,
        i: &Request<'_>,
        ctx: &Ctx,
    ) -> Result<Output, SqsError> {
        let name = self.queue_name(i, ctx)?;
        let h = i.receipt_handle.req_str("ReceiptHandle")?;
        let t = visibility(i)?;
        let lsn = self.change_one(&name, h, t)?;
        self.durable(lsn).await?;
        Ok(Output::empty())
    }

    pub(super) async fn change_message_visibility_batch(
        &self,
        i: &Request<'_>,
        ctx: &Ctx,
    ) -> Result<Output, SqsError> {
        let name = self.queue_name(i, ctx)?;
        let entries = i.entries.get("Entries")?;
        let ids = batch::check(entries, "ChangeMessageVisibilityBatchRequestEntry")?;
        let (reply, lsn): (Batch<Settled>, u64) = batch::each(&ids, entries, |e| {
            let h = e.receipt_handle.req_str("ReceiptHandle")?;
            self.change_one(&name, h, visibility(e)?)
        });
        self.durable(lsn).await?;
        Ok(Output::Settled(reply))
    }
}

/// The required `VisibilityTimeout` of a change.
fn visibility(i: &Request<'_>) -> Result<i64, SqsError> {
    i.visibility_timeout
        .opt_int("VisibilityTimeout")?
        .ok_or_else(|| super::input::missing("VisibilityTimeout"))
}
