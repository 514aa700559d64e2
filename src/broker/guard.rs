//! The core as one user may use it: [`Broker::open_vhost`] hands frontends a
//! [`Guarded`] handle, and every operation through it is checked against the
//! user's permissions first, the same for every protocol (RabbitMQ's table):
//!
//! | operation | configure | write | read |
//! |---|---|---|---|
//! | exchange declare (not passive), delete | exchange | | |
//! | queue declare (not passive), delete, set arguments | queue | dead-letter exchange | queue (with a dead-letter exchange) |
//! | queue bind / unbind | | queue | exchange (+ topic read on the key) |
//! | exchange bind / unbind | | destination | source |
//! | publish | | exchange (+ topic write on the key) | |
//! | consume, get, receive, purge | | | queue |
//!
//! The default exchange is `amq.default` for permissions; a publish through it
//! may also be allowed by write on the queue it names (how SQS SendMessage and
//! STOMP `/queue/` sends read). A denial says what was asked of which name and
//! never whether it exists: checks come before any lookup.

use super::Core;
use super::access::Grant;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_api::{
    Access, Broker, BrokerError, ConnectionId, ConsumerHandle, ConsumerSpec, Delivery, Entity,
    ExchangeDecl, KeySpace, Message, PublishOptions, PublishOutcome, QueueDecl, QueueHandle,
    QueueInfo, Table, User,
};

/// Decisions a connection remembers: a publisher sends to a few names over and
/// over, and a lookup and a regex run per message showed in the profile
/// (docs/BENCHMARKS.md). Few, so a linear scan beats hashing the name.
const MEMO_DECISIONS: usize = 16;

pub struct Guarded {
    pub(super) core: Core,
    pub(super) user: User,
    /// Per connection (each gets its own `Guarded`), so the lock is uncontended.
    pub(super) memo: Mutex<Memo>,
}

/// What a connection knows of its user's permissions in one vhost, valid while
/// [`super::access::Permissions::generation`] has not moved.
#[derive(Default)]
pub(super) struct Memo {
    /// `None`: nothing remembered yet.
    generation: Option<u64>,
    vhost: String,
    grant: Option<Arc<Grant>>,
    topics: bool,
    /// (access, name, allowed) for patterns that need a regex run; `next` is the
    /// slot the next new decision replaces.
    decisions: Vec<(Access, String, bool)>,
    next: usize,
}

impl Memo {
    /// Whether `name` passes the grant's `access` pattern, from memory when it can.
    fn allows(&mut self, access: Access, name: &str) -> bool {
        let Some(g) = &self.grant else {
            return false;
        };
        let pattern = g.pattern(access);
        if pattern.matches_all() {
            return true;
        }
        if let Some(d) = self
            .decisions
            .iter()
            .find(|(a, n, _)| *a == access && n == name)
        {
            return d.2;
        }
        let allowed = pattern.allows(name);
        let entry = (access, name.to_string(), allowed);
        if self.decisions.len() < MEMO_DECISIONS {
            self.decisions.push(entry);
        } else {
            self.decisions[self.next] = entry;
            self.next = (self.next + 1) % MEMO_DECISIONS;
        }
        allowed
    }
}

impl Guarded {
    pub(super) fn new(core: Core, user: User) -> Guarded {
        Guarded {
            core,
            user,
            memo: Mutex::new(Memo::default()),
        }
    }

    fn grant(&self, vhost: &str) -> Option<Arc<Grant>> {
        self.core.inner.permissions.grant(&self.user.name, vhost)
    }

    /// Runs `f` on the memo for `vhost`, refreshed first if permissions changed
    /// (or another vhost is asked about) since it was filled.
    fn with_memo<R>(&self, vhost: &str, f: impl FnOnce(&mut Memo) -> R) -> R {
        let perms = &self.core.inner.permissions;
        let mut m = self.memo.lock().unwrap_or_else(|e| e.into_inner());
        let generation = perms.generation();
        if m.generation != Some(generation) || m.vhost != vhost {
            m.generation = Some(generation);
            m.vhost.clear();
            m.vhost.push_str(vhost);
            m.grant = perms.grant(&self.user.name, vhost);
            m.topics = perms.has_topic_grants(&self.user.name, vhost);
            m.decisions.clear();
            m.next = 0;
        }
        f(&mut m)
    }

    fn denied(&self, vhost: &str, access: Access, entity: Entity, name: &str) -> BrokerError {
        BrokerError::Denied {
            access,
            entity,
            name: name.to_string(),
            vhost: vhost.to_string(),
            user: self.user.name.clone(),
        }
    }

    fn need(
        &self,
        vhost: &str,
        access: Access,
        entity: Entity,
        name: &str,
    ) -> Result<(), BrokerError> {
        let name = permission_name(entity, name);
        match self.with_memo(vhost, |m| m.allows(access, name)) {
            true => Ok(()),
            false => Err(self.denied(vhost, access, entity, name)),
        }
    }

