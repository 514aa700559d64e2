//! STOMP headers ⇄ core message properties (the table in docs/PROTOCOL_MAPPING.md).
//! RabbitMQ's names where it has them (`persistent`, `expiration`, `amqp-message-id`,
//! `content-type`, `correlation-id`, `reply-to`, `priority`, `type`, `timestamp`,
//! `user-id`, `app-id`), ActiveMQ's where it differs (`expires` as an absolute time,
//! `JMSXGroupID` as the ordering group). Every other header becomes an AMQP header
//! and back; structured header values (an AMQP table or array, like `x-death`)
//! travel as JSON text, since STOMP headers are strings.

use crate::encode::Decimal;
use crate::frame::boolean;
use crate::inbound::Inbound;
use std::fmt::Write;
use switchboard_api::{Message, Table, Value};

/// Headers of SEND that are about the frame or the delivery, not the message.
const FRAME_HEADERS: &[&str] = &[
    "destination",
    "receipt",
    "transaction",
    "content-length",
    "message-id",
    "subscription",
    "ack",
    "redelivered",
    "id",
    "prefetch-count",
    "activemq.prefetchSize",
];

/// Builds the message for a SEND. `reply_to` has already been resolved (a
/// `/temp-queue/` replaced by the connection's private queue).
pub fn to_message(f: &Inbound, exchange: &str, key: &str, reply_to: Option<String>) -> Message {
    let mut m = Message::new(exchange, key, f.body.clone());
    let p = &mut m.properties;
    let mut headers = Table::new();
    // Repeated headers: the first wins (STOMP 1.2). A set only for frames with
    // many headers; for the usual handful, looking back is cheaper.
    let mut seen = (f.header_count() > 16).then(std::collections::HashSet::new);
    for (i, (k, v)) in f.headers().enumerate() {
        let repeat = match &mut seen {
            Some(seen) => !seen.insert(k),
            None => f.is_repeat(i),
        };
        if repeat || FRAME_HEADERS.contains(&k) {
            continue;
        }
        match k {
            "content-type" => p.content_type = Some(v.to_string()),
            "content-encoding" => p.content_encoding = Some(v.to_string()),
            "correlation-id" => p.correlation_id = Some(v.to_string()),
            "reply-to" => {}
            "persistent" => {
                p.delivery_mode = Some(if boolean(v) == Some(true) { 2 } else { 1 });
            }
            "priority" => p.priority = v.parse::<u8>().ok(),
            "expiration" => p.expiration = v.parse::<u64>().ok().map(|n| n.to_string()),
            // ActiveMQ: an absolute time in ms; 0 means never.
            "expires" => {
                if let Ok(at) = v.parse::<u64>()
                    && at != 0
                {
                    p.expiration = Some(at.saturating_sub(switchboard_api::wall_ms()).to_string());
                }
            }
            "amqp-message-id" => p.message_id = Some(v.to_string()),
            "type" => p.kind = Some(v.to_string()),
            "timestamp" => p.timestamp = v.parse().ok(),
            "user-id" => p.user_id = Some(v.to_string()),
            "app-id" => p.app_id = Some(v.to_string()),
            "JMSXGroupID" => {
                m.group_id = Some(v.to_string());
                headers.insert(k.to_string(), Value::string(v));
            }
            _ => {
                headers.insert(k.to_string(), Value::string(v));
            }
        }
    }
    m.properties.reply_to = reply_to;
    if !headers.is_empty() {
        m.properties.headers = Some(headers);
    }
    m
}

/// The header a core header value becomes: text as is, numbers and booleans
/// printed, tables and arrays as JSON.
pub fn header_text(v: &Value) -> String {
    match v {
        Value::Str(b) | Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::ShortStr(s) => s.clone(),
        other => {
            let mut s = String::new();
            json(other, &mut s);
            s
        }
    }
}

