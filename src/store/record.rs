//! The journal's records: what a durable queue's messages went through (Enqueue,
//! Settle, Return, Lease), each versioned by a leading tag byte and written with the
//! primitives of `codec.rs`. [`Head`] reads a record without its message, for the
//! first pass of recovery.

use switchboard_api::Message;

use super::codec::{Dec, DecodeError, Enc};

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
// 5 is a definitions record (defop.rs).
const TAG_DEDUP_RESET: u8 = 6;

/// The record that empties a queue's deduplication window.
pub fn encode_dedup_reset(out: &mut Vec<u8>, queue: u64) {
    let mut e = Enc(out);
    e.u8(TAG_DEDUP_RESET);
    e.u64(queue);
}

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

    pub fn decode(buf: &[u8]) -> Result<Record, DecodeError> {
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
    /// A change to the definitions (`defop.rs`), not about any message.
    Definitions,
    /// The queue's deduplication window was emptied (SQS PurgeQueue): settled
    /// messages before this record no longer count for it.
    DedupReset {
        queue: u64,
    },
}

impl Head {
    pub fn decode(buf: &[u8]) -> Result<Head, DecodeError> {
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
            super::defop::TAG_DEFS => Head::Definitions,
            TAG_DEDUP_RESET => Head::DedupReset { queue: d.u64()? },
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
    use bytes::Bytes;
    use switchboard_api::{Properties, Table, Value};

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
