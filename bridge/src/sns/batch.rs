//! PublishBatch: the whole batch's checks, then each entry as Publish takes it
//! (`publish.rs`), answered entry by entry.

use super::fifo::{self, Sent};
use super::meta::TopicMeta;
use super::publish::{MAX_SIZE, publish_size};
use super::xml::Out;
use super::{Params, Sns, SnsError};
use crate::sqs::Ctx;
use std::collections::HashSet;

const MAX_BATCH: usize = 10;

impl Sns {
    pub(super) async fn publish_batch(&self, p: &Params, ctx: &Ctx) -> Result<Out, SnsError> {
        let topic = self.topic_of(p.req("TopicArn")?)?;
        let meta = self.topic(&topic).ok_or_else(SnsError::no_topic)?;
        let entries = batch_entries(p, &meta)?;
        let prepared: Vec<_> = entries
            .iter()
            .map(|e| self.prepare(&topic, &meta, p, &format!("{e}."), ctx))
            .collect();
        self.sqs.check_alarm()?;
        let (sent, lsn) = self.send(&topic, &meta, prepared);
        self.sqs.durable(lsn).await?;
        Ok(batch_reply(p, &entries, sent))
    }
}

/// PublishBatch's checks of the whole batch (count, ids, FIFO fields, total size),
/// before any entry is looked at alone; the entries' prefixes, in order.
pub(super) fn batch_entries(p: &Params, meta: &TopicMeta) -> Result<Vec<String>, SnsError> {
    let entries = p.members("PublishBatchRequestEntries");
    if entries.is_empty() {
        return Err(SnsError::empty_batch(
            "The batch request doesn't contain any entries",
        ));
    }
    if entries.len() > MAX_BATCH {
        return Err(SnsError::too_many_entries(
            "The batch request contains more entries than permissible.",
        ));
    }
    let mut ids = HashSet::new();
    for e in &entries {
        let id = p.get(&format!("{e}.Id")).unwrap_or("");
        if !crate::sqs::batch::valid_id(id) {
            return Err(SnsError::invalid_batch_entry_id(
                "The Id of a batch entry in a batch request doesn't abide by the specification.",
            ));
        }
        if !ids.insert(id) {
            return Err(SnsError::batch_entry_ids_not_distinct(
                "Two or more batch entries in the request have the same Id.",
            ));
        }
    }
    // A FIFO batch with an entry lacking its group (or a deduplication id the
    // topic cannot derive) fails whole, as does one over the size limit (AWS).
    if meta.fifo() {
        let lacks = |n: &str| entries.iter().any(|e| p.get(&format!("{e}.{n}")).is_none());
        if lacks("MessageGroupId") {
            return Err(fifo::missing_group());
        }
        if !meta.content_based_dedup() && lacks("MessageDeduplicationId") {
            return Err(fifo::missing_dedup());
        }
    }
    let total: usize = entries
        .iter()
        .map(|e| publish_size(p, &format!("{e}.")))
        .sum();
    if total > MAX_SIZE {
        return Err(SnsError::batch_request_too_long(
            "The length of all the messages put together is more than the limit.",
        ));
    }
    Ok(entries)
}

/// PublishBatch's Result: each entry's answer, in `entries` order.
pub(super) fn batch_reply(
    p: &Params,
    entries: &[String],
    sent: Vec<Result<Sent, SnsError>>,
) -> Out {
    let mut ok = Out::default();
    let mut failed = Out::default();
    for (e, result) in entries.iter().zip(sent) {
        let id = p.get(&format!("{e}.Id")).unwrap_or("");
        match result {
            Ok(s) => {
                ok.open("member")
                    .el("Id", id)
                    .el("MessageId", &s.message_id);
                if let Some(seq) = &s.sequence {
                    ok.el("SequenceNumber", seq);
                }
                ok.close("member");
            }
            Err(err) => {
                failed
                    .open("member")
                    .el("Id", id)
                    .el("Code", err.code)
                    .el("Message", &err.message)
                    .el("SenderFault", if err.sender() { "true" } else { "false" })
                    .close("member");
            }
        }
    }
    let mut out = Out::default();
    out.wrap("Successful", &ok).wrap("Failed", &failed);
    out
}
