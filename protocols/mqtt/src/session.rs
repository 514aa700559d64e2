//! One client's session: CONNECT handling, subscriptions, and what is kept for a
//! persistent session. Inbound publishes are in `inbound.rs`, deliveries to the
//! client in `deliver.rs`. No I/O here: handlers push packets onto `pending`, each
//! with the journal position that must be durable before it may be sent.

use crate::codec::{Packet, Version, packet_id};
use crate::convert::{self, EXCHANGE};
use crate::subs::{Sub, Subs};
use crate::{Config, topic};
use bytes::Bytes;
use bytestring::ByteString;
use rmqtt_codec::types::QoS;
use rmqtt_codec::v5::{self, RetainHandling, SubscribeAckReason, SubscriptionOptions};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::Arc;
use switchboard_api::{
    Broker, ConnectionId, ConsumerHandle, ConsumerSpec, Credit, Delivery, DeliverySink, Message,
    QueueDecl, Settle, Table, Value,
};

pub const SESSION_PREFIX: &str = "mqtt-session-";

/// An outbound QoS 1/2 message the client has not finished acknowledging.
pub struct Out {
    /// The queue delivery to settle; `None` for retained messages sent on subscribe
    /// and, after PUBREC, for QoS 2 (the queue's part is done).
    pub delivery: Option<Delivery>,
}

pub struct Session {
    pub broker: Arc<dyn Broker>,
    pub cfg: Arc<Config>,
    pub version: Version,
    pub conn: ConnectionId,
    pub vhost: String,
    pub client_id: String,
    pub queue: String,
    /// Expiry in seconds as the client asked (0: ends with the connection).
    pub expiry: u32,
    pub queue_ready: bool,
    pub sink: Arc<dyn DeliverySink>,
    /// The client's Receive Maximum, shared by the session queue and shared groups.
    pub credit: Arc<Credit>,
    pub consumers: HashMap<u64, Box<dyn ConsumerHandle>>,
    pub next_tag: u64,
    pub subs: Subs,
    pub next_pid: u16,
    pub out: HashMap<u16, Out>,
    /// Inbound QoS 2 packet ids between PUBLISH and PUBREL.
    pub in_qos2: BTreeSet<u16>,
    /// Outbound QoS 2 packet ids between PUBREC and PUBCOMP.
    pub rel: BTreeSet<u16>,
    pub aliases: HashMap<u16, String>,
    pub client_max_packet: u32,
    /// Packets to send once the journal is durable up to the LSN beside them.
    pub pending: VecDeque<(u64, Packet)>,
    /// CONNACK said the session was there.
    pub present: bool,
    /// Outbound QoS 2 messages of the session queue before PUBREC: queue seq →
    /// packet id, persisted so that a restart resends them with the same id.
    pub q2_out: BTreeMap<u64, u16>,
    /// Packet ids of messages the previous connection had in flight (seq → id),
    /// reused when they are redelivered.
    pub parked: HashMap<u64, u16>,
    /// Retained QoS 1/2 messages waiting for Receive Maximum credit.
    pub held_retained: VecDeque<rmqtt_codec::types::Publish>,
    /// Acks held while a subscriber this client feeds is too far behind.
    pub flow: crate::flow::Flow,
}

impl Session {
    pub fn persistent(&self) -> bool {
        self.expiry > 0
    }

    pub fn v5(&self) -> bool {
        self.version.is_v5()
    }

    pub fn send(&mut self, lsn: u64, p: Packet) {
        self.pending.push_back((lsn, p));
    }

    /// After CONNACK: restore a present session, open a persistent one's queue, and
    /// resend PUBRELs.
    pub fn start(&mut self) -> Result<(), switchboard_api::BrokerError> {
        if self.present {
            self.load_state();
            self.open_queue()?;
        } else if self.persistent() {
            self.open_queue()?;
            self.save_state();
        }
        self.resume();
        Ok(())
    }

