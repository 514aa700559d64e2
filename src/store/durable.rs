//! The store as the core uses it: the data-directory lock, the definitions file, the
//! message journal, recovery at start-up and compaction.
//!
//! Invariants (the durability contract, DESIGN.md §3):
//! - A persistent message in a durable queue is "accepted" once the journal's durable
//!   LSN reaches its Enqueue record; frontends wait for that before confirming.
//! - A durable entity (exchange, queue, binding) is on disk when the declare returns.
//! - Whatever supersedes an Enqueue (a Settle, or a dead-lettered copy's Enqueue) is
//!   appended before the message stops counting as live, and compaction deletes a
//!   segment only after everything appended so far is durable and nothing live is in
//!   it; so a crash never finds a message neither in its old place nor in its new one.

use super::codec::DecodeError;
use super::definitions::{BindingDef, Definitions, DefinitionsError, ExchangeDef, QueueDef};
use super::defop::DefOp;
use super::journal::{Journal, JournalConfig};
use super::record::{Head, Placement, Record, encode_dedup_reset, encode_enqueue};
use super::shared::{FsyncMode, Lsn};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use switchboard_api::Message;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "data directory {0} is in use by another switchboard process; stop it or use another --data-dir"
    )]
    Locked(PathBuf),
    #[error("cannot use data directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Definitions(#[from] DefinitionsError),
    #[error("journal: {0}")]
    Journal(String),
}

/// How eagerly the journal is fsynced before messages count as accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// fsync every batch before confirming (default: nothing confirmed is lost).
    #[default]
    Batch,
    /// fsync at most every 10 ms; a power loss may lose the last 10 ms of confirms.
    Interval,
    /// Never fsync; the OS decides. A crash of the machine may lose anything recent.
    Never,
}

/// A message found in the journal at start-up.
pub struct Recovered {
    pub lsn: Lsn,
    pub at: Placement,
    pub message: Message,
}

/// What start-up found on disk.
pub struct Recovery {
    pub definitions: Definitions,
    /// Per queue id, where its live messages are (not the messages themselves:
    /// those are read in a second pass, [`Store::replay_messages`], straight into
    /// their queues, so a journal larger than memory can be recovered).
    pub live: HashMap<u64, BTreeMap<u64, (Lsn, Placement)>>,
    /// The previous run ended with a clean shutdown (so delivery counts are exact).
    pub clean: bool,
    pub records: u64,
}

pub struct Store {
    dir: PathBuf,
    journal: Journal,
    defs: Mutex<Definitions>,
    /// Per queue, the LSN of its last deduplication reset found at start-up.
    dedup_resets: HashMap<u64, Lsn>,
    _lock: File,
}

pub(super) const CLEAN_MARKER: &str = "clean-shutdown";

/// The journal of a data directory, as the store and a standby's replica open it.
pub(super) fn journal_config(dir: &Path, fsync: Fsync) -> JournalConfig {
    JournalConfig {
        dir: dir.join("journal"),
        fsync: match fsync {
            Fsync::Batch => FsyncMode::Batch,
            Fsync::Interval => FsyncMode::Interval(std::time::Duration::from_millis(10)),
            Fsync::Never => FsyncMode::Never,
        },
        ..JournalConfig::default()
    }
}

/// Takes the data directory's lock file: one process per data directory.
pub(super) fn lock_data_dir(dir: &Path) -> Result<File, OpenError> {
    let io = |source| OpenError::Io {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))
        .map_err(io)?;
    if lock.try_lock().is_err() {
        return Err(OpenError::Locked(dir.to_path_buf()));
    }
    Ok(lock)
}

impl Store {
    /// Locks the data directory, loads definitions and replays the journal.
    pub fn open(dir: &Path, fsync: Fsync) -> Result<(Store, Recovery), OpenError> {
        Store::open_at(dir, fsync, 0)
    }

