//! One AMQP connection's protocol state machine, without I/O: frames in, bytes out
//! (in `out`), broker calls in between. `connection.rs` owns the socket.

use crate::Config;
use crate::codec::{self, Frame};
use crate::convert::short;
use crate::error::*;
use amq_protocol::protocol::{AMQPClass, BasicProperties, basic, channel, connection};
use amq_protocol::types::{AMQPValue, FieldTable};
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use switchboard_api::{
    Broker, ConnectionId, ConsumerHandle, Credit, Inbox, Message, QueueHandle, Settle, SinkEvent,
    User,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    AwaitStartOk,
    AwaitTuneOk,
    AwaitOpen,
    Open,
    /// We sent connection.close and wait for close-ok.
    Closing,
    /// Done: flush and drop the socket.
    Closed,
}

/// A publish being assembled from its method, header and body frames.
pub(crate) struct Pending {
    pub exchange: String,
    pub routing_key: String,
    pub mandatory: bool,
    pub properties: Option<Box<BasicProperties>>,
    pub body_size: u64,
    pub body: BytesMut,
    pub single: Option<Bytes>,
}

pub(crate) struct ChanConsumer {
    pub id: u64,
    pub handle: Box<dyn ConsumerHandle>,
    pub no_ack: bool,
}

pub(crate) struct Unacked {
    pub queue: Arc<dyn QueueHandle>,
    pub seq: u64,
}

#[derive(Default)]
pub(crate) struct Tx {
    pub publishes: Vec<(Message, bool, Box<BasicProperties>)>,
    pub settles: Vec<(u64, bool, Settle)>,
}

pub(crate) struct Channel {
    /// We sent channel.close and wait for close-ok; everything else is dropped.
    pub closing: bool,
    pub publish: Option<Pending>,
    pub confirm: bool,
    pub publish_seq: u64,
    /// Highest publish seq to confirm with one `basic.ack multiple` at the next flush.
    pub ack_upto: Option<u64>,
    /// Confirms (and returns, commit-oks) waiting for the journal, in order.
    pub awaiting: std::collections::VecDeque<crate::methods::confirms::Awaiting>,
    pub tx: Option<Tx>,
    pub next_tag: u64,
    pub unacked: BTreeMap<u64, Unacked>,
    pub consumers: HashMap<String, ChanConsumer>,
    /// Prefetch for consumers created from now on (`basic.qos` global=false).
    pub prefetch: u32,
    /// Channel-wide prefetch (`basic.qos` global=true).
    pub shared: Arc<Credit>,
}

impl Channel {
    fn new() -> Self {
        Channel {
            closing: false,
            publish: None,
            confirm: false,
            publish_seq: 0,
            ack_upto: None,
            awaiting: Default::default(),
            tx: None,
            next_tag: 1,
            unacked: BTreeMap::new(),
            consumers: HashMap::new(),
            prefetch: 0,
            shared: Arc::new(Credit::new(0)),
        }
    }
}

pub struct Session {
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) cfg: Arc<Config>,
    peer: SocketAddr,
    pub conn_id: ConnectionId,
    pub phase: Phase,
    pub(crate) user: Option<User>,
    pub(crate) vhost: String,
    pub(crate) frame_max: u32,
    channel_max: u16,
    /// Negotiated heartbeat in seconds; 0 = off.
    pub heartbeat: u16,
    pub(crate) cancel_notify: bool,
    /// The client understands connection.blocked / unblocked.
    pub(crate) blocked_notify: bool,
    /// It has published: an alarm blocks it (and tells it so) from now on.
    pub has_published: bool,

    pub(crate) channels: HashMap<u16, Channel>,
    /// Bytes to write to the socket.
    pub out: Vec<u8>,
    /// Where this connection's consumers receive deliveries; the connection task
    /// drains it (and requeues what is left once the consumers are cancelled).
    pub(crate) sink: Arc<Inbox>,
    /// Consumer id → (channel, consumer tag).
    pub(crate) consumers: HashMap<u64, (u16, String)>,
    pub(crate) next_consumer: u64,
    /// No-ack deliveries written to `out`, settled in one batch per queue.
    pub(crate) auto_acked: Vec<(Arc<dyn QueueHandle>, u64)>,
    /// The journal's durable position (None: the broker persists nothing).
    pub durable: Option<tokio::sync::watch::Receiver<u64>>,
}

