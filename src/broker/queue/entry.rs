//! The vocabulary every room of the queue shares: a message sitting in a queue
//! ([`Entry`]), where its bytes are ([`Payload`]), and why it may leave dead.

use std::sync::Arc;
use switchboard_api::Message;
use tokio::time::Instant;

/// A message's bytes: in memory, or paged out to the queue's spill file.
pub enum Payload {
    Mem(Arc<Message>),
    Paged { off: u64, len: u32 },
}

impl Payload {
    /// The message's group, when it is in memory. A paged entry does not keep it
    /// (that would cost every entry 16 bytes): its lane does, and whoever takes it
    /// out of `Ready` is told. Entries in flight are always in memory.
    pub fn group(&self) -> Option<&str> {
        match self {
            Payload::Mem(m) => m.group_id.as_deref(),
            Payload::Paged { .. } => None,
        }
    }
    pub(super) fn is_mem(&self) -> bool {
        matches!(self, Payload::Mem(_))
    }
}

/// A message sitting in a queue.
pub struct Entry {
    pub seq: u64,
    pub msg: Payload,
    pub priority: u8,
    pub expires_at: Option<Instant>,
    pub delivery_count: u32,
    pub redelivered: bool,
    pub size: usize,
    /// Journal position of its Enqueue record; 0 when not journaled (transient).
    pub lsn: u64,
    /// Wall-clock ms of its first hand-out; 0 before.
    pub first_ms: u64,
}

/// Dead-letter reasons, as they appear in `x-death`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeathReason {
    Rejected,
    Expired,
    MaxLen,
    DeliveryLimit,
}

impl DeathReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeathReason::Rejected => "rejected",
            DeathReason::Expired => "expired",
            DeathReason::MaxLen => "maxlen",
            DeathReason::DeliveryLimit => "delivery_limit",
        }
    }
}
