use crate::{BrokerError, Message, Table};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// Identifies one client connection, for exclusive queues and consumer ownership.
pub type ConnectionId = u64;

/// An authenticated user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub tags: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct ExchangeDecl {
    pub name: String,
    /// `direct`, `fanout`, `topic`, `headers` (also `x-` types the core knows).
    pub kind: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    /// Only check that it exists (AMQP passive declare).
    pub passive: bool,
    pub arguments: Table,
}

#[derive(Clone, Debug, Default)]
pub struct QueueDecl {
    /// Empty: the broker picks a name (`amq.gen-…`).
    pub name: String,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub passive: bool,
    /// `x-` arguments (`x-message-ttl`, `x-max-length`, …), RabbitMQ names.
    pub arguments: Table,
}

/// What `declare_queue` and friends report back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueInfo {
    pub name: String,
    /// Ready messages (not counting unacknowledged ones), as AMQP reports them.
    pub messages: u32,
    pub consumers: u32,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct PublishOptions {
    /// Report an unroutable message instead of silently dropping it (AMQP mandatory).
    pub mandatory: bool,
    /// Report the queues that hold at least this many ready messages while someone
    /// consumes them ([`PublishOutcome::pressure`]): a publisher that can wait (MQTT
    /// holds its PUBACKs) slows down to what the consumers take, so a slow consumer's
    /// backlog, its latency and the broker's memory stay bounded. `None`: never.
    pub backlog_limit: Option<u32>,
}

/// A queue past the publisher's backlog limit. The watch holds `true` while the
/// queue is still too deep; it turns `false` once its consumers have taken it down
/// to half the limit or gone, and closes if the queue is deleted.
#[derive(Debug)]
pub struct Pressure {
    pub queue: String,
    pub deep: tokio::sync::watch::Receiver<bool>,
}

/// What became of a publish.
#[derive(Debug, Default)]
pub struct PublishOutcome {
    /// Number of queues that accepted the message.
    pub queues: usize,
    /// Some queue refused it (overflow `reject-publish`): the publisher should be told
    /// "not accepted" (AMQP basic.nack).
    pub rejected: bool,
    /// Journal position that must be durable before the publisher hears "accepted";
    /// 0 when nothing had to be written (transient message or queues).
    pub lsn: u64,
    /// Queues past [`PublishOptions::backlog_limit`] (empty without one).
    pub pressure: Vec<Pressure>,
}

impl PublishOutcome {
    pub fn routed(&self) -> bool {
        self.queues > 0 || self.rejected
    }
}

/// Names a durable key → message map kept beside the queues (same journal, same
/// durability contract). A frontend names its own spaces and owns what it stores in
/// them; the core opens a space the first time it is used and finds it again at
/// start-up by its name, so a new frontend adds a space without editing this crate
/// or the core. The name is part of the data directory's format: never rename one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeySpace(&'static str);

impl KeySpace {
    pub const fn new(name: &'static str) -> KeySpace {
        KeySpace(name)
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

/// How a delivery ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    /// Done with it: remove from the queue.
    Ack,
    /// Put it back in its original position, marked redelivered.
    Requeue,
    /// Refused: dead-letter it if the queue has a dead-letter target, else drop it.
    Reject,
}

/// A queue as seen by whoever holds one of its deliveries: enough to settle it.
pub trait QueueHandle: Send + Sync {
    fn name(&self) -> &str;
    /// Settle deliveries by their sequence numbers. Unknown numbers are ignored (a
    /// frontend validates its own tags before calling).
    fn settle(&self, seqs: &[u64], how: Settle);
    /// Change a leased delivery's visibility timeout, counted from now. Zero makes it
    /// available again at once. Fails with `NotFound` when the delivery is no longer
    /// in flight, and with `NotAllowed` when `delivery_count` is given and the
    /// message has been handed out again since (a stale SQS receipt handle).
    /// Returns the LSN that must be durable before the change is reported (0: none).
    fn set_visibility(
        &self,
        seq: u64,
        delivery_count: Option<u32>,
        timeout: Duration,
    ) -> Result<u64, BrokerError>;
    /// Acknowledges a leased delivery only if it is still the `delivery_count`-th
    /// hand-out of message `seq` (SQS DeleteMessage with the latest receipt handle).
    /// Returns `None` when it was not, else the LSN that must be durable before the
    /// deletion is reported (0: nothing journaled).
    fn settle_leased(&self, seq: u64, delivery_count: u32) -> Option<u64>;
    /// Deletes message `seq` if it waits in the queue, visible again (SQS
    /// DeleteMessage on a standard queue with a handle whose visibility timeout
    /// ended: AWS deletes the message). Returns `None` when it is not there, else the
    /// LSN that must be durable before the deletion is reported.
    fn settle_visible(&self, _seq: u64) -> Option<u64> {
        None
    }
    /// Removes every leased delivery (SQS PurgeQueue also deletes messages in
    /// flight; AMQP's purge leaves unacknowledged ones). Returns how many.
    fn purge_leased(&self) -> u32;
    /// Message counts, for SQS's `ApproximateNumberOfMessages*` and management.
    fn stats(&self) -> QueueStats;
    /// Woken whenever a message becomes ready (published, requeued, delay over):
    /// lets a long poll wait instead of spinning. Register (`notified()` +
    /// `enable()`) before receiving, so an arrival in between is not missed.
    fn ready_notify(&self) -> Arc<tokio::sync::Notify>;
}

/// How many messages a queue holds, by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub ready: u32,
    /// Handed out and not yet settled (SQS: "not visible").
    pub in_flight: u32,
    /// Waiting for their delivery delay.
    pub delayed: u32,
    pub consumers: u32,
    /// Bytes of the ready messages, and how many of those are paged out to disk.
    pub ready_bytes: u64,
    pub paged_bytes: u64,
    pub counts: MessageCounts,
}