impl Session {
    pub fn new(
        broker: Arc<dyn Broker>,
        cfg: Arc<Config>,
        peer: SocketAddr,
        inbox: Arc<Inbox>,
    ) -> Session {
        let conn_id = broker.connection_opened();
        let durable = broker.durable_watch();
        Session {
            broker,
            frame_max: cfg.frame_max,
            channel_max: cfg.channel_max,
            heartbeat: cfg.heartbeat,
            cfg,
            peer,
            conn_id,
            phase: Phase::AwaitStartOk,
            user: None,
            vhost: String::new(),
            cancel_notify: false,
            blocked_notify: false,
            has_published: false,

            channels: HashMap::new(),
            // Grows with use: an idle connection should not hold 64 KiB.
            out: Vec::new(),
            sink: inbox,
            consumers: HashMap::new(),
            next_consumer: 1,
            auto_acked: Vec::new(),
            durable,
        }
    }

    /// The largest frame the peer may send us right now.
    pub fn frame_max(&self) -> u32 {
        self.frame_max
    }

    pub(crate) fn send(&mut self, channel: u16, m: AMQPClass) {
        codec::encode_method(&mut self.out, channel, m);
    }

    /// Sends connection.start after a valid protocol header.
    pub fn start(&mut self) {
        let mut caps = FieldTable::default();
        for c in [
            "publisher_confirms",
            "exchange_exchange_bindings",
            "basic.nack",
            "consumer_cancel_notify",
            "connection.blocked",
            "consumer_priorities",
            "authentication_failure_close",
            "per_consumer_qos",
            "direct_reply_to",
        ] {
            caps.insert(c.into(), AMQPValue::Boolean(true));
        }
        let mut props = FieldTable::default();
        props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
        props.insert(
            "product".into(),
            AMQPValue::LongString("Switchboard".into()),
        );
        props.insert(
            "version".into(),
            AMQPValue::LongString(env!("CARGO_PKG_VERSION").into()),
        );
        props.insert("platform".into(), AMQPValue::LongString("Rust".into()));
        props.insert(
            "copyright".into(),
            AMQPValue::LongString("Switchboard contributors".into()),
        );
        props.insert(
            "cluster_name".into(),
            AMQPValue::LongString("switchboard".into()),
        );
        props.insert(
            "information".into(),
            AMQPValue::LongString(
                "Switchboard message broker: AMQP 0-9-1, MQTT, STOMP, SQS/SNS".into(),
            ),
        );
        self.send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
                version_major: 0,
                version_minor: 9,
                server_properties: props,
                mechanisms: "PLAIN AMQPLAIN".into(),
                locales: "en_US".into(),
            })),
        );
    }

    /// Handles one decoded frame. Connection errors are turned into connection.close
    /// here; the caller only looks at `phase` afterwards.
    pub fn handle(&mut self, frame: Frame) {
        if let Err(e) = self.dispatch(frame) {
            self.fail(e);
        }
    }

    /// A frame-level decode error: the connection is closed with its code.
    pub fn frame_error(&mut self, e: &codec::FrameError) {
        let (class_id, method_id) = e.ids();
        self.close_connection(Reply {
            code: e.reply_code(),
            text: e.to_string(),
            class_id,
            method_id,
        });
    }

    pub(crate) fn fail(&mut self, e: AmqpError) {
        // Channel errors were handled per channel in `dispatch`; one that reaches
        // here had no channel to close (e.g. during the handshake).
        let (AmqpError::Channel(r) | AmqpError::Connection(r)) = e;
        self.close_connection(r);
    }

    /// Sends connection.close and drops every channel.
    pub fn close_connection(&mut self, r: Reply) {
        if matches!(self.phase, Phase::Closing | Phase::Closed) {
            return;
        }
        tracing::debug!(conn = self.conn_id, code = r.code, text = %r.text, "closing connection");
        self.release_all();
        self.send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: r.code,
                reply_text: short(&r.text),
                class_id: r.class_id,
                method_id: r.method_id,
            })),
        );
        self.phase = Phase::Closing;
    }

    fn dispatch(&mut self, frame: Frame) -> Result<()> {
        match self.phase {
            Phase::Closed => return Ok(()),
            Phase::Closing => {
                if let Frame::Method(0, m) = frame {
                    match *m {
                        AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => {
                            self.phase = Phase::Closed
                        }
                        AMQPClass::Connection(connection::AMQPMethod::Close(_)) => {
                            self.send(
                                0,
                                AMQPClass::Connection(connection::AMQPMethod::CloseOk(
                                    connection::CloseOk {},
                                )),
                            );
                            self.phase = Phase::Closed;
                        }
                        _ => {}
                    }
                }
                return Ok(());
            }
            _ => {}
        }
        let ch = frame.channel();
        if let Frame::Heartbeat(c) = frame {
            if c != 0 {
                return Err(AmqpError::connection(
                    FRAME_ERROR,
                    "FRAME_ERROR - heartbeat frame on a non-zero channel",
                    (0, 0),
                ));
            }
            return Ok(());
        }
        if ch == 0 {
            return match frame {
                Frame::Method(_, m) => match (ids(&m), *m) {
                    (id, AMQPClass::Connection(cm)) => self.connection_method(cm, id),
                    (id, _) => Err(AmqpError::connection(
                        COMMAND_INVALID,
                        "COMMAND_INVALID - only connection methods may use channel 0",
                        id,
                    )),
                },
                _ => Err(AmqpError::connection(
                    UNEXPECTED_FRAME,
                    "UNEXPECTED_FRAME - content frame on channel 0",
                    (0, 0),
                )),
            };
        }
        if self.phase != Phase::Open {
            return Err(AmqpError::connection(
                CHANNEL_ERROR,
                "CHANNEL_ERROR - channel frame before the connection was opened",
                (0, 0),
            ));
        }
        if ch > self.channel_max {
            return Err(AmqpError::connection(
                NOT_ALLOWED,
                format!(
                    "NOT_ALLOWED - channel {ch} exceeds channel_max {}",
                    self.channel_max
                ),
                (20, 10),
            ));
        }
        match self.channel_frame(ch, frame) {
            Err(AmqpError::Channel(r)) => {
                self.close_channel_with(ch, r);
                Ok(())
            }
            other => other,
        }
    }

    fn connection_method(&mut self, m: connection::AMQPMethod, id: (u16, u16)) -> Result<()> {
        use connection::AMQPMethod as M;
        match (self.phase, m) {
            (Phase::AwaitStartOk, M::StartOk(s)) => self.start_ok(s),
            (Phase::AwaitTuneOk, M::TuneOk(t)) => {
                if t.frame_max != 0 && t.frame_max < codec::FRAME_MIN_SIZE {
                    return Err(AmqpError::connection(
                        NOT_ALLOWED,
                        format!(
                            "NOT_ALLOWED - frame_max {} below the minimum {}",
                            t.frame_max,
                            codec::FRAME_MIN_SIZE
                        ),
                        id,
                    ));
                }
                if t.frame_max != 0 {
                    self.frame_max = t.frame_max.min(self.cfg.frame_max);
                }
                if t.channel_max != 0 {
                    self.channel_max = t.channel_max.min(self.cfg.channel_max);
                }
                self.heartbeat = t.heartbeat;
                self.phase = Phase::AwaitOpen;
                Ok(())
            }
            (Phase::AwaitOpen, M::Open(o)) => {
                let vhost = o.virtual_host.as_str().to_string();
                let user = self.user.clone().ok_or_else(|| {
                    AmqpError::connection(ACCESS_REFUSED, "ACCESS_REFUSED - not authenticated", id)
                })?;
                if let Err(e) = self.broker.open_vhost(&user, &vhost) {
                    return Err(AmqpError::connection(NOT_ALLOWED, e.message, id));
                }
                self.vhost = vhost;
                self.phase = Phase::Open;
                self.send(0, AMQPClass::Connection(M::OpenOk(connection::OpenOk {})));
                Ok(())
            }
            (_, M::Close(_)) => {
                self.release_all();
                self.send(0, AMQPClass::Connection(M::CloseOk(connection::CloseOk {})));
                self.phase = Phase::Closed;
                Ok(())
            }
            (Phase::Open, M::UpdateSecret(_)) => {
                self.send(
                    0,
                    AMQPClass::Connection(M::UpdateSecretOk(connection::UpdateSecretOk {})),
                );
                Ok(())
            }
            // Blocked/Unblocked from a client are informational; ignore them.
            (Phase::Open, M::Blocked(_) | M::Unblocked(_)) => Ok(()),
            (_, _) => Err(AmqpError::connection(
                COMMAND_INVALID,
                format!(
                    "COMMAND_INVALID - unexpected method connection.{} in this state",
                    method_name(id.1)
                ),
                id,
            )),
        }
    }

    fn start_ok(&mut self, s: connection::StartOk) -> Result<()> {
        let id = (10, 11);
        if let Some(AMQPValue::FieldTable(caps)) = s.client_properties.inner().get("capabilities") {
            let has = |c: &str| matches!(caps.inner().get(c), Some(AMQPValue::Boolean(true)));
            self.cancel_notify = has("consumer_cancel_notify");
            self.blocked_notify = has("connection.blocked");
        }
        let (user, pass) = match s.mechanism.as_str() {
            "PLAIN" => parse_plain(s.response.as_bytes()),
            "AMQPLAIN" => parse_amqplain(s.response.as_bytes()),
            other => {
                return Err(AmqpError::connection(
                    ACCESS_REFUSED,
                    format!("ACCESS_REFUSED - unsupported authentication mechanism '{other}'"),
                    id,
                ));
            }
        }
        .ok_or_else(|| {
            AmqpError::connection(
                ACCESS_REFUSED,
                "ACCESS_REFUSED - malformed authentication response",
                id,
            )
        })?;
        match self.broker.authenticate(&user, &pass, self.peer) {
            Ok(u) => {
                self.user = Some(u);
                self.phase = Phase::AwaitTuneOk;
                self.send(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::Tune(connection::Tune {
                        channel_max: self.cfg.channel_max,
                        frame_max: self.cfg.frame_max,
                        heartbeat: self.cfg.heartbeat,
                    })),
                );
                Ok(())
            }
            Err(e) => Err(AmqpError::connection(ACCESS_REFUSED, e.message, id)),
        }
    }

    fn channel_frame(&mut self, ch: u16, frame: Frame) -> Result<()> {
        if let Frame::Method(_, m) = &frame
            && let AMQPClass::Channel(cm) = &**m
        {
            return self.channel_method(ch, cm.clone(), ids(m));
        }
        let Some(c) = self.channels.get_mut(&ch) else {
            return Err(AmqpError::connection(
                CHANNEL_ERROR,
                format!("CHANNEL_ERROR - expected 'channel.open' on channel {ch}"),
                frame_ids(&frame),
            ));
        };
        if c.closing {
            return Ok(());
        }
        match frame {
            Frame::Method(_, m) => {
                if c.publish.is_some() {
                    return Err(AmqpError::connection(
                        UNEXPECTED_FRAME,
                        "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead".to_string(),
                        ids(&m),
                    ));
                }
                self.method(ch, *m)
            }
            Frame::Header {
                class_id,
                body_size,
                properties,
                ..
            } => self.content_header(ch, class_id, body_size, properties),
            Frame::Body(_, data) => self.content_body(ch, data),
            Frame::Heartbeat(_) => Ok(()),
        }
    }

    fn channel_method(&mut self, ch: u16, m: channel::AMQPMethod, id: (u16, u16)) -> Result<()> {
        use channel::AMQPMethod as M;
        match m {
            M::Open(_) => {
                if self.channels.contains_key(&ch) {
                    return Err(AmqpError::connection(
                        CHANNEL_ERROR,
                        format!("CHANNEL_ERROR - second 'channel.open' seen on channel {ch}"),
                        id,
                    ));
                }
                self.channels.insert(ch, Channel::new());
                self.send(ch, AMQPClass::Channel(M::OpenOk(channel::OpenOk {})));
                Ok(())
            }
            M::Close(_) => {
                if !self.channels.contains_key(&ch) {
                    return Err(AmqpError::connection(
                        CHANNEL_ERROR,
                        format!("CHANNEL_ERROR - expected 'channel.open' on channel {ch}"),
                        id,
                    ));
                }
                self.release_channel(ch);
                self.channels.remove(&ch);
                self.send(ch, AMQPClass::Channel(M::CloseOk(channel::CloseOk {})));
                Ok(())
            }
            M::CloseOk(_) => {
                if self.channels.get(&ch).is_some_and(|c| c.closing) {
                    self.channels.remove(&ch);
                }
                Ok(())
            }
            M::Flow(f) => {
                if !self.channels.contains_key(&ch) {
                    return Err(AmqpError::connection(
                        CHANNEL_ERROR,
                        format!("CHANNEL_ERROR - expected 'channel.open' on channel {ch}"),
                        id,
                    ));
                }
                if !f.active {
                    return Err(AmqpError::connection(
                        NOT_IMPLEMENTED,
                        "NOT_IMPLEMENTED - active=false",
                        id,
                    ));
                }
                self.send(
                    ch,
                    AMQPClass::Channel(M::FlowOk(channel::FlowOk { active: true })),
                );
                Ok(())
            }
            M::FlowOk(_) => Ok(()),
            M::OpenOk(_) => Err(AmqpError::connection(
                COMMAND_INVALID,
                "COMMAND_INVALID - channel.open-ok is sent by servers",
                id,
            )),
        }
    }

    /// Closes one channel with a channel error: requeue its deliveries, cancel its
    /// consumers, send channel.close and wait for close-ok.
    pub(crate) fn close_channel_with(&mut self, ch: u16, r: Reply) {
        self.release_channel(ch);
        if let Some(c) = self.channels.get_mut(&ch) {
            c.closing = true;
        }
        self.send(
            ch,
            AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                reply_code: r.code,
                reply_text: short(&r.text),
                class_id: r.class_id,
                method_id: r.method_id,
            })),
        );
    }

    /// Cancels a channel's consumers and requeues its unacked deliveries, in order.
    fn release_channel(&mut self, ch: u16) {
        let Some(c) = self.channels.get_mut(&ch) else {
            return;
        };
        for (_, cc) in c.consumers.drain() {
            cc.handle.cancel();
            self.consumers.remove(&cc.id);
        }
        c.publish = None;
        c.tx = None;
        c.ack_upto = None;
        c.awaiting.clear();
        let unacked = std::mem::take(&mut c.unacked);
        settle_grouped(unacked.into_values(), Settle::Requeue);
    }

    fn release_all(&mut self) {
        let chans: Vec<u16> = self.channels.keys().copied().collect();
        for ch in chans {
            self.release_channel(ch);
        }
        self.channels.clear();
    }

    /// Ends the session for good: called once when the socket is gone.
    pub fn cleanup(&mut self) {
        self.release_all();
        self.settle_auto_acked();
        self.broker.connection_closed(self.conn_id);
    }

    /// Work to do before writing `out`: batched confirms and no-ack settlements.
    pub fn before_flush(&mut self) {
        let mut acks = Vec::new();
        for (ch, c) in self.channels.iter_mut() {
            if let Some(upto) = c.ack_upto.take() {
                acks.push((*ch, upto));
            }
        }
        for (ch, upto) in acks {
            self.send(
                ch,
                AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                    delivery_tag: upto,
                    multiple: true,
                })),
            );
        }
        self.settle_auto_acked();
    }

    fn settle_auto_acked(&mut self) {
        if self.auto_acked.is_empty() {
            return;
        }
        let list = std::mem::take(&mut self.auto_acked);
        settle_grouped(
            list.into_iter().map(|(queue, seq)| Unacked { queue, seq }),
            Settle::Ack,
        );
    }

    /// A queue event for one of our consumers.
    pub fn on_event(&mut self, ev: SinkEvent) {
        match ev {
            SinkEvent::Deliver { consumer, delivery } => self.deliver(consumer, delivery),
            SinkEvent::Cancelled { consumer } => {
                let Some((ch, tag)) = self.consumers.remove(&consumer) else {
                    return;
                };
                if let Some(c) = self.channels.get_mut(&ch) {
                    c.consumers.remove(&tag);
                    if self.cancel_notify && !c.closing {
                        self.send(
                            ch,
                            AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                                consumer_tag: short(&tag),
                                nowait: true,
                            })),
                        );
                    }
                }
            }
        }
    }

    /// A resource alarm went on (`Some`) or off: tell clients that asked to know.
    pub fn on_alarm(&mut self, reason: Option<&str>) {
        if self.phase != Phase::Open || !self.blocked_notify {
            return;
        }
        let m = match reason {
            Some(r) => connection::AMQPMethod::Blocked(connection::Blocked { reason: short(r) }),
            None => connection::AMQPMethod::Unblocked(connection::Unblocked {}),
        };
        self.send(0, AMQPClass::Connection(m));
    }

    /// Whether the peer misses heartbeats: true when the limit passed.
    pub fn heartbeat_secs(&self) -> u16 {
        if self.phase == Phase::Open {
            self.heartbeat
        } else {
            0
        }
    }
}

