//! Paging: when a queue holds more message bytes in memory than its budget, newer
//! messages are written to the queue's spill file and only a small entry (position,
//! length) stays in memory; they are read back when they reach the head.
//!
//! The spill file is scratch space, not durability: persistent messages are in the
//! journal already, and the file is deleted at start-up. It is truncated whenever
//! nothing in it is live any more, so it does not grow without bound.
//!
//! Paged-out messages are gathered in a buffer and written [`FLUSH_AT`] bytes at a
//! time: a growing backlog pages out every message it takes, and a `pwrite` each,
//! under the queue lock, was a syscall per message on the publish path (issue 16:
//! 12x fewer writes, about 13% less broker CPU filling 1 M messages). A message
//! is wholly in the file or wholly in the buffer, so a read is served from one or
//! the other. Nothing is ever fsynced: the journal is the durable copy.

use crate::store::codec::{Dec, Enc};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Mutex;
use switchboard_api::Message;

/// Paged-out bytes kept in memory before they go to the file in one write, at most:
/// big enough that a write costs far less than the messages it carries.
const FLUSH_AT: usize = 256 << 10;

/// The buffer is also held to this fraction of the queue's memory budget, so that
/// what paging keeps in memory stays near the budget however small it is (and
/// however many queues page at once). At the 32 MiB default it is `FLUSH_AT`.
const BUDGET_SHARE: usize = 8;

pub struct Spill {
    path: PathBuf,
    state: Mutex<State>,
}

struct State {
    file: Option<File>,
    /// Where the file's written bytes end, and where `pending` goes.
    written: u64,
    /// Encoded messages not written yet; they follow `written`.
    pending: Vec<u8>,
    live: u64,
}

impl State {
    fn end(&self) -> u64 {
        self.written + self.pending.len() as u64
    }
}

impl Spill {
    pub fn new(path: PathBuf) -> Spill {
        Spill {
            path,
            state: Mutex::new(State {
                file: None,
                written: 0,
                pending: Vec::new(),
                live: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pages a message out of a queue whose memory budget is `budget` bytes;
    /// returns where it is.
    pub fn write(&self, msg: &Message, budget: usize) -> std::io::Result<(u64, u32)> {
        let mut st = self.lock();
        if st.file.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let f = File::options()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&self.path)?;
            st.file = Some(f);
            st.written = 0;
            st.pending.clear();
        }
        let off = st.end();
        let start = st.pending.len();
        let mut e = Enc(&mut st.pending);
        e.message(msg);
        e.u64(msg.timestamp_ms);
        let len = (st.pending.len() - start) as u32;
        st.live += 1;
        if st.pending.len() >= FLUSH_AT.min(budget / BUDGET_SHARE)
            && let Err(err) = Self::flush(&mut st)
        {
            // The buffer keeps what it holds and serves its reads, so nothing paged
            // is lost; the next page-out tries the write again.
            tracing::warn!(path = %self.path.display(), "cannot write to the spill file ({err}); keeping {} bytes in memory", st.pending.len());
        }
        Ok((off, len))
    }

    fn flush(st: &mut State) -> std::io::Result<()> {
        if st.pending.is_empty() {
            return Ok(());
        }
        match st.file.as_ref() {
            Some(f) => f.write_all_at(&st.pending, st.written)?,
            None => return Err(std::io::Error::other("spill file not open")),
        }
        st.written += st.pending.len() as u64;
        st.pending.clear();
        // A burst may have grown it; a buffer of FLUSH_AT is all that is needed.
        if st.pending.capacity() > 2 * FLUSH_AT {
            st.pending.shrink_to(FLUSH_AT);
        }
        Ok(())
    }

    /// Reads a message back. The slot counts as free afterwards.
    pub fn read(&self, off: u64, len: u32) -> std::io::Result<Message> {
        let mut st = self.lock();
        let msg = if off >= st.written {
            let at = (off - st.written) as usize;
            let bytes = st
                .pending
                .get(at..at + len as usize)
                .ok_or_else(|| std::io::Error::other("paged-out message past the spill's end"))?;
            Self::decode(bytes)
        } else {
            let mut buf = vec![0u8; len as usize];
            match st.file.as_ref() {
                Some(f) => f.read_exact_at(&mut buf, off)?,
                None => return Err(std::io::Error::other("spill file not open")),
            }
            Self::decode(&buf)
        };
        st.live = st.live.saturating_sub(1);
        self.maybe_truncate(&mut st);
        msg
    }

    fn decode(bytes: &[u8]) -> std::io::Result<Message> {
        Dec::new(bytes)
            .message_with_timestamp()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// A paged message was dropped without being read (purge, queue deleted).
    pub fn forget(&self) {
        let mut st = self.lock();
        st.live = st.live.saturating_sub(1);
        self.maybe_truncate(&mut st);
    }

    fn maybe_truncate(&self, st: &mut State) {
        if st.live == 0 && st.end() > 0 {
            // An idle queue should not keep a buffer's worth of memory.
            st.pending = Vec::new();
            if st.written > 0
                && let Some(f) = st.file.as_ref()
            {
                let _ = f.set_len(0);
            }
            st.written = 0;
        }
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(i: usize) -> Message {
        let mut m = Message::new("", "k", vec![i as u8; 1000].into());
        m.timestamp_ms = i as u64;
        m
    }

    /// Messages still in the buffer and messages already in the file both read
    /// back whole, across several flushes, in any order.
    #[test]
    fn reads_from_buffer_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::new(dir.path().join("s.spill"));
        let n = 3 * FLUSH_AT / 1000;
        let at: Vec<_> = (0..n)
            .map(|i| spill.write(&msg(i), usize::MAX).unwrap())
            .collect();
        assert!(spill.lock().written > 0, "some writes reached the file");
        assert!(
            !spill.lock().pending.is_empty(),
            "the tail is still buffered"
        );
        for i in (0..n).rev() {
            let m = spill.read(at[i].0, at[i].1).unwrap();
            assert_eq!(m.body.len(), 1000);
            assert_eq!(m.body[0], i as u8);
            assert_eq!(m.timestamp_ms, i as u64);
        }
        // Nothing live: the file and the buffer start over.
        assert_eq!(spill.lock().end(), 0);
        assert_eq!(spill.write(&msg(7), usize::MAX).unwrap().0, 0);
    }

    /// A queue with a small budget buffers little: over a 4 KiB budget every
    /// message goes to the file at once.
    #[test]
    fn small_budget_writes_through() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::new(dir.path().join("s.spill"));
        let (off, len) = spill.write(&msg(1), 4096).unwrap();
        assert!(spill.lock().pending.is_empty());
        assert_eq!(spill.lock().written, len as u64);
        assert_eq!(spill.read(off, len).unwrap().body[0], 1);
    }
}
