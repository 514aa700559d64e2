//! A virtual host: its exchanges, queues and the routing between them.

use super::exchange::{Dest, Exchange, Kind};
use super::keyed::Keyed;
use super::queue::{Enqueued, Queue, QueueArgs, QueueConfig, QueueOwner, check_equivalent};
use super::timer::Timers;
use crate::store::{BindingDef, DefinitionsError, ExchangeDef, QueueDef, Store};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use switchboard_api::{
    BrokerError, ConnectionId, Entity, ExchangeDecl, Message, Mismatch, PublishOutcome, QueueDecl,
    QueueInfo, Table,
};

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

/// Durable end of a binding: both ends must be durable for the binding to be.
fn dest_durable(d: &Dest) -> bool {
    match d {
        Dest::Queue(q) => q.id != 0,
        Dest::Exchange(x) => x.durable,
    }
}

fn binding_def(source: &str, dest: &Dest, key: &str, args: &Table) -> BindingDef {
    let (dest_is_queue, dest) = match dest {
        Dest::Queue(q) => (true, q.name.clone()),
        Dest::Exchange(x) => (false, x.name.clone()),
    };
    BindingDef {
        source: source.to_string(),
        dest_is_queue,
        dest,
        key: key.to_string(),
        args: args.clone(),
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

    pub fn declare_exchange(&self, d: &ExchangeDecl) -> Result<(), BrokerError> {
        if let Some(x) = self.exchanges().get(&d.name) {
            if d.passive {
                return Ok(());
            }
            let inequivalent = |what: &str, got: &str, cur: &str| {
                BrokerError::Inequivalent(Box::new(Mismatch {
                    entity: Entity::Exchange,
                    name: d.name.clone(),
                    vhost: self.name.clone(),
                    argument: what.to_string(),
                    received: Some(format!("'{got}'")),
                    current: Some(format!("'{cur}'")),
                }))
            };
            if x.kind.as_str() != d.kind {
                return Err(inequivalent("type", &d.kind, x.kind.as_str()));
            }
            if x.durable != d.durable {
                return Err(inequivalent(
                    "durable",
                    &d.durable.to_string(),
                    &x.durable.to_string(),
                ));
            }
            if x.auto_delete != d.auto_delete {
                return Err(inequivalent(
                    "auto_delete",
                    &d.auto_delete.to_string(),
                    &x.auto_delete.to_string(),
                ));
            }
            if x.internal != d.internal {
                return Err(inequivalent(
                    "internal",
                    &d.internal.to_string(),
                    &x.internal.to_string(),
                ));
            }
            return Ok(());
        }
        if d.passive {
            return Err(BrokerError::no_exchange(&d.name, &self.name));
        }
        if d.name.starts_with("amq.") {
            return Err(BrokerError::ReservedName {
                entity: Entity::Exchange,
                name: d.name.clone(),
            });
        }
        let kind = Kind::parse(&d.kind).ok_or_else(|| BrokerError::UnknownExchangeType {
            kind: d.kind.clone(),
        })?;
        if let (Some(store), true) = (&self.store, d.durable) {
            let def = ExchangeDef {
                kind: kind.as_str().to_string(),
                auto_delete: d.auto_delete,
                internal: d.internal,
                args: d.arguments.clone(),
            };
            store
                .put_exchange(&self.name, &d.name, def)
                .map_err(store_err)?;
        }
        self.restore_exchange(
            &d.name,
            kind,
            d.durable,
            d.auto_delete,
            d.internal,
            d.arguments.clone(),
        );
        Ok(())
    }

    /// Adds an exchange without persisting it (start-up, or after persisting).
    pub fn restore_exchange(
        &self,
        name: &str,
        kind: Kind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        args: Table,
    ) {
        let x = Exchange::new(name, kind, durable, auto_delete, internal, args);
        self.exchanges_mut()
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(x));
    }

    pub fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<(), BrokerError> {
        if name.is_empty() || name.starts_with("amq.") {
            return Err(BrokerError::BuiltInExchange {
                name: Some(name.to_string()),
            });
        }
        // Deleting what does not exist succeeds, as in RabbitMQ.
        let Ok(x) = self.exchange(name) else {
            return Ok(());
        };
        if if_unused && x.has_bindings() {
            return Err(BrokerError::InUse {
                entity: Entity::Exchange,
                name: name.to_string(),
                vhost: self.name.clone(),
            });
        }
        if let (Some(store), true) = (&self.store, x.durable) {
            store.remove_exchange(&self.name, name).map_err(store_err)?;
        }
        self.exchanges_mut().remove(name);
        let dest = Dest::Exchange(x);
        for other in self.exchanges().values() {
            other.unbind_all_to(&dest);
        }
        Ok(())
    }

    fn check_bindable_source(&self, source: &str) -> Result<Arc<Exchange>, BrokerError> {
        if source.is_empty() {
            return Err(BrokerError::BuiltInExchange { name: None });
        }
        self.exchange(source)
    }

    pub fn bind(
        &self,
        source: &str,
        dest: Dest,
        key: &str,
        args: &Table,
    ) -> Result<(), BrokerError> {
        let x = self.check_bindable_source(source)?;
        if let (Some(store), true) = (&self.store, x.durable && dest_durable(&dest)) {
            store
                .put_binding(&self.name, binding_def(source, &dest, key, args))
                .map_err(store_err)?;
        }
        x.bind(dest, key, args);
        Ok(())
    }

    pub fn unbind(
        &self,
        source: &str,
        dest: Dest,
        key: &str,
        args: &Table,
    ) -> Result<(), BrokerError> {
        let x = self.check_bindable_source(source)?;
        if let (Some(store), true) = (&self.store, x.durable && dest_durable(&dest)) {
            store
                .remove_binding(&self.name, &binding_def(source, &dest, key, args))
                .map_err(store_err)?;
        }
        // Unbinding something that is not bound succeeds, as in RabbitMQ.
        x.unbind(&dest, key, args);
        self.maybe_auto_delete_exchange(&x);
        Ok(())
    }

    fn maybe_auto_delete_exchange(&self, x: &Arc<Exchange>) {
        if x.auto_delete && !x.has_bindings() {
            let _ = self.delete_exchange(&x.name, true);
        }
    }

    pub fn declare_queue(
        &self,
        d: &QueueDecl,
        conn: ConnectionId,
    ) -> Result<QueueInfo, BrokerError> {
        if d.passive {
            let q = self.queue_for(&d.name, conn)?;
            q.touch();
            return Ok(info(&q));
        }
        if d.name.starts_with("amq.") {
            return Err(BrokerError::ReservedName {
                entity: Entity::Queue,
                name: d.name.clone(),
            });
        }
        let name = if d.name.is_empty() {
            self.server_name()
        } else {
            d.name.clone()
        };
        if let Some(q) = self.queues().get(&name).cloned() {
            self.check_owner(&q, conn)?;
            let ineq = |what: &str| {
                BrokerError::Inequivalent(Box::new(Mismatch {
                    entity: Entity::Queue,
                    name: name.clone(),
                    vhost: self.name.clone(),
                    argument: what.to_string(),
                    received: None,
                    current: None,
                }))
            };
            if q.durable != d.durable {
                return Err(ineq("durable"));
            }
            if q.auto_delete != d.auto_delete {
                return Err(ineq("auto_delete"));
            }
            if q.exclusive_owner.is_some() != d.exclusive {
                return Err(ineq("exclusive"));
            }
            check_equivalent(&q.raw_args(), &d.arguments, &name, &self.name)?;
            q.touch();
            return Ok(info(&q));
        }
        let args = QueueArgs::parse(&d.arguments, &name, &self.name)?;
        // Exclusive queues end with their connection, so they are never persisted.
        let durable = d.durable && !d.exclusive;
        let (id, store) = match (&self.store, durable) {
            (Some(store), true) => {
                let id = store
                    .put_queue(&self.name, &name, d.auto_delete, &d.arguments)
                    .map_err(store_err)?;
                (id, Some(store.clone()))
            }
            _ => (0, None),
        };
        let q = Queue::new(
            QueueConfig {
                id,
                store,
                paging: self.paging.as_ref().map(|p| p.next()),
                name: name.clone(),
                durable: d.durable,
                auto_delete: d.auto_delete,
                exclusive_owner: d.exclusive.then_some(conn),
                args,
                raw_args: d.arguments.clone(),
            },
            self.owner(),
            self.timers.clone(),
        );
        let q = self.queues_mut().entry(name).or_insert(q).clone();
        Ok(info(&q))
    }

    /// This vhost as its queues see it: only what they may ask of it.
    fn owner(&self) -> Weak<dyn QueueOwner> {
        self.me.clone()
    }

    fn server_name(&self) -> String {
        let n = self.names.fetch_add(1, Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!(
            "amq.gen-{:x}{:06x}",
            t as u64 ^ std::process::id() as u64,
            n
        )
    }

    /// Deletes a queue after the protocol-level checks passed. Bindings to it vanish.
    pub fn delete_queue(
        &self,
        name: &str,
        if_unused: bool,
        if_empty: bool,
        conn: ConnectionId,
    ) -> Result<u32, BrokerError> {
        let q = match self.queue_for(name, conn) {
            Ok(q) => q,
            // Deleting what does not exist succeeds, as in RabbitMQ.
            Err(BrokerError::NotFound { .. }) => return Ok(0),
            Err(e) => return Err(e),
        };
        if if_unused && q.consumer_count() > 0 {
            return Err(BrokerError::InUse {
                entity: Entity::Queue,
                name: name.to_string(),
                vhost: self.name.clone(),
            });
        }
        if if_empty && q.total_count() > 0 {
            return Err(BrokerError::NotEmpty {
                queue: name.to_string(),
                vhost: self.name.clone(),
            });
        }
        Ok(self.remove_queue(name))
    }

    /// Removes a queue unconditionally (auto-delete, x-expires, exclusive owner gone).
    pub fn remove_queue(&self, name: &str) -> u32 {
        let Some(q) = self.queues_mut().remove(name) else {
            return 0;
        };
        if let (Some(store), true) = (&self.store, q.id != 0)
            && let Err(e) = store.remove_queue(&self.name, name)
        {
            tracing::error!("cannot persist deletion of queue '{name}': {e}");
        }
        let dest = Dest::Queue(q.clone());
        let exchanges: Vec<Arc<Exchange>> = self.exchanges().values().cloned().collect();
        for x in &exchanges {
            if x.unbind_all_to(&dest) > 0 {
                self.maybe_auto_delete_exchange(x);
            }
        }
        q.delete()
    }

    /// Routes to queues: through the exchange, exchange-to-exchange bindings and
    /// alternate exchanges. Each queue appears once.
    pub fn route(&self, msg: &Message) -> Result<Vec<Arc<Queue>>, BrokerError> {
        let mut out: Vec<Arc<Queue>> = Vec::new();
        if msg.exchange.is_empty() {
            if let Some(q) = self.queues().get(&msg.routing_key) {
                out.push(q.clone());
            }
            return Ok(out);
        }
        let x = self.exchange(&msg.exchange)?;
        if x.internal {
            return Err(BrokerError::InternalExchange {
                exchange: x.name.clone(),
                vhost: self.name.clone(),
            });
        }
        let mut visited: Vec<*const Exchange> = Vec::new();
        self.route_from(&x, msg, &mut out, &mut visited);
        Ok(out)
    }

    fn route_from(
        &self,
        x: &Arc<Exchange>,
        msg: &Message,
        out: &mut Vec<Arc<Queue>>,
        visited: &mut Vec<*const Exchange>,
    ) {
        if visited.contains(&Arc::as_ptr(x)) {
            return;
        }
        visited.push(Arc::as_ptr(x));
        let before = out.len();
        let mut next: Vec<Arc<Exchange>> = Vec::new();
        x.route(msg, &mut |d| match d {
            Dest::Queue(q) => {
                if !out.iter().any(|o| Arc::ptr_eq(o, q)) {
                    out.push(q.clone());
                }
            }
            Dest::Exchange(e) => next.push(e.clone()),
        });
        for e in next {
            self.route_from(&e, msg, out, visited);
        }
        if out.len() == before
            && let Some(ae) = x
                .alternate
                .as_deref()
                .and_then(|n| self.exchanges().get(n).cloned())
        {
            self.route_from(&ae, msg, out, visited);
        }
    }

    pub fn publish(&self, mut msg: Message) -> Result<PublishOutcome, BrokerError> {
        if msg.timestamp_ms == 0 {
            msg.timestamp_ms = switchboard_api::wall_ms();
        }
        let queues = self.route(&msg)?;
        Ok(self.deliver(queues, msg))
    }

    fn deliver(&self, queues: Vec<Arc<Queue>>, msg: Message) -> PublishOutcome {
        let mut outcome = PublishOutcome::default();
        if queues.is_empty() {
            return outcome;
        }
        let msg = Arc::new(msg);
        for q in queues {
            match q.enqueue(msg.clone()) {
                Enqueued::Accepted(lsn) => {
                    outcome.queues += 1;
                    outcome.lsn = outcome.lsn.max(lsn);
                }
                Enqueued::Rejected => outcome.rejected = true,
                Enqueued::Gone => {}
            }
        }
        outcome
    }

    /// Exclusive queues of a closed connection go away.
    pub fn connection_closed(&self, conn: ConnectionId) {
        let mine: Vec<String> = self
            .queues()
            .values()
            .filter(|q| q.is_exclusive_to(conn))
            .map(|q| q.name.clone())
            .collect();
        for name in mine {
            self.remove_queue(&name);
        }
    }
}

impl Vhost {
    /// Recreates a durable queue at start-up (its messages follow, see `Core::recover`).
    pub fn restore_queue(&self, name: &str, def: &QueueDef) -> Arc<Queue> {
        let args = match QueueArgs::parse(&def.args, name, &self.name) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(
                    "queue '{name}' has arguments this version refuses ({e}); using defaults"
                );
                QueueArgs::default()
            }
        };
        let q = Queue::new(
            QueueConfig {
                id: def.id,
                store: self.store.clone(),
                paging: self.paging.as_ref().map(|p| p.next()),
                name: name.to_string(),
                durable: true,
                auto_delete: def.auto_delete,
                exclusive_owner: None,
                args,
                raw_args: def.args.clone(),
            },
            self.owner(),
            self.timers.clone(),
        );
        self.queues_mut().insert(name.to_string(), q.clone());
        q
    }

    /// Recreates a durable binding at start-up; a missing end is skipped.
    pub fn restore_binding(&self, b: &BindingDef) {
        let Ok(x) = self.exchange(&b.source) else {
            return;
        };
        let dest = if b.dest_is_queue {
            self.queue(&b.dest).map(Dest::Queue)
        } else {
            self.exchange(&b.dest).map(Dest::Exchange)
        };
        if let Ok(dest) = dest {
            x.bind(dest, &b.key, &b.args);
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

    /// Replaces a queue's arguments (SQS SetQueueAttributes), persisting them.
    pub fn set_queue_arguments(&self, name: &str, arguments: &Table) -> Result<(), BrokerError> {
        let q = self.queue(name)?;
        let args = QueueArgs::parse(arguments, name, &self.name)?;
        if args.grouped != q.args().grouped {
            return Err(BrokerError::OrderingFixed {
                queue: name.to_string(),
                vhost: self.name.clone(),
            });
        }
        if let (Some(store), true) = (&self.store, q.id != 0) {
            store
                .set_queue_args(&self.name, name, arguments)
                .map_err(store_err)?;
        }
        q.set_args(args, arguments.clone());
        Ok(())
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
        self.deliver(queues, msg);
    }

    fn remove_queue(&self, name: &str) {
        Vhost::remove_queue(self, name);
    }
}

fn info(q: &Queue) -> QueueInfo {
    QueueInfo {
        name: q.name.clone(),
        messages: q.message_count(),
        consumers: q.consumer_count(),
    }
}