/// Settles deliveries, one call per run of the same queue (the common case is one
/// queue per channel, so this is one lock per batch).
pub(crate) fn settle_grouped(list: impl IntoIterator<Item = Unacked>, how: Settle) {
    let mut run: Option<(Arc<dyn QueueHandle>, Vec<u64>)> = None;
    for u in list {
        match &mut run {
            Some((q, seqs)) if Arc::ptr_eq(q, &u.queue) => seqs.push(u.seq),
            _ => {
                if let Some((q, seqs)) = run.take() {
                    q.settle(&seqs, how);
                }
                run = Some((u.queue, vec![u.seq]));
            }
        }
    }
    if let Some((q, seqs)) = run {
        q.settle(&seqs, how);
    }
}

pub(crate) fn ids(m: &AMQPClass) -> (u16, u16) {
    (m.get_amqp_class_id(), m.get_amqp_method_id())
}

fn frame_ids(f: &Frame) -> (u16, u16) {
    match f {
        Frame::Method(_, m) => ids(m),
        _ => (0, 0),
    }
}

fn method_name(id: u16) -> &'static str {
    match id {
        10 => "start",
        11 => "start-ok",
        20 => "secure",
        21 => "secure-ok",
        30 => "tune",
        31 => "tune-ok",
        40 => "open",
        41 => "open-ok",
        50 => "close",
        51 => "close-ok",
        _ => "other",
    }
}

/// SASL PLAIN: `authzid \0 authcid \0 password`.
fn parse_plain(r: &[u8]) -> Option<(String, String)> {
    let mut parts = r.split(|b| *b == 0);
    let _authz = parts.next()?;
    let user = std::str::from_utf8(parts.next()?).ok()?;
    let pass = std::str::from_utf8(parts.next()?).ok()?;
    Some((user.to_string(), pass.to_string()))
}

/// AMQPLAIN: a field table without its length prefix, with LOGIN and PASSWORD.
fn parse_amqplain(r: &[u8]) -> Option<(String, String)> {
    let mut buf = Vec::with_capacity(r.len() + 4);
    buf.extend_from_slice(&(r.len() as u32).to_be_bytes());
    buf.extend_from_slice(r);
    let (_, t) = amq_protocol::types::parsing::parse_field_table(&buf[..]).ok()?;
    let get = |k: &str| match t.inner().get(k)? {
        AMQPValue::LongString(s) => String::from_utf8(s.as_bytes().to_vec()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    };
    Some((get("LOGIN")?, get("PASSWORD")?))
}
