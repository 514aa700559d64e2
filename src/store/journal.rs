//! The journal handle and the append path; the writer thread is in `writer.rs`.
//!
//! Appenders copy their record into one pending buffer under a short mutex and get
//! the next LSN; they never touch the disk. One writer thread swaps that buffer for
//! an empty one, writes it (one write call per segment touched), fdatasyncs per
//! [`FsyncMode`] and publishes the batch's last LSN as durable, completing every
//! appender of the batch at once. A helper thread zero-fills the next segment
//! ahead of need so that a rollover costs a rename, not a 64 MiB write.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::mem;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::watch;

use super::error::StoreError;
use super::recovery::{self, RecoveryReport};
use super::segment::{self, HEADER_LEN};
use super::shared::{FsyncMode, Lsn, Pending, SegMeta, Shared, lock};
use super::writer;

pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
pub const DEFAULT_MAX_PENDING_BYTES: usize = 64 << 20;

/// Smallest segment accepted: room for a header and a little payload. (Tests use
/// 4 KiB; production 64 MiB.)
const MIN_SEGMENT_BYTES: u64 = 64;

#[derive(Clone, Debug)]
pub struct JournalConfig {
    pub dir: PathBuf,
    /// Size of each segment file, pre-allocated and zero-filled. Default 64 MiB.
    pub segment_bytes: u64,
    pub fsync: FsyncMode,
    /// Written into every record; change it at run time with [`Journal::set_epoch`].
    pub epoch: u64,
    /// Back-pressure: once this many bytes are waiting for the writer, `append`
    /// blocks until the writer takes them. Default 64 MiB.
    pub max_pending_bytes: usize,
    /// LSN of the first record of a journal created empty (a standby starting
    /// from a snapshot continues the active's numbering). Default 1.
    pub first_lsn: Lsn,
    /// Records after this LSN are cut at open (see `Journal::end_of_epoch`).
    /// Default `Lsn::MAX`: keep every valid record.
    pub keep_upto: Lsn,
}

/// `JournalConfig::new("journal")`: set `dir` when using `..Default::default()`.
impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig::new("journal")
    }
}

impl JournalConfig {
    /// Defaults: 64 MiB segments, `FsyncMode::Batch`, epoch 0, 64 MiB pending.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        JournalConfig {
            dir: dir.into(),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            fsync: FsyncMode::Batch,
            epoch: 0,
            max_pending_bytes: DEFAULT_MAX_PENDING_BYTES,
            first_lsn: 1,
            keep_upto: Lsn::MAX,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JournalStats {
    /// Segment files on disk.
    pub segments: u64,
    /// Their total size (pre-allocated, so mostly a multiple of `segment_bytes`).
    pub bytes_on_disk: u64,
    /// Records appended since open.
    pub records_appended: u64,
    /// Batches the writer wrote since open.
    pub batches_written: u64,
    /// fdatasync calls on segment files since open (directory fsyncs not counted).
    pub fsyncs: u64,
    /// Syncs by latency: count per bucket of [`super::shared::FSYNC_BUCKETS`]
    /// (not cumulative; the last one unbounded), and their total time.
    pub sync_buckets: [u64; super::shared::FSYNC_BUCKETS.len() + 1],
    pub sync_ns: u64,
    /// Record bytes (headers included) written since open.
    pub bytes_written: u64,
    pub durable_lsn: Lsn,
}

/// A segmented, append-only journal with group commit; see the `store` module docs
/// for the format and the guarantees. Cheap to clone; the last clone dropped closes
/// it (as [`Journal::close`], which blocks until the writer has flushed).
#[derive(Clone)]
pub struct Journal {
    pub(super) h: Arc<Handle>,
}

pub(super) struct Handle {
    pub(super) shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Held open for its advisory lock; released at close.
    lock_file: Mutex<Option<File>>,
    report: RecoveryReport,
}

impl Journal {
    /// Opens or creates the journal in `cfg.dir`, replaying every valid record in
    /// order through `replay(lsn, payload)`. Recovery stops at the first torn or
    /// corrupt record and cuts the journal there (see the module docs), so the next
    /// append continues after the last good record.
    pub fn open(
        cfg: JournalConfig,
        mut replay: impl FnMut(Lsn, &[u8]),
    ) -> Result<Journal, StoreError> {
        Self::open_with_epochs(cfg, |lsn, _epoch, payload| replay(lsn, payload))
    }

