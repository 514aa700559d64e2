//! Work found under a queue's lock and done after it is released: dead-lettering
//! (which publishes into other queues), waking queues that wait for shared credit,
//! and deleting the queue itself (auto-delete, `x-expires`). Doing it here is what
//! keeps two queue locks from ever being held at once.

use super::deadletter::dead_letter_message;
use super::entry::{DeathReason, Entry};
use super::state::{Queue, State, over_limit};
use std::sync::Arc;
use switchboard_api::Credit;
use tokio::time::Instant;

/// Work to do after the lock is released.
#[derive(Default)]
pub(super) struct Effects {
    pub(super) dead: Vec<(Entry, DeathReason)>,
    pub(super) delete_self: bool,
    /// Shared credits that went from exhausted to available.
    pub(super) wake: Vec<Arc<Credit>>,
}

impl Queue {
    /// Bookkeeping for an entry just taken from `ready` (out of `group`) to hand
    /// out: one that has expired or used up its deliveries goes to the dead-letter
    /// list instead, and `None` tells the caller to take the next one.
    pub(super) fn take_live(
        &self,
        st: &mut State,
        e: Entry,
        group: Option<&str>,
        now: Instant,
        fx: &mut Effects,
    ) -> Option<Entry> {
        self.popped(st, &e);
        let reason = if e.expires_at.is_some_and(|t| t <= now) {
            DeathReason::Expired
        } else if over_limit(st, &e) {
            DeathReason::DeliveryLimit
        } else {
            return Some(e);
        };
        // The group is the lane's, not the message's: it may still be paged out.
        st.ready().group_settled(group);
        fx.dead.push((e, reason));
        None
    }

    pub(super) fn finish(&self, fx: Effects) {
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
