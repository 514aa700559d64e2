//! The rules every batch action shares.

use super::SqsError;
use super::reply::{Batch, Failure, Settled};
use super::typed::Request;

pub const MAX_ENTRIES: usize = 10;

/// Checks the entry list of a batch request and returns the entry ids in order.
/// AWS's rule for a batch entry's `Id` (SQS and SNS alike): 1 to 80 letters,
/// digits, hyphens and underscores.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 80
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub fn check<'a>(entries: &'a [Request<'_>], shape: &str) -> Result<Vec<&'a str>, SqsError> {
    if entries.is_empty() {
        return Err(SqsError::empty_batch(format!(
            "There should be at least one {shape} in the request."
        )));
    }
    if entries.len() > MAX_ENTRIES {
        return Err(SqsError::too_many_entries(format!(
            "Maximum number of entries per request are {MAX_ENTRIES}. You have sent {}.",
            entries.len()
        )));
    }
    let mut ids: Vec<&str> = Vec::with_capacity(entries.len());
    for e in entries {
        let id = e.id.as_str().unwrap_or("");
        if !valid_id(id) {
            return Err(SqsError::invalid_batch_entry_id(
                "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.",
            ));
        }
        // At most ten entries: a scan beats a hash set's allocation.
        if ids.contains(&id) {
            return Err(SqsError::batch_entry_ids_not_distinct(format!(
                "Id {id} repeated."
            )));
        }
        ids.push(id);
    }
    Ok(ids)
}

/// Runs `f` on every entry of a checked batch: `Successful[]` lists the ids it
/// accepted, `Failed[]` the others. Returns the reply and the largest LSN `f`
/// returned (what must be durable before the reply).
pub fn each(
    ids: &[&str],
    entries: &[Request<'_>],
    mut f: impl FnMut(&Request<'_>) -> Result<u64, SqsError>,
) -> (Batch<Settled>, u64) {
    let mut reply = Batch::default();
    let mut lsn = 0;
    for (id, e) in ids.iter().zip(entries) {
        match f(e) {
            Ok(l) => {
                lsn = lsn.max(l);
                reply.successful.push(Settled {
                    id: (*id).to_owned(),
                });
            }
            Err(e) => reply.failed.push(Failure::new(id, &e)),
        }
    }
    (reply, lsn)
}
