//! What an operator sees of the core: the objects of each vhost as they stand, for
//! the admin HTTP API and metrics. Changes to exchanges, queues and bindings go
//! through [`crate::Broker`], as every protocol's do; this trait reads, and adds
//! vhosts. Each call is a snapshot under the core's
//! short locks, cheap enough to call per request with thousands of queues.

use crate::{BrokerError, ConnectionId, QueueStats, Table};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;

#[derive(Clone, Debug, PartialEq)]
pub struct ExchangeInfo {
    pub name: String,
    /// `direct`, `fanout`, `topic`, `headers`.
    pub kind: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: Table,
}

#[derive(Clone, Debug, PartialEq)]
pub struct QueueSummary {
    pub name: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub exclusive: bool,
    pub arguments: Table,
    pub stats: QueueStats,
}

/// One consumer of a queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerInfo {
    pub queue: String,
    /// The frontend's id for it (AMQP's consumer tags are kept by the frontend).
    pub tag: u64,
    /// The connection consuming: [`Admin::connections`] tells who it is.
    pub owner: ConnectionId,
    /// Unsettled deliveries allowed (0: no limit), and those it holds now.
    pub prefetch: u32,
    pub unacked: u32,
    pub exclusive: bool,
    pub priority: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestinationKind {
    Queue,
    Exchange,
}

impl DestinationKind {
    /// RabbitMQ's word: `queue` or `exchange`.
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationKind::Queue => "queue",
            DestinationKind::Exchange => "exchange",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct BindingInfo {
    /// `""` is the default exchange, whose implicit bindings are listed too.
    pub source: String,
    pub destination: String,
    pub destination_kind: DestinationKind,
    pub routing_key: String,
    pub arguments: Table,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub tags: Vec<String>,
    /// RabbitMQ's `rabbit_password_hashing_sha256` form (base64 of salt and digest).
    pub password_hash: String,
}

/// A user to add or replace ([`Admin::put_user`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Password {
    Plain(String),
    /// RabbitMQ's `rabbit_password_hashing_sha256` hash, or an Argon2 PHC string.
    Hashed(String),
}

/// What a frontend tells about one of its connections once the client is logged in
/// ([`crate::Broker::connection_describe`]).
#[derive(Clone, Debug)]
pub struct ConnectionMeta {
    /// `AMQP 0-9-1`, `MQTT 3.1.1`, `STOMP 1.2`, … (RabbitMQ's `protocol` column).
    pub protocol: String,
    /// The client's address: names the connection, and finds it to close it.
    pub peer: SocketAddr,
    pub user: String,
    pub vhost: String,
    /// What the client said about itself: AMQP client properties, the MQTT client
    /// id and keepalive, the STOMP `host` and `heart-beat`.
    pub client_properties: Table,
    /// Open channels; the frontend keeps it current (1 for channel-less protocols).
    pub channels: Arc<AtomicU32>,
    /// Counts toward, and is held to, the connection limits per user and vhost.
    /// HTTP connections (SQS/SNS) are listed but not limited: an SDK's connection
    /// pool is not a session.
    pub limited: bool,
}

#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    pub id: ConnectionId,
    pub meta: ConnectionMeta,
    /// Wall-clock ms when it was described (logged in).
    pub connected_at_ms: u64,
}

/// The journal's counters since the node started, for metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JournalView {
    pub records_appended: u64,
    /// Group commits: each writes the records appended meanwhile in one write.
    pub batches_written: u64,
    pub fsyncs: u64,
    pub bytes_on_disk: u64,
    pub segments: u64,
    /// Syncs by latency: (upper bound in seconds, count in that bucket alone); the
    /// last bound is infinite.
    pub sync_buckets: Vec<(f64, u64)>,
    pub sync_seconds: f64,
}

/// A node of an active/standby pair, as the admin API shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicationView {
    pub active: bool,
    /// The fencing epoch this node serves under.
    pub epoch: u64,
    /// The other node's replication address.
    pub peer: String,
    /// The standby holds everything confirmed (sync mode's promise holds).
    pub in_sync: bool,
    /// The journal's end here, and the standby's last acknowledged position.
    pub last_lsn: u64,
    pub acked_lsn: u64,
}

