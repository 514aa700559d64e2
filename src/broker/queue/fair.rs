//! Fair sharing between message groups on a plain queue (SQS fair queues).
//!
//! A plain queue serves its messages in sequence order, so one group with a large
//! backlog would make every message published after it wait behind that backlog.
//! [`FairLane`] keeps the messages of each group in a lane of their own and serves
//! the groups with ready messages in turns, one message per turn: a group's share
//! of hand-outs is one in N when N groups have messages ready, however deep its
//! backlog. Messages without a group id form one more group, "no group", so
//! ungrouped traffic is one tenant among the others rather than each message its
//! own (which would let ungrouped traffic starve every named group).
//!
//! Invariants:
//! - Within a group, messages come out in sequence order ([`Lane`]).
//! - `turns` is `None` while no ready message has a group: then only `none` is used
//!   and a pop costs what a plain lane's does.
//! - Otherwise every non-empty lane is in `turns.order` exactly once (`None`: the
//!   no-group lane) and a group whose lane empties is dropped, so memory follows
//!   the groups that have ready messages, never every group ever seen.

use super::entry::Entry;
use super::lane::Lane;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// One priority level of a plain queue.
#[derive(Default)]
pub struct FairLane {
    none: Lane,
    turns: Option<Box<Turns>>,
}

struct Turns {
    groups: HashMap<Arc<str>, Lane>,
    /// Whose turn comes next; `None` is the no-group lane.
    order: VecDeque<Option<Arc<str>>>,
    /// Messages in `groups` (summing lanes would cost a pass over every group).
    len: usize,
}

impl FairLane {
    pub fn push(&mut self, e: Entry, group: Option<&str>) {
        self.insert(e, group, false)
    }

    /// A message back from flight: its original place within its group.
    pub fn requeue(&mut self, e: Entry, group: Option<&str>) {
        self.insert(e, group, true)
    }

    fn insert(&mut self, e: Entry, group: Option<&str>, requeue: bool) {
        let put = |lane: &mut Lane, e: Entry| {
            if requeue {
                lane.requeue(e)
            } else {
                lane.push(e)
            }
        };
        let Some(g) = group else {
            let was_empty = self.none.is_empty();
            put(&mut self.none, e);
            if was_empty && let Some(t) = &mut self.turns {
                t.order.push_back(None);
            }
            return;
        };
        let none_waiting = !self.none.is_empty();
        let t = self.turns.get_or_insert_with(|| {
            // The ungrouped messages were here first: they keep the next turn.
            let order = if none_waiting {
                VecDeque::from([None])
            } else {
                VecDeque::new()
            };
            Box::new(Turns {
                groups: HashMap::new(),
                order,
                len: 0,
            })
        });
        t.len += 1;
        match t.groups.get_mut(g) {
            Some(lane) => put(lane, e),
            None => {
                let key: Arc<str> = Arc::from(g);
                let mut lane = Lane::default();
                put(&mut lane, e);
                t.groups.insert(key.clone(), lane);
                t.order.push_back(Some(key));
            }
        }
    }

    pub fn len(&self) -> usize {
        self.none.len() + self.turns.as_ref().map_or(0, |t| t.len)
    }

    /// The message `pop` would return.
    pub fn front(&self) -> Option<&Entry> {
        let Some(t) = &self.turns else {
            return self.none.front();
        };
        match t.order.front()? {
            None => self.none.front(),
            Some(g) => t.groups.get(g).and_then(Lane::front),
        }
    }

    /// Takes the head of the group whose turn it is, and that group; its next turn
    /// comes after every other group with ready messages has had one.
    pub fn pop(&mut self) -> Option<(Entry, Option<Arc<str>>)> {
        let Some(t) = &mut self.turns else {
            return self.none.pop().map(|e| (e, None));
        };
        let key = t.order.pop_front()?;
        let group = key.clone();
        self.take_turn(key, true).map(|e| (e, group))
    }

    /// Takes the same message as `pop` without passing the turn on (expiry and
    /// drop-head remove what is in the way; they do not serve anyone).
    pub fn discard_front(&mut self) -> Option<Entry> {
        let Some(t) = &mut self.turns else {
            return self.none.pop();
        };
        let key = t.order.pop_front()?;
        self.take_turn(key, false)
    }

    /// Takes the head of the first group in turn order that `eligible` admits (the
    /// no-group lane always is), passing that group's turn on, and says which group
    /// it came from. Without grouped messages ready this is `pop`.
    pub fn pop_eligible(
        &mut self,
        eligible: &mut dyn FnMut(&str) -> bool,
    ) -> Option<(Entry, Option<Arc<str>>)> {
        let Some(t) = &mut self.turns else {
            return self.none.pop().map(|e| (e, None));
        };
        let i = t
            .order
            .iter()
            .position(|k| k.as_deref().is_none_or(&mut *eligible))?;
        let key = t.order.remove(i)?;
        let group = key.clone();
        self.take_turn(key, true).map(|e| (e, group))
    }

    /// Takes the head of `key`'s lane, whose turn was just taken out of the order.
    fn take_turn(&mut self, key: Option<Arc<str>>, rotate: bool) -> Option<Entry> {
        let t = self.turns.as_mut()?;
        let (e, left) = match &key {
            None => {
                let e = self.none.pop();
                (e, !self.none.is_empty())
            }
            Some(g) => {
                let lane = t.groups.get_mut(g)?;
                let e = lane.pop();
                if e.is_some() {
                    t.len -= 1;
                }
                (e, !lane.is_empty())
            }
        };
        if left && rotate {
            t.order.push_back(key);
        } else if left {
            t.order.push_front(key);
        } else if let Some(g) = &key {
            t.groups.remove(g);
        }
        if t.groups.is_empty() {
            self.turns = None;
        }
        e
    }

    /// Takes message `seq` out wherever it is (a rare, explicit delete).
    pub fn remove(&mut self, seq: u64) -> Option<Entry> {
        if let Some(e) = self.none.remove(seq) {
            if self.none.is_empty()
                && let Some(t) = &mut self.turns
            {
                t.order.retain(Option::is_some);
            }
            return Some(e);
        }
        let t = self.turns.as_mut()?;
        let (key, e) = t
            .groups
            .iter_mut()
            .find_map(|(k, lane)| lane.remove(seq).map(|e| (k.clone(), e)))?;
        t.len -= 1;
        if t.groups.get(&key).is_some_and(Lane::is_empty) {
            t.groups.remove(&key);
            t.order.retain(|k| k.as_ref() != Some(&key));
        }
        if t.groups.is_empty() {
            self.turns = None;
        }
        Some(e)
    }

    /// Removes every message, in sequence order.
    pub fn drain(&mut self) -> Vec<Entry> {
        let mut all: Vec<Entry> = self.none.drain().collect();
        if let Some(mut t) = self.turns.take() {
            for lane in t.groups.values_mut() {
                all.extend(lane.drain());
            }
            all.sort_by_key(|e| e.seq);
        }
        all
    }
}
