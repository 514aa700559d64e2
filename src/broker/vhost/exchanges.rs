//! Declaring, deleting and binding exchanges; bindings restored at start-up.

use super::{Vhost, store_err};
use crate::broker::exchange::{Dest, Exchange, Kind};
use crate::broker::filter::{self, FilterPolicy};
use crate::store::{BindingDef, ExchangeDef};
use std::sync::Arc;
use switchboard_api::{BrokerError, Entity, ExchangeDecl, Mismatch, Table};

/// Durable end of a binding: both ends must be durable for the binding to be.
fn dest_durable(d: &Dest) -> bool {
    match d {
        Dest::Queue(q) => q.id != 0,
        Dest::Exchange(x) => x.durable,
    }
}

fn binding_def(source: &str, dest: &Dest, key: &str, args: &Table) -> BindingDef {
    let (dest_is_queue, dest) = match dest {
        Dest::Queue(q) => (true, q.name.clone()),
        Dest::Exchange(x) => (false, x.name.clone()),
    };
    BindingDef {
        source: source.to_string(),
        dest_is_queue,
        dest,
        key: key.to_string(),
        args: args.clone(),
    }
}

impl Vhost {
    pub fn declare_exchange(&self, d: &ExchangeDecl) -> Result<(), BrokerError> {
        if let Some(x) = self.exchanges().get(&d.name) {
            if d.passive {
                return Ok(());
            }
            let inequivalent = |what: &str, got: &str, cur: &str| {
                BrokerError::Inequivalent(Box::new(Mismatch {
                    entity: Entity::Exchange,
                    name: d.name.clone(),
                    vhost: self.name.clone(),
                    argument: what.to_string(),
                    received: Some(format!("'{got}'")),
                    current: Some(format!("'{cur}'")),
                }))
            };
            if x.kind.as_str() != d.kind {
                return Err(inequivalent("type", &d.kind, x.kind.as_str()));
            }
            if x.durable != d.durable {
                return Err(inequivalent(
                    "durable",
                    &d.durable.to_string(),
                    &x.durable.to_string(),
                ));
            }
            if x.auto_delete != d.auto_delete {
                return Err(inequivalent(
                    "auto_delete",
                    &d.auto_delete.to_string(),
                    &x.auto_delete.to_string(),
                ));
            }
            if x.internal != d.internal {
                return Err(inequivalent(
                    "internal",
                    &d.internal.to_string(),
                    &x.internal.to_string(),
                ));
            }
            return Ok(());
        }
        if d.passive {
            return Err(BrokerError::no_exchange(&d.name, &self.name));
        }
        if d.name.starts_with("amq.") {
            return Err(BrokerError::ReservedName {
                entity: Entity::Exchange,
                name: d.name.clone(),
            });
        }
        let kind = Kind::parse(&d.kind).ok_or_else(|| BrokerError::UnknownExchangeType {
            kind: d.kind.clone(),
        })?;
        if let (Some(store), true) = (&self.store, d.durable) {
            let def = ExchangeDef {
                kind: kind.as_str().to_string(),
                auto_delete: d.auto_delete,
                internal: d.internal,
                args: d.arguments.clone(),
            };
            store
                .put_exchange(&self.name, &d.name, def)
                .map_err(store_err)?;
        }
        self.restore_exchange(
            &d.name,
            kind,
            d.durable,
            d.auto_delete,
            d.internal,
            d.arguments.clone(),
        );
        Ok(())
    }

    /// Adds an exchange without persisting it (start-up, or after persisting).
    pub fn restore_exchange(
        &self,
        name: &str,
        kind: Kind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        args: Table,
    ) {
        let x = Exchange::new(name, kind, durable, auto_delete, internal, args);
        self.exchanges_mut()
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(x));
    }

    pub fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<(), BrokerError> {
        if name.is_empty() || name.starts_with("amq.") {
            return Err(BrokerError::BuiltInExchange {
                name: Some(name.to_string()),
            });
        }
        // Deleting what does not exist succeeds, as in RabbitMQ.
        let Ok(x) = self.exchange(name) else {
            return Ok(());
        };
        if if_unused && x.has_bindings() {
            return Err(BrokerError::InUse {
                entity: Entity::Exchange,
                name: name.to_string(),
                vhost: self.name.clone(),
            });
        }
        if let (Some(store), true) = (&self.store, x.durable) {
            store.remove_exchange(&self.name, name).map_err(store_err)?;
        }
        self.exchanges_mut().remove(name);
        let dest = Dest::Exchange(x);
        for other in self.exchanges().values() {
            other.unbind_all_to(&dest);
        }
        Ok(())
    }

    fn check_bindable_source(&self, source: &str) -> Result<Arc<Exchange>, BrokerError> {
        if source.is_empty() {
            return Err(BrokerError::BuiltInExchange { name: None });
        }
        self.exchange(source)
    }

    pub fn bind(
        &self,
        source: &str,
        dest: Dest,
        key: &str,
        args: &Table,
    ) -> Result<(), BrokerError> {
        let x = self.check_bindable_source(source)?;
        // Validated before persisting: a stored policy must be one that compiles.
        let policy = filter::from_args(args)
            .map_err(|reason| BrokerError::InvalidFilterPolicy { reason })?;
        if let (Some(store), true) = (&self.store, x.durable && dest_durable(&dest)) {
            store
                .put_binding(&self.name, binding_def(source, &dest, key, args))
                .map_err(store_err)?;
        }
        x.bind(dest, key, args, policy);
        Ok(())
    }

    pub fn unbind(
        &self,
        source: &str,
        dest: Dest,
        key: &str,
        args: &Table,
    ) -> Result<(), BrokerError> {
        let x = self.check_bindable_source(source)?;
        if let (Some(store), true) = (&self.store, x.durable && dest_durable(&dest)) {
            store
                .remove_binding(&self.name, &binding_def(source, &dest, key, args))
                .map_err(store_err)?;
        }
        // Unbinding something that is not bound succeeds, as in RabbitMQ.
        x.unbind(&dest, key, args);
        self.maybe_auto_delete_exchange(&x);
        Ok(())
    }

    pub(super) fn maybe_auto_delete_exchange(&self, x: &Arc<Exchange>) {
        if x.auto_delete && !x.has_bindings() {
            let _ = self.delete_exchange(&x.name, true);
        }
    }

    /// Recreates a durable binding at start-up; a missing end is skipped.
    pub fn restore_binding(&self, b: &BindingDef) {
        let Ok(x) = self.exchange(&b.source) else {
            return;
        };
        let dest = if b.dest_is_queue {
            self.queue(&b.dest).map(Dest::Queue)
        } else {
            self.exchange(&b.dest).map(Dest::Exchange)
        };
        let Ok(dest) = dest else { return };
        let policy = filter::from_args(&b.args).unwrap_or_else(|reason| {
            // Only a change in the validation rules gets here. Keeping the binding
            // (it is the subscription) but delivering nothing through it is the safe
            // side: without its filter it would flood the subscriber with what it
            // asked not to get.
            tracing::warn!(
                vhost = %self.name,
                source = %b.source,
                dest = %b.dest,
                %reason,
                "stored binding has an invalid filter policy; it will deliver nothing"
            );
            Some(FilterPolicy::reject_all())
        });
        x.bind(dest, &b.key, &b.args, policy);
    }
}