    /// [`Journal::open`], also passing each record's epoch: `replay(lsn, epoch, payload)`.
    pub fn open_with_epochs(
        cfg: JournalConfig,
        mut replay: impl FnMut(Lsn, u64, &[u8]),
    ) -> Result<Journal, StoreError> {
        if cfg.segment_bytes < MIN_SEGMENT_BYTES {
            return Err(StoreError::Config(format!(
                "segment_bytes must be at least {MIN_SEGMENT_BYTES}, got {}",
                cfg.segment_bytes
            )));
        }
        let dir = cfg.dir.clone();
        fs::create_dir_all(&dir).map_err(|e| StoreError::io("create directory", &dir, e))?;
        let lock_file = lock_dir(&dir)?;

        let mut rec = recovery::recover(&dir, cfg.keep_upto, &mut replay)?;
        if rec.segments.is_empty() {
            rec.next_lsn = rec.next_lsn.max(cfg.first_lsn);
            // Fresh journal: its first segment, created the same way as every later
            // one (zero-filled under a temporary name, then renamed).
            let tmp = dir.join(segment::NEXT_TMP);
            let path = segment::seg_path(&dir, rec.next_lsn);
            segment::create_zeroed(&tmp, cfg.segment_bytes)
                .and_then(|_| fs::rename(&tmp, &path))
                .and_then(|()| segment::sync_dir(&dir))
                .map_err(|e| StoreError::io("create segment", &path, e))?;
            rec.segments.push(SegMeta {
                first_lsn: rec.next_lsn,
                len: cfg.segment_bytes,
            });
            rec.tail_pos = 0;
        }
        let active = match rec.segments.last() {
            Some(s) => *s,
            None => return Err(StoreError::Config("no segment after recovery".into())),
        };
        let active_path = segment::seg_path(&dir, active.first_lsn);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&active_path)
            .map_err(|e| StoreError::io("open", &active_path, e))?;

