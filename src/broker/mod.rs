//! The protocol-free core: vhosts, exchanges, bindings, queues, deliveries, leases.
//! [`Core`] implements [`switchboard_api::Broker`], the only face frontends see.

mod access;
mod admin;
mod conns;
mod exchange;
mod filter;
mod guard;
mod keyed;
mod permissions;
mod queue;
pub mod quotas;
mod recover;
mod refusals;
pub mod timer;
mod topic;
mod users;
mod vhost;

pub use filter::check_filters;
pub use topic::{TopicTrie, topic_matches};
pub use users::{UserConfig, Users, argon2_hash, check_users, rabbit_hash};

use crate::store::{Recovery, Store};
use exchange::Dest;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use switchboard_api::{
    Broker, BrokerError, ConnectionId, ConsumerHandle, ConsumerSpec, Delivery, ExchangeDecl,
    KeySpace, Message, PublishOptions, PublishOutcome, QueueDecl, QueueInfo, Table, User,
};
use timer::Timers;
use vhost::Vhost;

/// Cheap-to-clone handle on the broker core.
#[derive(Clone)]
pub struct Core {
    inner: Arc<Inner>,
}

struct Inner {
    vhosts: RwLock<HashMap<String, Arc<Vhost>>>,
    users: Users,
    next_conn: AtomicU64,
    permissions: access::Permissions,
    refusals: refusals::Refusals,
    limiter: quotas::Limiter,
    /// Publishes since start (the admin API's node-wide publish rate).
    published: AtomicU64,
    conns: conns::Conns,
    timers: Timers,
    store: Option<Arc<Store>>,
    alarm: tokio::sync::watch::Sender<Option<String>>,
    paging: Option<Arc<vhost::Paging>>,
}

impl Core {
    /// Creates the core with the default vhost `/`. Must run inside a tokio runtime
    /// (it starts the timer task).
    pub fn new(users: Users) -> Core {
        Core::with_store(users, None, None)
    }

    /// Creates the core on a store, rebuilding what it recovered: durable vhosts,
    /// exchanges, queues with their persistent messages, and bindings.
    /// `paging`: a scratch directory (emptied here) and the bytes of ready messages
    /// each queue keeps in memory before paging newer ones out.
    pub fn with_store(
        users: Users,
        store: Option<(Arc<Store>, Recovery)>,
        paging: Option<(std::path::PathBuf, usize)>,
    ) -> Core {
        let paging = paging.map(|(dir, budget)| {
            // Spill files are scratch: whatever a previous run left is garbage.
            let _ = std::fs::remove_dir_all(&dir);
            Arc::new(vhost::Paging {
                dir,
                budget,
                files: AtomicU64::new(0),
            })
        });
        let timers = Timers::start();
        let (store, recovery) = match store {
            Some((s, r)) => (Some(s), Some(r)),
            None => (None, None),
        };
        let core = Core {
            inner: Arc::new(Inner {
                vhosts: RwLock::new(HashMap::new()),
                users,
                next_conn: AtomicU64::new(1),
                published: AtomicU64::new(0),
                permissions: Default::default(),
                refusals: Default::default(),
                limiter: Default::default(),
                conns: conns::Conns::default(),
                timers,
                store,
                alarm: tokio::sync::watch::Sender::new(None),
                paging,
            }),
        };
        core.add_vhost("/");
        if let Some(r) = recovery {
            core.recover(r);
        }
        core.seed_permissions(&core.inner.users.all());
        core.load_users();
        core.load_permissions();
        if let Some(store) = &core.inner.store {
            tokio::spawn(compact(Arc::downgrade(&core.inner), store.clone()));
        }
        core
    }

    pub fn add_vhost(&self, name: &str) {
        let mut v = self.inner.vhosts.write().unwrap_or_else(|e| e.into_inner());
        if v.contains_key(name) {
            return;
        }
        if let Some(store) = &self.inner.store
            && let Err(e) = store.put_vhost(name)
        {
            tracing::error!("cannot persist vhost '{name}': {e}");
        }
        v.insert(
            name.to_string(),
            Vhost::new(
                name,
                self.inner.timers.clone(),
                self.inner.store.clone(),
                self.inner.paging.clone(),
            ),
        );
    }

