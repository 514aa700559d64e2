//! Back-pressure from a queue's backlog to the publishers feeding it.
//!
//! A publisher that passes a backlog limit ([`PublishOptions::backlog_limit`]) is
//! told when the queue holds that many ready messages while someone consumes it,
//! and gets a watch that turns `false` when the consumers have taken the backlog
//! down to half the limit (hysteresis, so publishers are not woken for every
//! message) or have all gone (then nothing drains it: holding publishers back
//! would only stall them, and a queue without consumers buffers as always).
//!
//! Invariants:
//! - `State::backlog` is `None` until a publisher first finds the queue too deep;
//!   the check after each pump costs one `Option` test until then.
//! - Deleting the queue drops the sender: every watch closes, which publishers
//!   take as relief.
//!
//! [`PublishOptions::backlog_limit`]: switchboard_api::PublishOptions

use super::effects::Effects;
use super::enqueue::Enqueued;
use super::state::{Backlog, Queue, State};
use std::sync::Arc;
use switchboard_api::Message;
use tokio::sync::watch;

impl Queue {
    /// Offers a message to the queue (`enqueue.rs`); with a `limit`, also a watch on
    /// the backlog when the queue holds that many ready messages and has consumers.
    pub fn enqueue_limited(
        &self,
        msg: Arc<Message>,
        limit: Option<u32>,
    ) -> (Enqueued, Option<watch::Receiver<bool>>) {
        let mut fx = Effects::default();
        let r = {
            let mut st = self.lock();
            let r = self.enqueue_locked(&mut st, msg, &mut fx);
            let deep = match (limit, &r) {
                (Some(limit), Enqueued::Accepted(_)) => Self::too_deep(&mut st, limit),
                _ => None,
            };
            (r, deep)
        };
        self.finish(fx);
        r
    }

    fn too_deep(st: &mut State, limit: u32) -> Option<watch::Receiver<bool>> {
        let limit = limit.max(1) as usize;
        if st.consumers.is_empty() || st.ready_len() < limit {
            return None;
        }
        let b = st.backlog.get_or_insert_with(|| Backlog {
            deep: watch::Sender::new(true),
            below: limit / 2,
        });
        if !*b.deep.borrow() {
            b.below = limit / 2;
            b.deep.send_replace(true);
        }
        Some(b.deep.subscribe())
    }

    /// Tells the publishers waiting on this queue when its backlog is down.
    pub(super) fn relieve(&self, st: &mut State) {
        let ready = st.ready_len();
        let idle = st.consumers.is_empty();
        if let Some(b) = &st.backlog
            && *b.deep.borrow()
            && (idle || ready <= b.below)
        {
            b.deep.send_replace(false);
        }
    }
}