    fn need_topic(
        &self,
        vhost: &str,
        access: Access,
        exchange: &str,
        key: &str,
    ) -> Result<(), BrokerError> {
        if !self.with_memo(vhost, |m| m.topics)
            || self.core.inner.permissions.topic_allows(
                &self.user.name,
                vhost,
                exchange,
                access,
                key,
            )
        {
            return Ok(());
        }
        Err(BrokerError::TopicDenied {
            access,
            key: key.to_string(),
            exchange: exchange.to_string(),
            vhost: vhost.to_string(),
            user: self.user.name.clone(),
        })
    }

    /// A queue's dead-letter exchange is written to by the queue on the user's
    /// behalf, and its messages read: RabbitMQ asks for both at declare.
    fn need_dead_letter(&self, vhost: &str, queue: &str, args: &Table) -> Result<(), BrokerError> {
        if let Some(dlx) = args.get("x-dead-letter-exchange").and_then(|v| v.as_str()) {
            self.need(vhost, Access::Write, Entity::Exchange, dlx)?;
            self.need(vhost, Access::Read, Entity::Queue, queue)?;
        }
        Ok(())
    }
}

/// The default exchange is `amq.default` in permission patterns, as in RabbitMQ.
fn permission_name(entity: Entity, name: &str) -> &str {
    match (entity, name) {
        (Entity::Exchange, "") => "amq.default",
        _ => name,
    }
}

impl Broker for Guarded {
    fn authenticate(
        &self,
        user: &str,
        password: &str,
        peer: SocketAddr,
    ) -> Result<User, BrokerError> {
        self.core.authenticate(user, password, peer)
    }

    fn signing_secrets(
        &self,
        access_key: &str,
        peer: SocketAddr,
    ) -> Result<(User, Vec<String>), BrokerError> {
        self.core.signing_secrets(access_key, peer)
    }

    fn open_vhost(&self, user: &User, vhost: &str) -> Result<Arc<dyn Broker>, BrokerError> {
        self.core.open_vhost(user, vhost)
    }

    fn check(
        &self,
        vhost: &str,
        access: Access,
        entity: Entity,
        name: &str,
    ) -> Result<(), BrokerError> {
        self.need(vhost, access, entity, name)
    }

    fn login_refused(&self, peer: SocketAddr, user: &str, protocol: &str) -> Duration {
        self.core.login_refused(peer, user, protocol)
    }

    fn connection_opened(&self) -> ConnectionId {
        self.core.connection_opened()
    }

    fn connection_closed(&self, conn: ConnectionId) {
        self.core.connection_closed(conn)
    }

    fn connection_describe(
        &self,
        conn: ConnectionId,
        meta: switchboard_api::admin::ConnectionMeta,
    ) -> Result<(), BrokerError> {
        self.core.connection_describe(conn, meta)
    }

    fn declare_exchange(&self, vhost: &str, decl: &ExchangeDecl) -> Result<(), BrokerError> {
        if !decl.passive {
            self.need(vhost, Access::Configure, Entity::Exchange, &decl.name)?;
        }
        self.core.declare_exchange(vhost, decl)
    }

    fn delete_exchange(&self, vhost: &str, name: &str, if_unused: bool) -> Result<(), BrokerError> {
        self.need(vhost, Access::Configure, Entity::Exchange, name)?;
        self.core.delete_exchange(vhost, name, if_unused)
    }

    fn bind_exchange(
        &self,
        vhost: &str,
        destination: &str,
        source: &str,
        key: &str,
        args: &Table,
    ) -> Result<(), BrokerError> {
        self.need(vhost, Access::Write, Entity::Exchange, destination)?;
        self.need(vhost, Access::Read, Entity::Exchange, source)?;
        self.core
            .bind_exchange(vhost, destination, source, key, args)
    }

    fn unbind_exchange(
        &self,
        vhost: &str,
        destination: &str,
        source: &str,
        key: &str,
        args: &Table,
    ) -> Result<(), BrokerError> {
        self.need(vhost, Access::Write, Entity::Exchange, destination)?;
        self.need(vhost, Access::Read, Entity::Exchange, source)?;
        self.core
            .unbind_exchange(vhost, destination, source, key, args)
    }

    fn declare_queue(
        &self,
        vhost: &str,
        decl: &QueueDecl,
        owner: ConnectionId,
    ) -> Result<QueueInfo, BrokerError> {
        if decl.passive {
            return self.core.declare_queue(vhost, decl, owner);
        }
        // A server-named queue is checked by a name of the kind it will get
        // (`amq.gen-…`), as in RabbitMQ; the core then names it.
        let name = match decl.name.is_empty() {
            true => self.core.vhost(vhost)?.server_name(),
            false => decl.name.clone(),
        };
        self.need(vhost, Access::Configure, Entity::Queue, &name)?;
        self.need_dead_letter(vhost, &name, &decl.arguments)?;
        self.core.declare_queue(vhost, decl, owner)
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
        self.need(vhost, Access::Write, Entity::Queue, queue)?;
        self.need(vhost, Access::Read, Entity::Exchange, exchange)?;
        self.need_topic(vhost, Access::Read, exchange, key)?;
        self.core
            .bind_queue(vhost, queue, exchange, key, args, owner)
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
        self.need(vhost, Access::Write, Entity::Queue, queue)?;
        self.need(vhost, Access::Read, Entity::Exchange, exchange)?;
        self.core
            .unbind_queue(vhost, queue, exchange, key, args, owner)
    }