/// Running totals of what happened to a queue's messages since it was created or
/// the node started: the admin API turns them into RabbitMQ's `message_stats` rates,
/// `/metrics` exposes them as counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageCounts {
    /// Messages the queue took (after deduplication and max-length refusals).
    pub publish: u64,
    /// Handed to push consumers.
    pub deliver: u64,
    /// Handed out by pull: basic.get, SQS ReceiveMessage.
    pub get: u64,
    /// Hand-outs of messages handed out before.
    pub redeliver: u64,
    /// Settled as done: acks, SQS DeleteMessage.
    pub ack: u64,
}

/// A message handed out by a queue. Dropping it does not settle it: the holder must
/// call [`QueueHandle::settle`] (or the lease must expire).
#[derive(Clone)]
pub struct Delivery {
    pub message: Arc<Message>,
    pub queue: Arc<dyn QueueHandle>,
    /// Position in its queue; unique within the queue for its lifetime.
    pub seq: u64,
    pub redelivered: bool,
    /// How many times it has been handed out, this time included.
    pub delivery_count: u32,
    /// Wall-clock ms of its first hand-out (SQS `ApproximateFirstReceiveTimestamp`);
    /// not kept across restarts.
    pub first_delivered_ms: u64,
    /// For a leased delivery of a journaled message: the LSN of its Lease record,
    /// durable before the receiver should be told (so a restart keeps it in
    /// flight); 0 otherwise.
    pub lease_lsn: u64,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("queue", &self.queue.name())
            .field("seq", &self.seq)
            .field("redelivered", &self.redelivered)
            .finish()
    }
}

/// What a queue tells a push consumer's owner.
pub enum SinkEvent {
    Deliver {
        consumer: u64,
        delivery: Delivery,
    },
    /// The broker ended the consumer (its queue was deleted).
    Cancelled {
        consumer: u64,
    },
}

/// Where a queue pushes deliveries for a consumer. Implementations must not block
/// and must not call back into the queue: the queue calls this while dispatching,
/// under its lock. Flow control comes from credit, so an unbounded queue (a
/// connection's `Inbox`) is fine.
pub trait DeliverySink: Send + Sync {
    fn push(&self, event: SinkEvent);
}

/// Something that wants to hear when credit frees up (a queue waiting to dispatch).
pub trait Wake: Send + Sync {
    fn wake(&self);
}

/// Credit shared by several consumers: AMQP's per-channel prefetch (`basic.qos` with
/// `global`), MQTT's receive maximum. A limit of 0 means unlimited.
#[derive(Default)]
pub struct Credit {
    limit: AtomicU32,
    in_flight: AtomicU32,
    waiters: Mutex<Vec<Weak<dyn Wake>>>,
}

impl Credit {
    pub fn new(limit: u32) -> Self {
        Credit {
            limit: AtomicU32::new(limit),
            ..Default::default()
        }
    }

    pub fn set_limit(&self, limit: u32) {
        self.limit.store(limit, Ordering::Release);
        self.wake_waiters();
    }

    pub fn has_credit(&self) -> bool {
        let limit = self.limit.load(Ordering::Acquire);
        limit == 0 || self.in_flight.load(Ordering::Acquire) < limit
    }

