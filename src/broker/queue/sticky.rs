//! Message groups stick to a consumer on plain queues (ActiveMQ's `JMSXGroupID`).
//!
//! A group's first message goes to whichever consumer's turn it is; every later
//! one goes to that same consumer while it stays subscribed, so two consumers never
//! work on one group at once, even with prefetch and auto-ack. Other groups spread
//! over the other consumers. When the owner leaves, its groups go to whoever takes
//! their next message. Grouped (FIFO) queues need none of this: they hold a group
//! back while one of its messages is in flight.
//!
//! Invariants:
//! - At most [`CAPACITY`] groups are remembered per queue (ActiveMQ's default message
//!   group cache); past it the least recently served group is forgotten, and its
//!   next message may go to another consumer — memory stays bounded whatever the
//!   number of groups a client invents.
//! - Every owner is a consumer of the queue: `release` runs when one leaves.

use std::collections::HashMap;
use std::sync::Arc;

/// Groups remembered per queue, as ActiveMQ's `CachedMessageGroupMap` does by default.
pub const CAPACITY: usize = 1024;

#[derive(Default)]
pub struct GroupOwners {
    /// Group → (consumer id, when it was last served).
    owners: HashMap<Arc<str>, (u64, u64)>,
    clock: u64,
}

impl GroupOwners {
    /// Whether `consumer` may take the next message of `group`.
    pub fn admits(&self, group: &str, consumer: u64) -> bool {
        self.owners.get(group).is_none_or(|(c, _)| *c == consumer)
    }

    /// `consumer` was handed a message of `group`: it owns the group from now on.
    pub fn served(&mut self, group: Arc<str>, consumer: u64) {
        self.clock += 1;
        if let Some(o) = self.owners.get_mut(&group) {
            *o = (consumer, self.clock);
            return;
        }
        if self.owners.len() >= CAPACITY {
            // A linear pass, only when a new group arrives at a full cache.
            let oldest = self
                .owners
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(g, _)| g.clone());
            if let Some(g) = oldest {
                self.owners.remove(&g);
            }
        }
        self.owners.insert(group, (consumer, self.clock));
    }

    /// `consumer` left: its groups are free for the others.
    pub fn release(&mut self, consumer: u64) {
        if !self.owners.is_empty() {
            self.owners.retain(|_, (c, _)| *c != consumer);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.owners.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_stays_with_its_first_consumer_until_it_leaves() {
        let mut o = GroupOwners::default();
        assert!(o.admits("a", 1) && o.admits("a", 2));
        o.served("a".into(), 1);
        assert!(o.admits("a", 1));
        assert!(!o.admits("a", 2));
        o.release(1);
        assert!(o.admits("a", 2));
    }

    #[test]
    fn past_capacity_the_least_recently_served_group_is_forgotten() {
        let mut o = GroupOwners::default();
        for i in 0..CAPACITY {
            o.served(Arc::from(format!("g{i}")), 1);
        }
        // g0 served again: g1 is now the least recent.
        o.served("g0".into(), 1);
        o.served("new".into(), 2);
        assert_eq!(o.len(), CAPACITY);
        assert!(!o.admits("g0", 2));
        assert!(
            o.admits("g1", 2),
            "the least recently served group was dropped"
        );
        assert!(!o.admits("new", 1));
    }
}
