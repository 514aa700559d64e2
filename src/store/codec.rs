//! Binary encoding of what the store keeps: journal records and the definitions
//! file. Little-endian, length-prefixed, versioned by a leading tag byte; decoding
//! checks every length against the remaining input and bounds nesting depth, since
//! the bytes come from disk and may be damaged.

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

/// Where and how a message sits in a durable queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    pub queue: u64,
    pub seq: u64,
    pub priority: u8,
    /// Wall-clock ms since the epoch; 0 = never.
    pub expires_at_ms: u64,
    /// Wall-clock ms since the epoch when it becomes deliverable; 0 = at once.
    pub ready_at_ms: u64,
    pub delivery_count: u32,
    /// Wall-clock ms until which it is leased (SQS in flight); 0 = not leased. Not
    /// part of the Enqueue record: a later Lease record sets it, a Return clears it.
    pub lease_until_ms: u64,
}

/// What the journal records about messages in durable queues. Entities (exchanges,
/// queues, bindings) live in the definitions file instead, so that compaction only
/// ever has to reason about messages.
#[derive(Debug, PartialEq)]
pub enum Record {
    /// A persistent message entered a durable queue.
    Enqueue {
        at: Placement,
        message: Box<Message>,
    },
    /// The message left the queue for good (ack, reject, expiry, dead-lettering, purge).
    Settle { queue: u64, seq: u64 },
    /// The message went back to the queue after `delivery_count` deliveries.
    Return {
        queue: u64,
        seq: u64,
        delivery_count: u32,
    },
    /// The message was handed out for the `delivery_count`-th time under a lease
    /// that ends at `until_ms` (wall clock), or its lease was changed.
    Lease {
        queue: u64,
        seq: u64,
        delivery_count: u32,
        until_ms: u64,
    },
}

const TAG_ENQUEUE: u8 = 1;
const TAG_SETTLE: u8 = 2;
const TAG_RETURN: u8 = 3;
const TAG_LEASE: u8 = 4;

impl Record {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Record::Enqueue { at, message } => encode_enqueue(out, at, message),
            Record::Settle { queue, seq } => {
                let mut e = Enc(out);
                e.u8(TAG_SETTLE);
                e.u64(*queue);
                e.u64(*seq);
            }
            Record::Return {
                queue,
                seq,
                delivery_count,
            } => {
                let mut e = Enc(out);
                e.u8(TAG_RETURN);
                e.u64(*queue);
                e.u64(*seq);
                e.u32(*delivery_count);
            }
            Record::Lease {
                queue,
                seq,
                delivery_count,
                until_ms,
            } => {
                let mut e = Enc(out);
                e.u8(TAG_LEASE);
                e.u64(*queue);
                e.u64(*seq);
                e.u32(*delivery_count);
                e.u64(*until_ms);
            }
        }
    }

    pub fn decode(buf: &[u8]) -> R<Record> {
        let mut d = Dec::new(buf);
        Ok(match d.u8()? {
            TAG_ENQUEUE => Record::Enqueue {
                at: Placement {
                    queue: d.u64()?,
                    seq: d.u64()?,
                    priority: d.u8()?,
                    expires_at_ms: d.u64()?,
                    ready_at_ms: d.u64()?,
                    delivery_count: d.u32()?,
                    lease_until_ms: 0,
                },
                message: Box::new(d.message_with_timestamp()?),
            },
            TAG_SETTLE => Record::Settle {
                queue: d.u64()?,
                seq: d.u64()?,
            },
            TAG_RETURN => Record::Return {
                queue: d.u64()?,
                seq: d.u64()?,
                delivery_count: d.u32()?,
            },
            TAG_LEASE => Record::Lease {
                queue: d.u64()?,
                seq: d.u64()?,
                delivery_count: d.u32()?,
                until_ms: d.u64()?,
            },
            t => return Err(DecodeError::UnknownTag(t)),
        })
    }
}

/// A record without the message body: the first pass of recovery, which only
/// learns which messages are still live, reads this much.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    Enqueue(Placement),
    Settle {
        queue: u64,
        seq: u64,
    },
    Return {
        queue: u64,
        seq: u64,
        delivery_count: u32,
    },
    Lease {
        queue: u64,
        seq: u64,
        delivery_count: u32,
        until_ms: u64,
    },
}

