//! AMQP field tables and basic properties ⇄ the core's [`Table`] and [`Properties`].

use amq_protocol::protocol::BasicProperties;
use amq_protocol::types::{
    AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString, ShortString,
};
use bytes::Bytes;
use switchboard_api::{Properties, Table, Value};

pub fn value_from_amqp(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(n) => Value::I8(*n),
        AMQPValue::ShortShortUInt(n) => Value::U8(*n),
        AMQPValue::ShortInt(n) => Value::I16(*n),
        AMQPValue::ShortUInt(n) => Value::U16(*n),
        AMQPValue::LongInt(n) => Value::I32(*n),
        AMQPValue::LongUInt(n) => Value::U32(*n),
        AMQPValue::LongLongInt(n) => Value::I64(*n),
        AMQPValue::Float(f) => Value::F32(*f),
        AMQPValue::Double(f) => Value::F64(*f),
        AMQPValue::DecimalValue(d) => Value::Decimal {
            scale: d.scale,
            value: d.value,
        },
        AMQPValue::ShortString(s) => Value::ShortStr(s.as_str().to_string()),
        AMQPValue::LongString(s) => Value::Str(Bytes::copy_from_slice(s.as_bytes())),
        AMQPValue::FieldArray(a) => {
            Value::Array(a.as_slice().iter().map(value_from_amqp).collect())
        }
        AMQPValue::Timestamp(t) => Value::Timestamp(*t),
        AMQPValue::FieldTable(t) => Value::Table(table_from_amqp(t)),
        AMQPValue::ByteArray(b) => Value::Bytes(Bytes::copy_from_slice(b.as_slice())),
        AMQPValue::Void => Value::Void,
    }
}

pub fn value_to_amqp(v: &Value) -> AMQPValue {
    match v {
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::I8(n) => AMQPValue::ShortShortInt(*n),
        Value::U8(n) => AMQPValue::ShortShortUInt(*n),
        Value::I16(n) => AMQPValue::ShortInt(*n),
        Value::U16(n) => AMQPValue::ShortUInt(*n),
        Value::I32(n) => AMQPValue::LongInt(*n),
        Value::U32(n) => AMQPValue::LongUInt(*n),
        Value::I64(n) => AMQPValue::LongLongInt(*n),
        Value::F32(f) => AMQPValue::Float(*f),
        Value::F64(f) => AMQPValue::Double(*f),
        Value::Decimal { scale, value } => AMQPValue::DecimalValue(DecimalValue {
            scale: *scale,
            value: *value,
        }),
        Value::ShortStr(s) => AMQPValue::ShortString(short(s)),
        Value::Str(b) => AMQPValue::LongString(LongString::from(b.to_vec())),
        Value::Array(a) => AMQPValue::FieldArray(FieldArray::from(
            a.iter().map(value_to_amqp).collect::<Vec<_>>(),
        )),
        Value::Timestamp(t) => AMQPValue::Timestamp(*t),
        Value::Table(t) => AMQPValue::FieldTable(table_to_amqp(t)),
        Value::Bytes(b) => AMQPValue::ByteArray(ByteArray::from(b.to_vec())),
        Value::Void => AMQPValue::Void,
    }
}

pub fn table_from_amqp(t: &FieldTable) -> Table {
    t.inner()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), value_from_amqp(v)))
        .collect()
}

pub fn table_to_amqp(t: &Table) -> FieldTable {
    let mut out = FieldTable::default();
    for (k, v) in t {
        out.insert(short(k), value_to_amqp(v));
    }
    out
}

/// Short strings are at most 255 bytes; longer text from other protocols is cut at
/// a character boundary rather than producing an unencodable frame.
pub fn short(s: &str) -> ShortString {
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    ShortString::from(&s[..end])
}

fn text(s: &Option<ShortString>) -> Option<String> {
    s.as_ref().map(|s| s.as_str().to_string())
}

pub fn properties_from_amqp(p: &BasicProperties) -> Properties {
    Properties {
        content_type: text(p.content_type()),
        content_encoding: text(p.content_encoding()),
        headers: p.headers().as_ref().map(table_from_amqp),
        delivery_mode: *p.delivery_mode(),
        priority: *p.priority(),
        correlation_id: text(p.correlation_id()),
        reply_to: text(p.reply_to()),
        expiration: text(p.expiration()),
        message_id: text(p.message_id()),
        timestamp: *p.timestamp(),
        kind: text(p.kind()),
        user_id: text(p.user_id()),
        app_id: text(p.app_id()),
        cluster_id: text(p.cluster_id()),
    }
}

pub fn properties_to_amqp(p: &Properties) -> BasicProperties {
    let mut b = BasicProperties::default();
    let s = |v: &Option<String>| v.as_deref().map(short);
    if let Some(v) = s(&p.content_type) {
        b = b.with_content_type(v);
    }
    if let Some(v) = s(&p.content_encoding) {
        b = b.with_content_encoding(v);
    }
    if let Some(h) = &p.headers {
        b = b.with_headers(table_to_amqp(h));
    }
    if let Some(v) = p.delivery_mode {
        b = b.with_delivery_mode(v);
    }
    if let Some(v) = p.priority {
        b = b.with_priority(v);
    }
    if let Some(v) = s(&p.correlation_id) {
        b = b.with_correlation_id(v);
    }
    if let Some(v) = s(&p.reply_to) {
        b = b.with_reply_to(v);
    }
    if let Some(v) = s(&p.expiration) {
        b = b.with_expiration(v);
    }
    if let Some(v) = s(&p.message_id) {
        b = b.with_message_id(v);
    }
    if let Some(v) = p.timestamp {
        b = b.with_timestamp(v);
    }
    if let Some(v) = s(&p.kind) {
        b = b.with_type(v);
    }
    if let Some(v) = s(&p.user_id) {
        b = b.with_user_id(v);
    }
    if let Some(v) = s(&p.app_id) {
        b = b.with_app_id(v);
    }
    if let Some(v) = s(&p.cluster_id) {
        b = b.with_cluster_id(v);
    }
    b
}
