//! Binary primitives for what the store keeps: [`Enc`] appends values (integers,
//! strings, tables, properties, whole messages) to a buffer and [`Dec`] reads them
//! back. Little-endian and length-prefixed; decoding checks every length against the
//! remaining input and bounds nesting depth, since the bytes come from disk and may be
//! damaged. The journal's records (`record.rs`), the definitions file and the queues'
//! spill files are written with these; this file knows none of them.

use bytes::Bytes;
use switchboard_api::{Message, Properties, Table, Value};

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record truncated")]
    Truncated,
    #[error("unknown tag {0}")]
    UnknownTag(u8),
    #[error("invalid UTF-8 in a string")]
    Utf8,
    #[error("tables nested too deeply")]
    TooDeep,
}

type R<T> = Result<T, DecodeError>;

const MAX_DEPTH: u32 = 32;

/// Appends values to a buffer.
pub struct Enc<'a>(pub &'a mut Vec<u8>);

impl Enc<'_> {
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bool(&mut self, v: bool) {
        self.u8(v as u8);
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    pub fn opt_str(&mut self, s: &Option<String>) {
        match s {
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
            None => self.u8(0),
        }
    }
    pub fn table(&mut self, t: &Table) {
        self.u32(t.len() as u32);
        for (k, v) in t {
            self.str(k);
            self.value(v);
        }
    }
    pub fn value(&mut self, v: &Value) {
        match v {
            Value::Bool(b) => {
                self.u8(1);
                self.bool(*b)
            }
            Value::I8(n) => {
                self.u8(2);
                self.u8(*n as u8)
            }
            Value::U8(n) => {
                self.u8(3);
                self.u8(*n)
            }
            Value::I16(n) => {
                self.u8(4);
                self.0.extend_from_slice(&n.to_le_bytes())
            }
            Value::U16(n) => {
                self.u8(5);
                self.0.extend_from_slice(&n.to_le_bytes())
            }
            Value::I32(n) => {
                self.u8(6);
                self.0.extend_from_slice(&n.to_le_bytes())
            }
            Value::U32(n) => {
                self.u8(7);
                self.u32(*n)
            }
            Value::I64(n) => {
                self.u8(8);
                self.0.extend_from_slice(&n.to_le_bytes())
            }
            Value::F32(f) => {
                self.u8(9);
                self.0.extend_from_slice(&f.to_le_bytes())
            }
            Value::F64(f) => {
                self.u8(10);
                self.0.extend_from_slice(&f.to_le_bytes())
            }
            Value::Decimal { scale, value } => {
                self.u8(11);
                self.u8(*scale);
                self.u32(*value)
            }
            Value::ShortStr(s) => {
                self.u8(12);
                self.str(s)
            }
            Value::Str(b) => {
                self.u8(13);
                self.bytes(b)
            }
            Value::Array(a) => {
                self.u8(14);
                self.u32(a.len() as u32);
                for v in a {
                    self.value(v);
                }
            }
            Value::Timestamp(t) => {
                self.u8(15);
                self.u64(*t)
            }
            Value::Table(t) => {
                self.u8(16);
                self.table(t)
            }
            Value::Bytes(b) => {
                self.u8(17);
                self.bytes(b)
            }
            Value::Void => self.u8(18),
        }
    }
    pub fn properties(&mut self, p: &Properties) {
        self.opt_str(&p.content_type);
        self.opt_str(&p.content_encoding);
        match &p.headers {
            Some(h) => {
                self.u8(1);
                self.table(h);
            }
            None => self.u8(0),
        }
        self.u8(p.delivery_mode.is_some() as u8);
        self.u8(p.delivery_mode.unwrap_or(0));
        self.u8(p.priority.map_or(0, |_| 1));
        self.u8(p.priority.unwrap_or(0));
        self.opt_str(&p.correlation_id);
        self.opt_str(&p.reply_to);
        self.opt_str(&p.expiration);
        self.opt_str(&p.message_id);
        self.u8(p.timestamp.is_some() as u8);
        self.u64(p.timestamp.unwrap_or(0));
        self.opt_str(&p.kind);
        self.opt_str(&p.user_id);
        self.opt_str(&p.app_id);
        self.opt_str(&p.cluster_id);
    }
    pub fn message(&mut self, m: &Message) {
        self.str(&m.exchange);
        self.str(&m.routing_key);
        self.properties(&m.properties);
        self.bytes(&m.body);
        self.opt_str(&m.group_id);
        self.opt_str(&m.dedup_id);
    }
}

