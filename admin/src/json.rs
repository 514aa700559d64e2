//! Argument tables and message properties as JSON, the way RabbitMQ's management
//! API writes and reads them.

use serde_json::{Map, Value as Json, json};
use switchboard_api::{Properties, Table, Value};

pub fn value_to_json(v: &Value) -> Json {
    match v {
        Value::Bool(b) => json!(b),
        Value::F32(f) => json!(f),
        Value::F64(f) => json!(f),
        Value::Decimal { scale, value } => json!(f64::from(*value) / 10f64.powi(i32::from(*scale))),
        Value::ShortStr(s) => json!(s),
        Value::Str(b) | Value::Bytes(b) => json!(String::from_utf8_lossy(b)),
        Value::Array(a) => Json::Array(a.iter().map(value_to_json).collect()),
        Value::Table(t) => table_to_json(t),
        Value::Void => Json::Null,
        other => other.as_i64().map_or(Json::Null, |i| json!(i)),
    }
}

pub fn table_to_json(t: &Table) -> Json {
    Json::Object(
        t.iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect(),
    )
}

/// JSON numbers become 64-bit integers when whole (so `x-max-length: 10` is an
/// integer argument, as from an AMQP client), strings long strings.
pub fn json_to_value(j: &Json) -> Value {
    match j {
        Json::Null => Value::Void,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::I64(i),
            None => Value::F64(n.as_f64().unwrap_or(0.0)),
        },
        Json::String(s) => Value::string(s.clone()),
        Json::Array(a) => Value::Array(a.iter().map(json_to_value).collect()),
        Json::Object(o) => Value::Table(json_to_table(o)),
    }
}

pub fn json_to_table(o: &Map<String, Json>) -> Table {
    o.iter()
        .map(|(k, v)| (k.clone(), json_to_value(v)))
        .collect()
}

/// An `arguments` field: an object, or absent/null/`""` (rabbitmqadmin's default).
pub fn arguments(j: Option<&Json>) -> Result<Table, String> {
    match j {
        None | Some(Json::Null) => Ok(Table::new()),
        Some(Json::String(s)) if s.is_empty() => Ok(Table::new()),
        Some(Json::Object(o)) => Ok(json_to_table(o)),
        Some(_) => Err("arguments must be an object".into()),
    }
}

pub fn properties_to_json(p: &Properties) -> Json {
    let mut m = Map::new();
    let mut put = |k: &str, v: Option<Json>| {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    };
    put("content_type", p.content_type.clone().map(Json::from));
    put(
        "content_encoding",
        p.content_encoding.clone().map(Json::from),
    );
    put("headers", p.headers.as_ref().map(table_to_json));
    put("delivery_mode", p.delivery_mode.map(Json::from));
    put("priority", p.priority.map(Json::from));
    put("correlation_id", p.correlation_id.clone().map(Json::from));
    put("reply_to", p.reply_to.clone().map(Json::from));
    put("expiration", p.expiration.clone().map(Json::from));
    put("message_id", p.message_id.clone().map(Json::from));
    put("timestamp", p.timestamp.map(Json::from));
    put("type", p.kind.clone().map(Json::from));
    put("user_id", p.user_id.clone().map(Json::from));
    put("app_id", p.app_id.clone().map(Json::from));
    Json::Object(m)
}

/// Message properties as the publish endpoint takes them; unknown keys are refused
/// as RabbitMQ does.
pub fn json_to_properties(o: &Map<String, Json>) -> Result<Properties, String> {
    let mut p = Properties::default();
    let text = |v: &Json| -> Result<String, String> {
        match v {
            Json::String(s) => Ok(s.clone()),
            Json::Number(n) => Ok(n.to_string()),
            _ => Err("property values must be strings or numbers".into()),
        }
    };
    let small = |k: &str, v: &Json| -> Result<u8, String> {
        let n = match v {
            Json::Number(n) => n.as_u64(),
            Json::String(s) => s.parse().ok(),
            _ => None,
        };
        n.and_then(|n| u8::try_from(n).ok())
            .ok_or_else(|| format!("{k} must be a small integer"))
    };
    for (k, v) in o {
        match k.as_str() {
            "content_type" => p.content_type = Some(text(v)?),
            "content_encoding" => p.content_encoding = Some(text(v)?),
            "headers" => match v {
                Json::Object(h) => p.headers = Some(json_to_table(h)),
                _ => return Err("headers must be an object".into()),
            },
            "delivery_mode" => p.delivery_mode = Some(small(k, v)?),
            "priority" => p.priority = Some(small(k, v)?),
            "correlation_id" => p.correlation_id = Some(text(v)?),
            "reply_to" => p.reply_to = Some(text(v)?),
            "expiration" => p.expiration = Some(text(v)?),
            "message_id" => p.message_id = Some(text(v)?),
            "timestamp" => {
                p.timestamp = Some(
                    v.as_u64()
                        .ok_or_else(|| "timestamp must be an integer".to_string())?,
                )
            }
            "type" => p.kind = Some(text(v)?),
            "user_id" => p.user_id = Some(text(v)?),
            "app_id" => p.app_id = Some(text(v)?),
            other => return Err(format!("unknown property {other}")),
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_round_trip_through_json() {
        let j = json!({"x-max-length": 10, "x-queue-mode": "lazy", "x-f": 1.5, "nested": {"a": [true]}});
        let t = arguments(Some(&j)).unwrap_or_default();
        assert_eq!(t.get("x-max-length"), Some(&Value::I64(10)));
        assert_eq!(table_to_json(&t), j);
        assert!(
            arguments(Some(&json!("")))
                .map(|t| t.is_empty())
                .unwrap_or(false)
        );
        assert!(arguments(Some(&json!([1]))).is_err());
    }

    #[test]
    fn properties_round_trip_and_unknown_keys_are_refused() {
        let j = json!({"delivery_mode": 2, "headers": {"k": "v"}, "content_type": "text/plain"});
        let o = j.as_object().cloned().unwrap_or_default();
        let p = json_to_properties(&o).unwrap_or_default();
        assert_eq!(p.delivery_mode, Some(2));
        assert_eq!(properties_to_json(&p), j);
        let bad = json!({"colour": "red"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert!(json_to_properties(&bad).is_err());
    }
}
