//! Deadlines: head expiry, delayed messages coming due, leases running out, and
//! `x-expires`. A queue arms the shared timer for its earliest one and handles all
//! that are due when it fires.

use super::effects::Effects;
use super::ready::Ready;
use super::state::{Queue, State};
use crate::broker::timer::TimerTarget;
use std::sync::Weak;
use std::time::Duration;
use tokio::time::Instant;

impl Queue {
    /// Schedules the next deadline: head expiry, delayed message, lease, `x-expires`.
    pub(super) fn arm_timer(&self, st: &mut State) {
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
