//! The protocol-free core: vhosts, exchanges, bindings, queues, deliveries, leases.
//! [`Core`] implements [`switchboard_api::Broker`], the only face frontends see.

mod exchange;
mod queue;
pub mod timer;
mod topic;
mod users;
mod vhost;

pub use topic::{TopicTrie, topic_matches};
pub use users::{UserConfig, Users};

use exchange::Dest;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use switchboard_api::{
    Broker, BrokerError, ConnectionId, ConsumerHandle, ConsumerSpec, Delivery, ExchangeDecl,
    Message, PublishOptions, PublishOutcome, QueueDecl, QueueInfo, Table, User,
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
    timers: Timers,
}

impl Core {
    /// Creates the core with the default vhost `/`. Must run inside a tokio runtime
    /// (it starts the timer task).
    pub fn new(users: Users) -> Core {
        let timers = Timers::start();
        let mut vhosts = HashMap::new();
        vhosts.insert("/".to_string(), Vhost::new("/", timers.clone()));
        Core {
            inner: Arc::new(Inner {
                vhosts: RwLock::new(vhosts),
                users,
                next_conn: AtomicU64::new(1),
                timers,
            }),
        }
    }

    pub fn add_vhost(&self, name: &str) {
        let mut v = self.inner.vhosts.write().unwrap_or_else(|e| e.into_inner());
        v.entry(name.to_string())
            .or_insert_with(|| Vhost::new(name, self.inner.timers.clone()));
    }

    fn vhost(&self, name: &str) -> Result<Arc<Vhost>, BrokerError> {
        self.inner
            .vhosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| {
                BrokerError::not_allowed(format!("NOT_ALLOWED - vhost {name} not found"))
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

    fn open_vhost(&self, _user: &User, vhost: &str) -> Result<(), BrokerError> {
        self.vhost(vhost).map(|_| ())
    }

    fn connection_opened(&self) -> ConnectionId {
        self.inner.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    fn connection_closed(&self, conn: ConnectionId) {
        let vhosts: Vec<Arc<Vhost>> = self
            .inner
            .vhosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for v in vhosts {
            v.connection_closed(conn);
        }
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
        self.vhost(vhost)?.declare_queue(decl, owner)
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
        _opts: PublishOptions,
    ) -> Result<PublishOutcome, BrokerError> {
        self.vhost(vhost)?.publish(message)
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
}

#[cfg(test)]
mod tests;
