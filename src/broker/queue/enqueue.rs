//! A message offered to a queue: deduplication, TTL and priority, max-length
//! overflow, the Enqueue record, and delivery delay.

use super::args;
use super::effects::Effects;
use super::entry::{DeathReason, Entry, Payload};
use super::state::{Queue, State};
use crate::store::Placement;
use std::sync::Arc;
use std::time::Duration;
use switchboard_api::{Message, wall_ms};
use tokio::time::Instant;

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

impl Queue {
    /// Offers a message, no backlog limit (the queue's tests).
    #[cfg(test)]
    pub fn enqueue(&self, msg: Arc<Message>) -> Enqueued {
        self.enqueue_limited(msg, None).0
    }

    pub(super) fn enqueue_locked(
        &self,
        st: &mut State,
        msg: Arc<Message>,
        fx: &mut Effects,
    ) -> Enqueued {
        if st.deleted {
            return Enqueued::Gone;
        }
        let now = Instant::now();
        if let (Some(window), Some(id)) = (st.args.dedup_window, msg.dedup_id.as_deref())
            && !st.dedup.admit(id, now, Duration::from_millis(window))
        {
            // Accepted as far as the publisher can tell, but not enqueued twice.
            return Enqueued::Accepted(0);
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
        st.counts.publish += 1;
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
}
