//! MQTT's lists for the admin API: persistent sessions (client id, subscriptions,
//! messages waiting in the session queue) and retained messages (topic, size),
//! read from the key spaces the sessions keep them in.

use crate::session::SESSION_PREFIX;
use std::sync::Arc;
use switchboard_api::admin::Catalog;
use switchboard_api::{Broker, Table, Value};

pub struct MqttCatalog {
    pub broker: Arc<dyn Broker>,
    pub vhost: String,
}

impl Catalog for MqttCatalog {
    fn family(&self) -> &'static str {
        "mqtt"
    }

    fn rows(&self, list: &str) -> Option<Vec<Table>> {
        match list {
            "sessions" => Some(self.sessions()),
            "retained" => Some(self.retained()),
            _ => None,
        }
    }
}

impl MqttCatalog {
    fn sessions(&self) -> Vec<Table> {
        let b = &self.broker;
        b.keyed_scan(&self.vhost, crate::SESSIONS, &mut |_| true)
            .into_iter()
            .map(|(client_id, m)| {
                let mut row = Table::new();
                let queue = format!("{SESSION_PREFIX}{client_id}");
                let subs: Vec<Value> = m
                    .properties
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("subs"))
                    .and_then(|v| match v {
                        Value::Array(a) => Some(a.clone()),
                        _ => None,
                    })
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|s| match s {
                        Value::Table(t) => {
                            let f = t.get("f").and_then(Value::as_str)?.to_string();
                            let qos = match t.get("o") {
                                Some(Value::U8(o)) => o & 3,
                                _ => 0,
                            };
                            let mut out = Table::new();
                            out.insert("filter".into(), Value::string(f));
                            out.insert("qos".into(), Value::U8(qos));
                            Some(Value::Table(out))
                        }
                        _ => None,
                    })
                    .collect();
                let stats = b.queue_handle(&self.vhost, &queue).map(|q| q.stats());
                row.insert("client_id".into(), Value::string(client_id));
                row.insert("vhost".into(), Value::string(self.vhost.clone()));
                row.insert("queue".into(), Value::string(queue));
                row.insert("subscriptions".into(), Value::Array(subs));
                if let Some(s) = stats {
                    row.insert("messages".into(), Value::U32(s.ready + s.in_flight));
                    row.insert("consumers".into(), Value::U32(s.consumers));
                }
                row
            })
            .collect()
    }

    fn retained(&self) -> Vec<Table> {
        self.broker
            .keyed_scan(&self.vhost, crate::RETAINED, &mut |_| true)
            .into_iter()
            .map(|(key, m)| {
                let mut row = Table::new();
                row.insert(
                    "topic".into(),
                    Value::string(crate::topic::from_routing_key(&key)),
                );
                row.insert("vhost".into(), Value::string(self.vhost.clone()));
                row.insert("payload_bytes".into(), Value::I64(m.body.len() as i64));
                let qos = m
                    .properties
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(crate::convert::H_QOS))
                    .and_then(|v| match v {
                        Value::U8(q) => Some(*q),
                        _ => None,
                    })
                    .unwrap_or(0);
                row.insert("qos".into(), Value::U8(qos));
                row
            })
            .collect()
    }
}
