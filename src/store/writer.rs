//! The writer thread (group commit) and its helper that zero-fills segments ahead
//! of need. Only these two threads create or write segment files while the journal
//! is open.

use std::fs::{self, File};
use std::io;
use std::mem;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use super::segment::{self, HEADER_LEN};
use super::shared::{FsyncMode, Lsn, SegMeta, Shared, lock};

/// A batch buffer that grew past this during a burst is shrunk back once batches
/// are small again, so two idle buffers do not pin a burst's worth of memory.
const KEEP_BUFFER_CAPACITY: usize = 4 << 20;

/// Starts the helper and the writer; `file` is the active segment `active`, whose
/// records end at `tail_pos`.
pub(super) fn start(
    sh: Arc<Shared>,
    file: File,
    active: SegMeta,
    tail_pos: u64,
) -> io::Result<JoinHandle<()>> {
    let preparer = Preparer::start(&sh.dir, sh.segment_bytes)?;
    let written = sh.durable.load(Ordering::Acquire);
    let writer = Writer {
        sh,
        file,
        first_lsn: active.first_lsn,
        pos: tail_pos,
        cap: active.len,
        active_dirty: false,
        unsynced: Vec::new(),
        preparer,
        spare: Vec::new(),
        written,
        last_sync: Instant::now(),
    };
    std::thread::Builder::new()
        .name("journal-writer".into())
        .spawn(move || writer.run())
}

/// Zero-fills the next segment in its own thread under a temporary name, one at a
/// time, on request.
struct Preparer {
    req: Option<mpsc::Sender<()>>,
    resp: mpsc::Receiver<io::Result<File>>,
    outstanding: bool,
    thread: Option<JoinHandle<()>>,
    tmp: PathBuf,
}

impl Preparer {
    fn start(dir: &Path, size: u64) -> io::Result<Preparer> {
        let tmp = dir.join(segment::NEXT_TMP);
        let (req_tx, req_rx) = mpsc::channel::<()>();
        let (resp_tx, resp_rx) = mpsc::channel();
        let path = tmp.clone();
        let thread = std::thread::Builder::new()
            .name("journal-prealloc".into())
            .spawn(move || {
                for () in req_rx {
                    if resp_tx.send(segment::create_zeroed(&path, size)).is_err() {
                        break;
                    }
                }
            })?;
        let mut p = Preparer {
            req: Some(req_tx),
            resp: resp_rx,
            outstanding: false,
            thread: Some(thread),
            tmp,
        };
        p.request();
        Ok(p)
    }

    /// Asks for the next segment. Must not be called while a prepared file still
    /// sits at the temporary path (the preparer would truncate it).
    fn request(&mut self) {
        if !self.outstanding
            && let Some(req) = &self.req
        {
            self.outstanding = req.send(()).is_ok();
        }
    }

    /// The prepared segment, still under `self.tmp`, waiting for it if need be.
    fn take(&mut self) -> io::Result<File> {
        self.request();
        self.outstanding = false;
        self.resp
            .recv()
            .map_err(|_| io::Error::other("segment preparer thread is gone"))?
    }

    fn stop(&mut self) {
        self.req = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Err(e) = segment::remove_if_exists(&self.tmp) {
            tracing::warn!(path = %self.tmp.display(), error = %e, "journal: cannot remove spare segment");
        }
    }
}

enum Work {
    Batch(Vec<u8>, Lsn),
    /// Interval mode: the sync deadline passed with nothing new to write.
    Tick,
    Close,
}

/// The writer thread's state. Only it writes to segment files.
struct Writer {
    sh: Arc<Shared>,
    /// The active segment.
    file: File,
    first_lsn: Lsn,
    pos: u64,
    cap: u64,
    /// The active segment has writes not yet fdatasynced.
    active_dirty: bool,
    /// Earlier segments with writes not yet fdatasynced, by first LSN. Kept as
    /// names, not open files, so `Never` mode does not pile up descriptors.
    unsynced: Vec<Lsn>,
    preparer: Preparer,
    /// The batch buffer not in use, swapped with the pending one at each batch.
    spare: Vec<u8>,
    /// Last LSN written to the OS.
    written: Lsn,
    last_sync: Instant,
}