/// Reads a node's replication state when asked (None for a node that runs alone).
pub type ReplicationProbe = Arc<dyn Fn() -> ReplicationView + Send + Sync>;

/// A part outside the core with figures of its own for `/metrics` (the AWS APIs'
/// requests): it writes them in Prometheus' text format.
pub trait MetricsSource: Send + Sync {
    fn write_metrics(&self, out: &mut String);
}

/// A user's permissions in a vhost, as RabbitMQ's API and definitions show them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PermissionInfo {
    pub user: String,
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

/// A user's topic permissions on an exchange of a vhost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicPermissionInfo {
    pub user: String,
    pub vhost: String,
    pub exchange: String,
    pub write: String,
    pub read: String,
}

/// What a frontend or the bridge can list beyond the core's objects — MQTT
/// sessions and retained messages, SQS queues with their attributes, SNS topics
/// and subscriptions — as rows of named values that the admin API renders as JSON
/// at `/api/<family>/<list>` (`/api/mqtt/sessions`).
pub trait Catalog: Send + Sync {
    /// The family in the path (`mqtt`, `sqs`, `sns`).
    fn family(&self) -> &'static str;
    /// The rows of `list` (`None`: no such list).
    fn rows(&self, list: &str) -> Option<Vec<Table>>;
}

/// Read-only introspection of the core. Lists are sorted by name.
pub trait Admin: Send + Sync {
    fn vhost_names(&self) -> Vec<String>;
    fn exchanges(&self, vhost: &str) -> Result<Vec<ExchangeInfo>, BrokerError>;
    fn queues(&self, vhost: &str) -> Result<Vec<QueueSummary>, BrokerError>;
    /// Every binding of the vhost, the default exchange's implicit ones first.
    fn bindings(&self, vhost: &str) -> Result<Vec<BindingInfo>, BrokerError>;
    fn users(&self) -> Vec<UserInfo>;
    /// Every consumer of the vhost's queues.
    fn consumers(&self, vhost: &str) -> Result<Vec<ConsumerInfo>, BrokerError>;
    /// The journal's counters (None without a store).
    fn journal(&self) -> Option<JournalView>;
    /// Messages published since the node started, routed or not (each counted
    /// once however many queues took it).
    fn published(&self) -> u64;
    /// Logged-in client connections of every protocol, by id.
    fn connections(&self) -> Vec<ConnectionInfo>;
    /// Asks the connection from `peer` to close (the protocol's own close, as at
    /// shutdown); false if there is none.
    fn close_connection(&self, peer: SocketAddr) -> bool;
    /// Adds or replaces a user, durably; returns the LSN to wait for. A bad hash is
    /// `InvalidArgument`.
    fn put_user(
        &self,
        name: &str,
        password: Password,
        tags: Vec<String>,
    ) -> Result<u64, BrokerError>;
    /// Removes a user; `NotFound` if there is none. Its open connections stay.
    fn delete_user(&self, name: &str) -> Result<u64, BrokerError>;
    /// Creates a vhost (durable); an existing one is left as it is.
    fn add_vhost(&self, name: &str) -> Result<(), BrokerError>;
    /// Refusals since start by reason (`login`, `user_connection_limit`, …).
    fn refused(&self) -> Vec<(&'static str, u64)>;
    fn permissions(&self) -> Vec<PermissionInfo>;
    fn topic_permissions(&self) -> Vec<TopicPermissionInfo>;
    /// Sets (`Some`) or clears a user's permissions in a vhost, durably; returns the
    /// LSN to wait for. A pattern that is not a regular expression is
    /// `InvalidArgument`; an unknown user or vhost `NotFound`-like errors.
    fn set_permission(&self, p: &PermissionInfo, clear: bool) -> Result<u64, BrokerError>;
    fn set_topic_permission(
        &self,
        p: &TopicPermissionInfo,
        clear: bool,
    ) -> Result<u64, BrokerError>;
}
