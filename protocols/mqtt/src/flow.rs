//! Flow control from a subscriber's backlog to the publishers feeding it.
//!
//! Acknowledging every QoS 1/2 publish as soon as it is durable lets publishers
//! outrun a slow subscriber without limit: its session queue, the latency of what
//! it receives and the broker's memory all grow. So a publish that lands in a queue
//! holding `backlog_limit` ready messages while someone consumes it puts this
//! connection's PUBACKs and PUBRECs on hold until that queue is back to half the
//! limit: the client's own in-flight window (paho 20, rumqttc 100, our Receive
//! Maximum for 5.0) then stops it, and each publisher goes at the pace of the
//! subscribers it feeds. The socket is still read — the client's acks for what it
//! receives keep flowing, so two clients feeding each other cannot deadlock —
//! until [`HELD_MAX`] acks are held (a client that ignores its window).
//!
//! Invariants:
//! - Held acks leave in the order their PUBLISHes came (MQTT 4.6), behind any held
//!   before them.
//! - A hold never outlives `backlog_max_hold`: a subscriber that stops taking
//!   messages but stays connected delays its publishers, never stalls them.
//! - A client's own session queue never holds its acks back (it would wait on
//!   itself).

use crate::codec::Packet;
use std::collections::VecDeque;
use std::time::Duration;
use switchboard_api::Pressure;
use tokio::sync::watch;
use tokio::time::Instant;

/// Held acks beyond which the connection stops reading.
pub const HELD_MAX: usize = 1024;

#[derive(Default)]
pub struct Flow {
    /// Backlogs waited on; empty while nothing is held.
    deep: Vec<watch::Receiver<bool>>,
    since: Option<Instant>,
    held: VecDeque<(u64, Packet)>,
}

impl Flow {
    /// The backlog limit to publish with (QoS 0 has no ack to hold).
    pub fn limit(limit: u32, qos_above_0: bool) -> Option<u32> {
        (qos_above_0 && limit > 0).then_some(limit)
    }

    /// Stop reading the socket: the client does not keep to its window.
    pub fn full(&self) -> bool {
        self.held.len() >= HELD_MAX
    }

    /// A publish found these queues too deep: hold acks from now on, unless the
    /// queue is the client's own (`own_queue`).
    pub fn pressed(&mut self, own_queue: &str, pressure: Vec<Pressure>) {
        for p in pressure {
            if p.queue == own_queue {
                continue;
            }
            self.since.get_or_insert_with(Instant::now);
            self.deep.push(p.deep);
        }
    }

    /// A PUBACK or PUBREC: kept while holding, else handed back to be sent.
    pub fn hold(&mut self, lsn: u64, p: Packet) -> Option<Packet> {
        if self.since.is_some() {
            self.held.push_back((lsn, p));
            return None;
        }
        Some(p)
    }

    /// The backlogs are down (or the hold has lasted long enough): what was held,
    /// in order, to send now.
    pub fn release(&mut self) -> VecDeque<(u64, Packet)> {
        std::mem::take(self).held
    }
}

/// Resolves when every backlog waited on is down, a queue is gone, or the hold
/// has lasted `max_hold`; pending while nothing is held. Cancel-safe: the watches
/// keep their state, so the next call picks up where this one stopped.
pub async fn relief(flow: &mut Flow, max_hold: Duration) {
    let Some(since) = flow.since else {
        return std::future::pending().await;
    };
    let all = async {
        for d in flow.deep.iter_mut() {
            let _ = d.wait_for(|deep| !*deep).await;
        }
    };
    let _ = tokio::time::timeout_at(since + max_hold, all).await;
}
