//! SNS's lists for the admin API: `/api/sns/topics` (ARN, attributes as set,
//! tags, subscription counts) and `/api/sns/subscriptions` (protocol, endpoint,
//! pending or confirmed, attributes).

use super::Sns;
use switchboard_api::admin::Catalog;
use switchboard_api::{Table, Value};

fn strings<'a>(m: impl IntoIterator<Item = (&'a String, &'a String)>) -> Value {
    let mut t = Table::new();
    for (k, v) in m {
        t.insert(k.as_str().into(), Value::string(v.as_str()));
    }
    Value::Table(t)
}

impl Catalog for Sns {
    fn family(&self) -> &'static str {
        "sns"
    }

    fn rows(&self, list: &str) -> Option<Vec<Table>> {
        match list {
            "topics" => Some(
                self.topic_names()
                    .into_iter()
                    .filter_map(|name| {
                        let meta = self.topic(&name)?;
                        let subs = self.subs(Some(&name));
                        let pending = subs.iter().filter(|s| s.pending).count();
                        let mut row = Table::new();
                        row.insert("name".into(), Value::string(name.clone()));
                        row.insert("topic_arn".into(), Value::string(self.topic_arn(&name)));
                        row.insert("exchange".into(), Value::string(Self::exchange(&name)));
                        row.insert("attributes".into(), strings(&meta.attributes));
                        row.insert("tags".into(), strings(&meta.tags));
                        row.insert(
                            "subscriptions_confirmed".into(),
                            Value::I64((subs.len() - pending) as i64),
                        );
                        row.insert("subscriptions_pending".into(), Value::I64(pending as i64));
                        Some(row)
                    })
                    .collect(),
            ),
            "subscriptions" => Some(
                self.subs(None)
                    .into_iter()
                    .map(|s| {
                        let mut row = Table::new();
                        row.insert(
                            "subscription_arn".into(),
                            Value::string(format!("{}:{}", self.topic_arn(&s.topic), s.id)),
                        );
                        row.insert("topic_arn".into(), Value::string(self.topic_arn(&s.topic)));
                        row.insert("protocol".into(), Value::string(s.protocol.clone()));
                        row.insert("endpoint".into(), Value::string(s.endpoint.clone()));
                        row.insert("queue".into(), Value::string(s.queue.clone()));
                        row.insert("pending_confirmation".into(), Value::Bool(s.pending));
                        row.insert("attributes".into(), strings(&s.attributes));
                        row
                    })
                    .collect(),
            ),
            _ => None,
        }
    }
}
