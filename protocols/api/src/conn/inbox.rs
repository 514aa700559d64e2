use crate::{Delivery, DeliverySink, SinkEvent};
use std::collections::VecDeque;
use std::sync::Mutex;

/// Events a connection handles per wake-up before it writes: enough for one write
/// to carry many deliveries, few enough that reads and timers get their turn.
pub const BATCH: usize = 256;

/// A [`DeliverySink`] a connection task awaits: a plain deque plus a wake-up. It
/// allocates nothing while empty (a channel's first block is ~2 KiB, which matters
/// at 10,000 idle connections).
#[derive(Default)]
pub struct Inbox {
    q: Mutex<VecDeque<SinkEvent>>,
    notify: tokio::sync::Notify,
}

impl DeliverySink for Inbox {
    fn push(&self, event: SinkEvent) {
        self.q
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(event);
        self.notify.notify_one();
    }
}

impl Inbox {
    pub fn try_pop(&self) -> Option<SinkEvent> {
        self.q.lock().unwrap_or_else(|e| e.into_inner()).pop_front()
    }

    /// The next event. Cancel-safe: nothing is taken until the future completes.
    pub async fn recv(&self) -> SinkEvent {
        loop {
            if let Some(e) = self.try_pop() {
                return e;
            }
            self.notify.notified().await;
        }
    }

    /// `first` (from [`Inbox::recv`]) and whatever else is already waiting, up to
    /// [`BATCH`] in all. Taken one at a time, so the caller's handling (which may
    /// settle deliveries, taking queue locks) never runs under the inbox's lock,
    /// and nothing is taken that the caller does not get.
    pub fn batch(&self, first: SinkEvent) -> impl Iterator<Item = SinkEvent> + '_ {
        std::iter::once(first)
            .chain(std::iter::from_fn(|| self.try_pop()))
            .take(BATCH)
    }

    /// Deliveries pushed but not yet taken (to requeue them when the connection ends).
    pub fn drain_deliveries(&self) -> Vec<Delivery> {
        let mut q = self.q.lock().unwrap_or_else(|e| e.into_inner());
        q.drain(..)
            .filter_map(|e| match e {
                SinkEvent::Deliver { delivery, .. } => Some(delivery),
                SinkEvent::Cancelled { .. } => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cancelled(consumer: u64) -> SinkEvent {
        SinkEvent::Cancelled { consumer }
    }

    fn consumer(e: &SinkEvent) -> u64 {
        match e {
            SinkEvent::Cancelled { consumer } | SinkEvent::Deliver { consumer, .. } => *consumer,
        }
    }

    #[test]
    fn a_batch_stops_at_its_size_and_leaves_the_rest_waiting() {
        let inbox = Inbox::default();
        for i in 1..=BATCH as u64 + 10 {
            inbox.push(cancelled(i));
        }
        let Some(first) = inbox.try_pop() else {
            panic!("the inbox lost its events");
        };
        let taken: Vec<u64> = inbox.batch(first).map(|e| consumer(&e)).collect();
        assert_eq!(taken, (1..=BATCH as u64).collect::<Vec<_>>());
        assert_eq!(
            inbox.try_pop().map(|e| consumer(&e)),
            Some(BATCH as u64 + 1)
        );
    }
}
