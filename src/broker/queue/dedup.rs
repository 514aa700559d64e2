//! The deduplication window (`x-dedup-window`, SQS FIFO): ids accepted lately, and
//! the journal records a restart needs to see them again.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

/// Out of line until first used: most queues never deduplicate, and every queue
/// carries one (112 bytes inline, 8 this way).
#[derive(Default)]
pub struct DedupWindow(Option<Box<Window>>);

#[derive(Default)]
struct Window {
    /// When each id in the window was accepted.
    seen: HashMap<String, Instant>,
    /// The same, oldest first, so expiry need not scan the map.
    order: VecDeque<(Instant, String)>,
    /// Settled messages whose deduplication ids are still within the window: the
    /// journal must keep their Enqueue records (until the instant), so that a
    /// restart can rebuild the window. One entry per second at most, holding the
    /// smallest LSN settled in that second.
    pins: VecDeque<(Instant, u64)>,
}

impl DedupWindow {
    fn window(&mut self) -> &mut Window {
        self.0.get_or_insert_with(Default::default)
    }

    /// Whether `id` is new within `window` at `now`; a new id counts from `now`.
    pub fn admit(&mut self, id: &str, now: Instant, window: Duration) -> bool {
        self.window().admit(id, now, window)
    }

    /// An id accepted before a restart, at `seen`.
    pub fn restore(&mut self, id: &str, seen: Instant) {
        self.window().restore(id, seen);
    }

    /// Keeps `lsn` in the journal until `until`, coalescing pins of the same second.
    pub fn pin(&mut self, until: Instant, lsn: u64) {
        self.window().pin(until, lsn);
    }

    /// The smallest LSN still pinned at `now`; pins that ran out are dropped.
    pub fn min_pinned(&mut self, now: Instant) -> Option<u64> {
        self.0.as_mut()?.min_pinned(now)
    }
}

impl Window {
    fn admit(&mut self, id: &str, now: Instant, window: Duration) -> bool {
        while self.order.front().is_some_and(|(t, _)| *t + window <= now) {
            if let Some((t, id)) = self.order.pop_front()
                && self.seen.get(&id) == Some(&t)
            {
                self.seen.remove(&id);
            }
        }
        if self.seen.contains_key(id) {
            return false;
        }
        self.seen.insert(id.to_string(), now);
        self.order.push_back((now, id.to_string()));
        true
    }

    fn restore(&mut self, id: &str, seen: Instant) {
        if self.seen.insert(id.to_string(), seen).is_none() {
            self.order.push_back((seen, id.to_string()));
        }
    }

    fn pin(&mut self, until: Instant, lsn: u64) {
        match self.pins.back_mut() {
            Some((t, l)) if until.saturating_duration_since(*t) < Duration::from_secs(1) => {
                *l = (*l).min(lsn);
            }
            _ => self.pins.push_back((until, lsn)),
        }
    }

    fn min_pinned(&mut self, now: Instant) -> Option<u64> {
        while self.pins.front().is_some_and(|(t, _)| *t <= now) {
            self.pins.pop_front();
        }
        self.pins.iter().map(|(_, l)| *l).min()
    }
}
