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
//! - A push consumer never holds more in-flight deliveries than its prefetch, nor
//!   more than its shared credit allows.

mod args;
mod deadletter;
mod owner;
mod ready;
mod spill;

pub use spill::Spill;

pub use args::{QueueArgs, check_equivalent};
use deadletter::dead_letter_message;
pub use deadletter::is_cycle;
pub use owner::QueueOwner;
use ready::Ready;

use super::timer::{TimerTarget, Timers};
use crate::store::{Placement, Recovered, Store};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use switchboard_api::{
    BrokerError, ConnectionId, ConsumerHandle, ConsumerSpec, Credit, Delivery, DeliverySink,
    Message, QueueHandle, Settle, SinkEvent, Table, Wake, wall_ms,
};
use tokio::time::Instant;

/// A message's bytes: in memory, or paged out to the queue's spill file.
pub enum Payload {
    Mem(Arc<Message>),
    Paged { off: u64, len: u32 },
}

impl Payload {
    /// Ordering group; paging is off for grouped queues, so a paged entry has none.
    pub fn group(&self) -> Option<&str> {
        match self {
            Payload::Mem(m) => m.group_id.as_deref(),
            Payload::Paged { .. } => None,
        }
    }
    fn is_mem(&self) -> bool {
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

struct InFlight {
    entry: Entry,
    /// Push consumer it went to (for its credit), if any.
    consumer: Option<u64>,
    shared: Option<Arc<Credit>>,
    lease: Option<Instant>,
}

struct Consumer {
    id: u64,
    tag: u64,
    prefetch: u32,
    in_flight: u32,
    shared: Option<Arc<Credit>>,
    sink: Arc<dyn DeliverySink>,
    priority: i32,
    exclusive: bool,
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

#[derive(Default)]
struct State {
    /// Parsed arguments; replaced as a whole by `set_args`.
    args: Arc<QueueArgs>,
    ready: Option<Ready>,
    ready_bytes: usize,
    delayed: BTreeMap<(Instant, u64), Entry>,
    in_flight: HashMap<u64, InFlight>,
    leases: BTreeSet<(Instant, u64)>,
    consumers: Vec<Consumer>,
    rr: usize,
    next_seq: u64,
    had_consumer: bool,
    last_used: Option<Instant>,
    deleted: bool,
    dedup: HashMap<String, Instant>,
    dedup_order: VecDeque<(Instant, String)>,
    timer_at: Option<Instant>,
    /// LSNs of this queue's journaled messages still in it (ready, delayed or in
    /// flight): the journal may drop segments below the smallest.
    live: BTreeSet<u64>,
    /// Bytes of ready messages held in memory (not paged out).
    mem_bytes: usize,
    /// Settled messages whose deduplication ids are still within the window: the
    /// journal must keep their Enqueue records (until the instant), so that a
    /// restart can rebuild the window. One entry per second at most, holding the
    /// smallest LSN settled in that second.
    dedup_pins: VecDeque<(Instant, u64)>,
}

impl State {
    fn ready(&mut self) -> &mut Ready {
        self.ready.get_or_insert_with(|| Ready::plain(0))
    }
    fn ready_len(&self) -> usize {
        self.ready.as_ref().map_or(0, Ready::len)
    }
}

/// Work to do after the lock is released.
#[derive(Default)]
struct Effects {
    dead: Vec<(Entry, DeathReason)>,
    delete_self: bool,
    /// Shared credits that went from exhausted to available.
    wake: Vec<Arc<Credit>>,
}

/// What happened to a message offered to a queue.
#[derive(Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// Taken; durable once the journal reaches this LSN (0: nothing to wait for).
    Accepted(u64),
    /// Refused by `x-overflow: reject-publish`.
    Rejected,
    /// Queue was deleted meanwhile.
    Gone,
}

pub struct Queue {
    /// Names the queue in journal records (0 for transient queues).
    pub id: u64,
    pub name: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub exclusive_owner: Option<ConnectionId>,
    /// The `x-` arguments as declared (SetQueueAttributes replaces them).
    raw_args: Mutex<Table>,
    state: Mutex<State>,
    /// Long polls waiting for a ready message; allocated on first use.
    ready_notify: std::sync::OnceLock<Arc<tokio::sync::Notify>>,
    me: Weak<Queue>,
    owner: Weak<dyn QueueOwner>,
    timers: Timers,
    next_consumer: AtomicU64,
    /// Set for durable queues: persistent messages are journaled.
    store: Option<Arc<Store>>,
    /// Where ready messages beyond `memory_budget` go (None: never page).
    spill: Option<Spill>,
    memory_budget: usize,
}

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
        // Grouped queues index ready messages by group, which needs them in memory.
        let (spill, memory_budget) = match cfg.paging.filter(|_| !cfg.args.grouped) {
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

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a bug; keep serving rather than poison
        // every later operation on this queue.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn handle(&self) -> Arc<dyn QueueHandle> {
        match self.me.upgrade() {
            Some(q) => q,
            None => Arc::new(Orphan(self.name.clone())),
        }
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

    /// Adds a ready entry, paging its message out when the queue is over budget.
    fn push_ready(&self, st: &mut State, mut e: Entry) {
        st.ready_bytes += e.size;
        if let (Some(spill), Payload::Mem(m)) = (&self.spill, &e.msg)
            && st.mem_bytes + e.size > self.memory_budget
        {
            match spill.write(m) {
                Ok((off, len)) => e.msg = Payload::Paged { off, len },
                Err(err) => {
                    tracing::warn!(queue = %self.name, "cannot page out a message ({err}); keeping it in memory")
                }
            }
        }
        if e.msg.is_mem() {
            st.mem_bytes += e.size;
        }
        st.ready().push(e);
        self.notify_ready();
    }

    fn notify_ready(&self) {
        if let Some(n) = self.ready_notify.get() {
            n.notify_waiters();
        }
    }

    /// Journals a lease so that a restart keeps the message invisible until it ends.
    /// Returns the record's LSN (0 when the message is not journaled).
    fn journal_lease(&self, e: &Entry, wall: u64, until: Instant) -> u64 {
        if let (Some(store), true) = (&self.store, e.lsn != 0) {
            let left = until.saturating_duration_since(Instant::now());
            let until_ms = wall + left.as_millis() as u64;
            return store.leased(self.id, e.seq, e.delivery_count, until_ms);
        }
        0
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

    /// Bookkeeping for an entry that just left `ready`.
    fn popped(&self, st: &mut State, e: &Entry) {
        st.ready_bytes -= e.size;
        if e.msg.is_mem() {
            st.mem_bytes -= e.size;
        }
    }

    /// The entry's message, reading it back from the spill file if it was paged out.
    /// `None` only if the spill file failed us (logged); the entry is then unusable.
    fn load(&self, e: &mut Entry) -> Option<Arc<Message>> {
        match &e.msg {
            Payload::Mem(m) => Some(m.clone()),
            Payload::Paged { off, len } => {
                let spill = self.spill.as_ref()?;
                match spill.read(*off, *len) {
                    Ok(m) => {
                        let m = Arc::new(m);
                        e.msg = Payload::Mem(m.clone());
                        Some(m)
                    }
                    Err(err) => {
                        tracing::error!(queue = %self.name, seq = e.seq, "cannot read a paged-out message back: {err}");
                        None
                    }
                }
            }
        }
    }

    /// A paged entry that is dropped without being read frees its spill slot.
    fn drop_payload(&self, e: &Entry) {
        if let (Payload::Paged { .. }, Some(spill)) = (&e.msg, &self.spill) {
            spill.forget();
        }
    }

    pub fn enqueue(&self, msg: Arc<Message>) -> Enqueued {
        let mut fx = Effects::default();
        let r = {
            let mut st = self.lock();
            self.enqueue_locked(&mut st, msg, &mut fx)
        };
        self.finish(fx);
        r
    }

    fn enqueue_locked(&self, st: &mut State, msg: Arc<Message>, fx: &mut Effects) -> Enqueued {
        if st.deleted {
            return Enqueued::Gone;
        }
        let now = Instant::now();
        if let (Some(window), Some(id)) = (st.args.dedup_window, msg.dedup_id.as_deref()) {
            let window = Duration::from_millis(window);
            while st
                .dedup_order
                .front()
                .is_some_and(|(t, _)| *t + window <= now)
            {
                if let Some((t, id)) = st.dedup_order.pop_front()
                    && st.dedup.get(&id) == Some(&t)
                {
                    st.dedup.remove(&id);
                }
            }
            if st.dedup.contains_key(id) {
                // Accepted as far as the publisher can tell, but not enqueued twice.
                return Enqueued::Accepted(0);
            }
            st.dedup.insert(id.to_string(), now);
            st.dedup_order.push_back((now, id.to_string()));
        }
        let size = msg.size();
        let seq = st.next_seq;
        st.next_seq += 1;
        let ttl = match (st.args.message_ttl, msg.properties.ttl_ms()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let priority = match st.args.max_priority {
            Some(max) => msg.properties.priority.unwrap_or(0).min(max),
            None => 0,
        };
        let mut entry = Entry {
            seq,
            priority,
            expires_at: ttl.map(|t| now + Duration::from_millis(t)),
            delivery_count: 0,
            redelivered: false,
            size,
            msg: Payload::Mem(msg),
            lsn: 0,
            first_ms: 0,
        };
        let Payload::Mem(m) = &entry.msg else {
            return Enqueued::Gone;
        };
        let m = m.clone();
        if !self.make_room(st, size, fx) {
            if st.args.overflow == args::Overflow::RejectPublishDlx {
                fx.dead.push((entry, DeathReason::MaxLen));
            }
            return Enqueued::Rejected;
        }
        let delay = m.delay_ms.or(st.args.delivery_delay).unwrap_or(0);
        if let Some(store) = self.store.as_ref().filter(|_| m.properties.persistent()) {
            // Appended under the queue lock: the Enqueue record must precede any
            // Settle of the same message, and a consumer may ack it right after
            // dispatch below.
            let wall = wall_ms();
            let expires = ttl.map_or(0, |t| wall + t);
            let ready = if delay > 0 { wall + delay } else { 0 };
            let at = Placement {
                queue: self.id,
                seq,
                priority,
                expires_at_ms: expires,
                ready_at_ms: ready,
                delivery_count: 0,
                lease_until_ms: 0,
            };
            entry.lsn = store.enqueue(&at, &m);
            st.live.insert(entry.lsn);
        }
        let lsn = entry.lsn;
        if delay > 0 {
            let at = now + Duration::from_millis(delay);
            st.delayed.insert((at, seq), entry);
        } else {
            self.push_ready(st, entry);
        }
        self.pump(st, fx);
        self.arm_timer(st);
        Enqueued::Accepted(lsn)
    }

    /// Applies max-length limits before a message of `size` bytes is added. Returns
    /// false if the message must be refused.
    fn make_room(&self, st: &mut State, size: usize, fx: &mut Effects) -> bool {
        let max_len = st.args.max_length;
        let max_bytes = st.args.max_length_bytes;
        if max_len.is_none() && max_bytes.is_none() {
            return true;
        }
        let full = |st: &State, size: usize| {
            max_len.is_some_and(|m| st.ready_len() as u64 >= m)
                || max_bytes.is_some_and(|m| (st.ready_bytes + size) as u64 > m)
        };
        if !full(st, size) {
            return true;
        }
        if st.args.overflow != args::Overflow::DropHead {
            return false;
        }
        while full(st, size) {
            match st.ready().discard_front() {
                Some(e) => {
                    self.popped(st, &e);
                    fx.dead.push((e, DeathReason::MaxLen));
                }
                // Nothing left to drop: the message itself does not fit.
                None => return max_len != Some(0) && max_bytes.is_none_or(|m| size as u64 <= m),
            }
        }
        true
    }

    /// Expires what is due at the head, then hands out what consumers can take.
    fn pump(&self, st: &mut State, fx: &mut Effects) {
        let now = Instant::now();
        self.expire_head(st, now, fx);
        if st.consumers.is_empty() {
            return;
        }
        while st.ready_len() > 0 {
            let Some(ci) = self.pick_consumer(st) else {
                break;
            };
            let Some(mut e) = st.ready().pop() else { break };
            self.popped(st, &e);
            if e.expires_at.is_some_and(|t| t <= now) {
                st.ready().group_settled(e.msg.group());
                fx.dead.push((e, DeathReason::Expired));
                continue;
            }
            if over_limit(st, &e) {
                st.ready().group_settled(e.msg.group());
                fx.dead.push((e, DeathReason::DeliveryLimit));
                continue;
            }
            // A read failure is logged in `load`; the journal still has a
            // persistent message, so it comes back after a restart.
            let Some(message) = self.load(&mut e) else {
                continue;
            };
            e.delivery_count += 1;
            let c = &mut st.consumers[ci];
            c.in_flight += 1;
            if let Some(s) = &c.shared {
                s.take();
            }
            let delivery = Delivery {
                message,
                queue: self.handle(),
                seq: e.seq,
                redelivered: e.redelivered,
                delivery_count: e.delivery_count,
                first_delivered_ms: e.first_ms,
                lease_lsn: 0,
            };
            c.sink.push(SinkEvent::Deliver {
                consumer: c.tag,
                delivery,
            });
            let (id, shared) = (c.id, c.shared.clone());
            st.in_flight.insert(
                e.seq,
                InFlight {
                    entry: e,
                    consumer: Some(id),
                    shared,
                    lease: None,
                },
            );
        }
    }

    fn expire_head(&self, st: &mut State, now: Instant, fx: &mut Effects) {
        while st
            .ready
            .as_ref()
            .and_then(Ready::front)
            .is_some_and(|e| e.expires_at.is_some_and(|t| t <= now))
        {
            if let Some(e) = st.ready().discard_front() {
                self.popped(st, &e);
                fx.dead.push((e, DeathReason::Expired));
            }
        }
    }

    /// The consumer to serve next: with single-active-consumer only the first one;
    /// otherwise round-robin among the highest-priority consumers with credit.
    fn pick_consumer(&self, st: &mut State) -> Option<usize> {
        let n = st.consumers.len();
        let can = |c: &Consumer| {
            let own = c.prefetch == 0 || c.in_flight < c.prefetch;
            own && c.shared.as_ref().is_none_or(|s| s.has_credit())
        };
        if st.args.single_active_consumer {
            let c = st.consumers.first()?;
            if can(c) {
                return Some(0);
            }
            self.wait_shared(c);
            return None;
        }
        let mut best: Option<(usize, i32)> = None;
        for k in 0..n {
            let i = (st.rr + k) % n;
            let c = &st.consumers[i];
            if best.is_some_and(|(_, p)| c.priority <= p) {
                continue;
            }
            if can(c) {
                best = Some((i, c.priority));
            } else {
                self.wait_shared(c);
            }
        }
        let (i, _) = best?;
        st.rr = (i + 1) % n;
        Some(i)
    }

    fn wait_shared(&self, c: &Consumer) {
        if let Some(s) = &c.shared
            && !s.has_credit()
        {
            let me: Weak<dyn Wake> = self.me.clone();
            s.wait(me);
        }
    }

    /// Puts a delivery back (original position, redelivered). A returned push
    /// delivery that has used up its delivery limit is dead-lettered now (as
    /// RabbitMQ does); an expired lease keeps it until the next hand-out tries it
    /// (as SQS moves a message on the receive that exceeds maxReceiveCount).
    /// Returns the LSN of the Return record (0 when none was written).
    fn requeue_locked(&self, st: &mut State, mut e: Entry, lease: bool, fx: &mut Effects) -> u64 {
        e.redelivered = true;
        if !lease && over_limit(st, &e) {
            fx.dead.push((e, DeathReason::DeliveryLimit));
            return 0;
        }
        let mut lsn = 0;
        if let (Some(store), true) = (&self.store, e.lsn != 0) {
            lsn = store.returned(self.id, e.seq, e.delivery_count);
        }
        // Requeued entries were read back for delivery: they stay in memory.
        st.ready_bytes += e.size;
        if e.msg.is_mem() {
            st.mem_bytes += e.size;
        }
        st.ready().requeue(e);
        self.notify_ready();
        lsn
    }

    fn take_in_flight(&self, st: &mut State, seq: u64, fx: &mut Effects) -> Option<Entry> {
        let f = st.in_flight.remove(&seq)?;
        if let Some(id) = f.consumer
            && let Some(c) = st.consumers.iter_mut().find(|c| c.id == id)
        {
            c.in_flight = c.in_flight.saturating_sub(1);
        }
        if let Some(s) = f.shared
            && s.release(1)
        {
            // Woken after our lock is released: the waiters are other queues.
            fx.wake.push(s);
        }
        if let Some(at) = f.lease {
            st.leases.remove(&(at, seq));
        }
        st.ready().group_settled(f.entry.msg.group());
        Some(f.entry)
    }

    pub fn settle_many(&self, seqs: &[u64], how: Settle) {
        let mut fx = Effects::default();
        {
            let mut st = self.lock();
            for &seq in seqs {
                let Some(e) = self.take_in_flight(&mut st, seq, &mut fx) else {
                    continue;
                };
                match how {
                    Settle::Ack => {
                        self.forget(&mut st, &e);
                    }
                    Settle::Requeue => {
                        self.requeue_locked(&mut st, e, false, &mut fx);
                    }
                    Settle::Reject => fx.dead.push((e, DeathReason::Rejected)),
                }
            }
            self.pump(&mut st, &mut fx);
            self.arm_timer(&mut st);
        }
        self.finish(fx);
    }

    pub fn add_consumer(&self, spec: ConsumerSpec) -> Result<Box<dyn ConsumerHandle>, BrokerError> {
        let mut fx = Effects::default();
        let id = self.next_consumer.fetch_add(1, Ordering::Relaxed);
        {
            let mut st = self.lock();
            if st.deleted {
                return Err(self.not_found());
            }
            if st.consumers.iter().any(|c| c.exclusive)
                || (spec.exclusive && !st.consumers.is_empty())
            {
                return Err(BrokerError::access_refused(format!(
                    "ACCESS_REFUSED - queue '{}' in vhost '{}' in exclusive use",
                    self.name,
                    self.vhost_name()
                )));
            }
            let c = Consumer {
                id,
                tag: spec.tag,
                prefetch: spec.prefetch,
                in_flight: 0,
                shared: spec.shared_credit,
                sink: spec.sink,
                priority: spec.priority,
                exclusive: spec.exclusive,
            };
            st.consumers.push(c);
            st.had_consumer = true;
            self.pump(&mut st, &mut fx);
            self.arm_timer(&mut st);
        }
        self.finish(fx);
        Ok(Box::new(ConsumerRef {
            queue: self.me.clone(),
            id,
        }))
    }

    fn remove_consumer(&self, id: u64) {
        let mut fx = Effects::default();
        {
            let mut st = self.lock();
            let before = st.consumers.len();
            st.consumers.retain(|c| c.id != id);
            if st.consumers.len() == before {
                return;
            }
            if st.rr >= st.consumers.len() {
                st.rr = 0;
            }
            st.last_used = Some(Instant::now());
            if self.auto_delete && st.consumers.is_empty() && st.had_consumer {
                fx.delete_self = true;
            }
            self.pump(&mut st, &mut fx);
            self.arm_timer(&mut st);
        }
        self.finish(fx);
    }

    /// basic.get: the next ready message and how many remain.
    pub fn get(&self, auto_ack: bool) -> Option<(Delivery, u32)> {
        let mut fx = Effects::default();
        let r = {
            let mut st = self.lock();
            st.last_used = Some(Instant::now());
            let mut out = self.take_ready(&mut st, 1, None, &mut fx);
            let remaining = st.ready_len() as u32;
            if auto_ack {
                for d in &out {
                    if let Some(e) = self.take_in_flight(&mut st, d.seq, &mut fx) {
                        self.forget(&mut st, &e);
                    }
                }
            }
            self.arm_timer(&mut st);
            out.pop().map(|d| (d, remaining))
        };
        self.finish(fx);
        r
    }

    /// Leases up to `max` messages for `visibility`. Grouped queues return as many
    /// messages of one group as it has ready, in order, then go on with the next
    /// group (as SQS FIFO does); each group taken is then in flight.
    pub fn receive(&self, max: usize, visibility: Duration) -> Vec<Delivery> {
        let mut fx = Effects::default();
        let out = {
            let mut st = self.lock();
            st.last_used = Some(Instant::now());
            let until = Instant::now() + visibility;
            let out = self.take_ready(&mut st, max, Some(until), &mut fx);
            self.arm_timer(&mut st);
            out
        };
        self.finish(fx);
        out
    }

    fn take_ready(
        &self,
        st: &mut State,
        max: usize,
        lease: Option<Instant>,
        fx: &mut Effects,
    ) -> Vec<Delivery> {
        let now = Instant::now();
        self.expire_head(st, now, fx);
        let mut out = Vec::new();
        let mut group: Option<Option<String>> = None;
        let grouped = st.args.grouped;
        let wall = if lease.is_some() { wall_ms() } else { 0 };
        while out.len() < max {
            let next = match &group {
                Some(g) if grouped => st
                    .ready()
                    .pop_same_group(g.as_deref().unwrap_or(""))
                    .or_else(|| st.ready().pop()),
                _ => st.ready().pop(),
            };
            let Some(mut e) = next else { break };
            self.popped(st, &e);
            if e.expires_at.is_some_and(|t| t <= now) {
                st.ready().group_settled(e.msg.group());
                fx.dead.push((e, DeathReason::Expired));
                continue;
            }
            if over_limit(st, &e) {
                st.ready().group_settled(e.msg.group());
                fx.dead.push((e, DeathReason::DeliveryLimit));
                continue;
            }
            if grouped && group.as_ref().is_none_or(|g| g.as_deref() != e.msg.group()) {
                group = Some(e.msg.group().map(str::to_string));
            }
            let Some(message) = self.load(&mut e) else {
                continue;
            };
            e.delivery_count += 1;
            if e.first_ms == 0 {
                e.first_ms = wall.max(1);
            }
            let mut lease_lsn = 0;
            if let Some(at) = lease {
                st.leases.insert((at, e.seq));
                lease_lsn = self.journal_lease(&e, wall, at);
            }
            out.push(Delivery {
                message,
                queue: self.handle(),
                seq: e.seq,
                redelivered: e.redelivered,
                delivery_count: e.delivery_count,
                first_delivered_ms: e.first_ms,
                lease_lsn,
            });
            st.in_flight.insert(
                e.seq,
                InFlight {
                    entry: e,
                    consumer: None,
                    shared: None,
                    lease,
                },
            );
        }
        out
    }

    pub fn purge(&self) -> u32 {
        let mut st = self.lock();
        let mut gone = st.ready().drain_all();
        gone.extend(std::mem::take(&mut st.delayed).into_values());
        st.ready_bytes = 0;
        st.mem_bytes = 0;
        for e in &gone {
            self.drop_payload(e);
            self.forget(&mut st, e);
        }
        gone.len() as u32
    }

    /// A journaled message left the queue for good: record it and stop counting it
    /// as live. Called with the lock held, so the Settle follows the Enqueue.
    /// Returns the Settle record's LSN (0 when nothing was journaled).
    fn forget(&self, st: &mut State, e: &Entry) -> u64 {
        if let (Some(store), true) = (&self.store, e.lsn != 0) {
            st.live.remove(&e.lsn);
            if let (Some(window), Payload::Mem(m)) = (st.args.dedup_window, &e.msg)
                && m.dedup_id.is_some()
            {
                pin(st, Instant::now() + Duration::from_millis(window), e.lsn);
            }
            return store.settle(self.id, e.seq);
        }
        0
    }

    /// A settled message read back at start-up: its deduplication id counts again
    /// for the rest of its window (from its accept time), and its record stays.
    pub fn restore_dedup(&self, r: &Recovered) {
        let mut st = self.lock();
        let (Some(window), Some(id)) = (st.args.dedup_window, r.message.dedup_id.as_deref()) else {
            return;
        };
        let age = wall_ms().saturating_sub(r.message.timestamp_ms);
        if age >= window {
            return;
        }
        let now = Instant::now();
        let seen = now.checked_sub(Duration::from_millis(age)).unwrap_or(now);
        if st.dedup.insert(id.to_string(), seen).is_none() {
            st.dedup_order.push_back((seen, id.to_string()));
        }
        pin(&mut st, now + Duration::from_millis(window - age), r.lsn);
    }

    /// The smallest LSN still needed by this queue, if any.
    pub fn min_live_lsn(&self) -> Option<u64> {
        let mut st = self.lock();
        let now = Instant::now();
        while st.dedup_pins.front().is_some_and(|(t, _)| *t <= now) {
            st.dedup_pins.pop_front();
        }
        let pinned = st.dedup_pins.iter().map(|(_, l)| *l).min();
        match (st.live.first().copied(), pinned) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Puts back what the journal held at start-up. `clean`: the last run shut down
    /// cleanly, so a message with no recorded return was never delivered.
    pub fn restore(&self, recovered: impl IntoIterator<Item = Recovered>, clean: bool) {
        let mut st = self.lock();
        let now = Instant::now();
        let wall = wall_ms();
        let at = |ms: u64| now + Duration::from_millis(ms.saturating_sub(wall));
        for r in recovered {
            let p = r.at;
            let e = Entry {
                seq: p.seq,
                priority: p.priority,
                expires_at: (p.expires_at_ms != 0).then(|| at(p.expires_at_ms)),
                delivery_count: p.delivery_count,
                redelivered: !clean || p.delivery_count > 0,
                size: r.message.size(),
                msg: Payload::Mem(Arc::new(r.message)),
                lsn: r.lsn,
                first_ms: 0,
            };
            st.next_seq = st.next_seq.max(e.seq + 1);
            st.live.insert(e.lsn);
            if p.lease_until_ms > wall {
                // Still leased (SQS in flight): it stays invisible, and the receipt
                // handle given out before the restart still settles it.
                let until = at(p.lease_until_ms);
                st.leases.insert((until, e.seq));
                st.in_flight.insert(
                    e.seq,
                    InFlight {
                        entry: e,
                        consumer: None,
                        shared: None,
                        lease: Some(until),
                    },
                );
            } else if p.ready_at_ms > wall {
                st.delayed.insert((at(p.ready_at_ms), e.seq), e);
            } else {
                self.push_ready(&mut st, e);
            }
        }
        self.arm_timer(&mut st);
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
            st.leases.clear();
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
        BrokerError::not_found(format!(
            "NOT_FOUND - no queue '{}' in vhost '{}'",
            self.name,
            self.vhost_name()
        ))
    }

    fn vhost_name(&self) -> String {
        self.owner
            .upgrade()
            .map(|o| o.owner_name().to_string())
            .unwrap_or_default()
    }

    /// Schedules the next deadline: head expiry, delayed message, lease, `x-expires`.
    fn arm_timer(&self, st: &mut State) {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        consider(
            st.ready
                .as_ref()
                .and_then(Ready::front)
                .and_then(|e| e.expires_at),
        );
        consider(st.delayed.keys().next().map(|(t, _)| *t));
        consider(st.leases.iter().next().map(|(t, _)| *t));
        if let (Some(ms), true) = (st.args.expires, st.consumers.is_empty()) {
            consider(st.last_used.map(|t| t + Duration::from_millis(ms)));
        }
        let Some(at) = next else { return };
        if st.timer_at.is_some_and(|t| t <= at && t > Instant::now()) {
            return;
        }
        st.timer_at = Some(at);
        let me: Weak<dyn TimerTarget> = self.me.clone();
        self.timers.schedule(at, me);
    }

    fn finish(&self, fx: Effects) {
        for c in &fx.wake {
            c.wake_waiters();
        }
        if fx.dead.is_empty() && !fx.delete_self {
            return;
        }
        let Some(owner) = self.owner.upgrade() else {
            return;
        };
        let args = self.lock().args.clone();
        let mut settled = Vec::new();
        for (mut e, reason) in fx.dead {
            if let Some(dlx) = &args.dead_letter_exchange
                && let Some(original) = self.load(&mut e)
            {
                let msg = dead_letter_message(
                    &original,
                    &self.name,
                    reason,
                    args.dead_letter_routing_key.as_deref(),
                );
                owner.dead_letter(dlx, msg);
            }
            self.drop_payload(&e);
            if e.lsn != 0 {
                settled.push(e);
            }
        }
        // Only now, with the dead-lettered copy journaled, may the original stop
        // being live: a crash in between finds it in one place or both, never none.
        if !settled.is_empty() {
            let mut st = self.lock();
            for e in &settled {
                self.forget(&mut st, e);
            }
        }
        if fx.delete_self {
            owner.remove_queue(&self.name);
        }
    }
}

impl TimerTarget for Queue {
    fn on_timer(&self, now: Instant) {
        let mut fx = Effects::default();
        {
            let mut st = self.lock();
            if st.deleted {
                return;
            }
            st.timer_at = None;
            while let Some(entry) = st.delayed.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let e = entry.remove();
                self.push_ready(&mut st, e);
            }
            while let Some(&(at, seq)) = st.leases.iter().next() {
                if at > now {
                    break;
                }
                st.leases.remove(&(at, seq));
                if let Some(f) = st.in_flight.get_mut(&seq) {
                    f.lease = None;
                }
                if let Some(e) = self.take_in_flight(&mut st, seq, &mut fx) {
                    self.requeue_locked(&mut st, e, true, &mut fx);
                }
            }
            if let Some(ms) = st.args.expires {
                let idle = st
                    .last_used
                    .is_some_and(|t| t + Duration::from_millis(ms) <= now);
                if idle && st.consumers.is_empty() {
                    fx.delete_self = true;
                }
            }
            self.pump(&mut st, &mut fx);
            self.arm_timer(&mut st);
        }
        self.finish(fx);
    }
}

impl Wake for Queue {
    fn wake(&self) {
        let mut fx = Effects::default();
        {
            let mut st = self.lock();
            self.pump(&mut st, &mut fx);
            self.arm_timer(&mut st);
        }
        self.finish(fx);
    }
}

impl QueueHandle for Queue {
    fn name(&self) -> &str {
        &self.name
    }

    fn settle(&self, seqs: &[u64], how: Settle) {
        self.settle_many(seqs, how)
    }

    fn set_visibility(
        &self,
        seq: u64,
        delivery_count: Option<u32>,
        timeout: Duration,
    ) -> Result<u64, BrokerError> {
        let mut fx = Effects::default();
        let lsn = {
            let mut st = self.lock();
            let Some(f) = st.in_flight.get_mut(&seq) else {
                return Err(BrokerError::not_found("message is not in flight"));
            };
            let Some(old) = f.lease else {
                return Err(BrokerError::not_allowed("delivery is not leased"));
            };
            if delivery_count.is_some_and(|n| n != f.entry.delivery_count) {
                return Err(BrokerError::not_allowed(
                    "message was delivered again since",
                ));
            }
            let lsn = if timeout.is_zero() {
                match self.take_in_flight(&mut st, seq, &mut fx) {
                    Some(e) => self.requeue_locked(&mut st, e, true, &mut fx),
                    None => 0,
                }
            } else {
                let at = Instant::now() + timeout;
                f.lease = Some(at);
                st.leases.remove(&(old, seq));
                st.leases.insert((at, seq));
                match st.in_flight.get(&seq) {
                    Some(f) => self.journal_lease(&f.entry, wall_ms(), at),
                    None => 0,
                }
            };
            self.pump(&mut st, &mut fx);
            self.arm_timer(&mut st);
            lsn
        };
        self.finish(fx);
        Ok(lsn)
    }

    fn settle_leased(&self, seq: u64, delivery_count: u32) -> Option<u64> {
        let mut fx = Effects::default();
        let done = {
            let mut st = self.lock();
            let current = st
                .in_flight
                .get(&seq)
                .is_some_and(|f| f.lease.is_some() && f.entry.delivery_count == delivery_count);
            let lsn = match current {
                true => self
                    .take_in_flight(&mut st, seq, &mut fx)
                    .map(|e| self.forget(&mut st, &e)),
                false => None,
            };
            self.pump(&mut st, &mut fx);
            self.arm_timer(&mut st);
            lsn
        };
        self.finish(fx);
        done
    }

    fn purge_leased(&self) -> u32 {
        let mut fx = Effects::default();
        let n = {
            let mut st = self.lock();
            let leased: Vec<u64> = st
                .in_flight
                .iter()
                .filter(|(_, f)| f.lease.is_some())
                .map(|(seq, _)| *seq)
                .collect();
            for seq in &leased {
                if let Some(e) = self.take_in_flight(&mut st, *seq, &mut fx) {
                    self.forget(&mut st, &e);
                }
            }
            self.pump(&mut st, &mut fx);
            self.arm_timer(&mut st);
            leased.len() as u32
        };
        self.finish(fx);
        n
    }

    fn stats(&self) -> switchboard_api::QueueStats {
        let st = self.lock();
        switchboard_api::QueueStats {
            ready: st.ready_len() as u32,
            in_flight: st.in_flight.len() as u32,
            delayed: st.delayed.len() as u32,
            consumers: st.consumers.len() as u32,
        }
    }

    fn ready_notify(&self) -> Arc<tokio::sync::Notify> {
        self.ready_notify.get_or_init(Default::default).clone()
    }
}

struct ConsumerRef {
    queue: Weak<Queue>,
    id: u64,
}

impl ConsumerHandle for ConsumerRef {
    fn cancel(&self) {
        if let Some(q) = self.queue.upgrade() {
            q.remove_consumer(self.id);
        }
    }
}

/// Stands in for a queue that is gone: settling its deliveries does nothing.
struct Orphan(String);

impl QueueHandle for Orphan {
    fn name(&self) -> &str {
        &self.0
    }
    fn settle(&self, _: &[u64], _: Settle) {}
    fn set_visibility(&self, _: u64, _: Option<u32>, _: Duration) -> Result<u64, BrokerError> {
        Err(BrokerError::not_found("queue deleted"))
    }
    fn settle_leased(&self, _: u64, _: u32) -> Option<u64> {
        None
    }
    fn purge_leased(&self) -> u32 {
        0
    }
    fn stats(&self) -> switchboard_api::QueueStats {
        switchboard_api::QueueStats::default()
    }
    fn ready_notify(&self) -> Arc<tokio::sync::Notify> {
        Arc::new(tokio::sync::Notify::new())
    }
}

/// Whether a message has been handed out as often as the delivery limit allows.
fn over_limit(st: &State, e: &Entry) -> bool {
    st.args.delivery_limit.is_some_and(|l| e.delivery_count > l)
}

/// Keeps `lsn` in the journal until `until`, coalescing pins of the same second.
fn pin(st: &mut State, until: Instant, lsn: u64) {
    match st.dedup_pins.back_mut() {
        Some((t, l)) if until.saturating_duration_since(*t) < Duration::from_secs(1) => {
            *l = (*l).min(lsn);
        }
        _ => st.dedup_pins.push_back((until, lsn)),
    }
}

#[cfg(test)]
mod tests;