/// Runs when the writer thread ends, however it ends: waiters must learn that
/// nothing more will become durable.
struct StopGuard(Arc<Shared>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.failed.store(true, Ordering::Release);
        }
        self.0.stopped.store(true, Ordering::Release);
        wake_durable_waiters(&self.0);
        self.0.space.notify_all();
    }
}

/// Publishes `min(local, gate)` as durable if it moved forward. Called by the writer
/// after a sync and by replication after the standby acknowledges.
pub(super) fn refresh_durable(sh: &Shared) {
    let g = lock(&sh.durable_lock);
    let lsn = sh
        .local
        .load(Ordering::Acquire)
        .min(sh.gate.load(Ordering::Acquire));
    if sh.durable.load(Ordering::Acquire) >= lsn {
        return;
    }
    sh.durable.store(lsn, Ordering::Release);
    sh.durable_tx.send_replace(lsn);
    drop(g);
    sh.durable_cv.notify_all();
}

fn wake_durable_waiters(sh: &Shared) {
    // Taking the lock orders this after any waiter's check-then-wait.
    drop(lock(&sh.durable_lock));
    sh.durable_cv.notify_all();
}

impl Writer {
    fn run(mut self) {
        let _guard = StopGuard(self.sh.clone());
        loop {
            match self.next_work() {
                Work::Batch(mut buf, last) => {
                    if !self.sh.failed.load(Ordering::Acquire) {
                        let res = self.write_batch(&mut buf).and_then(|()| {
                            self.written = last;
                            self.sh.written_tx.send_replace(last);
                            self.after_write()
                        });
                        if let Err(e) = res {
                            self.fail(e);
                        }
                    }
                    self.recycle(buf);
                }
                Work::Tick => {
                    if let Err(e) = self.sync() {
                        self.fail(e);
                    }
                }
                Work::Close => {
                    if !self.sh.failed.load(Ordering::Acquire) {
                        match self.sync() {
                            Ok(()) => self.publish(self.written),
                            Err(e) => self.fail(e),
                        }
                    }
                    break;
                }
            }
        }
        self.preparer.stop();
    }

