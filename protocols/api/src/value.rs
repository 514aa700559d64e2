use bytes::Bytes;
use std::collections::BTreeMap;

/// Header/argument table. Ordered so that encoding is deterministic.
pub type Table = BTreeMap<String, Value>;

/// A typed header value. The variants are the AMQP 0-9-1 field types (the richest of
/// our protocols) so that AMQP → core → AMQP is lossless; other protocols map to the
/// subset they have (strings, numbers, bytes).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Bool(bool),
    I8(i8),
    U8(u8),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    F32(f32),
    F64(f64),
    Decimal {
        scale: u8,
        value: u32,
    },
    /// AMQP short string (deprecated in field tables but still sent by some clients).
    ShortStr(String),
    /// AMQP long string: bytes, usually UTF-8.
    Str(Bytes),
    Array(Vec<Value>),
    Timestamp(u64),
    Table(Table),
    Bytes(Bytes),
    Void,
}

impl Value {
    /// A string value from text.
    pub fn string(s: impl Into<String>) -> Value {
        Value::Str(Bytes::from(s.into()))
    }

    /// The value as text if it is a string type holding UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::ShortStr(s) => Some(s),
            Value::Str(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The value as an integer if it is any integer type (AMQP clients disagree on
    /// which width to send for arguments such as `x-max-length`).
    pub fn as_i64(&self) -> Option<i64> {
        Some(match *self {
            Value::I8(v) => v.into(),
            Value::U8(v) => v.into(),
            Value::I16(v) => v.into(),
            Value::U16(v) => v.into(),
            Value::I32(v) => v.into(),
            Value::U32(v) => v.into(),
            Value::I64(v) => v,
            Value::Timestamp(v) => i64::try_from(v).ok()?,
            _ => return None,
        })
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// Loose equality used by headers exchanges: strings compare by content whatever
    /// their AMQP width, integers by value.
    pub fn matches(&self, other: &Value) -> bool {
        if let (Some(a), Some(b)) = (self.as_str(), other.as_str()) {
            return a == b;
        }
        if let (Some(a), Some(b)) = (self.as_i64(), other.as_i64()) {
            return a == b;
        }
        self == other
    }
}
