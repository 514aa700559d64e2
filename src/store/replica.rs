//! A standby's store: the active's journal records appended as they come, with
//! the active's epochs and LSNs, and the definitions file kept up to date from the
//! definition records among them. Nothing is replayed into queues here; when the
//! standby takes over it closes this and opens the data directory as a
//! [`Store`](super::Store), which recovers from exactly these files.
//!
//! Invariants:
//! - The journal is a prefix of the active's journal (same LSNs, epochs, payloads)
//!   from its first segment on; a snapshot restarts it at the active's first LSN.
//! - A definition change is in the file before the record that carries it is
//!   acknowledged, so whatever the standby acknowledged, it can recover.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::definitions::{Definitions, DefinitionsError};
use super::defop::DefOp;
use super::durable::{Fsync, OpenError, journal_config, lock_data_dir};
use super::error::StoreError;
use super::journal::Journal;
use super::record::Head;
use super::segment;
use super::shared::Lsn;

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Definitions(#[from] DefinitionsError),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("snapshot definitions do not decode: {0}")]
    Snapshot(String),
}

/// A standby catching up appends as fast as the network delivers; a smaller
/// pending buffer than the active's bounds its memory without slowing its disk.
const REPLICA_PENDING_BYTES: usize = 8 << 20;

pub struct Replica {
    dir: PathBuf,
    fsync: Fsync,
    journal: Journal,
    defs: Definitions,
    _lock: File,
}

impl Replica {
    /// Opens the data directory as a standby. `keep_upto` cuts records the new
    /// active never had (`Lsn::MAX` keeps all).
    pub fn open(dir: &Path, fsync: Fsync, keep_upto: Lsn) -> Result<Replica, ReplicaError> {
        let lock = lock_data_dir(dir)?;
        // A clean-shutdown marker from a run as the active says nothing about the
        // records a standby appends after it (the active's deliveries are not in
        // them): drop it, so a take-over treats delivery counts as inexact.
        let marker = dir.join(super::durable::CLEAN_MARKER);
        if marker.exists() {
            std::fs::remove_file(&marker).map_err(|e| StoreError::io("remove", &marker, e))?;
        }
        let defs = Definitions::load(dir)?;
        let mut cfg = journal_config(dir, fsync);
        cfg.keep_upto = keep_upto;
        cfg.max_pending_bytes = REPLICA_PENDING_BYTES;
        let journal = Journal::open(cfg, |_, _| {})?;
        Ok(Replica {
            dir: dir.to_path_buf(),
            fsync,
            journal,
            defs,
            _lock: lock,
        })
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Drops every record after `lsn` (a divergent suffix).
    pub fn truncate(self, lsn: Lsn) -> Result<Replica, ReplicaError> {
        let (dir, fsync) = (self.dir.clone(), self.fsync);
        self.journal.close();
        drop(self);
        Replica::open(&dir, fsync, lsn)
    }

    /// Starts over from a snapshot: the active's definitions and an empty journal
    /// continuing at `first_lsn`, where the active's oldest segment starts.
    pub fn reset(self, first_lsn: Lsn, definitions: &[u8]) -> Result<Replica, ReplicaError> {
        let defs = Definitions::from_bytes(definitions)
            .map_err(|e| ReplicaError::Snapshot(e.to_string()))?;
        let (dir, fsync) = (self.dir.clone(), self.fsync);
        self.journal.close();
        drop(self);
        let jdir = dir.join("journal");
        let entries = std::fs::read_dir(&jdir).map_err(|e| StoreError::io("list", &jdir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("list", &jdir, e))?;
            let name = entry.file_name();
            if name.to_str().and_then(segment::parse_seg_name).is_some() {
                segment::remove_if_exists(&entry.path())
                    .map_err(|e| StoreError::io("remove", entry.path(), e))?;
            }
        }
        segment::sync_dir(&jdir).map_err(|e| StoreError::io("fsync directory", &jdir, e))?;
        defs.save(&dir)?;
        let lock = lock_data_dir(&dir)?;
        let mut cfg = journal_config(&dir, fsync);
        cfg.first_lsn = first_lsn;
        cfg.max_pending_bytes = REPLICA_PENDING_BYTES;
        let journal = Journal::open(cfg, |_, _| {})?;
        Ok(Replica {
            dir,
            fsync,
            journal,
            defs,
            _lock: lock,
        })
    }

    /// Appends one record of the active's; a definition change also goes to the
    /// file at once.
    pub fn append(&mut self, epoch: u64, lsn: Lsn, payload: &[u8]) -> Result<(), ReplicaError> {
        if let Ok(Head::Definitions) = Head::decode(payload) {
            match DefOp::decode(payload) {
                Ok(op) => {
                    if self.defs.apply(&op) {
                        self.defs.save(&self.dir)?;
                    }
                }
                Err(e) => tracing::warn!(lsn, "replica: definition record skipped: {e}"),
            }
        }
        self.journal.append_replica(epoch, lsn, payload)?;
        Ok(())
    }

    /// Appends every frame of a batch the active shipped; returns the last LSN.
    pub fn append_frames(&mut self, bytes: &[u8]) -> Result<Lsn, ReplicaError> {
        let mut last = 0;
        let mut failed = None;
        super::replicate::for_each_frame(bytes, |epoch, lsn, payload| {
            if let Err(e) = self.append(epoch, lsn, payload) {
                failed = Some(e);
                return Err(StoreError::NotDurable);
            }
            last = lsn;
            Ok(())
        })
        .map_err(|e| failed.take().unwrap_or(ReplicaError::Store(e)))?;
        Ok(last)
    }

    /// Closes the journal (flushing it) and releases the data directory.
    pub fn close(self) {
        self.journal.close();
    }
}