    /// Waits for the next thing to do. Drains pending records before honouring close.
    fn next_work(&mut self) -> Work {
        let sh = &*self.sh;
        let mut st = lock(&sh.state);
        loop {
            if !st.buf.is_empty() {
                let last = st.next_lsn - 1;
                let batch = mem::replace(&mut st.buf, mem::take(&mut self.spare));
                drop(st);
                sh.space.notify_all();
                return Work::Batch(batch, last);
            }
            if st.closing {
                return Work::Close;
            }
            st.writer_idle = true;
            st = match self.sync_deadline() {
                None => sh.work.wait(st).unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let now = Instant::now();
                    if deadline <= now {
                        st.writer_idle = false;
                        return Work::Tick;
                    }
                    match sh.work.wait_timeout(st, deadline - now) {
                        Ok((g, _)) => g,
                        Err(e) => e.into_inner().0,
                    }
                }
            };
            st.writer_idle = false;
        }
    }

    /// Interval mode with unsynced data: when the next fdatasync is due.
    fn sync_deadline(&self) -> Option<Instant> {
        match self.sh.fsync {
            FsyncMode::Interval(d) if self.active_dirty || !self.unsynced.is_empty() => {
                Some(self.last_sync + d)
            }
            _ => None,
        }
    }

    /// Seals (CRCs) every record of the batch and writes it: one positioned write
    /// per segment touched, rolling over to a new segment when the next record does
    /// not fit.
    fn write_batch(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut off = 0;
        let mut run_start = 0;
        while off < buf.len() {
            let (len, lsn) = segment::frame_info(&buf[off..off + HEADER_LEN]);
            let end = off + HEADER_LEN + len;
            segment::seal(&mut buf[off..end]);
            let frame = (end - off) as u64;
            if self.pos + (off - run_start) as u64 + frame > self.cap {
                self.write_run(&buf[run_start..off])?;
                self.roll_over(lsn, frame)?;
                run_start = off;
            }
            off = end;
        }
        self.write_run(&buf[run_start..])?;
        self.sh.batches.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn write_run(&mut self, run: &[u8]) -> io::Result<()> {
        if run.is_empty() {
            return Ok(());
        }
        self.file.write_all_at(run, self.pos)?;
        self.pos += run.len() as u64;
        self.active_dirty = true;
        self.sh
            .bytes_written
            .fetch_add(run.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Makes a new active segment whose first record is `first_lsn`, `frame` bytes
    /// long. Its name is durable (directory fsync) before any record goes in.
    fn roll_over(&mut self, first_lsn: Lsn, frame: u64) -> io::Result<()> {
        // An active segment with no records yet is named after `first_lsn` too: the
        // new file replaces it (only happens for a record too big for it).
        let replace = self.pos == 0 && self.first_lsn == first_lsn;
        let dir = &self.sh.dir;
        let fits = frame <= self.sh.segment_bytes;
        let (file, cap, tmp) = if fits {
            (
                self.preparer.take()?,
                self.sh.segment_bytes,
                self.preparer.tmp.clone(),
            )
        } else {
            let tmp = dir.join(segment::BIG_TMP);
            (segment::create_zeroed(&tmp, frame)?, frame, tmp)
        };
        fs::rename(&tmp, segment::seg_path(dir, first_lsn))?;
        segment::sync_dir(dir)?;
        if fits {
            self.preparer.request();
        }
        if self.active_dirty {
            self.unsynced.push(self.first_lsn);
        }
        self.file = file;
        self.first_lsn = first_lsn;
        self.pos = 0;
        self.cap = cap;
        self.active_dirty = false;
        let mut segs = lock(&self.sh.segments);
        match segs.back_mut() {
            Some(last) if replace && last.first_lsn == first_lsn => last.len = cap,
            _ => segs.push_back(SegMeta {
                first_lsn,
                len: cap,
            }),
        }
        Ok(())
    }

    fn after_write(&mut self) -> io::Result<()> {
        match self.sh.fsync {
            FsyncMode::Batch => {
                self.sync()?;
                self.publish(self.written);
            }
            FsyncMode::Interval(d) => {
                self.publish(self.written);
                if self.last_sync.elapsed() >= d {
                    self.sync()?;
                }
            }
            FsyncMode::Never => self.publish(self.written),
        }
        Ok(())
    }

    /// fdatasyncs every segment written since the last sync.
    fn sync(&mut self) -> io::Result<()> {
        let started = Instant::now();
        for first_lsn in mem::take(&mut self.unsynced) {
            let path = segment::seg_path(&self.sh.dir, first_lsn);
            match File::open(&path) {
                Ok(f) => f.sync_data()?,
                // Retired meanwhile: nothing left to make durable.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
            self.sh.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        if self.active_dirty {
            self.file.sync_data()?;
            self.sh.fsyncs.fetch_add(1, Ordering::Relaxed);
            self.active_dirty = false;
        }
        self.last_sync = Instant::now();
        let took = started.elapsed();
        let secs = took.as_secs_f64();
        let bucket = super::shared::FSYNC_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(super::shared::FSYNC_BUCKETS.len());
        self.sh.sync_hist[bucket].fetch_add(1, Ordering::Relaxed);
        self.sh
            .sync_ns
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        self.sh.synced.store(self.written, Ordering::Release);
        Ok(())
    }

    fn publish(&self, lsn: Lsn) {
        self.sh.local.fetch_max(lsn, Ordering::AcqRel);
        refresh_durable(&self.sh);
    }

    /// A disk error: from now on nothing is reported durable. The writer keeps
    /// taking (and dropping) batches so appenders never block on back-pressure.
    fn fail(&mut self, e: io::Error) {
        tracing::error!(
            dir = %self.sh.dir.display(),
            error = %e,
            durable_lsn = self.sh.durable.load(Ordering::Acquire),
            "journal write failed; nothing more will be reported durable"
        );
        self.sh.failed.store(true, Ordering::Release);
        wake_durable_waiters(&self.sh);
        self.sh.space.notify_all();
    }

    fn recycle(&mut self, mut buf: Vec<u8>) {
        let used = buf.len();
        buf.clear();
        if buf.capacity() > KEEP_BUFFER_CAPACITY && used < buf.capacity() / 4 {
            buf.shrink_to(KEEP_BUFFER_CAPACITY);
        }
        self.spare = buf;
    }
}