    /// The socket from `peer` is served until `token` is cancelled: the admin API
    /// closes a connection through it. [`Core::untrack_socket`] when it ends.
    /// Sets the tenant limits (at start and on SIGHUP).
    pub fn set_quotas(&self, q: quotas::Quotas) {
        self.inner.limiter.set(q);
    }

    /// Whether a new socket from `peer` is within its source's connection rate.
    pub fn admit_socket(&self, peer: SocketAddr) -> bool {
        self.inner.limiter.admit_source(peer.ip())
    }

    pub fn track_socket(&self, peer: SocketAddr, token: tokio_util::sync::CancellationToken) {
        self.inner.conns.track(peer, token);
    }

    pub fn untrack_socket(&self, peer: SocketAddr) {
        self.inner.conns.untrack(peer);
    }

    /// Raises (`Some(reason)`) or clears a resource alarm.
    pub fn set_alarm(&self, reason: Option<String>) {
        // Only on/off transitions count: the reason's figures change every check.
        self.inner.alarm.send_if_modified(|cur| {
            if cur.is_some() == reason.is_some() {
                return false;
            }
            match &reason {
                Some(r) => tracing::warn!("resource alarm: {r}; blocking publishers"),
                None => tracing::info!("resource alarm cleared; unblocking publishers"),
            }
            *cur = reason;
            true
        });
    }

    fn all_vhosts(&self) -> Vec<Arc<Vhost>> {
        self.inner
            .vhosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn vhost(&self, name: &str) -> Result<Arc<Vhost>, BrokerError> {
        self.inner
            .vhosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| BrokerError::NoVhost {
                vhost: name.to_string(),
            })
    }
}

impl Broker for Core {
    fn authenticate(
        &self,
        user: &str,
        password: &str,
        peer: SocketAddr,
    ) -> Result<User, BrokerError> {
        self.inner.users.authenticate(user, password, peer)
    }

    fn signing_secrets(
        &self,
        access_key: &str,
        peer: SocketAddr,
    ) -> Result<(User, Vec<String>), BrokerError> {
        self.inner.users.signing_secrets(access_key, peer)
    }

    fn open_vhost(&self, user: &User, vhost: &str) -> Result<Arc<dyn Broker>, BrokerError> {
        self.vhost(vhost)?;
        if self.inner.permissions.grant(&user.name, vhost).is_none() {
            return Err(BrokerError::VhostRefused {
                vhost: vhost.to_string(),
                user: user.name.clone(),
            });
        }
        Ok(Arc::new(guard::Guarded::new(self.clone(), user.clone())))
    }

    fn login_refused(&self, peer: SocketAddr, user: &str, protocol: &str) -> Duration {
        self.inner.refusals.refused(peer, user, protocol)
    }

