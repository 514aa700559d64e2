use crate::value::Table;
use bytes::Bytes;

/// Header with the data types of a message's attributes (`Number`, `String.Array`,
/// custom suffixes …) where a plain header value does not say it. The AWS bridge
/// writes and reads it; filter policies on bindings read it. Its name is part of the
/// journal's format, hence the prefix it was born with.
pub const ATTRIBUTE_TYPES_HEADER: &str = "x-sqs-attribute-types";

/// Prefix of the AWS bridge's own bookkeeping headers (sequence numbers, trace
/// header, attribute types): not message attributes, so never matched or shown.
pub const BRIDGE_HEADER_PREFIX: &str = "x-sqs-";

/// Message properties: the AMQP basic properties, which are a superset of what MQTT 5,
/// STOMP and SQS carry. Protocol-specific attributes travel in `headers`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Properties {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub headers: Option<Table>,
    /// 2 = persistent.
    pub delivery_mode: Option<u8>,
    pub priority: Option<u8>,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    /// Per-message TTL in milliseconds, as a decimal string (the AMQP convention).
    pub expiration: Option<String>,
    pub message_id: Option<String>,
    pub timestamp: Option<u64>,
    pub kind: Option<String>,
    pub user_id: Option<String>,
    pub app_id: Option<String>,
    pub cluster_id: Option<String>,
}

impl Properties {
    pub fn persistent(&self) -> bool {
        self.delivery_mode == Some(2)
    }

    /// The per-message TTL if `expiration` is a valid non-negative integer.
    pub fn ttl_ms(&self) -> Option<u64> {
        self.expiration.as_deref().and_then(|e| e.parse().ok())
    }
}

/// A published message. Immutable once routed: queues share it behind an `Arc`;
/// dead-lettering makes a modified copy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Message {
    /// Exchange it was published to (`""` for the default exchange).
    pub exchange: String,
    pub routing_key: String,
    pub properties: Properties,
    pub body: Bytes,
    /// Ordering group (SQS FIFO `MessageGroupId`, JMSXGroupID). Only grouped queues use it.
    pub group_id: Option<String>,
    /// Deduplication id (SQS FIFO); only queues with a dedup window use it.
    pub dedup_id: Option<String>,
    /// Delivery delay in milliseconds (SQS `DelaySeconds`); the queue's default applies when `None`.
    pub delay_ms: Option<u64>,
    /// Wall-clock milliseconds since the epoch when the broker accepted it (SQS
    /// `SentTimestamp`); the core sets it on publish when it is 0.
    pub timestamp_ms: u64,
}

impl Message {
    pub fn new(exchange: impl Into<String>, routing_key: impl Into<String>, body: Bytes) -> Self {
        Message {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            body,
            ..Default::default()
        }
    }

    /// Approximate memory held by this message, used for byte limits.
    pub fn size(&self) -> usize {
        self.body.len()
    }
}
