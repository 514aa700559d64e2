//! Paging: when a queue holds more message bytes in memory than its budget, newer
//! messages are written to the queue's spill file and only a small entry (position,
//! length) stays in memory; they are read back when they reach the head.
//!
//! The spill file is scratch space, not durability: persistent messages are in the
//! journal already, and the file is deleted at start-up. It is truncated whenever
//! nothing in it is live any more, so it does not grow without bound.

use crate::store::codec::{Dec, Enc};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Mutex;
use switchboard_api::Message;

pub struct Spill {
    path: PathBuf,
    state: Mutex<State>,
}

struct State {
    file: Option<File>,
    end: u64,
    live: u64,
    buf: Vec<u8>,
}

impl Spill {
    pub fn new(path: PathBuf) -> Spill {
        Spill {
            path,
            state: Mutex::new(State {
                file: None,
                end: 0,
                live: 0,
                buf: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes a message out; returns where it is.
    pub fn write(&self, msg: &Message) -> std::io::Result<(u64, u32)> {
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
            st.end = 0;
        }
        let mut buf = std::mem::take(&mut st.buf);
        buf.clear();
        let mut e = Enc(&mut buf);
        e.message(msg);
        e.u64(msg.timestamp_ms);
        let off = st.end;
        let r = match st.file.as_mut() {
            Some(f) => f.write_all_at(&buf, off),
            None => Err(std::io::Error::other("spill file not open")),
        };
        let len = buf.len() as u32;
        st.buf = buf;
        r?;
        st.end += len as u64;
        st.live += 1;
        Ok((off, len))
    }

    /// Reads a message back. The slot counts as free afterwards.
    pub fn read(&self, off: u64, len: u32) -> std::io::Result<Message> {
        let mut st = self.lock();
        let mut buf = vec![0u8; len as usize];
        match st.file.as_ref() {
            Some(f) => f.read_exact_at(&mut buf, off)?,
            None => return Err(std::io::Error::other("spill file not open")),
        }
        st.live = st.live.saturating_sub(1);
        self.maybe_truncate(&mut st);
        Dec::new(&buf)
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
        if st.live == 0 && st.end > 0 {
            if let Some(f) = st.file.as_mut() {
                let _ = f.set_len(0);
                let _ = f.flush();
            }
            st.end = 0;
        }
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
