//! The queue's side of the journal: the records it writes under its lock (leases,
//! settles), the LSNs it still needs (live messages, deduplication pins) so that
//! compaction keeps them, and putting messages back at start-up.

use super::entry::{Entry, Payload};
use super::state::{InFlight, Queue, State};
use crate::store::Recovered;
use std::sync::Arc;
use std::time::Duration;
use switchboard_api::wall_ms;
use tokio::time::Instant;

impl Queue {
    /// Journals a lease so that a restart keeps the message invisible until it ends.
    /// Returns the record's LSN (0 when the message is not journaled).
    pub(super) fn journal_lease(&self, e: &Entry, wall: u64, until: Instant) -> u64 {
        if let (Some(store), true) = (&self.store, e.lsn != 0) {
            let left = until.saturating_duration_since(Instant::now());
            let until_ms = wall + left.as_millis() as u64;
            return store.leased(self.id, e.seq, e.delivery_count, until_ms);
        }
        0
    }

    /// A journaled message left the queue for good: record it and stop counting it
    /// as live. Called with the lock held, so the Settle follows the Enqueue.
    /// Returns the Settle record's LSN (0 when nothing was journaled).
    pub(super) fn forget(&self, st: &mut State, e: &Entry) -> u64 {
        if let (Some(store), true) = (&self.store, e.lsn != 0) {
            st.live.remove(&e.lsn);
            // A paged-out message's dedup id is not at hand: pin it in case it had
            // one (on a FIFO queue every message has).
            let dedup = match &e.msg {
                Payload::Mem(m) => m.dedup_id.is_some(),
                Payload::Paged { .. } => true,
            };
            if let (Some(window), true) = (st.args.dedup_window, dedup) {
                st.dedup
                    .pin(Instant::now() + Duration::from_millis(window), e.lsn);
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
        st.dedup.restore(id, seen);
        st.dedup
            .pin(now + Duration::from_millis(window - age), r.lsn);
    }

    /// The smallest LSN still needed by this queue, if any.
    pub fn min_live_lsn(&self) -> Option<u64> {
        let mut st = self.lock();
        let pinned = st.dedup.min_pinned(Instant::now());
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
                st.in_flight.insert(e.seq, InFlight::pulled(e, Some(until)));
            } else if p.ready_at_ms > wall {
                st.delayed.insert((at(p.ready_at_ms), e.seq), e);
            } else {
                self.push_ready(&mut st, e);
            }
        }
        self.arm_timer(&mut st);
    }
}
