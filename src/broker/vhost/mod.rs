//! A virtual host: its exchanges, queues and the routing between them. This file
//! holds the vhost's tables and lookups; declaring and deleting exchanges and
//! bindings is in [`exchanges`], queues in [`queues`], routing a publish in
//! [`routing`].

mod exchanges;
mod listing;
mod queues;
mod routing;

use super::exchange::{Exchange, Kind};
use super::keyed::Keyed;
use super::queue::{Queue, QueueOwner};
use super::timer::Timers;
use crate::store::{DefinitionsError, Store};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use switchboard_api::{BrokerError, ConnectionId, Message, Table};

pub struct Vhost {
    pub name: String,
    exchanges: RwLock<HashMap<String, Arc<Exchange>>>,
    queues: RwLock<HashMap<String, Arc<Queue>>>,
    me: Weak<Vhost>,
    timers: Timers,
    names: AtomicU64,
    store: Option<Arc<Store>>,
    paging: Option<Arc<Paging>>,
    /// Key spaces by name, opened on first use (see [`Vhost::keyed`]).
    keyed: RwLock<HashMap<String, Arc<Keyed>>>,
}

/// Where queues page out, and how much each keeps in memory.
pub struct Paging {
    pub dir: std::path::PathBuf,
    pub budget: usize,
    pub files: AtomicU64,
}

impl Paging {
    fn next(&self) -> (std::path::PathBuf, usize) {
        let n = self.files.fetch_add(1, Ordering::Relaxed);
        (self.dir.join(format!("{n}.spill")), self.budget)
    }
}

fn store_err(e: DefinitionsError) -> BrokerError {
    tracing::error!("cannot persist definitions: {e}");
    BrokerError::Store {
        reason: e.to_string(),
    }
}

const BUILTIN: &[(&str, Kind)] = &[
    ("", Kind::Direct),
    ("amq.direct", Kind::Direct),
    ("amq.fanout", Kind::Fanout),
    ("amq.topic", Kind::Topic),
    ("amq.headers", Kind::Headers),
    ("amq.match", Kind::Headers),
];

impl Vhost {
    pub fn new(
        name: &str,
        timers: Timers,
        store: Option<Arc<Store>>,
        paging: Option<Arc<Paging>>,
    ) -> Arc<Vhost> {
        let exchanges = BUILTIN
            .iter()
            .map(|(n, k)| {
                (
                    n.to_string(),
                    Arc::new(Exchange::new(n, *k, true, false, false, Table::new())),
                )
            })
            .collect();
        Arc::new_cyclic(|me| Vhost {
            name: name.to_string(),
            exchanges: RwLock::new(exchanges),
            queues: RwLock::default(),
            me: me.clone(),
            timers,
            names: AtomicU64::new(0),
            keyed: RwLock::default(),
            store,
            paging,
        })
    }

    fn exchanges(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Exchange>>> {
        self.exchanges.read().unwrap_or_else(|e| e.into_inner())
    }

    fn exchanges_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Exchange>>> {
        self.exchanges.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn queue_count(&self) -> usize {
        self.queues().len()
    }

    fn queues(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Queue>>> {
        self.queues.read().unwrap_or_else(|e| e.into_inner())
    }

    fn queues_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Queue>>> {
        self.queues.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn exchange(&self, name: &str) -> Result<Arc<Exchange>, BrokerError> {
        self.exchanges()
            .get(name)
            .cloned()
            .ok_or_else(|| BrokerError::no_exchange(name, &self.name))
    }

    pub fn queue(&self, name: &str) -> Result<Arc<Queue>, BrokerError> {
        self.queues()
            .get(name)
            .cloned()
            .ok_or_else(|| BrokerError::no_queue(name, &self.name))
    }

    /// The queue, if this connection may use it (exclusive queues belong to one).
    pub fn queue_for(&self, name: &str, conn: ConnectionId) -> Result<Arc<Queue>, BrokerError> {
        let q = self.queue(name)?;
        self.check_owner(&q, conn)?;
        Ok(q)
    }

    fn check_owner(&self, q: &Queue, conn: ConnectionId) -> Result<(), BrokerError> {
        match q.exclusive_owner {
            Some(owner) if owner != conn => Err(BrokerError::Locked {
                queue: q.name.clone(),
                vhost: self.name.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Smallest journal LSN any queue here still needs.
    /// The oldest journal record a queue of this vhost still needs.
    pub fn min_live_lsn(&self) -> Option<u64> {
        self.queues()
            .values()
            .filter_map(|q| q.min_live_lsn())
            .min()
    }

    /// The same for the keyed stores (kept apart: they relocate instead of waiting).
    pub fn keyed_min_live_lsn(&self) -> Option<u64> {
        self.keyed_spaces()
            .iter()
            .filter_map(|k| k.min_live_lsn())
            .min()
    }

    /// The key space `space`, opened empty the first time it is named. Only
    /// frontends name spaces (clients cannot), so the map stays as small as the code.
    pub fn keyed(&self, space: &str) -> Arc<Keyed> {
        if let Some(k) = self
            .keyed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(space)
        {
            return k.clone();
        }
        self.keyed
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(space.to_string())
            .or_insert_with(|| Arc::new(Keyed::new(space, &self.name, self.store.clone())))
            .clone()
    }

    pub fn keyed_spaces(&self) -> Vec<Arc<Keyed>> {
        let spaces = self.keyed.read().unwrap_or_else(|e| e.into_inner());
        spaces.values().cloned().collect()
    }

    pub fn queue_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.queues().keys().cloned().collect();
        names.sort();
        names
    }

    pub fn has_queue(&self, name: &str) -> bool {
        self.queues().contains_key(name)
    }
}

impl QueueOwner for Vhost {
    fn owner_name(&self) -> &str {
        &self.name
    }

    /// A missing dead-letter exchange drops the copy silently (RabbitMQ does the
    /// same); a cycle is broken.
    fn dead_letter(&self, dlx: &str, mut msg: Message) {
        msg.exchange = dlx.to_string();
        let Ok(mut queues) = self.route(&msg) else {
            return;
        };
        queues.retain(|q| !super::queue::is_cycle(&msg, &q.name));
        self.deliver(queues, msg, None);
    }

    fn remove_queue(&self, name: &str) {
        Vhost::remove_queue(self, name);
    }
}
