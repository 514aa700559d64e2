//! Who is active (DESIGN.md §5): a lock that one node of the pair holds, and a
//! small record kept with it — the epoch of the holder, who it is, and whether its
//! standby is in sync (Kafka's ISR idea: a standby that is not may not take over).
//!
//! Implementations: `file:PATH` (an exclusive lock on shared storage), `etcd:URL,…`
//! (a lease and election in etcd) and `static:active|standby` (fixed roles,
//! switched by `switchboard ctl promote`).

mod etcd;
mod file;

use std::time::Duration;

pub use etcd::EtcdLock;
pub use file::FileLock;

/// What the lock records about its holder. Written only by the holder.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Holder {
    /// The holder's epoch; every new holder writes a larger one.
    pub epoch: u64,
    /// Node id of the holder (`node-id` in its data directory); empty = never held.
    pub node: String,
    /// The holder's standby has every record the holder confirmed.
    pub in_sync: bool,
}

impl Holder {
    /// May `node` take over from the holder this record describes? Only if it was
    /// the holder itself, or the holder's in-sync standby, or nobody held it yet.
    pub fn eligible(&self, node: &str) -> bool {
        self.node.is_empty() || self.node == node || self.in_sync
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("invalid --lock {spec:?}: {why}")]
    Spec { spec: String, why: &'static str },
    #[error("lock file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("etcd: {0}")]
    Etcd(String),
}

/// The lock chosen by `--lock`.
pub enum Lock {
    File(FileLock),
    Etcd(EtcdLock),
    /// Fixed role: `true` = active. Promotion comes from `switchboard ctl promote`.
    Static(bool),
}

impl Lock {
    /// Parses `file:PATH`, `etcd:URL[,URL…]`, `static:active` or `static:standby`.
    pub fn parse(spec: &str, ttl: Duration) -> Result<Lock, LockError> {
        let bad = |why| LockError::Spec {
            spec: spec.to_string(),
            why,
        };
        let (kind, rest) = spec
            .split_once(':')
            .ok_or_else(|| bad("expected file:PATH, etcd:URL or static:active|standby"))?;
        match kind {
            "file" if !rest.is_empty() => Ok(Lock::File(FileLock::new(rest.into()))),
            "etcd" => {
                let urls: Vec<String> = rest
                    .split(',')
                    .filter(|u| !u.is_empty())
                    .map(|u| u.trim_end_matches('/').to_string())
                    .collect();
                if urls.is_empty() {
                    return Err(bad("etcd: needs at least one URL"));
                }
                Ok(Lock::Etcd(EtcdLock::new(urls, "switchboard".into(), ttl)))
            }
            "static" => match rest {
                "active" => Ok(Lock::Static(true)),
                "standby" => Ok(Lock::Static(false)),
                _ => Err(bad("static: is active or standby")),
            },
            _ => Err(bad("expected file:PATH, etcd:URL or static:active|standby")),
        }
    }
}

impl Lock {
    /// Waits until this node holds the lock; returns the record the previous
    /// holder left. A static lock is "acquired" by the caller (see `node.rs`).
    pub async fn acquire(&self) -> Result<Holder, LockError> {
        match self {
            Lock::File(f) => f.acquire().await,
            Lock::Etcd(e) => e.acquire().await,
            Lock::Static(_) => Ok(Holder::default()),
        }
    }

    /// Rewrites the record; only the holder calls this.
    pub async fn write(&self, h: &Holder) -> Result<(), LockError> {
        match self {
            Lock::File(f) => f.write(h),
            Lock::Etcd(e) => e.write(h).await,
            Lock::Static(_) => Ok(()),
        }
    }

    /// Frees the lock of a holder known to be dead (see [`EtcdLock::evict`]); only an
    /// etcd lease needs this: a file lock is freed by the kernel at once.
    pub async fn evict(&self, me: &str) -> Result<bool, LockError> {
        match self {
            Lock::Etcd(e) => e.evict(me).await,
            _ => Ok(false),
        }
    }

    pub async fn release(&self) {
        match self {
            Lock::File(f) => f.release(),
            Lock::Etcd(e) => e.release().await,
            Lock::Static(_) => {}
        }
    }

    /// Resolves if the lock is lost while held (only an etcd lease can be).
    pub async fn lost(&self) {
        match self {
            Lock::Etcd(e) => e.lost().await,
            _ => std::future::pending().await,
        }
    }
}
