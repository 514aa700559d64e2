//! What an operator sees of the core: the objects of each vhost as they stand, for
//! the admin HTTP API and metrics. Changes to exchanges, queues and bindings go
//! through [`crate::Broker`], as every protocol's do; this trait reads, and adds
//! vhosts. Each call is a snapshot under the core's
//! short locks, cheap enough to call per request with thousands of queues.

use crate::{BrokerError, QueueStats, Table};

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
}

/// Read-only introspection of the core. Lists are sorted by name.
pub trait Admin: Send + Sync {
    fn vhost_names(&self) -> Vec<String>;
    fn exchanges(&self, vhost: &str) -> Result<Vec<ExchangeInfo>, BrokerError>;
    fn queues(&self, vhost: &str) -> Result<Vec<QueueSummary>, BrokerError>;
    /// Every binding of the vhost, the default exchange's implicit ones first.
    fn bindings(&self, vhost: &str) -> Result<Vec<BindingInfo>, BrokerError>;
    fn users(&self) -> Vec<UserInfo>;
    /// Creates a vhost (durable); an existing one is left as it is.
    fn add_vhost(&self, name: &str) -> Result<(), BrokerError>;
}
