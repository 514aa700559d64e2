//! Building the dead-lettered copy of a message, with RabbitMQ's `x-death` history.

use super::entry::DeathReason;
use switchboard_api::{Message, Table, Value, wall_secs};

/// The message to publish to the dead-letter exchange. `x-death` is an array of
/// tables, most recent first, one per (queue, reason) with a `count`; the
/// `x-first-death-*` headers are set once, `x-last-death-*` every time.
pub fn dead_letter_message(
    msg: &Message,
    queue: &str,
    reason: DeathReason,
    dl_routing_key: Option<&str>,
) -> Message {
    let mut m = msg.clone();
    let now = wall_secs();
    let original_expiration = m.properties.expiration.take();
    let headers = m.properties.headers.get_or_insert_with(Table::new);
    let mut deaths: Vec<Value> = match headers.remove("x-death") {
        Some(Value::Array(v)) => v,
        _ => Vec::new(),
    };
    let same = |v: &Value| match v {
        Value::Table(t) => {
            t.get("queue").and_then(Value::as_str) == Some(queue)
                && t.get("reason").and_then(Value::as_str) == Some(reason.as_str())
        }
        _ => false,
    };
    let entry = match deaths.iter().position(same) {
        Some(i) => {
            let mut v = deaths.remove(i);
            if let Value::Table(t) = &mut v {
                let count = t.get("count").and_then(Value::as_i64).unwrap_or(0) + 1;
                t.insert("count".into(), Value::I64(count));
                t.insert("time".into(), Value::Timestamp(now));
            }
            v
        }
        None => {
            let mut t = Table::new();
            t.insert("count".into(), Value::I64(1));
            t.insert("reason".into(), Value::string(reason.as_str()));
            t.insert("queue".into(), Value::string(queue));
            t.insert("time".into(), Value::Timestamp(now));
            t.insert("exchange".into(), Value::string(msg.exchange.as_str()));
            t.insert(
                "routing-keys".into(),
                Value::Array(vec![Value::string(msg.routing_key.as_str())]),
            );
            if let Some(exp) = &original_expiration {
                t.insert("original-expiration".into(), Value::string(exp.as_str()));
            }
            Value::Table(t)
        }
    };
    deaths.insert(0, entry);
    headers.insert("x-death".into(), Value::Array(deaths));
    if !headers.contains_key("x-first-death-reason") {
        headers.insert(
            "x-first-death-reason".into(),
            Value::string(reason.as_str()),
        );
        headers.insert("x-first-death-queue".into(), Value::string(queue));
        headers.insert(
            "x-first-death-exchange".into(),
            Value::string(msg.exchange.as_str()),
        );
    }
    headers.insert("x-last-death-reason".into(), Value::string(reason.as_str()));
    headers.insert("x-last-death-queue".into(), Value::string(queue));
    headers.insert(
        "x-last-death-exchange".into(),
        Value::string(msg.exchange.as_str()),
    );
    if let Some(key) = dl_routing_key {
        m.routing_key = key.to_string();
    }
    m
}

/// True if re-publishing a dead letter into `queue` would loop forever: the message
/// already died there and no death in its history was a client's rejection
/// (RabbitMQ's cycle rule).
pub fn is_cycle(msg: &Message, queue: &str) -> bool {
    let Some(Value::Array(deaths)) = msg
        .properties
        .headers
        .as_ref()
        .and_then(|h| h.get("x-death"))
    else {
        return false;
    };
    let mut seen = false;
    for d in deaths {
        let Value::Table(t) = d else { continue };
        if t.get("reason").and_then(Value::as_str) == Some("rejected") {
            return false;
        }
        if t.get("queue").and_then(Value::as_str) == Some(queue) {
            seen = true;
        }
    }
    seen
}
