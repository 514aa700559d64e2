//! A queue: ready messages, in-flight deliveries and consumers, behind one mutex.
//!
//! Every operation takes the lock, changes state, dispatches what it can, and releases
//! the lock before doing anything that touches another queue (dead-lettering, auto-
//! delete): so no two queue locks are ever held at once and the lock is never held
//! across an `.await`.
//!
//! Invariants:
//! - A message is in exactly one of: `ready`, `delayed`, `in_flight`.
//! - `in_flight` entries keep their original `seq`; requeue puts them back in order.
//! - An `in_flight` entry's message is in memory (its delivery holds it anyway), so
//!   settling or requeueing it reads its group from the message. A ready entry may
//!   be paged out (`Payload::Paged`, plain and grouped queues alike): its group is
//!   the key of the lane it waits in, and [`Ready::pop`] says which that was.
//! - A push consumer never holds more in-flight deliveries than its prefetch, nor
//!   more than its shared credit allows.
//!
//! The rooms, each an `impl Queue` block on the types of `state.rs`, so that none
//! depends on another's types:
//! - `mod.rs`: creating, describing, reconfiguring and deleting a queue;
//! - `enqueue.rs`: a message offered to the queue; `dedup.rs`: the dedup window;
//! - `dispatch.rs`: push consumers and handing messages to them;
//! - `lease.rs`: `basic.get`, leases, settling, purging (the [`QueueHandle`] side);
//! - `timers.rs`: deadlines; `effects.rs`: what runs after the lock is released;
//! - `journal.rs`: records, live LSNs, restore at start-up; `paging.rs`: memory budget;
//! - `backlog.rs`: back-pressure from a deep backlog to publishers that can wait;
//! - `entry.rs`, `lane.rs`, `ready.rs`, `fair.rs`, `sticky.rs`, `spill.rs`, `args.rs`,
//!   `deadletter.rs`, `owner.rs`: the parts they share.
//!
//! [`QueueHandle`]: switchboard_api::QueueHandle

mod args;
mod backlog;
mod deadletter;
mod dedup;
mod dispatch;
mod effects;
mod enqueue;
mod entry;
mod fair;
mod journal;
mod lane;
mod lease;
mod owner;
mod paging;
mod ready;
mod spill;
mod state;
mod sticky;
mod timers;

pub use args::{QueueArgs, check_equivalent};
pub use deadletter::is_cycle;
pub use enqueue::Enqueued;
pub use owner::QueueOwner;
pub use spill::Spill;
pub use state::Queue;

use super::timer::Timers;
use crate::store::Store;
use effects::Effects;
#[cfg(test)]
use entry::{Entry, Payload};
use ready::Ready;
use state::State;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, Weak};
use switchboard_api::{BrokerError, ConnectionId, SinkEvent, Table};
use tokio::time::Instant;

pub struct QueueConfig {
    pub id: u64,
    pub store: Option<Arc<Store>>,
    /// Paging: spill file and in-memory budget for ready message bytes.
    pub paging: Option<(PathBuf, usize)>,
    pub name: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub exclusive_owner: Option<ConnectionId>,
    pub args: QueueArgs,
    pub raw_args: Table,
}

impl Queue {
    pub fn new(cfg: QueueConfig, owner: Weak<dyn QueueOwner>, timers: Timers) -> Arc<Queue> {
        let ready = if cfg.args.grouped {
            Ready::grouped()
        } else {
            Ready::plain(cfg.args.max_priority.unwrap_or(0))
        };
        let (spill, memory_budget) = match cfg.paging {
            Some((path, budget)) => (Some(Spill::new(path)), budget),
            None => (None, usize::MAX),
        };
        let q = Arc::new_cyclic(|me| Queue {
            id: cfg.id,
            store: cfg.store,
            spill,
            memory_budget,
            name: cfg.name,
            durable: cfg.durable,
            auto_delete: cfg.auto_delete,
            exclusive_owner: cfg.exclusive_owner,
            raw_args: Mutex::new(cfg.raw_args),
            ready_notify: std::sync::OnceLock::new(),
            state: Mutex::new(State {
                args: Arc::new(cfg.args),
                ready: Some(ready),
                last_used: Some(Instant::now()),
                ..Default::default()
            }),
            me: me.clone(),
            owner,
            timers,
            next_consumer: AtomicU64::new(1),
        });
        {
            let mut st = q.lock();
            q.arm_timer(&mut st);
        }
        q
    }

    pub fn message_count(&self) -> u32 {
        self.lock().ready_len() as u32
    }

    pub fn consumer_count(&self) -> u32 {
        self.lock().consumers.len() as u32
    }

    /// Ready, in flight and delayed, for `if-empty` checks and statistics.
    pub fn total_count(&self) -> usize {
        let st = self.lock();
        st.ready_len() + st.in_flight.len() + st.delayed.len()
    }

    pub fn is_exclusive_to(&self, conn: ConnectionId) -> bool {
        self.exclusive_owner == Some(conn)
    }

    /// A declare or `basic.get` counts as use for `x-expires`.
    pub fn touch(&self) {
        let mut st = self.lock();
        st.last_used = Some(Instant::now());
        self.arm_timer(&mut st);
    }

    /// The arguments as declared or last set.
    pub fn raw_args(&self) -> Table {
        self.raw_args
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the arguments (already validated). Messages already in the queue
    /// keep the deadlines they got; new limits apply from the next operation.
    pub fn set_args(&self, args: QueueArgs, raw: Table) {
        *self.raw_args.lock().unwrap_or_else(|e| e.into_inner()) = raw;
        let mut fx = Effects::default();
        {
            let mut st = self.lock();
            st.args = Arc::new(args);
            self.pump(&mut st, &mut fx);
            self.arm_timer(&mut st);
        }
        self.finish(fx);
    }

    pub fn args(&self) -> Arc<QueueArgs> {
        self.lock().args.clone()
    }

    /// Marks the queue deleted, tells its consumers, and drops its messages.
    /// Returns the number of ready messages it held.
    pub fn delete(&self) -> u32 {
        let consumers = {
            let mut st = self.lock();
            if st.deleted {
                return 0;
            }
            st.deleted = true;
            let n = st.ready_len() as u32;
            st.ready().drain_all();
            st.delayed.clear();
            st.in_flight.clear();
            st.orphans = 0;
            st.leases.clear();
            // Closes every backlog watch: publishers waiting on this queue go on.
            st.backlog = None;
            st.ready_bytes = 0;
            st.mem_bytes = 0;
            (std::mem::take(&mut st.consumers), n)
        };
        let (consumers, n) = consumers;
        for c in consumers {
            c.sink.push(SinkEvent::Cancelled { consumer: c.tag });
        }
        n
    }

    fn not_found(&self) -> BrokerError {
        BrokerError::no_queue(&self.name, self.vhost_name())
    }

    fn vhost_name(&self) -> String {
        self.owner
            .upgrade()
            .map(|o| o.owner_name().to_string())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_paging;
