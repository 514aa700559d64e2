//! One lane of ready messages: sequence order, with a requeued message going back
//! to its original position (RabbitMQ's behaviour), not to the tail. Priorities,
//! groups and fair turns ([`super::ready`], [`super::fair`]) are made of lanes.

use super::entry::Entry;
use std::collections::{BTreeMap, VecDeque};

/// An empty lane whose buffer holds more entries than this gives it back.
const SHRINK_ABOVE: usize = 1024;

/// FIFO by sequence number with cheap appends and ordered re-insertion.
#[derive(Default)]
pub struct Lane {
    fifo: VecDeque<Entry>,
    requeued: BTreeMap<u64, Entry>,
}

impl Lane {
    pub fn push(&mut self, e: Entry) {
        // Appends arrive in increasing seq order; anything older is a requeue.
        match self.fifo.back() {
            Some(last) if last.seq > e.seq => {
                self.requeued.insert(e.seq, e);
            }
            _ => self.fifo.push_back(e),
        }
    }

    pub fn requeue(&mut self, e: Entry) {
        match self.fifo.front() {
            Some(first) if first.seq < e.seq => {
                self.requeued.insert(e.seq, e);
            }
            _ if self.requeued.is_empty() => self.fifo.push_front(e),
            _ => {
                self.requeued.insert(e.seq, e);
            }
        }
    }

    pub fn front(&self) -> Option<&Entry> {
        match (self.fifo.front(), self.requeued.first_key_value()) {
            (Some(a), Some((_, b))) => Some(if b.seq < a.seq { b } else { a }),
            (a, b) => a.or(b.map(|(_, e)| e)),
        }
    }

    pub fn pop(&mut self) -> Option<Entry> {
        let from_requeued = match (self.fifo.front(), self.requeued.first_key_value()) {
            (Some(a), Some((k, _))) => *k < a.seq,
            (None, Some(_)) => true,
            _ => false,
        };
        if from_requeued {
            return self.requeued.pop_first().map(|(_, e)| e);
        }
        let e = self.fifo.pop_front();
        // A drained backlog would otherwise keep its buffer for the queue's life.
        if self.fifo.is_empty() && self.fifo.capacity() > SHRINK_ABOVE {
            self.fifo = VecDeque::new();
        }
        e
    }

    /// Takes message `seq` out of the lane wherever it is (a rare, explicit delete:
    /// the search through `fifo` is fine there).
    pub fn remove(&mut self, seq: u64) -> Option<Entry> {
        if let Some(e) = self.requeued.remove(&seq) {
            return Some(e);
        }
        let i = self.fifo.binary_search_by_key(&seq, |e| e.seq).ok()?;
        self.fifo.remove(i)
    }

    pub fn len(&self) -> usize {
        self.fifo.len() + self.requeued.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn drain(&mut self) -> impl Iterator<Item = Entry> + '_ {
        let mut all: Vec<Entry> = std::mem::take(&mut self.requeued).into_values().collect();
        all.extend(std::mem::take(&mut self.fifo));
        all.sort_by_key(|e| e.seq);
        all.into_iter()
    }
}
