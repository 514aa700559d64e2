//! What a queue is made of: the [`Queue`] itself and the [`State`] behind its one
//! mutex. Every other room of the queue works on these; none of them is defined
//! elsewhere, so the rooms depend on this file and never on each other's types.

use super::args::QueueArgs;
use super::dedup::DedupWindow;
use super::entry::Entry;
use super::owner::QueueOwner;
use super::ready::Ready;
use super::spill::Spill;
use super::sticky::GroupOwners;
use crate::broker::timer::Timers;
use crate::store::Store;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use switchboard_api::{ConnectionId, Credit, DeliverySink, Table};
use tokio::time::Instant;

pub struct Queue {
    /// Names the queue in journal records (0 for transient queues).
    pub id: u64,
    pub name: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub exclusive_owner: Option<ConnectionId>,
    /// The `x-` arguments as declared (SetQueueAttributes replaces them).
    pub(super) raw_args: Mutex<Table>,
    pub(super) state: Mutex<State>,
    /// Long polls waiting for a ready message; allocated on first use.
    pub(super) ready_notify: std::sync::OnceLock<Arc<tokio::sync::Notify>>,
    pub(super) me: Weak<Queue>,
    pub(super) owner: Weak<dyn QueueOwner>,
    pub(super) timers: Timers,
    pub(super) next_consumer: AtomicU64,
    /// Set for durable queues: persistent messages are journaled.
    pub(super) store: Option<Arc<Store>>,
    /// Where ready messages beyond `memory_budget` go (None: never page).
    pub(super) spill: Option<Spill>,
    pub(super) memory_budget: usize,
}

/// Everything behind the queue's mutex.
#[derive(Default)]
pub(super) struct State {
    /// Parsed arguments; replaced as a whole by `set_args`.
    pub(super) args: Arc<QueueArgs>,
    pub(super) ready: Option<Ready>,
    pub(super) ready_bytes: usize,
    pub(super) delayed: BTreeMap<(Instant, u64), Entry>,
    pub(super) in_flight: HashMap<u64, InFlight>,
    /// Single active consumer: deliveries still unsettled whose consumer has gone
    /// (cancelled, or its channel closed). The next consumer gets nothing until
    /// they are settled, so what a closing channel requeues comes first (order).
    pub(super) orphans: usize,
    pub(super) leases: BTreeSet<(Instant, u64)>,
    pub(super) consumers: Vec<Consumer>,
    /// Which push consumer each message group of a plain queue sticks to.
    pub(super) group_owners: GroupOwners,
    pub(super) rr: usize,
    pub(super) next_seq: u64,
    pub(super) had_consumer: bool,
    pub(super) last_used: Option<Instant>,
    pub(super) deleted: bool,
    pub(super) dedup: DedupWindow,
    pub(super) timer_at: Option<Instant>,
    /// LSNs of this queue's journaled messages still in it (ready, delayed or in
    /// flight): the journal may drop segments below the smallest.
    pub(super) live: BTreeSet<u64>,
    /// Bytes of ready messages held in memory (not paged out).
    pub(super) mem_bytes: usize,
    pub(super) counts: switchboard_api::MessageCounts,
    /// Publishers told this queue is too deep wait on this (see `backlog.rs`).
    pub(super) backlog: Option<Backlog>,
}

impl State {
    pub(super) fn ready(&mut self) -> &mut Ready {
        self.ready.get_or_insert_with(|| Ready::plain(0))
    }
    pub(super) fn ready_len(&self) -> usize {
        self.ready.as_ref().map_or(0, Ready::len)
    }
}

/// Publishers told the queue is too deep wait on `deep` (see `backlog.rs`).
pub(super) struct Backlog {
    pub(super) deep: tokio::sync::watch::Sender<bool>,
    /// Relief comes at or below this many ready messages.
    pub(super) below: usize,
}

/// A message handed out and not settled yet.
pub(super) struct InFlight {
    pub(super) entry: Entry,
    /// Push consumer it went to (for its credit), if any.
    pub(super) consumer: Option<u64>,
    pub(super) shared: Option<Arc<Credit>>,
    pub(super) lease: Option<Instant>,
}

impl InFlight {
    /// Handed out by pull (basic.get, SQS ReceiveMessage), not to a consumer.
    pub(super) fn pulled(entry: Entry, lease: Option<Instant>) -> InFlight {
        InFlight {
            entry,
            consumer: None,
            shared: None,
            lease,
        }
    }
}

/// A push consumer and the credit it has used.
pub(super) struct Consumer {
    pub(super) id: u64,
    pub(super) tag: u64,
    /// The connection consuming (the admin API shows it).
    pub(super) owner: ConnectionId,
    pub(super) prefetch: u32,
    pub(super) in_flight: u32,
    pub(super) shared: Option<Arc<Credit>>,
    pub(super) sink: Arc<dyn DeliverySink>,
    pub(super) priority: i32,
    pub(super) exclusive: bool,
}

impl Queue {
    /// The consumers as the admin API lists them.
    pub fn consumer_infos(&self) -> Vec<switchboard_api::admin::ConsumerInfo> {
        self.lock()
            .consumers
            .iter()
            .map(|c| switchboard_api::admin::ConsumerInfo {
                queue: self.name.clone(),
                tag: c.tag,
                owner: c.owner,
                prefetch: c.prefetch,
                unacked: c.in_flight,
                exclusive: c.exclusive,
                priority: c.priority,
            })
            .collect()
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a bug; keep serving rather than poison
        // every later operation on this queue.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether a message has been handed out as often as the delivery limit allows.
pub(super) fn over_limit(st: &State, e: &Entry) -> bool {
    st.args.delivery_limit.is_some_and(|l| e.delivery_count > l)
}
