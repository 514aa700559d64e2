//! What replication needs from the journal (DESIGN.md §5): the active reads its
//! records back from the segment files ([`Reader`]) and holds confirmations until the
//! standby has them (the gate); the standby appends them with the active's own epoch
//! and LSN ([`Journal::append_replica`]) and learns where its history diverges from
//! a new active's ([`Journal::end_of_epoch`]).
//!
//! Invariants:
//! - A record is shipped only after the writer handed it to the OS (`written_lsn`),
//!   so the reader never sees a partial frame below that LSN.
//! - While a gate is set, `durable_lsn` is `min(local durable, gate)`: nothing is
//!   reported durable that the standby has not acknowledged.
//! - Segments at or above `retain_from` are never retired, so a reader's position
//!   stays readable.

use std::fs::File;
use std::mem;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use tokio::sync::watch;

use super::error::StoreError;
use super::journal::Journal;
use super::segment::{self, HEADER_LEN, Parsed};
use super::shared::{Lsn, lock};
use super::writer::refresh_durable;

/// Bytes read from a segment per call: large enough that a read is a few syscalls
/// per thousand small records.
const READ_CHUNK: usize = 256 << 10;

impl Journal {
    /// Appends a record shipped by the active, keeping its epoch and LSN. The LSN
    /// must be the one the journal continues at.
    pub fn append_replica(&self, epoch: u64, lsn: Lsn, payload: &[u8]) -> Result<(), StoreError> {
        let sh = &*self.h.shared;
        let mut st = super::journal::wait_for_room(sh);
        if st.closing || sh.failed.load(Ordering::Acquire) {
            return Err(StoreError::NotDurable);
        }
        if lsn != st.next_lsn {
            return Err(StoreError::OutOfSequence {
                expected: st.next_lsn,
                got: lsn,
            });
        }
        let len = u32::try_from(payload.len()).map_err(|_| StoreError::BadFrame {
            lsn,
            why: "payload too long",
        })?;
        if st.epochs.last().is_none_or(|e| e.0 != epoch) {
            st.epochs.push((epoch, lsn));
        }
        st.epoch = st.epoch.max(epoch);
        let start = st.buf.len();
        st.buf.resize(start + HEADER_LEN, 0);
        segment::write_header(&mut st.buf[start..], len, epoch, lsn);
        st.buf.extend_from_slice(payload);
        st.next_lsn = lsn + 1;
        sh.records.fetch_add(1, Ordering::Relaxed);
        if mem::take(&mut st.writer_idle) {
            drop(st);
            sh.work.notify_one();
        }
        Ok(())
    }

    /// The last LSN written in `epoch` or an earlier one (Kafka's leader-epoch end
    /// offset): a node whose last record is `(epoch, lsn)` keeps its records up to
    /// `min(lsn, end_of_epoch(epoch))` and drops the rest, which this journal never
    /// had.
    pub fn end_of_epoch(&self, epoch: u64) -> Lsn {
        let st = lock(&self.h.shared.state);
        st.epochs
            .iter()
            .find(|&&(e, _)| e > epoch)
            .map_or(st.next_lsn - 1, |&(_, start)| start - 1)
    }

    /// Epoch of the last record and its LSN; `(0, 0)` for an empty journal.
    pub fn last_record(&self) -> (u64, Lsn) {
        let st = lock(&self.h.shared.state);
        let last = st.next_lsn - 1;
        (st.epochs.last().map_or(0, |e| e.0), last)
    }

    /// The epoch records get from now on.
    pub fn epoch(&self) -> u64 {
        lock(&self.h.shared.state).epoch
    }

    /// First LSN still on disk (the oldest segment's).
    pub fn first_lsn(&self) -> Lsn {
        lock(&self.h.shared.segments)
            .front()
            .map_or(1, |s| s.first_lsn)
    }

    /// Durable in this node's own files, whatever the standby has.
    pub fn local_durable_lsn(&self) -> Lsn {
        self.h.shared.local.load(Ordering::Acquire)
    }