        let last = rec.next_lsn - 1;
        let (durable_tx, _) = watch::channel(last);
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            fsync: cfg.fsync,
            segment_bytes: cfg.segment_bytes,
            max_pending: cfg.max_pending_bytes,
            state: Mutex::new(Pending {
                buf: Vec::new(),
                next_lsn: rec.next_lsn,
                // Epochs only grow, also across a restart with the default config.
                epoch: cfg.epoch.max(rec.report.last_epoch),
                epochs: rec.report.epochs.clone(),
                closing: false,
                writer_idle: false,
            }),
            work: Condvar::new(),
            space: Condvar::new(),
            durable: AtomicU64::new(last),
            local: AtomicU64::new(last),
            gate: AtomicU64::new(Lsn::MAX),
            synced: AtomicU64::new(last),
            durable_tx,
            written_tx: watch::Sender::new(last),
            retain_from: AtomicU64::new(Lsn::MAX),
            durable_lock: Mutex::new(()),
            durable_cv: Condvar::new(),
            failed: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            segments: Mutex::new(rec.segments.into()),
            retire_lock: Mutex::new(()),
            records: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            sync_hist: Default::default(),
            sync_ns: AtomicU64::new(0),
        });

        let thread = writer::start(shared.clone(), file, active, rec.tail_pos)
            .map_err(|e| StoreError::io("spawn thread in", &dir, e))?;

        tracing::info!(
            dir = %dir.display(),
            records = rec.report.records,
            next_lsn = rec.next_lsn,
            "journal opened"
        );
        Ok(Journal {
            h: Arc::new(Handle {
                shared,
                writer: Mutex::new(Some(thread)),
                lock_file: Mutex::new(Some(lock_file)),
                report: rec.report,
            }),
        })
    }

    /// Appends one record and returns its LSN. Never does I/O: it copies the payload
    /// into the pending batch under a short mutex. The record is durable once
    /// `durable_lsn() >= lsn`. Blocks (back-pressure) while more than
    /// `max_pending_bytes` wait for a slow disk. After `close` or a writer failure
    /// it still returns a fresh LSN, but that record is dropped and never durable.
    ///
    /// Panics if the payload is longer than `u32::MAX` bytes.
    pub fn append(&self, payload: &[u8]) -> Lsn {
        self.append_with(payload.len(), |buf| buf.extend_from_slice(payload))
    }

    /// [`Journal::append`] without a temporary buffer: `write` appends the payload
    /// directly to the batch (it must only push bytes; it runs under the journal's
    /// mutex, so it must be quick and must not call back into the journal).
    /// `len_hint` is the expected payload size, used to reserve room.
    pub fn append_with(&self, len_hint: usize, write: impl FnOnce(&mut Vec<u8>)) -> Lsn {
        let sh = &*self.h.shared;
        let mut st = wait_for_room(sh);
        let lsn = st.next_lsn;
        if st.closing || sh.failed.load(Ordering::Acquire) {
            // Nothing will write it: keep the LSN unique but the memory bounded.
            st.next_lsn += 1;
            sh.records.fetch_add(1, Ordering::Relaxed);
            return lsn;
        }
        let epoch = st.epoch;
        if st.epochs.last().is_none_or(|e| e.0 != epoch) {
            st.epochs.push((epoch, lsn));
        }
        let start = st.buf.len();
        let mut guard = Unwind {
            p: &mut st,
            start,
            lsn,
            armed: true,
        };
        guard.p.buf.reserve(HEADER_LEN + len_hint);
        guard.p.buf.extend_from_slice(&[0; HEADER_LEN]);
        write(&mut guard.p.buf);
        let len = guard.p.buf.len() - start - HEADER_LEN;
        let Ok(len32) = u32::try_from(len) else {
            drop(guard); // takes the partial record back out
            drop(st);
            panic!("journal record of {len} bytes exceeds the u32 length field");
        };
        segment::write_header(
            &mut guard.p.buf[start..start + HEADER_LEN],
            len32,
            epoch,
            lsn,
        );
        guard.p.next_lsn = lsn + 1;
        guard.armed = false;
        drop(guard);
        sh.records.fetch_add(1, Ordering::Relaxed);
        // Wake the writer only if it sleeps: under load it is busy writing and
        // will find this record on its next swap, with no syscall here.
        if mem::take(&mut st.writer_idle) {
            drop(st);
            sh.work.notify_one();
        }
        lsn
    }

    /// Highest LSN that is durable per the [`FsyncMode`] (for `Interval` and
    /// `Never`: written to the OS).
    pub fn durable_lsn(&self) -> Lsn {
        self.h.shared.durable.load(Ordering::Acquire)
    }

    /// Highest LSN known to be fdatasynced (equal to `durable_lsn` in `Batch` mode).
    pub fn synced_lsn(&self) -> Lsn {
        self.h.shared.synced.load(Ordering::Acquire)
    }

    /// Calls `f` for every record up to `upto`, in order, reading the segments
    /// again. Only meaningful before anything new is appended (start-up).
    pub fn scan(&self, upto: Lsn, mut f: impl FnMut(Lsn, &[u8])) -> Result<(), StoreError> {
        super::recovery::scan(&self.h.shared.dir, upto, &mut f)
    }

    /// The LSN the next append will get.
    pub fn next_lsn(&self) -> Lsn {
        lock(&self.h.shared.state).next_lsn
    }

    /// A watch of `durable_lsn`, for frontends that confirm only after fsync.
    pub fn subscribe(&self) -> watch::Receiver<Lsn> {
        self.h.shared.durable_tx.subscribe()
    }

    /// Waits until `lsn` is durable (returns at once if it already is). Never
    /// resolves if the journal fails or is closed first; use `is_failed` or
    /// `wait_durable_blocking` to tell those apart.
    pub async fn wait_durable(&self, lsn: Lsn) {
        if self.durable_lsn() >= lsn {
            return;
        }
        let mut rx = self.subscribe();
        // Err only if the sender is dropped, which cannot happen while `self` lives.
        let _ = rx.wait_for(|&d| d >= lsn).await;
    }

    /// Blocks the calling thread until `lsn` is durable, or fails with
    /// `NotDurable` once the journal has failed or closed without making it so.
    pub fn wait_durable_blocking(&self, lsn: Lsn) -> Result<(), StoreError> {
        let sh = &*self.h.shared;
        let mut g = lock(&sh.durable_lock);
        loop {
            if sh.durable.load(Ordering::Acquire) >= lsn {
                return Ok(());
            }
            if sh.failed.load(Ordering::Acquire) || sh.stopped.load(Ordering::Acquire) {
                return Err(StoreError::NotDurable);
            }
            g = sh
                .durable_cv
                .wait(g)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// True once a disk error stopped the writer: durable_lsn no longer advances,
    /// and the broker must stop accepting publishes.
    pub fn is_failed(&self) -> bool {
        self.h.shared.failed.load(Ordering::Acquire)
    }

    /// Epoch written into records appended from now on (bumped on failover).
    pub fn set_epoch(&self, epoch: u64) {
        lock(&self.h.shared.state).epoch = epoch;
    }

    /// What recovery found when this journal was opened.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.h.report
    }

    /// Deletes whole segments all of whose records have LSN < `lsn` (the caller
    /// knows nothing below it is live). Never deletes the segment being written,
    /// nor one holding a record that is not yet durable. Deletes oldest first, with
    /// a directory fsync after each, so a crash can never leave a gap; on an I/O
    /// error it logs and stops, leaving the rest for a later call.
    pub fn retire_before(&self, lsn: Lsn) {
        let sh = &*self.h.shared;
        let _serial = lock(&sh.retire_lock);
        let limit = lsn
            .min(self.durable_lsn().saturating_add(1))
            .min(sh.retain_from.load(Ordering::Acquire));
        let mut victims: VecDeque<SegMeta> = VecDeque::new();
        {
            let mut segs = lock(&sh.segments);
            // Segment 0's last LSN is segment 1's first minus one; the last segment
            // is the active one and is never a victim.
            while segs.len() >= 2 && segs[1].first_lsn <= limit {
                if let Some(s) = segs.pop_front() {
                    victims.push_back(s);
                }
            }
        }
        while let Some(s) = victims.front().copied() {
            let path = segment::seg_path(&sh.dir, s.first_lsn);
            if let Err(e) =
                segment::remove_if_exists(&path).and_then(|()| segment::sync_dir(&sh.dir))
            {
                tracing::warn!(segment = %path.display(), error = %e, "journal: cannot retire segment");
                // Put the survivors back in front, in order: only retire pops the
                // front, and it is serialized by `retire_lock`.
                let mut segs = lock(&sh.segments);
                while let Some(s) = victims.pop_back() {
                    segs.push_front(s);
                }
                return;
            }
            victims.pop_front();
        }
    }

    /// The first LSN of the second-oldest segment: everything below it is in the
    /// oldest segment, the next one [`Journal::retire_before`] can delete. `None`
    /// while there is only the active segment.
    pub fn oldest_segment_end(&self) -> Option<Lsn> {
        let segs = lock(&self.h.shared.segments);
        segs.get(1).map(|s| s.first_lsn)
    }

    /// Writes and fdatasyncs everything appended so far (whatever the FsyncMode),
    /// stops the writer and releases the directory. Idempotent; a concurrent second
    /// call returns once the first has finished.
    pub fn close(&self) {
        self.h.close();
    }

    pub fn stats(&self) -> JournalStats {
        let sh = &*self.h.shared;
        let (segments, bytes_on_disk) = {
            let segs = lock(&sh.segments);
            (segs.len() as u64, segs.iter().map(|s| s.len).sum())
        };
        JournalStats {
            segments,
            bytes_on_disk,
            records_appended: sh.records.load(Ordering::Relaxed),
            batches_written: sh.batches.load(Ordering::Relaxed),
            fsyncs: sh.fsyncs.load(Ordering::Relaxed),
            sync_buckets: std::array::from_fn(|i| sh.sync_hist[i].load(Ordering::Relaxed)),
            sync_ns: sh.sync_ns.load(Ordering::Relaxed),
            bytes_written: sh.bytes_written.load(Ordering::Relaxed),
            durable_lsn: sh.durable.load(Ordering::Acquire),
        }
    }
}