impl Head {
    pub fn decode(buf: &[u8]) -> R<Head> {
        let mut d = Dec::new(buf);
        Ok(match d.u8()? {
            TAG_ENQUEUE => Head::Enqueue(Placement {
                queue: d.u64()?,
                seq: d.u64()?,
                priority: d.u8()?,
                expires_at_ms: d.u64()?,
                ready_at_ms: d.u64()?,
                delivery_count: d.u32()?,
                lease_until_ms: 0,
            }),
            TAG_SETTLE => Head::Settle {
                queue: d.u64()?,
                seq: d.u64()?,
            },
            TAG_RETURN => Head::Return {
                queue: d.u64()?,
                seq: d.u64()?,
                delivery_count: d.u32()?,
            },
            TAG_LEASE => Head::Lease {
                queue: d.u64()?,
                seq: d.u64()?,
                delivery_count: d.u32()?,
                until_ms: d.u64()?,
            },
            t => return Err(DecodeError::UnknownTag(t)),
        })
    }
}

/// Encodes an Enqueue record straight from a borrowed message: the hot path of
/// every durable publish, which must not clone the message.
pub fn encode_enqueue(out: &mut Vec<u8>, at: &Placement, message: &Message) {
    let mut e = Enc(out);
    e.u8(TAG_ENQUEUE);
    e.u64(at.queue);
    e.u64(at.seq);
    e.u8(at.priority);
    e.u64(at.expires_at_ms);
    e.u64(at.ready_at_ms);
    e.u32(at.delivery_count);
    e.message(message);
    e.u64(message.timestamp_ms);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Message {
        let mut h = Table::new();
        h.insert("s".into(), Value::string("x"));
        h.insert("n".into(), Value::I64(-5));
        h.insert(
            "nested".into(),
            Value::Array(vec![
                Value::Table(Table::new()),
                Value::Bytes(Bytes::from_static(b"\0\x01")),
            ]),
        );
        Message {
            exchange: "amq.topic".into(),
            routing_key: "a.b".into(),
            properties: Properties {
                content_type: Some("text/plain".into()),
                headers: Some(h),
                delivery_mode: Some(2),
                priority: Some(0),
                timestamp: Some(12345),
                expiration: Some("60000".into()),
                ..Default::default()
            },
            body: Bytes::from_static(b"hello\0world"),
            group_id: Some("g".into()),
            dedup_id: None,
            delay_ms: None,
            timestamp_ms: 1_764_000_000_123,
        }
    }

    #[test]
    fn records_round_trip() {
        let recs = [
            Record::Enqueue {
                at: Placement {
                    queue: 3,
                    seq: 9,
                    priority: 4,
                    expires_at_ms: 77,
                    ready_at_ms: 0,
                    delivery_count: 2,
                    lease_until_ms: 0,
                },
                message: Box::new(sample()),
            },
            Record::Settle { queue: 3, seq: 9 },
            Record::Return {
                queue: 3,
                seq: 9,
                delivery_count: 5,
            },
            Record::Lease {
                queue: 3,
                seq: 9,
                delivery_count: 6,
                until_ms: 1_764_000_030_000,
            },
        ];
        for r in recs {
            let mut buf = Vec::new();
            r.encode(&mut buf);
            assert_eq!(Record::decode(&buf).unwrap(), r);
        }
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let mut buf = Vec::new();
        encode_enqueue(&mut buf, &Placement::default(), &sample());
        for cut in 0..buf.len() {
            // Records written before messages carried their accept time end right
            // before it, and must still decode.
            if cut == buf.len() - 8 {
                let Ok(Record::Enqueue { message, .. }) = Record::decode(&buf[..cut]) else {
                    panic!("a record without the accept time does not decode");
                };
                assert_eq!(message.timestamp_ms, 0);
                continue;
            }
            assert!(Record::decode(&buf[..cut]).is_err(), "cut {cut}");
        }
        // Arbitrary byte damage must also be handled without panicking.
        for i in 0..buf.len() {
            let mut b = buf.clone();
            b[i] ^= 0xFF;
            let _ = Record::decode(&b);
        }
    }
}
