//! Push consumers: adding and cancelling them, and handing ready messages to the
//! ones with credit (priority, round-robin, single active consumer, shared credit).

use super::effects::Effects;
use super::entry::DeathReason;
use super::ready::Ready;
use super::state::{Consumer, InFlight, Queue, State};
use std::sync::Weak;
use std::sync::atomic::Ordering;
use switchboard_api::{BrokerError, ConsumerHandle, ConsumerSpec, SinkEvent, Wake};
use tokio::time::Instant;

impl Queue {
    pub fn add_consumer(&self, spec: ConsumerSpec) -> Result<Box<dyn ConsumerHandle>, BrokerError> {
        let mut fx = Effects::default();
        let id = self.next_consumer.fetch_add(1, Ordering::Relaxed);
        {
            let mut st = self.lock();
            if st.deleted {
                return Err(self.not_found());
            }
            if st.consumers.iter().any(|c| c.exclusive)
                || (spec.exclusive && !st.consumers.is_empty())
            {
                return Err(BrokerError::ExclusiveUse {
                    queue: self.name.clone(),
                    vhost: self.vhost_name(),
                });
            }
            let c = Consumer {
                id,
                tag: spec.tag,
                owner: spec.owner,
                prefetch: spec.prefetch,
                in_flight: 0,
                shared: spec.shared_credit,
                sink: spec.sink,
                priority: spec.priority,
                exclusive: spec.exclusive,
            };
            st.consumers.push(c);
            st.had_consumer = true;
            self.pump(&mut st, &mut fx);
            self.arm_timer(&mut st);
        }
        self.finish(fx);
        Ok(Box::new(ConsumerRef {
            queue: self.me.clone(),
            id,
        }))
    }

    fn remove_consumer(&self, id: u64) {
        let mut fx = Effects::default();
        {
            let mut st = self.lock();
            let before = st.consumers.len();
            if st.args.single_active_consumer && st.consumers.iter().any(|c| c.id == id) {
                let held = st
                    .in_flight
                    .values()
                    .filter(|f| f.consumer == Some(id))
                    .count();
                st.orphans += held;
            }
            st.consumers.retain(|c| c.id != id);
            if st.consumers.len() == before {
                return;
            }
            st.group_owners.release(id);
            if st.rr >= st.consumers.len() {
                st.rr = 0;
            }
            st.last_used = Some(Instant::now());
            if self.auto_delete && st.consumers.is_empty() && st.had_consumer {
                fx.delete_self = true;
            }
            self.pump(&mut st, &mut fx);
            self.arm_timer(&mut st);
        }
        self.finish(fx);
    }

    /// Expires what is due at the head, then hands out what consumers can take.
    pub(super) fn pump(&self, st: &mut State, fx: &mut Effects) {
        self.hand_out(st, fx);
        self.relieve(st);
    }

    fn hand_out(&self, st: &mut State, fx: &mut Effects) {
        let now = Instant::now();
        self.expire_head(st, now, fx);
        if st.consumers.is_empty() {
            return;
        }
        // Consumers with credit but no message they may take (every ready one is of
        // a group another consumer owns); empty, and not allocated, on the usual path.
        let mut passed: Vec<u64> = Vec::new();
        // Groups stick to consumers on plain queues only: a grouped queue holds
        // a group back while it is in flight instead.
        let sticky = !st.args.single_active_consumer && !st.ready().is_grouped();
        while st.ready_len() > 0 {
            let Some(ci) = self.pick_consumer(st, &passed) else {
                break;
            };
            let cid = st.consumers[ci].id;
            let popped = if sticky {
                let State {
                    ready,
                    group_owners,
                    ..
                } = &mut *st;
                ready
                    .get_or_insert_with(|| Ready::plain(0))
                    .pop_for(&mut |g| group_owners.admits(g, cid))
            } else {
                st.ready().pop()
            };
            let Some((e, group)) = popped else {
                passed.push(cid);
                continue;
            };
            if sticky && let Some(g) = &group {
                st.group_owners.served(g.clone(), cid);
            }
            let Some(mut e) = self.take_live(st, e, group.as_deref(), now, fx) else {
                continue;
            };
            let Some(message) = self.load(&mut e) else {
                self.unreadable(st, &e, group.as_deref());
                continue;
            };
            e.delivery_count += 1;
            st.counts.deliver += 1;
            st.counts.redeliver += u64::from(e.redelivered);
            let c = &mut st.consumers[ci];
            c.in_flight += 1;
            if let Some(s) = &c.shared {
                s.take();
            }
            let delivery = self.delivery(&e, message, 0);
            c.sink.push(SinkEvent::Deliver {
                consumer: c.tag,
                delivery,
            });
            let (id, shared) = (c.id, c.shared.clone());
            st.in_flight.insert(
                e.seq,
                InFlight {
                    entry: e,
                    consumer: Some(id),
                    shared,
                    lease: None,
                },
            );
        }
    }

    pub(super) fn expire_head(&self, st: &mut State, now: Instant, fx: &mut Effects) {
        while st
            .ready
            .as_ref()
            .and_then(Ready::front)
            .is_some_and(|e| e.expires_at.is_some_and(|t| t <= now))
        {
            if let Some(e) = st.ready().discard_front() {
                self.popped(st, &e);
                fx.dead.push((e, DeathReason::Expired));
            }
        }
    }

    /// The consumer to serve next: with single-active-consumer only the first one;
    /// otherwise round-robin among the highest-priority consumers with credit,
    /// leaving out those `passed` (nothing ready they may take).
    fn pick_consumer(&self, st: &mut State, passed: &[u64]) -> Option<usize> {
        let n = st.consumers.len();
        let can = |c: &Consumer| {
            if passed.contains(&c.id) {
                return false;
            }
            let own = c.prefetch == 0 || c.in_flight < c.prefetch;
            own && c.shared.as_ref().is_none_or(|s| s.has_credit())
        };
        if st.args.single_active_consumer {
            // A consumer that went away still holds deliveries: they come back to
            // the head when its channel settles them, before anything after them.
            if st.orphans > 0 {
                return None;
            }
            let c = st.consumers.first()?;
            if can(c) {
                return Some(0);
            }
            self.wait_shared(c);
            return None;
        }
        let mut best: Option<(usize, i32)> = None;
        for k in 0..n {
            let i = (st.rr + k) % n;
            let c = &st.consumers[i];
            if best.is_some_and(|(_, p)| c.priority <= p) {
                continue;
            }
            if can(c) {
                best = Some((i, c.priority));
            } else {
                self.wait_shared(c);
            }
        }
        let (i, _) = best?;
        st.rr = (i + 1) % n;
        Some(i)
    }

    fn wait_shared(&self, c: &Consumer) {
        if let Some(s) = &c.shared
            && !s.has_credit()
        {
            let me: Weak<dyn Wake> = self.me.clone();
            s.wait(me);
        }
    }
}

struct ConsumerRef {
    queue: Weak<Queue>,
    id: u64,
}

impl ConsumerHandle for ConsumerRef {
    fn cancel(&self) {
        if let Some(q) = self.queue.upgrade() {
            q.remove_consumer(self.id);
        }
    }
}

impl Wake for Queue {
    fn wake(&self) {
        let mut fx = Effects::default();
        {
            let mut st = self.lock();
            self.pump(&mut st, &mut fx);
            self.arm_timer(&mut st);
        }
        self.finish(fx);
    }
}