impl Handle {
    fn close(&self) {
        // Held across the join, so a concurrent close waits for the flush too.
        let mut writer = lock(&self.writer);
        if let Some(thread) = writer.take() {
            let sh = &*self.shared;
            lock(&sh.state).closing = true;
            sh.work.notify_one();
            sh.space.notify_all();
            if thread.join().is_err() {
                tracing::error!("journal writer thread panicked");
            }
        }
        lock(&self.lock_file).take();
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.close();
    }
}

/// Takes a partly written record back out of the batch if `write` panics, so the
/// buffer never holds a torn record or an LSN gap (which recovery would treat as
/// the end of the journal).
struct Unwind<'a> {
    p: &'a mut Pending,
    start: usize,
    lsn: Lsn,
    armed: bool,
}

impl Drop for Unwind<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.p.buf.truncate(self.start);
            self.p.next_lsn = self.lsn;
        }
    }
}

/// The pending batch, once it has room (back-pressure: blocks while more than
/// `max_pending` bytes wait for the writer, unless the journal is closing or failed).
pub(super) fn wait_for_room(sh: &Shared) -> std::sync::MutexGuard<'_, Pending> {
    let mut st = lock(&sh.state);
    while !st.buf.is_empty()
        && st.buf.len() >= sh.max_pending
        && !st.closing
        && !sh.failed.load(Ordering::Acquire)
    {
        st = sh.space.wait(st).unwrap_or_else(PoisonError::into_inner);
    }
    st
}

fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::io("open", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(StoreError::Locked(dir.to_path_buf())),
        Err(fs::TryLockError::Error(e)) => Err(StoreError::io("lock", &path, e)),
    }
}