fn json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json(v: &Value, out: &mut String) {
    let _ = match v {
        Value::Bool(b) => write!(out, "{b}"),
        Value::I8(n) => write!(out, "{n}"),
        Value::U8(n) => write!(out, "{n}"),
        Value::I16(n) => write!(out, "{n}"),
        Value::U16(n) => write!(out, "{n}"),
        Value::I32(n) => write!(out, "{n}"),
        Value::U32(n) => write!(out, "{n}"),
        Value::I64(n) => write!(out, "{n}"),
        Value::Timestamp(n) => write!(out, "{n}"),
        Value::F32(n) if n.is_finite() => write!(out, "{n}"),
        Value::F64(n) if n.is_finite() => write!(out, "{n}"),
        Value::F32(_) | Value::F64(_) | Value::Void => write!(out, "null"),
        Value::Decimal { scale, value } => {
            write!(out, "{}", f64::from(*value) / 10f64.powi(i32::from(*scale)))
        }
        Value::ShortStr(s) => {
            json_str(s, out);
            Ok(())
        }
        Value::Str(b) | Value::Bytes(b) => {
            json_str(&String::from_utf8_lossy(b), out);
            Ok(())
        }
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json(x, out);
            }
            out.push(']');
            Ok(())
        }
        Value::Table(t) => {
            out.push('{');
            for (i, (k, x)) in t.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_str(k, out);
                out.push(':');
                json(x, out);
            }
            out.push('}');
            Ok(())
        }
    };
}

/// The MESSAGE headers describing a message (frame headers such as `subscription`
/// and `message-id` are the session's).
pub fn message_headers(m: &Message, mut put: impl FnMut(&str, &str)) {
    let p = &m.properties;
    if let Some(h) = &p.headers {
        for (k, v) in h {
            match v {
                Value::Str(b) | Value::Bytes(b) => put(k, &String::from_utf8_lossy(b)),
                Value::ShortStr(s) => put(k, s),
                other => put(k, &header_text(other)),
            }
        }
    }
    if let Some(v) = &p.content_type {
        put("content-type", v);
    }
    if let Some(v) = &p.content_encoding {
        put("content-encoding", v);
    }
    if let Some(v) = &p.correlation_id {
        put("correlation-id", v);
    }
    if let Some(v) = &p.reply_to {
        // A bare queue name (what AMQP clients put there) as a STOMP destination.
        if v.starts_with('/') {
            put("reply-to", v);
        } else {
            put("reply-to", &format!("/reply-queue/{v}"));
        }
    }
    if p.persistent() {
        put("persistent", "true");
    }
    if let Some(v) = p.priority {
        put("priority", Decimal::new(v.into()).as_str());
    }
    if let Some(v) = &p.expiration {
        put("expiration", v);
    }
    if let Some(v) = &p.message_id {
        put("amqp-message-id", v);
    }
    if let Some(v) = &p.kind {
        put("type", v);
    }
    if let Some(v) = p.timestamp {
        put("timestamp", Decimal::new(v).as_str());
    }
    if let Some(v) = &p.user_id {
        put("user-id", v);
    }
    if let Some(v) = &p.app_id {
        put("app-id", v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Command, Frame};

    #[test]
    fn send_headers_become_properties_and_back() {
        let f = Frame::new(Command::Send)
            .with_header("destination", "/queue/q")
            .with_header("content-type", "text/plain")
            .with_header("persistent", "true")
            .with_header("priority", "7")
            .with_header("correlation-id", "c-1")
            .with_header("custom", "a")
            .with_header("custom", "ignored")
            .with_header("receipt", "r1");
        let m = to_message(&Inbound::of(&f), "", "q", Some("x".into()));
        assert!(m.properties.persistent());
        assert_eq!(m.properties.priority, Some(7));
        let h = m.properties.headers.as_ref().unwrap();
        assert_eq!(h.get("custom"), Some(&Value::string("a")));
        assert!(!h.contains_key("receipt") && !h.contains_key("destination"));
        let mut out: Vec<(String, String)> = Vec::new();
        message_headers(&m, |k, v| out.push((k.into(), v.into())));
        assert!(out.contains(&("custom".into(), "a".into())));
        assert!(out.contains(&("reply-to".into(), "/reply-queue/x".into())));
        assert!(out.contains(&("persistent".into(), "true".into())));
    }

    #[test]
    fn structured_headers_are_json() {
        let mut death = Table::new();
        death.insert("count".into(), Value::I64(1));
        death.insert("reason".into(), Value::string("rejected"));
        let v = Value::Array(vec![Value::Table(death)]);
        assert_eq!(header_text(&v), r#"[{"count":1,"reason":"rejected"}]"#);
    }

    #[test]
    fn persistent_reads_python_booleans() {
        for (v, persistent) in [
            ("True", true),
            ("true", true),
            ("False", false),
            ("yes", false),
        ] {
            let f = Frame::new(Command::Send)
                .with_header("destination", "/queue/q")
                .with_header("persistent", v);
            let m = to_message(&Inbound::of(&f), "", "q", None);
            assert_eq!(m.properties.persistent(), persistent, "persistent:{v}");
        }
    }
}