    fn purge_queue(
        &self,
        vhost: &str,
        queue: &str,
        owner: ConnectionId,
    ) -> Result<u32, BrokerError> {
        self.need(vhost, Access::Read, Entity::Queue, queue)?;
        self.core.purge_queue(vhost, queue, owner)
    }

    fn delete_queue(
        &self,
        vhost: &str,
        queue: &str,
        if_unused: bool,
        if_empty: bool,
        owner: ConnectionId,
    ) -> Result<u32, BrokerError> {
        self.need(vhost, Access::Configure, Entity::Queue, queue)?;
        self.core
            .delete_queue(vhost, queue, if_unused, if_empty, owner)
    }

    fn publish(
        &self,
        vhost: &str,
        message: Message,
        opts: PublishOptions,
    ) -> Result<PublishOutcome, BrokerError> {
        let x = permission_name(Entity::Exchange, &message.exchange);
        let (allowed, topics) = self.with_memo(vhost, |m| {
            let allowed = m.allows(Access::Write, x)
                || (message.exchange.is_empty() && m.allows(Access::Write, &message.routing_key));
            (allowed, m.topics)
        });
        if !allowed {
            return Err(self.denied(vhost, Access::Write, Entity::Exchange, x));
        }
        if topics {
            self.need_topic(
                vhost,
                Access::Write,
                &message.exchange,
                &message.routing_key,
            )?;
        }
        self.core.publish(vhost, message, opts)
    }

    fn consume(
        &self,
        vhost: &str,
        queue: &str,
        spec: ConsumerSpec,
    ) -> Result<Box<dyn ConsumerHandle>, BrokerError> {
        self.need(vhost, Access::Read, Entity::Queue, queue)?;
        self.core.consume(vhost, queue, spec)
    }

    fn get(
        &self,
        vhost: &str,
        queue: &str,
        owner: ConnectionId,
        auto_ack: bool,
    ) -> Result<Option<(Delivery, u32)>, BrokerError> {
        self.need(vhost, Access::Read, Entity::Queue, queue)?;
        self.core.get(vhost, queue, owner, auto_ack)
    }

    fn receive(
        &self,
        vhost: &str,
        queue: &str,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, BrokerError> {
        self.need(vhost, Access::Read, Entity::Queue, queue)?;
        self.core.receive(vhost, queue, max, visibility)
    }

    fn binding_admits(&self, args: &Table, message: &Message) -> Result<bool, BrokerError> {
        self.core.binding_admits(args, message)
    }

    fn queue_exists(&self, vhost: &str, queue: &str) -> bool {
        self.core.queue_exists(vhost, queue)
    }

    fn queue_handle(&self, vhost: &str, queue: &str) -> Option<Arc<dyn QueueHandle>> {
        self.core.queue_handle(vhost, queue)
    }

    /// Only the queues the user has some permission on.
    fn list_queues(&self, vhost: &str) -> Vec<String> {
        let Some(g) = self.grant(vhost) else {
            return Vec::new();
        };
        let mut qs = self.core.list_queues(vhost);
        qs.retain(|q| g.configure.allows(q) || g.write.allows(q) || g.read.allows(q));
        qs
    }

    fn set_queue_arguments(
        &self,
        vhost: &str,
        queue: &str,
        arguments: &Table,
    ) -> Result<(), BrokerError> {
        self.need(vhost, Access::Configure, Entity::Queue, queue)?;
        self.need_dead_letter(vhost, queue, arguments)?;
        self.core.set_queue_arguments(vhost, queue, arguments)
    }

    fn keyed_put(
        &self,
        vhost: &str,
        space: KeySpace,
        key: &str,
        value: Option<Message>,
    ) -> Result<u64, BrokerError> {
        self.core.keyed_put(vhost, space, key, value)
    }

    fn keyed_get(&self, vhost: &str, space: KeySpace, key: &str) -> Option<Arc<Message>> {
        self.core.keyed_get(vhost, space, key)
    }

    fn keyed_scan(
        &self,
        vhost: &str,
        space: KeySpace,
        filter: &mut dyn FnMut(&str) -> bool,
    ) -> Vec<(String, Arc<Message>)> {
        self.core.keyed_scan(vhost, space, filter)
    }

    fn durable_watch(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.core.durable_watch()
    }

    fn alarm_watch(&self) -> Option<tokio::sync::watch::Receiver<Option<String>>> {
        self.core.alarm_watch()
    }
}
