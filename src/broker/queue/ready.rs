//! Ready messages of one queue, in delivery order.
//!
//! Invariants:
//! - Within a lane, messages come out in sequence order; a requeued message goes back
//!   to its original position (RabbitMQ's behaviour), not to the tail.
//! - Priority queues keep one lane per priority and serve the highest first.
//! - Within a priority, plain queues serve message groups in turns ([`FairLane`]):
//!   a group's backlog does not hold up the other groups (SQS fair queues).
//! - Grouped queues keep one lane per group; a group with a message in flight is not
//!   offered to anyone until that message is settled (SQS FIFO, JMSXGroupID).
//! - An entry's group is its lane's key, never read from the entry: a message paged
//!   out to the spill file keeps its place. Taking an entry out says which group it
//!   came from, for the caller to settle the group with (the message may still be
//!   on disk then).

use super::entry::{Entry, Payload};
use super::fair::FairLane;
use super::lane::Lane;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Where a taken entry came from: its message group (grouped queues: `""` for
/// messages without one), shared with the lane's key so that naming it allocates
/// nothing.
pub type From = Option<Arc<str>>;

pub struct GroupLane {
    lane: Lane,
    in_flight: u32,
}

/// All ready messages of a queue.
pub enum Ready {
    /// Lanes indexed by priority (one lane when the queue has no `x-max-priority`).
    Plain(Vec<FairLane>),
    Grouped {
        groups: HashMap<Arc<str>, GroupLane>,
        /// Groups with ready messages and nothing in flight, oldest first.
        available: VecDeque<Arc<str>>,
        len: usize,
    },
}

impl Ready {
    pub fn plain(max_priority: u8) -> Self {
        Ready::Plain((0..=max_priority).map(|_| FairLane::default()).collect())
    }

    pub fn grouped() -> Self {
        Ready::Grouped {
            groups: HashMap::new(),
            available: VecDeque::new(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Ready::Plain(lanes) => lanes.iter().map(FairLane::len).sum(),
            Ready::Grouped { len, .. } => *len,
        }
    }

    /// Takes a ready message out by its sequence number (plain queues only: a
    /// grouped queue's order must not be broken from the side).
    pub fn remove(&mut self, seq: u64) -> Option<Entry> {
        match self {
            Ready::Plain(lanes) => lanes.iter_mut().find_map(|l| l.remove(seq)),
            Ready::Grouped { .. } => None,
        }
    }

    fn lane_for(lanes: &mut [FairLane], priority: u8) -> &mut FairLane {
        let i = (priority as usize).min(lanes.len() - 1);
        &mut lanes[i]
    }

    /// Adds a new message. `group` is passed apart because a message paged out to
    /// the spill file no longer has its group id at hand.
    pub fn push(&mut self, e: Entry, group: Option<&str>) {
        self.insert(e, group, false)
    }

    /// Puts back a message that was handed out: in memory then, since its delivery
    /// held the message, so its group is read from it.
    pub fn requeue(&mut self, e: Entry) {
        let m = match &e.msg {
            Payload::Mem(m) if m.group_id.is_some() => Some(m.clone()),
            _ => None,
        };
        self.insert(e, m.as_ref().and_then(|m| m.group_id.as_deref()), true)
    }

    fn insert(&mut self, e: Entry, group: Option<&str>, requeue: bool) {
        match self {
            Ready::Plain(lanes) => {
                let lane = Self::lane_for(lanes, e.priority);
                if requeue {
                    lane.requeue(e, group)
                } else {
                    lane.push(e, group)
                }
            }
            Ready::Grouped {
                groups,
                available,
                len,
            } => {
                *len += 1;
                let name = group.unwrap_or_default();
                let key = match groups.get_key_value(name) {
                    Some((k, _)) => k.clone(),
                    None => Arc::from(name),
                };
                let g = groups.entry(key.clone()).or_insert_with(|| GroupLane {
                    lane: Lane::default(),
                    in_flight: 0,
                });
                let was_empty = g.lane.is_empty();
                if requeue {
                    g.lane.requeue(e)
                } else {
                    g.lane.push(e)
                }
                if was_empty && g.in_flight == 0 && !available.contains(&key) {
                    available.push_back(key);
                }
            }
        }
    }

    /// The message that `pop` would return, if any.
    pub fn front(&self) -> Option<&Entry> {
        match self {
            Ready::Plain(lanes) => lanes.iter().rev().find_map(FairLane::front),
            Ready::Grouped {
                groups, available, ..
            } => available
                .front()
                .and_then(|k| groups.get(k))
                .and_then(|g| g.lane.front()),
        }
    }

    pub fn is_grouped(&self) -> bool {
        matches!(self, Ready::Grouped { .. })
    }

    /// Takes the next deliverable message and the group it came from. For grouped
    /// queues that group is marked in flight and stays blocked until
    /// [`Ready::group_settled`].
    pub fn pop(&mut self) -> Option<(Entry, From)> {
        match self {
            Ready::Plain(lanes) => lanes.iter_mut().rev().find_map(FairLane::pop),
            Ready::Grouped {
                groups,
                available,
                len,
            } => {
                let key = available.pop_front()?;
                let g = groups.get_mut(&key)?;
                let e = g.lane.pop()?;
                g.in_flight += 1;
                *len -= 1;
                Some((e, Some(key)))
            }
        }
    }

    /// Takes the next message a push consumer may have: on a plain queue, from the
    /// first group in turn that `eligible` admits (the caller records who owns it);
    /// a grouped queue has its own rule, so this is `pop` there.
    pub fn pop_for(&mut self, eligible: &mut dyn FnMut(&str) -> bool) -> Option<(Entry, From)> {
        match self {
            Ready::Plain(lanes) => lanes
                .iter_mut()
                .rev()
                .find_map(|l| l.pop_eligible(eligible)),
            Ready::Grouped { .. } => self.pop(),
        }
    }

    /// Takes the next message of the group that `pop` just served, if it has more and
    /// the caller wants a batch from one group (an SQS FIFO receive returns several
    /// messages of one group in order).
    pub fn pop_same_group(&mut self, group: &str) -> Option<Entry> {
        let Ready::Grouped { groups, len, .. } = self else {
            return None;
        };
        let g = groups.get_mut(group)?;
        // A group that is not in flight may be in `available`: taking from it here
        // would let `pop` hand out a second message of it.
        if g.in_flight == 0 {
            return None;
        }
        let e = g.lane.pop()?;
        g.in_flight += 1;
        *len -= 1;
        Some(e)
    }

    /// Removes the head without marking anything in flight (expiry, drop-head).
    pub fn discard_front(&mut self) -> Option<Entry> {
        match self {
            Ready::Plain(lanes) => lanes.iter_mut().rev().find_map(FairLane::discard_front),
            Ready::Grouped {
                groups,
                available,
                len,
            } => {
                let key = available.front()?.clone();
                let g = groups.get_mut(&key)?;
                let e = g.lane.pop()?;
                *len -= 1;
                if g.lane.is_empty() {
                    available.pop_front();
                    if g.in_flight == 0 {
                        groups.remove(&key);
                    }
                }
                Some(e)
            }
        }
    }

    /// A message of `group` left flight (acked, requeued or dead-lettered).
    pub fn group_settled(&mut self, group: Option<&str>) {
        let Ready::Grouped {
            groups, available, ..
        } = self
        else {
            return;
        };
        let key = group.unwrap_or_default();
        let Some(g) = groups.get_mut(key) else {
            return;
        };
        g.in_flight = g.in_flight.saturating_sub(1);
        if g.in_flight == 0 {
            if g.lane.is_empty() {
                groups.remove(key);
            } else if !available.iter().any(|k| &**k == key)
                && let Some((k, _)) = groups.get_key_value(key)
            {
                available.push_back(k.clone());
            }
        }
    }

    /// Removes every ready message, in order.
    pub fn drain_all(&mut self) -> Vec<Entry> {
        let mut out = Vec::new();
        match self {
            Ready::Plain(lanes) => {
                for lane in lanes.iter_mut().rev() {
                    out.extend(lane.drain());
                }
            }
            Ready::Grouped {
                groups,
                available,
                len,
            } => {
                for g in groups.values_mut() {
                    out.extend(g.lane.drain());
                }
                groups.retain(|_, g| g.in_flight > 0);
                available.clear();
                *len = 0;
            }
        }
        out
    }
}
