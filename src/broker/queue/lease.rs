//! Pull and settle: `basic.get` and leases (`receive`, visibility, SQS receipt
//! handles), acks, requeues and rejects of any delivery, and purging. The
//! [`QueueHandle`] a delivery carries lands here.

use super::effects::Effects;
use super::entry::{DeathReason, Entry};
use super::state::{InFlight, Queue, State, over_limit};
use std::sync::Arc;
use std::time::Duration;
use switchboard_api::{BrokerError, Delivery, Message, QueueHandle, Settle, wall_ms};
use tokio::time::Instant;

impl Queue {
    pub(super) fn handle(&self) -> Arc<dyn QueueHandle> {
        match self.me.upgrade() {
            Some(q) => q,
            None => Arc::new(Orphan(self.name.clone())),
        }
    }

    /// What the holder of `e`'s hand-out gets: the message and how to settle it.
    pub(super) fn delivery(&self, e: &Entry, message: Arc<Message>, lease_lsn: u64) -> Delivery {
        Delivery {
            message,
            queue: self.handle(),
            seq: e.seq,
            redelivered: e.redelivered,
            delivery_count: e.delivery_count,
            first_delivered_ms: e.first_ms,
            lease_lsn,
        }
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
        // The group this receive is taking a batch of (grouped queues).
        let mut group: Option<Arc<str>> = None;
        let grouped = st.ready().is_grouped();
        let wall = if lease.is_some() { wall_ms() } else { 0 };
        while out.len() < max {
            let next = match &group {
                Some(g) if grouped => match st.ready().pop_same_group(g) {
                    Some(e) => Some((e, group.clone())),
                    None => st.ready().pop(),
                },
                _ => st.ready().pop(),
            };
            let Some((e, from)) = next else { break };
            let Some(mut e) = self.take_live(st, e, from.as_deref(), now, fx) else {
                continue;
            };
            let Some(message) = self.load(&mut e) else {
                self.unreadable(st, &e, from.as_deref());
                group = None;
                continue;
            };
            group = from;
            e.delivery_count += 1;
            st.counts.get += 1;
            st.counts.redeliver += u64::from(e.redelivered);
            if e.first_ms == 0 {
                e.first_ms = wall.max(1);
            }
            let mut lease_lsn = 0;
            if let Some(at) = lease {
                st.leases.insert((at, e.seq));
                lease_lsn = self.journal_lease(&e, wall, at);
            }
            out.push(self.delivery(&e, message, lease_lsn));
            st.in_flight.insert(e.seq, InFlight::pulled(e, lease));
        }
        out
    }

    pub(super) fn take_in_flight(
        &self,
        st: &mut State,
        seq: u64,
        fx: &mut Effects,
    ) -> Option<Entry> {
        let f = st.in_flight.remove(&seq)?;
        if let Some(id) = f.consumer {
            match st.consumers.iter_mut().find(|c| c.id == id) {
                Some(c) => c.in_flight = c.in_flight.saturating_sub(1),
                None => st.orphans = st.orphans.saturating_sub(1),
            }
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

    /// Puts a delivery back (original position, redelivered). A returned push
    /// delivery that has used up its delivery limit is dead-lettered now (as
    /// RabbitMQ does); an expired lease keeps it until the next hand-out tries it
    /// (as SQS moves a message on the receive that exceeds maxReceiveCount).
    /// Returns the LSN of the Return record (0 when none was written).
    pub(super) fn requeue_locked(
        &self,
        st: &mut State,
        mut e: Entry,
        lease: bool,
        fx: &mut Effects,
    ) -> u64 {
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
                        st.counts.ack += 1;
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
        // A purge starts the deduplication window afresh (SQS FIFO PurgeQueue), also
        // for a restart, which would otherwise read the purged ids back.
        if st.args.dedup_window.is_some()
            && let Some(store) = &self.store
        {
            store.dedup_reset(self.id);
        }
        st.dedup = Default::default();
        self.relieve(&mut st);
        gone.len() as u32
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
                return Err(BrokerError::NotInFlight);
            };
            let Some(old) = f.lease else {
                return Err(BrokerError::NotLeased);
            };
            if delivery_count.is_some_and(|n| n != f.entry.delivery_count) {
                return Err(BrokerError::DeliveredAgain);
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
                true => self.take_in_flight(&mut st, seq, &mut fx).map(|e| {
                    st.counts.ack += 1;
                    self.forget(&mut st, &e)
                }),
                false => None,
            };
            self.pump(&mut st, &mut fx);
            self.arm_timer(&mut st);
            lsn
        };
        self.finish(fx);
        done
    }

    fn settle_visible(&self, seq: u64) -> Option<u64> {
        let mut st = self.lock();
        let e = st.ready().remove(seq)?;
        st.counts.ack += 1;
        self.popped(&mut st, &e);
        self.drop_payload(&e);
        let lsn = self.forget(&mut st, &e);
        self.arm_timer(&mut st);
        Some(lsn)
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
            ready_bytes: st.ready_bytes as u64,
            paged_bytes: st.ready_bytes.saturating_sub(st.mem_bytes) as u64,
            counts: st.counts,
        }
    }

    fn ready_notify(&self) -> Arc<tokio::sync::Notify> {
        self.ready_notify.get_or_init(Default::default).clone()
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
        Err(BrokerError::QueueDeleted)
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