    /// The expiry interval DISCONNECT sent, which replaces CONNECT's (MQTT 5
    /// 3.14.2.2.2). A session that outlives the connection keeps its queue for that
    /// long: the queue's `x-expires` follows.
    pub fn set_expiry(&mut self, secs: u32) {
        let changed = secs != self.expiry;
        self.expiry = secs;
        if !(changed && self.persistent() && self.queue_ready) {
            return;
        }
        let mut arguments = Table::new();
        if secs != u32::MAX {
            arguments.insert("x-expires".into(), Value::I64(i64::from(secs) * 1000));
        }
        if let Err(e) = self
            .broker
            .set_queue_arguments(&self.vhost, &self.queue, &arguments)
        {
            tracing::warn!(client = %self.client_id, "session expiry not changed: {e}");
        }
    }

    /// Declares (or finds) the session queue and starts consuming from it.
    pub fn open_queue(&mut self) -> Result<(), switchboard_api::BrokerError> {
        if self.queue_ready {
            return Ok(());
        }
        let exists = self.broker.queue_exists(&self.vhost, &self.queue);
        if !exists {
            let mut arguments = Table::new();
            if self.persistent() && self.expiry != u32::MAX {
                arguments.insert(
                    "x-expires".into(),
                    Value::I64(i64::from(self.expiry) * 1000),
                );
            }
            self.broker.declare_queue(
                &self.vhost,
                &QueueDecl {
                    name: self.queue.clone(),
                    durable: self.persistent(),
                    exclusive: !self.persistent(),
                    auto_delete: false,
                    passive: false,
                    arguments,
                },
                self.conn,
            )?;
        }
        self.consume(&self.queue.clone(), 0)?;
        self.queue_ready = true;
        Ok(())
    }

    fn consume(&mut self, queue: &str, tag: u64) -> Result<(), switchboard_api::BrokerError> {
        let h = self.broker.consume(
            &self.vhost,
            queue,
            ConsumerSpec {
                tag,
                owner: self.conn,
                prefetch: 0,
                shared_credit: Some(self.credit.clone()),
                exclusive: false,
                priority: 0,
                sink: self.sink.clone(),
            },
        )?;
        self.consumers.insert(tag, h);
        Ok(())
    }

