//! The words every file of the store shares: LSNs, the fsync mode, a segment's
//! extent, and the state the journal handle and its writer thread hold in common.
//! It sits at the bottom of the store so that segment, recovery, writer and journal
//! each import only what lies below them.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

/// Log sequence number: 1, 2, 3, ... one per record, never reused; 0 = "nothing".
pub type Lsn = u64;

/// When a record counts as durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FsyncMode {
    /// fdatasync every segment a batch touched before reporting the batch durable.
    /// Nothing reported durable is lost on power loss. The default.
    #[default]
    Batch,
    /// Report a batch durable once written to the OS; fdatasync at most once per
    /// interval (and at close). A kill -9 of the process loses nothing reported
    /// durable (the OS has it), but power loss or a kernel crash can lose up to
    /// the last interval of records already reported durable.
    Interval(Duration),
    /// Report a batch durable once written to the OS; never fdatasync except at
    /// [`Journal::close`](super::Journal::close). Power loss can lose everything
    /// the OS had not yet written back on its own (typically up to ~30 s). For
    /// tests and benchmarks.
    Never,
}

/// A segment file of the journal.
#[derive(Clone, Copy, Debug)]
pub(super) struct SegMeta {
    pub first_lsn: Lsn,
    pub len: u64,
}

/// What the handle and the writer thread share.
pub(super) struct Shared {
    pub(super) dir: PathBuf,
    pub(super) fsync: FsyncMode,
    pub(super) segment_bytes: u64,
    pub(super) max_pending: usize,
    pub(super) state: Mutex<Pending>,
    /// The writer waits here for data or close.
    pub(super) work: Condvar,
    /// Appenders wait here while the pending buffer is full.
    pub(super) space: Condvar,
    /// What clients may be told is durable: `min(local, gate)`.
    pub(super) durable: AtomicU64,
    /// Durable in this node's own files (per the FsyncMode).
    pub(super) local: AtomicU64,
    /// Replication gate: the standby's acknowledged LSN while confirmations wait
    /// for it (sync replication), `Lsn::MAX` otherwise.
    pub(super) gate: AtomicU64,
    pub(super) synced: AtomicU64,
    pub(super) durable_tx: watch::Sender<Lsn>,
    /// Last LSN written to the OS (readable from the segment files), for the
    /// replication sender, which ships records before they are fsynced here.
    pub(super) written_tx: watch::Sender<Lsn>,
    /// Segments holding LSNs at or above this are kept by `retire_before` (a
    /// replication sender still has to read them); `Lsn::MAX` = nothing to keep.
    pub(super) retain_from: AtomicU64,
    /// Sync waiters (`wait_durable_blocking`) wait on `durable_cv` under this.
    pub(super) durable_lock: Mutex<()>,
    pub(super) durable_cv: Condvar,
    pub(super) failed: AtomicBool,
    /// The writer thread has exited.
    pub(super) stopped: AtomicBool,
    pub(super) segments: Mutex<VecDeque<SegMeta>>,
    /// Serializes `retire_before` calls: deletions must happen oldest first.
    pub(super) retire_lock: Mutex<()>,
    pub(super) records: AtomicU64,
    pub(super) batches: AtomicU64,
    pub(super) fsyncs: AtomicU64,
    pub(super) bytes_written: AtomicU64,
    /// How long each sync (one or more fdatasyncs) took: counts per bucket of
    /// [`FSYNC_BUCKETS`] (the last one unbounded), and the total in ns.
    pub(super) sync_hist: [AtomicU64; FSYNC_BUCKETS.len() + 1],
    pub(super) sync_ns: AtomicU64,
}

/// Upper bounds (seconds) of the sync-latency histogram's buckets.
pub const FSYNC_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

pub(super) struct Pending {
    /// Framed records not yet taken by the writer; CRCs are filled in by the writer.
    pub(super) buf: Vec<u8>,
    pub(super) next_lsn: Lsn,
    pub(super) epoch: u64,
    /// `(epoch, first LSN written in it)`, oldest first: which epoch wrote which
    /// LSNs, so that a new active can tell a rejoining node where they diverge.
    pub(super) epochs: Vec<(u64, Lsn)>,
    pub(super) closing: bool,
    /// The writer is (about to be) waiting on `work` and needs a notify.
    pub(super) writer_idle: bool,
}

/// Mutex poisoning is not fatal here: the append path restores its invariants on
/// unwind (see `Unwind` in journal.rs) and nothing else panics while holding a lock.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
