//! `file:PATH`: an exclusive `flock` on a file on storage both nodes see (as Amazon
//! MQ runs ActiveMQ on EFS). The kernel drops the lock when the holder dies, so the
//! standby, blocked on it, takes over at once. The record is the file's content.

use super::{Holder, LockError};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub struct FileLock {
    path: PathBuf,
    held: Arc<Mutex<Option<File>>>,
}

impl FileLock {
    pub fn new(path: PathBuf) -> FileLock {
        FileLock {
            path,
            held: Arc::new(Mutex::new(None)),
        }
    }

    fn err(&self, source: std::io::Error) -> LockError {
        LockError::File {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Blocks (on a blocking thread) until the lock is ours; returns the record the
    /// previous holder left.
    pub async fn acquire(&self) -> Result<Holder, LockError> {
        let path = self.path.clone();
        let file = tokio::task::spawn_blocking(move || -> std::io::Result<File> {
            let f = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)?;
            f.lock()?;
            Ok(f)
        })
        .await
        .map_err(|e| self.err(std::io::Error::other(e)))?
        .map_err(|e| self.err(e))?;
        let mut text = String::new();
        (&file).read_to_string(&mut text).map_err(|e| self.err(e))?;
        let holder = serde_json::from_str(&text).unwrap_or_default();
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Some(file);
        Ok(holder)
    }

    /// Rewrites the record (fsynced); only while held.
    pub fn write(&self, h: &Holder) -> Result<(), LockError> {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let Some(mut f) = held.as_ref() else {
            return Ok(());
        };
        let text = serde_json::to_string(h).map_err(|e| self.err(std::io::Error::other(e)))?;
        f.set_len(0)
            .and_then(|()| f.seek(SeekFrom::Start(0)).map(drop))
            .and_then(|()| f.write_all(text.as_bytes()))
            .and_then(|()| f.sync_all())
            .map_err(|e| self.err(e))
    }

    pub fn release(&self) {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}
