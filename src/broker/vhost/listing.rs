//! The vhost's objects as the admin API lists them (`switchboard_api::admin`).

use super::Vhost;
use crate::broker::exchange::Dest;
use switchboard_api::QueueHandle;
use switchboard_api::Table;
use switchboard_api::admin::{BindingInfo, DestinationKind, ExchangeInfo, QueueSummary};

impl Vhost {
    pub fn exchange_infos(&self) -> Vec<ExchangeInfo> {
        let mut out: Vec<ExchangeInfo> = self
            .exchanges()
            .values()
            .map(|x| ExchangeInfo {
                name: x.name.clone(),
                kind: x.kind.as_str().to_string(),
                durable: x.durable,
                auto_delete: x.auto_delete,
                internal: x.internal,
                arguments: x.args.clone(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    pub fn queue_summaries(&self) -> Vec<QueueSummary> {
        // Snapshot the table first: a queue's stats take its own lock, which must
        // not be taken under the vhost's.
        let queues: Vec<_> = self.queues().values().cloned().collect();
        let mut out: Vec<QueueSummary> = queues
            .iter()
            .map(|q| QueueSummary {
                name: q.name.clone(),
                durable: q.durable,
                auto_delete: q.auto_delete,
                exclusive: q.exclusive_owner.is_some(),
                arguments: q.raw_args(),
                stats: q.stats(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    pub fn consumer_infos(&self) -> Vec<switchboard_api::admin::ConsumerInfo> {
        let queues: Vec<_> = self.queues().values().cloned().collect();
        let mut out: Vec<_> = queues.iter().flat_map(|q| q.consumer_infos()).collect();
        out.sort_by(|a, b| (&a.queue, a.tag).cmp(&(&b.queue, b.tag)));
        out
    }

    /// The default exchange's implicit binding of every queue first, as RabbitMQ
    /// lists them, then each exchange's bindings by source name.
    pub fn binding_infos(&self) -> Vec<BindingInfo> {
        let mut queues = self.queue_names();
        queues.sort();
        let mut out: Vec<BindingInfo> = queues
            .into_iter()
            .map(|q| BindingInfo {
                source: String::new(),
                destination: q.clone(),
                destination_kind: DestinationKind::Queue,
                routing_key: q,
                arguments: Table::new(),
            })
            .collect();
        let mut exchanges: Vec<_> = self.exchanges().values().cloned().collect();
        exchanges.sort_by(|a, b| a.name.cmp(&b.name));
        for x in exchanges.iter().filter(|x| !x.name.is_empty()) {
            for (dest, key, args) in x.binding_list() {
                let (destination, destination_kind) = match dest {
                    Dest::Queue(q) => (q.name.clone(), DestinationKind::Queue),
                    Dest::Exchange(e) => (e.name.clone(), DestinationKind::Exchange),
                };
                out.push(BindingInfo {
                    source: x.name.clone(),
                    destination,
                    destination_kind,
                    routing_key: key,
                    arguments: args,
                });
            }
        }
        out
    }
}