/// Reads values from a byte slice, refusing anything that runs past its end.
pub struct Dec<'a> {
    buf: &'a [u8],
}

impl<'a> Dec<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Dec { buf }
    }
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn arr<const N: usize>(&mut self) -> R<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    pub fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> R<u32> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    pub fn u64(&mut self) -> R<u64> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    pub fn bool(&mut self) -> R<bool> {
        Ok(self.u8()? != 0)
    }
    pub fn bytes(&mut self) -> R<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub fn string(&mut self) -> R<String> {
        std::str::from_utf8(self.bytes()?)
            .map(str::to_string)
            .map_err(|_| DecodeError::Utf8)
    }
    pub fn opt_str(&mut self) -> R<Option<String>> {
        Ok(match self.u8()? {
            0 => None,
            _ => Some(self.string()?),
        })
    }
    pub fn table(&mut self) -> R<Table> {
        self.table_at(0)
    }
    fn table_at(&mut self, depth: u32) -> R<Table> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        let n = self.u32()?;
        let mut t = Table::new();
        for _ in 0..n {
            let k = self.string()?;
            let v = self.value_at(depth + 1)?;
            t.insert(k, v);
        }
        Ok(t)
    }
    fn value_at(&mut self, depth: u32) -> R<Value> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        Ok(match self.u8()? {
            1 => Value::Bool(self.bool()?),
            2 => Value::I8(self.u8()? as i8),
            3 => Value::U8(self.u8()?),
            4 => Value::I16(i16::from_le_bytes(self.arr()?)),
            5 => Value::U16(u16::from_le_bytes(self.arr()?)),
            6 => Value::I32(i32::from_le_bytes(self.arr()?)),
            7 => Value::U32(self.u32()?),
            8 => Value::I64(i64::from_le_bytes(self.arr()?)),
            9 => Value::F32(f32::from_le_bytes(self.arr()?)),
            10 => Value::F64(f64::from_le_bytes(self.arr()?)),
            11 => Value::Decimal {
                scale: self.u8()?,
                value: self.u32()?,
            },
            12 => Value::ShortStr(self.string()?),
            13 => Value::Str(Bytes::copy_from_slice(self.bytes()?)),
            14 => {
                let n = self.u32()?;
                // Each element takes at least one byte: a count larger than what is
                // left is damage, not a reason to allocate.
                if n as usize > self.buf.len() {
                    return Err(DecodeError::Truncated);
                }
                let mut a = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    a.push(self.value_at(depth + 1)?);
                }
                Value::Array(a)
            }
            15 => Value::Timestamp(self.u64()?),
            16 => Value::Table(self.table_at(depth + 1)?),
            17 => Value::Bytes(Bytes::copy_from_slice(self.bytes()?)),
            18 => Value::Void,
            t => return Err(DecodeError::UnknownTag(t)),
        })
    }
    pub fn properties(&mut self) -> R<Properties> {
        let content_type = self.opt_str()?;
        let content_encoding = self.opt_str()?;
        let headers = match self.u8()? {
            0 => None,
            _ => Some(self.table()?),
        };
        let has_mode = self.bool()?;
        let mode = self.u8()?;
        let delivery_mode = has_mode.then_some(mode);
        let has_priority = self.bool()?;
        let priority = self.u8()?;
        Ok(Properties {
            content_type,
            content_encoding,
            headers,
            delivery_mode,
            priority: has_priority.then_some(priority),
            correlation_id: self.opt_str()?,
            reply_to: self.opt_str()?,
            expiration: self.opt_str()?,
            message_id: self.opt_str()?,
            timestamp: {
                let has = self.bool()?;
                let t = self.u64()?;
                has.then_some(t)
            },
            kind: self.opt_str()?,
            user_id: self.opt_str()?,
            app_id: self.opt_str()?,
            cluster_id: self.opt_str()?,
        })
    }
    pub fn message(&mut self) -> R<Message> {
        Ok(Message {
            exchange: self.string()?,
            routing_key: self.string()?,
            properties: self.properties()?,
            body: Bytes::copy_from_slice(self.bytes()?),
            group_id: self.opt_str()?,
            dedup_id: self.opt_str()?,
            delay_ms: None,
            timestamp_ms: 0,
        })
    }
    /// A message followed by its accept time, which records written before the
    /// field existed lack (they end with the message).
    pub fn message_with_timestamp(&mut self) -> R<Message> {
        let mut m = self.message()?;
        if !self.buf.is_empty() {
            m.timestamp_ms = self.u64()?;
        }
        Ok(m)
    }
}
