//! A publish: the exchange graph walked to a set of queues, then one enqueue each.

use super::Vhost;
use crate::broker::exchange::{Dest, Exchange};
use crate::broker::queue::{Enqueued, Queue};
use std::sync::Arc;
use switchboard_api::{BrokerError, Message, Pressure, PublishOutcome};

impl Vhost {
    /// Routes to queues: through the exchange, exchange-to-exchange bindings and
    /// alternate exchanges. Each queue appears once.
    pub fn route(&self, msg: &Message) -> Result<Vec<Arc<Queue>>, BrokerError> {
        let mut out: Vec<Arc<Queue>> = Vec::new();
        if msg.exchange.is_empty() {
            if let Some(q) = self.queues().get(&msg.routing_key) {
                out.push(q.clone());
            }
            return Ok(out);
        }
        let x = self.exchange(&msg.exchange)?;
        if x.internal {
            return Err(BrokerError::InternalExchange {
                exchange: x.name.clone(),
                vhost: self.name.clone(),
            });
        }
        let mut visited: Vec<*const Exchange> = Vec::new();
        self.route_from(&x, msg, &mut out, &mut visited);
        Ok(out)
    }

    fn route_from(
        &self,
        x: &Arc<Exchange>,
        msg: &Message,
        out: &mut Vec<Arc<Queue>>,
        visited: &mut Vec<*const Exchange>,
    ) {
        if visited.contains(&Arc::as_ptr(x)) {
            return;
        }
        visited.push(Arc::as_ptr(x));
        let before = out.len();
        let mut next: Vec<Arc<Exchange>> = Vec::new();
        x.route(msg, &mut |d| match d {
            Dest::Queue(q) => {
                if !out.iter().any(|o| Arc::ptr_eq(o, q)) {
                    out.push(q.clone());
                }
            }
            Dest::Exchange(e) => next.push(e.clone()),
        });
        for e in next {
            self.route_from(&e, msg, out, visited);
        }
        if out.len() == before
            && let Some(ae) = x
                .alternate
                .as_deref()
                .and_then(|n| self.exchanges().get(n).cloned())
        {
            self.route_from(&ae, msg, out, visited);
        }
    }

    /// Routes and enqueues; `backlog_limit` as [`switchboard_api::PublishOptions`] says.
    pub fn publish(
        &self,
        mut msg: Message,
        backlog_limit: Option<u32>,
    ) -> Result<PublishOutcome, BrokerError> {
        if msg.timestamp_ms == 0 {
            msg.timestamp_ms = switchboard_api::wall_ms();
        }
        let queues = self.route(&msg)?;
        Ok(self.deliver(queues, msg, backlog_limit))
    }

    pub(super) fn deliver(
        &self,
        queues: Vec<Arc<Queue>>,
        msg: Message,
        backlog_limit: Option<u32>,
    ) -> PublishOutcome {
        let mut outcome = PublishOutcome::default();
        if queues.is_empty() {
            return outcome;
        }
        let msg = Arc::new(msg);
        for q in queues {
            let (r, deep) = q.enqueue_limited(msg.clone(), backlog_limit);
            if let Some(deep) = deep {
                outcome.pressure.push(Pressure {
                    queue: q.name.clone(),
                    deep,
                });
            }
            match r {
                Enqueued::Accepted(lsn) => {
                    outcome.queues += 1;
                    outcome.lsn = outcome.lsn.max(lsn);
                }
                Enqueued::Rejected => outcome.rejected = true,
                Enqueued::Gone => {}
            }
        }
        outcome
    }
}