    fn connection_opened(&self) -> ConnectionId {
        self.inner.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    fn connection_closed(&self, conn: ConnectionId) {
        self.inner.conns.closed(conn);
        for v in self.all_vhosts() {
            v.connection_closed(conn);
        }
    }

    fn connection_describe(
        &self,
        conn: ConnectionId,
        meta: switchboard_api::admin::ConnectionMeta,
    ) -> Result<(), BrokerError> {
        let q = self.inner.limiter.get();
        let (user, vhost) = (meta.user.clone(), meta.vhost.clone());
        let limits = (q.max_connections_per_user, q.max_connections_per_vhost);
        self.inner.conns.describe(conn, meta, limits).map_err(|r| {
            self.inner.limiter.refuse(r);
            let per_vhost = matches!(r, quotas::Refusal::VhostConnections);
            BrokerError::ConnectionLimit {
                user,
                vhost,
                per_vhost,
                limit: if per_vhost { limits.1 } else { limits.0 },
            }
        })
    }

    fn declare_exchange(&self, vhost: &str, decl: &ExchangeDecl) -> Result<(), BrokerError> {
        self.vhost(vhost)?.declare_exchange(decl)
    }

    fn delete_exchange(&self, vhost: &str, name: &str, if_unused: bool) -> Result<(), BrokerError> {
        self.vhost(vhost)?.delete_exchange(name, if_unused)
    }

    fn bind_exchange(
        &self,
        vhost: &str,
        destination: &str,
        source: &str,
        key: &str,
        args: &Table,
    ) -> Result<(), BrokerError> {
        let v = self.vhost(vhost)?;
        let dest = Dest::Exchange(v.exchange(destination)?);
        v.bind(source, dest, key, args)
    }

    fn unbind_exchange(
        &self,
        vhost: &str,
        destination: &str,
        source: &str,
        key: &str,
        args: &Table,
    ) -> Result<(), BrokerError> {
        let v = self.vhost(vhost)?;
        let dest = Dest::Exchange(v.exchange(destination)?);
        v.unbind(source, dest, key, args)
    }

    fn declare_queue(
        &self,
        vhost: &str,
        decl: &QueueDecl,
        owner: ConnectionId,
    ) -> Result<QueueInfo, BrokerError> {
        let v = self.vhost(vhost)?;
        let limit = self.inner.limiter.get().max_queues_per_vhost;
        // Checked before the queue is made, so a race may let one more in: the
        // limit protects the broker, it is not an exact count.
        if limit > 0
            && !decl.passive
            && !v.has_queue(&decl.name)
            && v.queue_count() >= limit as usize
        {
            self.inner.limiter.refuse(quotas::Refusal::VhostQueues);
            return Err(BrokerError::QueueLimit {
                queue: decl.name.clone(),
                vhost: vhost.to_string(),
                limit,
            });
        }
        v.declare_queue(decl, owner)
    }

    fn bind_queue(
        &self,
        vhost: &str,
        queue: &str,
        exchange: &str,
        key: &str,
        args: &Table,
        owner: ConnectionId,
    ) -> Result<(), BrokerError> {
        let v = self.vhost(vhost)?;
        let q = v.queue_for(queue, owner)?;
        v.bind(exchange, Dest::Queue(q), key, args)
    }

    fn unbind_queue(
        &self,
        vhost: &str,
        queue: &str,
        exchange: &str,
        key: &str,
        args: &Table,
        owner: ConnectionId,
    ) -> Result<(), BrokerError> {
        let v = self.vhost(vhost)?;
        let q = v.queue_for(queue, owner)?;
        v.unbind(exchange, Dest::Queue(q), key, args)
    }

    fn purge_queue(
        &self,
        vhost: &str,
        queue: &str,
        owner: ConnectionId,
    ) -> Result<u32, BrokerError> {
        Ok(self.vhost(vhost)?.queue_for(queue, owner)?.purge())
    }

    fn delete_queue(
        &self,
        vhost: &str,
        queue: &str,
        if_unused: bool,
        if_empty: bool,
        owner: ConnectionId,
    ) -> Result<u32, BrokerError> {
        self.vhost(vhost)?
            .delete_queue(queue, if_unused, if_empty, owner)
    }

    fn publish(
        &self,
        vhost: &str,
        message: Message,
        opts: PublishOptions,
    ) -> Result<PublishOutcome, BrokerError> {
        let outcome = self.vhost(vhost)?.publish(message, opts.backlog_limit)?;
        self.inner.published.fetch_add(1, Ordering::Relaxed);
        Ok(outcome)
    }

    fn consume(
        &self,
        vhost: &str,
        queue: &str,
        spec: ConsumerSpec,
    ) -> Result<Box<dyn ConsumerHandle>, BrokerError> {
        let q = self.vhost(vhost)?.queue_for(queue, spec.owner)?;
        q.add_consumer(spec)
    }

    fn get(
        &self,
        vhost: &str,
        queue: &str,
        owner: ConnectionId,
        auto_ack: bool,
    ) -> Result<Option<(Delivery, u32)>, BrokerError> {
        Ok(self.vhost(vhost)?.queue_for(queue, owner)?.get(auto_ack))
    }

    fn receive(
        &self,
        vhost: &str,
        queue: &str,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, BrokerError> {
        Ok(self.vhost(vhost)?.queue(queue)?.receive(max, visibility))
    }

    fn binding_admits(&self, args: &Table, message: &Message) -> Result<bool, BrokerError> {
        match filter::from_args(args) {
            Ok(None) => Ok(true),
            Ok(Some(policy)) => Ok(policy.matches(message)),
            Err(reason) => Err(BrokerError::InvalidFilterPolicy { reason }),
        }
    }

    fn queue_exists(&self, vhost: &str, queue: &str) -> bool {
        self.vhost(vhost).is_ok_and(|v| v.has_queue(queue))
    }

    fn queue_handle(
        &self,
        vhost: &str,
        queue: &str,
    ) -> Option<Arc<dyn switchboard_api::QueueHandle>> {
        let q = self.vhost(vhost).ok()?.queue(queue).ok()?;
        Some(q)
    }

    fn list_queues(&self, vhost: &str) -> Vec<String> {
        self.vhost(vhost)
            .map(|v| v.queue_names())
            .unwrap_or_default()
    }

    fn set_queue_arguments(
        &self,
        vhost: &str,
        queue: &str,
        arguments: &Table,
    ) -> Result<(), BrokerError> {
        self.vhost(vhost)?.set_queue_arguments(queue, arguments)
    }

    fn keyed_put(
        &self,
        vhost: &str,
        space: KeySpace,
        key: &str,
        value: Option<Message>,
    ) -> Result<u64, BrokerError> {
        self.vhost(vhost)?.keyed(space.as_str()).put(key, value)
    }

    fn keyed_get(&self, vhost: &str, space: KeySpace, key: &str) -> Option<Arc<Message>> {
        self.vhost(vhost).ok()?.keyed(space.as_str()).get(key)
    }

    fn keyed_scan(
        &self,
        vhost: &str,
        space: KeySpace,
        filter: &mut dyn FnMut(&str) -> bool,
    ) -> Vec<(String, Arc<Message>)> {
        match self.vhost(vhost) {
            Ok(v) => v.keyed(space.as_str()).scan(filter),
            Err(_) => Vec::new(),
        }
    }

    fn durable_watch(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.inner.store.as_ref().map(|s| s.journal().subscribe())
    }

    fn alarm_watch(&self) -> Option<tokio::sync::watch::Receiver<Option<String>>> {
        Some(self.inner.alarm.subscribe())
    }
}

/// How often the journal is checked for segments that hold nothing live.
const COMPACT_EVERY: Duration = Duration::from_secs(2);

/// Deletes journal segments below the oldest live message. Everything appended
/// before the live set was read is made durable first: whatever superseded the
/// records being deleted (a Settle, a dead-lettered copy) must be on disk.
async fn compact(inner: std::sync::Weak<Inner>, store: Arc<Store>) {
    loop {
        tokio::time::sleep(COMPACT_EVERY).await;
        let Some(inner) = inner.upgrade() else { return };
        let journal = store.journal().clone();
        let upto = journal.next_lsn().saturating_sub(1);
        let vhosts: Vec<Arc<Vhost>> = inner
            .vhosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        drop(inner);
        let min_live = vhosts.iter().filter_map(|v| v.min_live_lsn()).min();
        // Long-lived keyed values (retained messages) would pin the oldest segment
        // forever; when they are all that pins it, move them to the head instead.
        if let Some(first_kept) = journal.oldest_segment_end() {
            let keyed_min = vhosts.iter().filter_map(|v| v.keyed_min_live_lsn()).min();
            if keyed_min.is_some_and(|k| k < first_kept) && min_live.is_none_or(|q| q >= first_kept)
            {
                for v in &vhosts {
                    for k in v.keyed_spaces() {
                        k.relocate_below(first_kept);
                    }
                }
            }
        }
        let min_live = vhosts
            .iter()
            .filter_map(|v| {
                v.min_live_lsn()
                    .into_iter()
                    .chain(v.keyed_min_live_lsn())
                    .min()
            })
            .min();
        journal
            .wait_durable(journal.next_lsn().saturating_sub(1))
            .await;
        journal.retire_before(min_live.unwrap_or(upto + 1));
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_access;