    /// A watch of the last LSN handed to the OS: what a [`Reader`] can read.
    pub fn subscribe_written(&self) -> watch::Receiver<Lsn> {
        self.h.shared.written_tx.subscribe()
    }

    /// Sync replication: from now on `durable_lsn` is at most `acked`, the standby's
    /// acknowledged LSN (call again as acknowledgements arrive). `None` lifts the
    /// gate: confirmations depend on this node's disk alone.
    pub fn set_gate(&self, acked: Option<Lsn>) {
        let sh = &*self.h.shared;
        sh.gate.store(acked.unwrap_or(Lsn::MAX), Ordering::Release);
        refresh_durable(sh);
    }

    /// Confirmations wait for a standby (a gate is set).
    pub fn is_gated(&self) -> bool {
        self.h.shared.gate.load(Ordering::Acquire) != Lsn::MAX
    }

    /// [`Journal::wait_durable_blocking`] for at most `timeout`; false if it is
    /// not durable by then (or the journal stopped).
    pub fn wait_durable_for(&self, lsn: Lsn, timeout: std::time::Duration) -> bool {
        let sh = &*self.h.shared;
        let deadline = std::time::Instant::now() + timeout;
        let mut g = lock(&sh.durable_lock);
        loop {
            if sh.durable.load(Ordering::Acquire) >= lsn {
                return true;
            }
            let now = std::time::Instant::now();
            if now >= deadline
                || sh.failed.load(Ordering::Acquire)
                || sh.stopped.load(Ordering::Acquire)
            {
                return false;
            }
            g = match sh.durable_cv.wait_timeout(g, deadline - now) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// Keeps every segment holding `lsn` or later from being retired (a reader is
    /// there); `None` releases them.
    pub fn set_retain_from(&self, lsn: Option<Lsn>) {
        self.h
            .shared
            .retain_from
            .store(lsn.unwrap_or(Lsn::MAX), Ordering::Release);
    }

    /// What [`Journal::set_retain_from`] holds now.
    #[cfg(test)]
    pub(crate) fn retained_from(&self) -> Option<Lsn> {
        let lsn = self.h.shared.retain_from.load(Ordering::Acquire);
        (lsn != Lsn::MAX).then_some(lsn)
    }

    /// A reader positioned at `from` (which must not be below [`Journal::first_lsn`];
    /// hold it with [`Journal::set_retain_from`] first).
    pub fn reader(&self, from: Lsn) -> Reader {
        let seg_first = lock(&self.h.shared.segments)
            .iter()
            .take_while(|s| s.first_lsn <= from)
            .last()
            .map_or(from, |s| s.first_lsn);
        Reader {
            dir: self.h.shared.dir.clone(),
            next: seg_first,
            skip_below: from,
            seg_first,
            off: 0,
            file: None,
        }
    }
}

/// Whole frames (header + payload, CRC included) as they are on disk, in LSN order.
#[derive(Default)]
pub struct Frames {
    pub bytes: Vec<u8>,
    pub first: Lsn,
    pub last: Lsn,
}

/// Reads frames back from the segment files, from a position onwards, for the
/// replication sender (catch-up and live streaming alike: the pages were just
/// written, so they are in the page cache).
pub struct Reader {
    dir: PathBuf,
    /// LSN of the next frame in the file at `off`.
    next: Lsn,
    /// Frames below this are read past but not returned (positioning).
    skip_below: Lsn,
    seg_first: Lsn,
    off: u64,
    file: Option<File>,
}

impl Reader {
    /// The LSN the next returned frame will have.
    pub fn position(&self) -> Lsn {
        self.next.max(self.skip_below)
    }

    /// Appends frames with LSN up to `upto` (which must have been written) to
    /// `out`, stopping after about `max_bytes`; returns how many it appended.
    pub fn read(
        &mut self,
        upto: Lsn,
        max_bytes: usize,
        out: &mut Frames,
    ) -> Result<usize, StoreError> {
        let mut n = 0;
        let mut chunk = Vec::new();
        while self.next <= upto && out.bytes.len() < max_bytes {
            let path = segment::seg_path(&self.dir, self.seg_first);
            if self.file.is_none() {
                self.file = Some(File::open(&path).map_err(|e| StoreError::io("open", &path, e))?);
            }
            let Some(file) = &self.file else { break };
            chunk.resize(READ_CHUNK, 0);
            let got = segment::read_at_most(file, &mut chunk, self.off)
                .map_err(|e| StoreError::io("read", &path, e))?;
            chunk.truncate(got);
            let mut pos = 0usize;
            let mut progressed = false;
            let mut whole = false;
            while self.next <= upto && out.bytes.len() < max_bytes {
                match segment::parse_at(&chunk, pos) {
                    Parsed::Record {
                        epoch: _,
                        lsn,
                        payload: _,
                        next,
                    } => {
                        if lsn != self.next {
                            return Err(StoreError::BadFrame {
                                lsn: self.next,
                                why: "LSN out of sequence in segment",
                            });
                        }
                        if lsn >= self.skip_below {
                            if out.bytes.is_empty() {
                                out.first = lsn;
                            }
                            out.bytes.extend_from_slice(&chunk[pos..next]);
                            out.last = lsn;
                            n += 1;
                        }
                        self.next += 1;
                        pos = next;
                        progressed = true;
                    }
                    Parsed::End if got == READ_CHUNK && header_is_partial(&chunk, pos) => break,
                    Parsed::End => {
                        // Zeros where the next header would be: the writer rolled
                        // over to the segment named after the next LSN.
                        self.seg_first = self.next;
                        self.off = 0;
                        self.file = None;
                        pos = 0;
                        progressed = true;
                        break;
                    }
                    // A frame cut by the end of the chunk: read again from it.
                    Parsed::Corrupt(_) if got == READ_CHUNK && pos > 0 => break,
                    Parsed::Corrupt(_) if got == READ_CHUNK && !whole => {
                        whole = true;
                        let len = frame_len(&chunk);
                        let mut big = vec![0u8; len];
                        let got = segment::read_at_most(file, &mut big, self.off)
                            .map_err(|e| StoreError::io("read", &path, e))?;
                        big.truncate(got);
                        chunk = big;
                        continue;
                    }
                    Parsed::Corrupt(why) => {
                        return Err(StoreError::BadFrame {
                            lsn: self.next,
                            why,
                        });
                    }
                }
            }
            self.off += pos as u64;
            if !progressed {
                return Err(StoreError::BadFrame {
                    lsn: self.next,
                    why: "no record where one was written",
                });
            }
        }
        Ok(n)
    }
}

/// Calls `f(epoch, lsn, payload)` for every frame of `bytes` (as a [`Reader`]
/// produced them and the wire carried them), checking each frame's CRC.
pub fn for_each_frame(
    bytes: &[u8],
    mut f: impl FnMut(u64, Lsn, &[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut off = 0;
    while off < bytes.len() {
        match segment::parse_at(bytes, off) {
            Parsed::Record {
                epoch,
                lsn,
                payload,
                next,
            } => {
                f(epoch, lsn, payload)?;
                off = next;
            }
            Parsed::End => {
                return Err(StoreError::BadFrame {
                    lsn: 0,
                    why: "empty frame",
                });
            }
            Parsed::Corrupt(why) => return Err(StoreError::BadFrame { lsn: 0, why }),
        }
    }
    Ok(())
}

/// The chunk ends inside the header at `pos` (fewer than a header's bytes left).
fn header_is_partial(chunk: &[u8], pos: usize) -> bool {
    chunk.len() - pos < HEADER_LEN
}

/// Length of the frame starting at the beginning of `chunk`, header included.
fn frame_len(chunk: &[u8]) -> usize {
    let mut a = [0u8; 4];
    a.copy_from_slice(&chunk[..4]);
    HEADER_LEN + u32::from_le_bytes(a) as usize
}
