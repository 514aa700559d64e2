//! Declaring, deleting and restoring queues; exclusive queues of a closed
//! connection; SQS-style argument changes in place.

use super::{Vhost, store_err};
use crate::broker::exchange::{Dest, Exchange};
use crate::broker::queue::{Queue, QueueArgs, QueueConfig, QueueOwner, check_equivalent};
use crate::store::QueueDef;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use switchboard_api::{BrokerError, ConnectionId, Entity, Mismatch, QueueDecl, QueueInfo, Table};

impl Vhost {
    pub fn declare_queue(
        &self,
        d: &QueueDecl,
        conn: ConnectionId,
    ) -> Result<QueueInfo, BrokerError> {
        if d.passive {
            let q = self.queue_for(&d.name, conn)?;
            q.touch();
            return Ok(info(&q));
        }
        if d.name.starts_with("amq.") {
            return Err(BrokerError::ReservedName {
                entity: Entity::Queue,
                name: d.name.clone(),
            });
        }
        let name = if d.name.is_empty() {
            self.server_name()
        } else {
            d.name.clone()
        };
        if let Some(q) = self.queues().get(&name).cloned() {
            self.check_owner(&q, conn)?;
            let ineq = |what: &str| {
                BrokerError::Inequivalent(Box::new(Mismatch {
                    entity: Entity::Queue,
                    name: name.clone(),
                    vhost: self.name.clone(),
                    argument: what.to_string(),
                    received: None,
                    current: None,
                }))
            };
            if q.durable != d.durable {
                return Err(ineq("durable"));
            }
            if q.auto_delete != d.auto_delete {
                return Err(ineq("auto_delete"));
            }
            if q.exclusive_owner.is_some() != d.exclusive {
                return Err(ineq("exclusive"));
            }
            check_equivalent(&q.raw_args(), &d.arguments, &name, &self.name)?;
            q.touch();
            return Ok(info(&q));
        }
        let args = QueueArgs::parse(&d.arguments, &name, &self.name)?;
        // Exclusive queues end with their connection, so they are never persisted.
        let durable = d.durable && !d.exclusive;
        let (id, store) = match (&self.store, durable) {
            (Some(store), true) => {
                let id = store
                    .put_queue(&self.name, &name, d.auto_delete, &d.arguments)
                    .map_err(store_err)?;
                (id, Some(store.clone()))
            }
            _ => (0, None),
        };
        let q = Queue::new(
            QueueConfig {
                id,
                store,
                paging: self.paging.as_ref().map(|p| p.next()),
                name: name.clone(),
                durable: d.durable,
                auto_delete: d.auto_delete,
                exclusive_owner: d.exclusive.then_some(conn),
                args,
                raw_args: d.arguments.clone(),
            },
            self.owner(),
            self.timers.clone(),
        );
        let q = self.queues_mut().entry(name).or_insert(q).clone();
        Ok(info(&q))
    }

    /// This vhost as its queues see it: only what they may ask of it.
    fn owner(&self) -> Weak<dyn QueueOwner> {
        self.me.clone()
    }

    pub(crate) fn server_name(&self) -> String {
        let n = self.names.fetch_add(1, Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!(
            "amq.gen-{:x}{:06x}",
            t as u64 ^ std::process::id() as u64,
            n
        )
    }

    /// Deletes a queue after the protocol-level checks passed. Bindings to it vanish.
    pub fn delete_queue(
        &self,
        name: &str,
        if_unused: bool,
        if_empty: bool,
        conn: ConnectionId,
    ) -> Result<u32, BrokerError> {
        let q = match self.queue_for(name, conn) {
            Ok(q) => q,
            // Deleting what does not exist succeeds, as in RabbitMQ.
            Err(BrokerError::NotFound { .. }) => return Ok(0),
            Err(e) => return Err(e),
        };
        if if_unused && q.consumer_count() > 0 {
            return Err(BrokerError::InUse {
                entity: Entity::Queue,
                name: name.to_string(),
                vhost: self.name.clone(),
            });
        }
        if if_empty && q.total_count() > 0 {
            return Err(BrokerError::NotEmpty {
                queue: name.to_string(),
                vhost: self.name.clone(),
            });
        }
        Ok(self.remove_queue(name))
    }

    /// Removes a queue unconditionally (auto-delete, x-expires, exclusive owner gone).
    pub fn remove_queue(&self, name: &str) -> u32 {
        let Some(q) = self.queues_mut().remove(name) else {
            return 0;
        };
        if let (Some(store), true) = (&self.store, q.id != 0)
            && let Err(e) = store.remove_queue(&self.name, name)
        {
            tracing::error!("cannot persist deletion of queue '{name}': {e}");
        }
        let dest = Dest::Queue(q.clone());
        let exchanges: Vec<Arc<Exchange>> = self.exchanges().values().cloned().collect();
        for x in &exchanges {
            if x.unbind_all_to(&dest) > 0 {
                self.maybe_auto_delete_exchange(x);
            }
        }
        q.delete()
    }

    /// Exclusive queues of a closed connection go away.
    pub fn connection_closed(&self, conn: ConnectionId) {
        let mine: Vec<String> = self
            .queues()
            .values()
            .filter(|q| q.is_exclusive_to(conn))
            .map(|q| q.name.clone())
            .collect();
        for name in mine {
            self.remove_queue(&name);
        }
    }

    /// Recreates a durable queue at start-up (its messages follow, see `Core::recover`).
    pub fn restore_queue(&self, name: &str, def: &QueueDef) -> Arc<Queue> {
        let args = match QueueArgs::parse(&def.args, name, &self.name) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(
                    "queue '{name}' has arguments this version refuses ({e}); using defaults"
                );
                QueueArgs::default()
            }
        };
        let q = Queue::new(
            QueueConfig {
                id: def.id,
                store: self.store.clone(),
                paging: self.paging.as_ref().map(|p| p.next()),
                name: name.to_string(),
                durable: true,
                auto_delete: def.auto_delete,
                exclusive_owner: None,
                args,
                raw_args: def.args.clone(),
            },
            self.owner(),
            self.timers.clone(),
        );
        self.queues_mut().insert(name.to_string(), q.clone());
        q
    }

    /// Replaces a queue's arguments (SQS SetQueueAttributes), persisting them.
    pub fn set_queue_arguments(&self, name: &str, arguments: &Table) -> Result<(), BrokerError> {
        let q = self.queue(name)?;
        let args = QueueArgs::parse(arguments, name, &self.name)?;
        if args.grouped != q.args().grouped {
            return Err(BrokerError::OrderingFixed {
                queue: name.to_string(),
                vhost: self.name.clone(),
            });
        }
        if let (Some(store), true) = (&self.store, q.id != 0) {
            store
                .set_queue_args(&self.name, name, arguments)
                .map_err(store_err)?;
        }
        q.set_args(args, arguments.clone());
        Ok(())
    }
}

fn info(q: &Queue) -> QueueInfo {
    QueueInfo {
        name: q.name.clone(),
        messages: q.message_count(),
        consumers: q.consumer_count(),
    }
}
