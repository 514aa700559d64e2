//! SQS's list for the admin API (`/api/sqs/queues`): every SQS queue of every
//! region with its URL-free identity (region, name, ARN) and the attributes
//! GetQueueAttributes would answer, counts included.

use super::Sqs;
use switchboard_api::admin::Catalog;
use switchboard_api::{Table, Value};

impl Catalog for Sqs {
    fn family(&self) -> &'static str {
        "sqs"
    }

    fn rows(&self, list: &str) -> Option<Vec<Table>> {
        if list != "queues" {
            return None;
        }
        let rows = self
            .broker
            .list_queues(&self.cfg.vhost)
            .into_iter()
            .filter(|core| self.is_sqs_queue(core))
            .map(|core| {
                let (region, name) = self.split_core(&core);
                let mut row = Table::new();
                row.insert("name".into(), Value::string(name));
                row.insert("region".into(), Value::string(region));
                row.insert("vhost".into(), Value::string(self.cfg.vhost.clone()));
                row.insert("queue".into(), Value::string(core.clone()));
                let mut attrs = Table::new();
                for (k, v) in self.attribute_values(&core, &self.meta(&core)) {
                    attrs.insert(k.into(), Value::string(v));
                }
                row.insert("attributes".into(), Value::Table(attrs));
                row
            })
            .collect();
        Some(rows)
    }
}
