//! The store: a segmented, append-only journal with group commit and crash
//! recovery (DESIGN.md §3–4). The broker writes every durable change as one record
//! and tells a publisher "accepted" only once the record's LSN is durable.
//!
//! # On-disk format
//!
//! A journal is a directory of segment files named `<first_lsn>.seg`, the LSN of the
//! segment's first record as 20 zero-padded decimal digits, so that name order is
//! LSN order. Each segment is a sequence of records, all integers little-endian:
//!
//! ```text
//! offset 0   u32  payload_len
//!        4   u32  crc32c      CRC32C (Castagnoli) of bytes 8..24+payload_len
//!        8   u64  epoch       leadership epoch of the writer (DESIGN.md §5)
//!       16   u64  lsn         1, 2, 3, ... one per record, never 0
//!       24   payload_len bytes of payload
//! ```
//!
//! Segments are created at their full size (`segment_bytes`) and filled with zeros
//! before they get their name, so a 24-byte all-zero header where the next record
//! would start means "end of data" (checking the whole header rather than only the
//! length keeps empty payloads representable: their LSN is never 0). Fewer than 24
//! bytes left in the file also ends the data. A record larger than a segment gets
//! a segment of its own, sized to fit. Besides `*.seg` the directory holds `LOCK`
//! (an advisory lock so two processes never write one journal) and, transiently,
//! `*.seg.tmp` files being zero-filled; those are deleted at open.
//!
//! # When things are fsynced
//!
//! - A new segment is zero-filled and `fsync`ed under a temporary name by a helper
//!   thread ahead of need, then renamed to its final name and the directory is
//!   fsynced, all before the first record is written into it. Because its blocks
//!   and size are already on disk, the per-batch `fdatasync` has only data to write.
//! - Records: see [`FsyncMode`]. In the default `Batch` mode the writer thread
//!   `fdatasync`s every segment a batch touched before it publishes the batch's last
//!   LSN as durable; nothing is ever reported durable before that.
//! - Retiring segments deletes them oldest first with a directory fsync after each,
//!   so after any crash the segments left are a contiguous run.
//! - [`Journal::open`] fdatasyncs every segment it recovered, so whatever it replays
//!   is on stable storage before anything new is reported durable on top of it.
//!
//! # What recovery guarantees
//!
//! Open replays, in LSN order, the longest prefix of valid records: each record's
//! length must fit its file, its CRC must match and its LSN must be the successor of
//! the previous one (the first segment's name gives the first expected LSN), and
//! each segment's name must be the successor of the last record before it. At the
//! first violation the journal is cut: the rest of that segment is overwritten with
//! zeros and fdatasynced, and only then every later segment is deleted (should the
//! process die in between, the next recovery cuts at the same place). Appends then
//! continue at the LSN after the last good record. An invalid record in the slack
//! of a sealed segment, where the next segment's name shows that no record was ever
//! written, is not a cut: that space never held data.
//!
//! Every record reported durable is replayed after a crash, as long as the disk
//! keeps what it fdatasynced. Records appended but not yet reported durable may or
//! may not come back, but if one does, every record before it does too.
//!
//! # Threads, memory, failure
//!
//! - `append` never does I/O: it copies the record into one pending buffer under
//!   a short mutex. One writer thread (a std thread, not a tokio task) takes the
//!   whole buffer at once, so many appenders share one write and one fdatasync
//!   (group commit); a helper thread zero-fills the next segment in advance.
//! - Back-pressure: once `max_pending_bytes` (default 64 MiB) wait for the writer,
//!   `append` blocks its thread until the writer takes them. That bounds memory
//!   when the disk is slower than the publishers; the broker should stop reading
//!   from publishers long before (it waits for durability anyway).
//! - Recovery and [`Journal::scan`] read a segment through a window of 1 MiB
//!   (`segment::SegmentReader`), larger only for a record that does not fit in it,
//!   so start-up memory does not grow with `segment_bytes`. The window sees what a
//!   read of the whole file would: the checks above are the same.
//! - An I/O error in the writer is logged and makes the journal *failed* for good:
//!   appends still return LSNs but their records are dropped, `durable_lsn` never
//!   advances again and `is_failed()` is true. Nothing is ever reported durable
//!   that is not; reopening (recovery) is the way back.

pub(crate) mod codec;
mod definitions;
mod defop;
mod durable;
mod error;
mod journal;
mod record;
mod recovery;
mod replica;
#[cfg(test)]
mod replica_tests;
mod replicate;
mod segment;
#[cfg(test)]
mod segment_tests;
mod shared;
#[cfg(test)]
mod tests;
mod writer;

pub use definitions::{BindingDef, Definitions, DefinitionsError, ExchangeDef, QueueDef};
pub use defop::DefOp;
pub use durable::{Fsync, OpenError, Recovered, Recovery, Store};
pub use error::StoreError;
pub use journal::{Journal, JournalConfig, JournalStats};
pub use record::Placement;
pub use recovery::RecoveryReport;
pub use replica::{Replica, ReplicaError};
pub use replicate::{Frames, Reader, for_each_frame};
pub use shared::FSYNC_BUCKETS;
pub use shared::{FsyncMode, Lsn};
