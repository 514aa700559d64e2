//! `etcd:URL,…`: a lease and an election key in etcd (stub: being written).

use super::{Holder, LockError};
use std::time::Duration;

pub struct EtcdLock {
    _endpoints: Vec<String>,
    _prefix: String,
    _ttl: Duration,
}

impl EtcdLock {
    pub fn new(endpoints: Vec<String>, prefix: String, ttl: Duration) -> EtcdLock {
        EtcdLock {
            _endpoints: endpoints,
            _prefix: prefix,
            _ttl: ttl,
        }
    }

    /// Waits until this node holds the election key; returns the previous record.
    pub async fn acquire(&self) -> Result<Holder, LockError> {
        Err(LockError::Etcd("not implemented yet".into()))
    }

    /// Rewrites the record, only if we still hold the key.
    pub async fn write(&self, _h: &Holder) -> Result<(), LockError> {
        Err(LockError::Etcd("not implemented yet".into()))
    }

    /// Gives the key up (revokes the lease).
    pub async fn release(&self) {}

    /// Resolves when the lease could not be renewed within its TTL minus a margin.
    pub async fn lost(&self) {
        std::future::pending::<()>().await
    }

    /// The etcd revision at which we became holder (the fencing token).
    pub fn revision(&self) -> u64 {
        0
    }
}