    pub fn take(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    /// Returns credit. True if it went from none to some: the caller must then call
    /// [`Credit::wake_waiters`] once it holds no lock (waking takes the waiters' locks).
    pub fn release(&self, n: u32) -> bool {
        let before = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some(v.saturating_sub(n))
            })
            .unwrap_or(0);
        let limit = self.limit.load(Ordering::Acquire);
        limit != 0 && before >= limit && before.saturating_sub(n) < limit
    }

    /// Ask to be woken when credit frees up. Called by a queue that stopped
    /// dispatching for lack of this credit.
    pub fn wait(&self, w: Weak<dyn Wake>) {
        if let Ok(mut ws) = self.waiters.lock()
            && !ws.iter().any(|x| Weak::ptr_eq(x, &w))
        {
            ws.push(w);
        }
    }

    /// Wakes every queue waiting for this credit. Call with no lock held.
    pub fn wake_waiters(&self) {
        let ws = match self.waiters.lock() {
            Ok(mut ws) => std::mem::take(&mut *ws),
            Err(_) => return,
        };
        for w in ws {
            if let Some(w) = w.upgrade() {
                w.wake();
            }
        }
    }
}

/// A push consumer's settings.
pub struct ConsumerSpec {
    /// The frontend's id for this consumer, echoed in [`SinkEvent`]s.
    pub tag: u64,
    pub owner: ConnectionId,
    /// Unsettled deliveries allowed for this consumer; 0 = unlimited.
    pub prefetch: u32,
    /// Extra credit shared with other consumers (per-channel prefetch).
    pub shared_credit: Option<Arc<Credit>>,
    /// No other consumer may consume from the queue at the same time.
    pub exclusive: bool,
    /// Higher priority consumers are served first while they have credit.
    pub priority: i32,
    pub sink: Arc<dyn DeliverySink>,
}

/// A registered consumer; dropping it does not cancel it.
pub trait ConsumerHandle: Send + Sync {
    /// Stop dispatching to this consumer. Its unsettled deliveries stay unsettled.
    fn cancel(&self);
}