    /// [`Store::open`], writing new records with `epoch` (a newly active node of a
    /// pair: every record it appends, from the first, carries its epoch).
    pub fn open_at(dir: &Path, fsync: Fsync, epoch: u64) -> Result<(Store, Recovery), OpenError> {
        let io = |source| OpenError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let lock = lock_data_dir(dir)?;
        let clean = dir.join(CLEAN_MARKER).exists();
        if clean {
            std::fs::remove_file(dir.join(CLEAN_MARKER)).map_err(io)?;
        }
        let definitions = Definitions::load(dir)?;
        let mut live: HashMap<u64, BTreeMap<u64, (Lsn, Placement)>> = HashMap::new();
        let mut records = 0u64;
        let mut dedup_resets = HashMap::new();
        let mut bad: Option<DecodeError> = None;
        let mut cfg = journal_config(dir, fsync);
        cfg.epoch = epoch;
        let journal = Journal::open(cfg, |lsn, payload| {
            records += 1;
            match Head::decode(payload) {
                Ok(Head::Enqueue(at)) => {
                    live.entry(at.queue).or_default().insert(at.seq, (lsn, at));
                }
                Ok(Head::Settle { queue, seq }) => {
                    if let Some(q) = live.get_mut(&queue) {
                        q.remove(&seq);
                    }
                }
                Ok(Head::Return {
                    queue,
                    seq,
                    delivery_count,
                }) => {
                    if let Some((_, at)) = live.get_mut(&queue).and_then(|q| q.get_mut(&seq)) {
                        at.delivery_count = delivery_count;
                        at.lease_until_ms = 0;
                    }
                }
                Ok(Head::Definitions) => {}
                Ok(Head::DedupReset { queue }) => {
                    dedup_resets.insert(queue, lsn);
                }
                Ok(Head::Lease {
                    queue,
                    seq,
                    delivery_count,
                    until_ms,
                }) => {
                    if let Some((_, at)) = live.get_mut(&queue).and_then(|q| q.get_mut(&seq)) {
                        at.delivery_count = delivery_count;
                        at.lease_until_ms = until_ms;
                    }
                }
                // A record that passed its CRC but does not decode was written by a
                // newer or broken version: keep going, but say so.
                Err(e) => bad = Some(e),
            }
        })
        .map_err(|e| OpenError::Journal(e.to_string()))?;
        if let Some(e) = bad {
            tracing::warn!(
                "journal holds records this version cannot read ({e}); they were skipped"
            );
        }
        // Messages of queues that no longer exist are dropped (deleted queue).
        let live_ids: std::collections::HashSet<u64> =
            definitions.queues.values().map(|q| q.id).collect();
        live.retain(|id, _| live_ids.contains(id));
        let store = Store {
            dir: dir.to_path_buf(),
            journal,
            defs: Mutex::new(definitions.clone()),
            dedup_resets,
            _lock: lock,
        };
        Ok((
            store,
            Recovery {
                definitions,
                live,
                clean,
                records,
            },
        ))
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Second pass of recovery: reads the journal again and hands every live
    /// message to `f(queue_id, message, true)`, per queue in sequence order, and
    /// every settled message of a queue in `dedup_queues` (deduplication windows
    /// outlive messages) to `f(queue_id, message, false)`. Must run before
    /// anything new is appended.
    pub fn replay_messages(
        &self,
        live: &HashMap<u64, BTreeMap<u64, (Lsn, Placement)>>,
        dedup_queues: &std::collections::HashSet<u64>,
        mut f: impl FnMut(u64, Recovered, bool),
    ) -> Result<(), OpenError> {
        // Nothing to read: skip the segments (a fresh journal's first segment is
        // 64 MiB of zeros, and reading it is a start-up memory peak).
        if live.values().all(BTreeMap::is_empty) && dedup_queues.is_empty() {
            return Ok(());
        }
        let upto = self.journal.next_lsn().saturating_sub(1);
        self.journal
            .scan(upto, |lsn, payload| {
                let Ok(Head::Enqueue(head)) = Head::decode(payload) else {
                    return;
                };
                let found = live.get(&head.queue).and_then(|q| q.get(&head.seq));
                let reset = self.dedup_resets.get(&head.queue).copied().unwrap_or(0);
                let (at, is_live) = match found {
                    Some(&(live_lsn, at)) if live_lsn == lsn => (at, true),
                    _ if dedup_queues.contains(&head.queue) && lsn > reset => (head, false),
                    _ => return,
                };
                if let Ok(Record::Enqueue { message, .. }) = Record::decode(payload) {
                    f(
                        at.queue,
                        Recovered {
                            lsn,
                            at,
                            message: *message,
                        },
                        is_live,
                    );
                }
            })
            .map_err(|e| OpenError::Journal(e.to_string()))
    }

    pub fn enqueue(&self, at: &Placement, msg: &Message) -> Lsn {
        let hint = msg.body.len() + 128;
        self.journal
            .append_with(hint, |buf| encode_enqueue(buf, at, msg))
    }

    /// Empties the queue's deduplication window for good: settled messages before
    /// this record are not read back into it at start-up.
    pub fn dedup_reset(&self, queue: u64) -> Lsn {
        self.journal
            .append_with(9, |buf| encode_dedup_reset(buf, queue))
    }

    pub fn settle(&self, queue: u64, seq: u64) -> Lsn {
        self.journal
            .append_with(24, |buf| Record::Settle { queue, seq }.encode(buf))
    }

    pub fn returned(&self, queue: u64, seq: u64, delivery_count: u32) -> Lsn {
        self.journal.append_with(24, |buf| {
            Record::Return {
                queue,
                seq,
                delivery_count,
            }
            .encode(buf)
        })
    }

    /// Records that message `seq` is leased until `until_ms` (wall clock) on its
    /// `delivery_count`-th hand-out, so a restart keeps it invisible until then.
    pub fn leased(&self, queue: u64, seq: u64, delivery_count: u32, until_ms: u64) -> Lsn {
        self.journal.append_with(32, |buf| {
            Record::Lease {
                queue,
                seq,
                delivery_count,
                until_ms,
            }
            .encode(buf)
        })
    }

    /// Replaces a durable queue's arguments.
    pub fn set_queue_args(
        &self,
        vhost: &str,
        name: &str,
        args: &switchboard_api::Table,
    ) -> Result<(), DefinitionsError> {
        self.change(DefOp::SetQueueArgs {
            vhost: vhost.into(),
            name: name.into(),
            args: args.clone(),
        })
    }

    /// Applies `op` to the file (durable when this returns) and appends it to the
    /// journal, which is how a standby learns of it. Both happen under the lock, so
    /// the journal holds the changes in the order the file went through them.
    fn change(&self, op: DefOp) -> Result<(), DefinitionsError> {
        let mut d = self.defs.lock().unwrap_or_else(|e| e.into_inner());
        self.change_locked(&mut d, op)
    }

    fn change_locked(&self, d: &mut Definitions, op: DefOp) -> Result<(), DefinitionsError> {
        if !d.apply(&op) {
            return Ok(());
        }
        if let Err(e) = d.save(&self.dir) {
            // The file holds what the last successful change left (or this one, if
            // only the directory's fsync failed): memory follows it. Read back
            // rather than cloned before every change, which made declaring n
            // queues cost O(n²) in copies.
            if let Ok(on_disk) = Definitions::load(&self.dir) {
                *d = on_disk;
            }
            return Err(e);
        }
        let lsn = self.journal.append_with(64, |buf| op.encode(buf));
        // With a standby, a declaration is not done until the standby has it too
        // (a client may rely on the entity right after the answer, also after a
        // failover). Bounded: a standby that stopped answering is handled by
        // replication, not by holding this thread for ever.
        if self.journal.is_gated()
            && !self
                .journal
                .wait_durable_for(lsn, std::time::Duration::from_secs(5))
        {
            tracing::warn!(
                lsn,
                "definition change not acknowledged by the standby within 5 s"
            );
        }
        Ok(())
    }

    /// The definitions as a standby starting from a snapshot gets them, with the
    /// LSN the journal continues at: every change after them is a record at or
    /// above it.
    pub fn definitions_snapshot(&self) -> (Vec<u8>, Lsn) {
        let d = self.defs.lock().unwrap_or_else(|e| e.into_inner());
        (d.to_bytes(), self.journal.next_lsn())
    }

    /// Allocates a queue id and records the queue.
    pub fn put_queue(
        &self,
        vhost: &str,
        name: &str,
        auto_delete: bool,
        args: &switchboard_api::Table,
    ) -> Result<u64, DefinitionsError> {
        let mut d = self.defs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(q) = d.queues.get(&(vhost.to_string(), name.to_string())) {
            return Ok(q.id);
        }
        let id = d.next_queue_id.max(1);
        let op = DefOp::PutQueue {
            vhost: vhost.into(),
            name: name.into(),
            def: QueueDef {
                id,
                auto_delete,
                args: args.clone(),
            },
        };
        self.change_locked(&mut d, op)?;
        Ok(id)
    }

    pub fn remove_queue(&self, vhost: &str, name: &str) -> Result<(), DefinitionsError> {
        self.change(DefOp::DelQueue {
            vhost: vhost.into(),
            name: name.into(),
        })
    }

    pub fn put_exchange(
        &self,
        vhost: &str,
        name: &str,
        def: ExchangeDef,
    ) -> Result<(), DefinitionsError> {
        self.change(DefOp::PutExchange {
            vhost: vhost.into(),
            name: name.into(),
            def,
        })
    }

    pub fn remove_exchange(&self, vhost: &str, name: &str) -> Result<(), DefinitionsError> {
        self.change(DefOp::DelExchange {
            vhost: vhost.into(),
            name: name.into(),
        })
    }

    pub fn put_binding(&self, vhost: &str, b: BindingDef) -> Result<(), DefinitionsError> {
        self.change(DefOp::PutBinding {
            vhost: vhost.into(),
            b,
        })
    }

    pub fn remove_binding(&self, vhost: &str, b: &BindingDef) -> Result<(), DefinitionsError> {
        self.change(DefOp::DelBinding {
            vhost: vhost.into(),
            b: b.clone(),
        })
    }

    pub fn put_vhost(&self, vhost: &str) -> Result<(), DefinitionsError> {
        self.change(DefOp::PutVhost(vhost.into()))
    }

    /// Flushes the journal and leaves the marker that tells the next start that
    /// delivery counts in the journal are complete.
    pub fn close(&self) {
        self.journal.close();
        if !self.journal.is_failed() {
            let _ = File::create(self.dir.join(CLEAN_MARKER)).and_then(|f| f.sync_all());
        }
    }
}