    /// Restores a persistent session's subscriptions and packet-id state.
    pub fn load_state(&mut self) {
        let Some(m) = self
            .broker
            .keyed_get(&self.vhost, crate::SESSIONS, &self.client_id)
        else {
            return;
        };
        let Some(h) = &m.properties.headers else {
            return;
        };
        let ids = |k: &str| -> BTreeSet<u16> {
            match h.get(k) {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| match v {
                        Value::U16(n) => Some(*n),
                        _ => None,
                    })
                    .collect(),
                _ => BTreeSet::new(),
            }
        };
        self.in_qos2 = ids("in");
        self.rel = ids("rel");
        if let Some(Value::Array(pairs)) = h.get("out") {
            for pair in pairs {
                if let Value::Array(v) = pair
                    && let [Value::I64(seq), Value::U16(pid)] = v.as_slice()
                {
                    self.parked.entry(*seq as u64).or_insert(*pid);
                }
            }
        }
        if let Some(Value::Array(subs)) = h.get("subs") {
            for s in subs {
                let Value::Table(t) = s else { continue };
                let (Some(Value::Str(f)), Some(Value::U8(flags))) = (t.get("f"), t.get("o")) else {
                    continue;
                };
                let Ok(filter) = std::str::from_utf8(f) else {
                    continue;
                };
                let id = match t.get("id") {
                    Some(Value::U32(n)) => NonZeroU32::new(*n),
                    _ => None,
                };
                let opts = unpack_opts(*flags);
                // Shared groups need their queue and consumer again; plain
                // subscriptions are bindings of the session queue, still there.
                let _ = self.subscribe_one(filter, opts, id);
            }
        }
    }

    /// Writes subscriptions and packet-id state, for a persistent session.
    pub fn save_state(&self) -> u64 {
        if !self.persistent() {
            return 0;
        }
        let mut h = Table::new();
        let subs = self
            .subs
            .iter()
            .map(|(f, s)| {
                let mut t = Table::new();
                t.insert("f".into(), Value::string(f.as_str()));
                t.insert("o".into(), Value::U8(pack_opts(&s.opts)));
                if let Some(id) = s.id {
                    t.insert("id".into(), Value::U32(id.get()));
                }
                Value::Table(t)
            })
            .collect();
        h.insert("subs".into(), Value::Array(subs));
        let ids = |s: &BTreeSet<u16>| Value::Array(s.iter().map(|n| Value::U16(*n)).collect());
        h.insert("in".into(), ids(&self.in_qos2));
        h.insert("rel".into(), ids(&self.rel));
        let out = self
            .q2_out
            .iter()
            .map(|(seq, pid)| Value::Array(vec![Value::I64(*seq as i64), Value::U16(*pid)]))
            .collect();
        h.insert("out".into(), Value::Array(out));
        let mut m = Message::new("", self.client_id.clone(), Bytes::new());
        m.properties.delivery_mode = Some(2);
        m.properties.headers = Some(h);
        self.broker
            .keyed_put(&self.vhost, crate::SESSIONS, &self.client_id, Some(m))
            .unwrap_or(0)
    }

    pub fn subscribe(&mut self, s: v5::Subscribe) -> Result<(), Violation> {
        // MQTT 5 §3.8.3.1: no-local on a shared subscription is a protocol error.
        if s.topic_filters
            .iter()
            .any(|(f, o)| o.no_local && topic::split_shared(f).is_some())
        {
            return Err((
                v5::DisconnectReasonCode::ProtocolError,
                "no local on a shared subscription",
            ));
        }
        let mut status = Vec::with_capacity(s.topic_filters.len());
        let mut retained = Vec::new();
        for (filter, opts) in &s.topic_filters {
            let new = !self.subs.contains_key(&filter[..]);
            match self.subscribe_one(filter, *opts, s.id) {
                Ok(qos) => {
                    status.push(match qos {
                        QoS::AtMostOnce => SubscribeAckReason::GrantedQos0,
                        QoS::AtLeastOnce => SubscribeAckReason::GrantedQos1,
                        QoS::ExactlyOnce => SubscribeAckReason::GrantedQos2,
                    });
                    let send_retained = match opts.retain_handling {
                        RetainHandling::AtSubscribe => true,
                        RetainHandling::AtSubscribeNew => new,
                        RetainHandling::NoAtSubscribe => false,
                    };
                    if send_retained && topic::split_shared(filter).is_none() {
                        retained.push((filter.to_string(), *opts, s.id));
                    }
                }
                Err(r) => status.push(r),
            }
        }
        let lsn = self.save_state();
        self.send(
            lsn,
            Packet::SubscribeAck(v5::SubscribeAck {
                packet_id: s.packet_id,
                properties: Vec::new(),
                reason_string: None,
                status,
            }),
        );
        for (filter, opts, id) in retained {
            self.send_retained(&filter, opts, id);
        }
        Ok(())
    }

    fn subscribe_one(
        &mut self,
        filter: &str,
        mut opts: SubscriptionOptions,
        id: Option<NonZeroU32>,
    ) -> Result<QoS, SubscribeAckReason> {
        let (group, inner) = match topic::split_shared(filter) {
            Some(Ok((g, f))) => (Some(g), f),
            Some(Err(())) => return Err(SubscribeAckReason::TopicFilterInvalid),
            None if topic::valid_filter(filter) => (None, filter),
            None => return Err(SubscribeAckReason::TopicFilterInvalid),
        };
        let key = topic::to_binding_key(inner);
        let fail = |e: switchboard_api::BrokerError| {
            tracing::warn!(filter, "subscribe failed: {e}");
            // 3.1.1 clients read every refusal as 0x80.
            match e.kind() {
                switchboard_api::ErrorKind::AccessRefused => SubscribeAckReason::NotAuthorized,
                _ => SubscribeAckReason::UnspecifiedError,
            }
        };
        let shared = match group {
            None => {
                self.open_queue().map_err(fail)?;
                self.broker
                    .bind_queue(
                        &self.vhost,
                        &self.queue,
                        EXCHANGE,
                        &key,
                        &Table::new(),
                        self.conn,
                    )
                    .map_err(fail)?;
                None
            }
            Some(group) => match self.subs.get(filter).and_then(|s| s.shared.clone()) {
                Some(existing) => Some(existing),
                None => {
                    let q = format!("mqtt-shared-{group}-{inner}");
                    self.broker
                        .declare_queue(
                            &self.vhost,
                            &QueueDecl {
                                name: q.clone(),
                                durable: false,
                                exclusive: false,
                                auto_delete: true,
                                passive: false,
                                arguments: Table::new(),
                            },
                            self.conn,
                        )
                        .map_err(fail)?;
                    self.broker
                        .bind_queue(&self.vhost, &q, EXCHANGE, &key, &Table::new(), self.conn)
                        .map_err(fail)?;
                    self.next_tag += 1;
                    let tag = self.next_tag;
                    self.consume(&q, tag).map_err(fail)?;
                    Some((inner.to_string(), tag))
                }
            },
        };
        if opts.qos > QoS::ExactlyOnce {
            opts.qos = QoS::ExactlyOnce;
        }
        self.subs
            .insert(filter.to_string(), Sub { opts, id, shared });
        Ok(opts.qos)
    }

    pub fn unsubscribe(&mut self, u: v5::Unsubscribe) {
        let mut status = Vec::with_capacity(u.topic_filters.len());
        for f in &u.topic_filters {
            let Some(sub) = self.subs.remove(&f[..]) else {
                status.push(v5::UnsubscribeAckReason::NoSubscriptionExisted);
                continue;
            };
            match sub.shared {
                // The group's queue is auto-delete: it goes with its last consumer.
                Some((_, tag)) => {
                    if let Some(c) = self.consumers.remove(&tag) {
                        c.cancel();
                    }
                }
                None => {
                    let key = topic::to_binding_key(f);
                    let still_used = self
                        .subs
                        .iter()
                        .any(|(g, s)| s.shared.is_none() && topic::to_binding_key(g) == key);
                    if !still_used {
                        let _ = self.broker.unbind_queue(
                            &self.vhost,
                            &self.queue,
                            EXCHANGE,
                            &key,
                            &Table::new(),
                            self.conn,
                        );
                    }
                }
            }
            status.push(v5::UnsubscribeAckReason::Success);
        }
        let lsn = self.save_state();
        self.send(
            lsn,
            Packet::UnsubscribeAck(v5::UnsubscribeAck {
                packet_id: u.packet_id,
                properties: Vec::new(),
                reason_string: None,
                status,
            }),
        );
    }

    fn send_retained(&mut self, filter: &str, opts: SubscriptionOptions, id: Option<NonZeroU32>) {
        let found = self
            .broker
            .keyed_scan(&self.vhost, crate::RETAINED, &mut |key| {
                topic::matches(filter, &topic::from_routing_key(key))
            });
        for (_, m) in found {
            let qos = convert::published_qos(&m).min(opts.qos);
            let p = convert::to_publish(&m, qos, true, self.v5(), id.into_iter().collect());
            if self.v5() && convert::publish_size(&p) > self.client_max_packet as usize {
                continue;
            }
            if qos == QoS::AtMostOnce {
                self.send(0, Packet::Publish(Box::new(p)));
            } else {
                self.held_retained.push_back(p);
            }
        }
        self.send_held_retained();
    }

    /// Sends held retained messages while the client's Receive Maximum allows.
    /// They take credit like queue deliveries do, and give it back on PUBACK/PUBCOMP.
    fn send_held_retained(&mut self) {
        while !self.held_retained.is_empty() && self.credit.has_credit() {
            let Some(mut p) = self.held_retained.pop_front() else {
                break;
            };
            self.credit.take();
            let pid = self.alloc_pid();
            p.packet_id = Some(packet_id(pid));
            self.out.insert(pid, Out { delivery: None });
            self.send(0, Packet::Publish(Box::new(p)));
        }
    }

    /// An exchange that held credit outside a queue (a retained message, a QoS 2
    /// message between PUBREC and PUBCOMP) finished.
    pub fn return_credit(&mut self) {
        if self.credit.release(1) {
            self.credit.wake_waiters();
        }
        self.send_held_retained();
    }

    pub fn pid_in_use(&self, pid: u16) -> bool {
        self.out.contains_key(&pid) || self.rel.contains(&pid)
    }

    /// A fresh packet id; ids parked for redeliveries are avoided while any are left.
    pub fn alloc_pid(&mut self) -> u16 {
        for _ in 0..=u16::MAX {
            self.next_pid = self.next_pid.wrapping_add(1);
            let pid = self.next_pid;
            if pid != 0 && !self.pid_in_use(pid) && !self.parked.values().any(|p| *p == pid) {
                return pid;
            }
        }
        // Every id is taken or parked (credit keeps this from happening): reuse a
        // parked one rather than loop.
        self.parked.clear();
        self.alloc_pid()
    }

    /// Resends PUBREL for QoS 2 messages the client had received (after CONNACK).
    pub fn resume(&mut self) {
        for pid in self.rel.clone() {
            self.credit.take();
            self.out.insert(pid, Out { delivery: None });
            self.send(
                0,
                Packet::PublishRelease(v5::PublishAck2 {
                    packet_id: packet_id(pid),
                    ..Default::default()
                }),
            );
        }
    }

    /// Stops consuming. Deliveries already pushed to the connection stay unsettled
    /// until [`Session::close`] puts them back.
    pub fn stop_consuming(&mut self) {
        for (_, c) in self.consumers.drain() {
            c.cancel();
        }
    }

    /// The connection is over: put unacknowledged messages back (those sent and
    /// those still `undelivered` in the connection's inbox) and, unless the session
    /// outlives the connection, delete it.
    /// Returns the packet ids of the session queue's messages that were in flight,
    /// by queue sequence number, for the next connection to reuse.
    pub fn close(&mut self, end_session: bool, undelivered: Vec<Delivery>) -> HashMap<u64, u16> {
        self.stop_consuming();
        let mut parked = std::mem::take(&mut self.parked);
        let mut back = Vec::with_capacity(self.out.len() + undelivered.len());
        for (pid, o) in self.out.drain() {
            if let Some(d) = o.delivery {
                if d.queue.name() == self.queue {
                    parked.insert(d.seq, pid);
                }
                back.push(d);
            }
        }
        back.extend(undelivered);
        back.sort_by_key(|d| d.seq);
        for d in back {
            d.queue.settle(&[d.seq], Settle::Requeue);
        }
        if end_session {
            let _ = self
                .broker
                .delete_queue(&self.vhost, &self.queue, false, false, self.conn);
            let _ = self
                .broker
                .keyed_put(&self.vhost, crate::SESSIONS, &self.client_id, None);
            parked.clear();
        }
        self.broker.connection_closed(self.conn);
        parked
    }
}

fn pack_opts(o: &SubscriptionOptions) -> u8 {
    o.qos.value()
        | (u8::from(o.no_local) << 2)
        | (u8::from(o.retain_as_published) << 3)
        | (u8::from(o.retain_handling) << 4)
}

fn unpack_opts(b: u8) -> SubscriptionOptions {
    SubscriptionOptions {
        qos: convert::qos_of(b & 3),
        no_local: b & 4 != 0,
        retain_as_published: b & 8 != 0,
        retain_handling: match (b >> 4) & 3 {
            1 => RetainHandling::AtSubscribeNew,
            2 => RetainHandling::NoAtSubscribe,
            _ => RetainHandling::AtSubscribe,
        },
    }
}

/// A protocol violation by the client: the DISCONNECT reason code and why. Defined
/// here rather than in `inbound.rs` because `subscribe` returns one too, and the
/// session does not import from the handlers that extend it.
pub type Violation = (v5::DisconnectReasonCode, &'static str);

/// A reason string for MQTT 5 packets.
pub fn reason(s: impl Into<String>) -> Option<ByteString> {
    Some(ByteString::from(s.into()))
}