/// The core, as every frontend sees it. All methods are synchronous and never block
/// on I/O: they take short internal locks only.
pub trait Broker: Send + Sync + 'static {
    /// Check a user's password. `peer` matters for the loopback-only `guest` rule.
    fn authenticate(
        &self,
        user: &str,
        password: &str,
        peer: SocketAddr,
    ) -> Result<User, BrokerError>;
    /// The secrets a SigV4 signature by this access key (a user name) may be made
    /// with: the user's secret key and its password. Refused like `authenticate`.
    fn signing_secrets(
        &self,
        access_key: &str,
        peer: SocketAddr,
    ) -> Result<(User, Vec<String>), BrokerError>;
    /// Log in a user a verified client certificate names (no password): refused
    /// like `authenticate` when the user does not exist or is loopback-only and
    /// `peer` is not. The default reuses `signing_secrets`' checks, which are
    /// exactly these, and drops the secrets.
    fn authenticate_external(&self, user: &str, peer: SocketAddr) -> Result<User, BrokerError> {
        match self.signing_secrets(user, peer) {
            Ok((u, _)) => Ok(u),
            Err(BrokerError::UnknownAccessKey { .. }) => Err(BrokerError::LoginRefused),
            Err(e) => Err(e),
        }
    }
    /// The broker as `user` may use it in `vhost`: every operation through the
    /// handle returned is checked against the user's permissions (RabbitMQ's
    /// configure/write/read and topic permissions). `VhostRefused` when the user has
    /// no permissions in the vhost, `NoVhost` when there is none.
    fn open_vhost(&self, user: &User, vhost: &str) -> Result<Arc<dyn Broker>, BrokerError>;
    /// Checks one permission of this handle's user (always granted on the
    /// unrestricted core): for frontends whose actions are not one broker call (SQS,
    /// SNS).
    fn check(
        &self,
        _vhost: &str,
        _access: crate::Access,
        _entity: crate::Entity,
        _name: &str,
    ) -> Result<(), BrokerError> {
        Ok(())
    }

    /// Logs a refused login (user, address, protocol; never the password) and says
    /// how long to wait before answering it: longer the more an address has failed
    /// lately. The frontend sleeps on its own task.
    fn login_refused(&self, _peer: SocketAddr, _user: &str, _protocol: &str) -> Duration {
        Duration::ZERO
    }

    fn connection_opened(&self) -> ConnectionId;
    /// Deletes the connection's exclusive queues.
    fn connection_closed(&self, conn: ConnectionId);
    /// Tells the admin API who is on a connection, once logged in. Called again when
    /// something changes (an AMQP connection opens its vhost).
    /// The first description admits the connection: `ConnectionLimit` when its user
    /// or vhost is at its connection limit (the frontend refuses it then).
    fn connection_describe(
        &self,
        _conn: ConnectionId,
        _meta: crate::admin::ConnectionMeta,
    ) -> Result<(), BrokerError> {
        Ok(())
    }

    fn declare_exchange(&self, vhost: &str, decl: &ExchangeDecl) -> Result<(), BrokerError>;
    fn delete_exchange(&self, vhost: &str, name: &str, if_unused: bool) -> Result<(), BrokerError>;
    fn bind_exchange(
        &self,
        vhost: &str,
        destination: &str,
        source: &str,
        key: &str,
        args: &Table,
    ) -> Result<(), BrokerError>;
    fn unbind_exchange(
        &self,
        vhost: &str,
        destination: &str,
        source: &str,
        key: &str,
        args: &Table,
    ) -> Result<(), BrokerError>;

    fn declare_queue(
        &self,
        vhost: &str,
        decl: &QueueDecl,
        owner: ConnectionId,
    ) -> Result<QueueInfo, BrokerError>;
    fn bind_queue(
        &self,
        vhost: &str,
        queue: &str,
        exchange: &str,
        key: &str,
        args: &Table,
        owner: ConnectionId,
    ) -> Result<(), BrokerError>;
    fn unbind_queue(
        &self,
        vhost: &str,
        queue: &str,
        exchange: &str,
        key: &str,
        args: &Table,
        owner: ConnectionId,
    ) -> Result<(), BrokerError>;
    /// Removes ready messages; returns how many.
    fn purge_queue(
        &self,
        vhost: &str,
        queue: &str,
        owner: ConnectionId,
    ) -> Result<u32, BrokerError>;
    /// Returns the number of ready messages it held.
    fn delete_queue(
        &self,
        vhost: &str,
        queue: &str,
        if_unused: bool,
        if_empty: bool,
        owner: ConnectionId,
    ) -> Result<u32, BrokerError>;

    /// Route a message. Unroutable messages go to the alternate exchange if any.
    fn publish(
        &self,
        vhost: &str,
        message: Message,
        opts: PublishOptions,
    ) -> Result<PublishOutcome, BrokerError>;

    fn consume(
        &self,
        vhost: &str,
        queue: &str,
        spec: ConsumerSpec,
    ) -> Result<Box<dyn ConsumerHandle>, BrokerError>;

    /// Pull one message (AMQP basic.get). Returns it with the number of ready messages
    /// left behind it. With `auto_ack` it is settled on the way out.
    fn get(
        &self,
        vhost: &str,
        queue: &str,
        owner: ConnectionId,
        auto_ack: bool,
    ) -> Result<Option<(Delivery, u32)>, BrokerError>;

    /// Pull up to `max` messages under a lease (SQS ReceiveMessage): they become
    /// available again after `visibility` unless settled or extended first.
    fn receive(
        &self,
        vhost: &str,
        queue: &str,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, BrokerError>;

    /// Whether a binding with `args` would let `message` through: its filter policy
    /// (`x-filter-policy`), if any, exactly as routing applies it. For copies made
    /// outside routing (an SNS replay into one subscriber's queue).
    fn binding_admits(&self, args: &Table, message: &Message) -> Result<bool, BrokerError>;

    /// Whether the queue exists (no side effects, unlike a passive declare).
    fn queue_exists(&self, vhost: &str, queue: &str) -> bool;

    /// The live queue, for settling leased deliveries by sequence number later (SQS
    /// receipt handles), statistics and long polling.
    fn queue_handle(&self, vhost: &str, queue: &str) -> Option<Arc<dyn QueueHandle>>;

    /// Names of the vhost's queues, sorted.
    fn list_queues(&self, vhost: &str) -> Vec<String>;

    /// Replaces a queue's `x-` arguments (SQS SetQueueAttributes): persisted with the
    /// queue and applied from the next operation on. The ordering mode cannot change.
    fn set_queue_arguments(
        &self,
        vhost: &str,
        queue: &str,
        arguments: &Table,
    ) -> Result<(), BrokerError>;

    /// Stores (`Some`) or removes (`None`) the value under `key`. The returned LSN
    /// must be durable before the change is reported as done (0: nothing written).
    /// Values are journaled when `value.properties.persistent()`.
    fn keyed_put(
        &self,
        vhost: &str,
        space: KeySpace,
        key: &str,
        value: Option<Message>,
    ) -> Result<u64, BrokerError>;

    fn keyed_get(&self, vhost: &str, space: KeySpace, key: &str) -> Option<Arc<Message>>;

    /// Calls `f` for every entry whose key `filter` accepts.
    fn keyed_scan(
        &self,
        vhost: &str,
        space: KeySpace,
        filter: &mut dyn FnMut(&str) -> bool,
    ) -> Vec<(String, Arc<Message>)>;

    /// The journal's durable position, for confirming publishes whose
    /// [`PublishOutcome::lsn`] it has reached. `None` when nothing is persisted.
    fn durable_watch(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    /// A resource alarm (memory or disk watermark): `Some(reason)` while publishers
    /// must be held back (AMQP connection.blocked, TCP back-pressure elsewhere).
    fn alarm_watch(&self) -> Option<tokio::sync::watch::Receiver<Option<String>>> {
        None
    }
}
