//! One task that fires every queue's deadlines (message TTL, delays, lease expiry,
//! `x-expires`). Queues keep their own next deadline and re-arm after each firing,
//! so the heap holds about one entry per queue with pending work.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::Notify;
use tokio::time::Instant;

pub trait TimerTarget: Send + Sync {
    fn on_timer(&self, now: Instant);
}

struct Due {
    at: Instant,
    target: Weak<dyn TimerTarget>,
}

impl PartialEq for Due {
    fn eq(&self, o: &Self) -> bool {
        self.at == o.at
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Due {
    fn cmp(&self, o: &Self) -> Ordering {
        // Reverse: BinaryHeap is a max-heap and we want the earliest first.
        o.at.cmp(&self.at)
    }
}

#[derive(Clone, Default)]
pub struct Timers {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    heap: Mutex<BinaryHeap<Due>>,
    notify: Notify,
}

impl Timers {
    /// Starts the timer task on the current tokio runtime.
    pub fn start() -> Timers {
        let t = Timers::default();
        let inner = Arc::downgrade(&t.inner);
        tokio::spawn(run(inner));
        t
    }

    pub fn schedule(&self, at: Instant, target: Weak<dyn TimerTarget>) {
        let earliest = {
            let Ok(mut heap) = self.inner.heap.lock() else {
                return;
            };
            let earliest = heap.peek().is_none_or(|d| at < d.at);
            heap.push(Due { at, target });
            earliest
        };
        if earliest {
            self.inner.notify.notify_one();
        }
    }
}

async fn run(inner: Weak<Inner>) {
    loop {
        let Some(inner) = inner.upgrade() else { return };
        let now = Instant::now();
        let mut due = Vec::new();
        let next = {
            let Ok(mut heap) = inner.heap.lock() else {
                return;
            };
            while heap.peek().is_some_and(|d| d.at <= now) {
                if let Some(d) = heap.pop() {
                    due.push(d.target);
                }
            }
            heap.peek().map(|d| d.at)
        };
        for t in due {
            if let Some(t) = t.upgrade() {
                t.on_timer(now);
            }
        }
        if !inner
            .heap
            .lock()
            .map(|h| h.peek().is_some_and(|d| d.at <= Instant::now()))
            .unwrap_or(false)
        {
            let notified = inner.notify.notified();
            match next {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = notified => {}
                    }
                }
                None => {
                    // Re-check every second so that a dropped broker ends this task.
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        _ = notified => {}
                    }
                }
            }
        }
    }
}
