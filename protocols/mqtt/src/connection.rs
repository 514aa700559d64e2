//! The tokio side of one MQTT connection: read and decode, feed the session, write
//! what it releases, and enforce the CONNECT timeout and keepalive (× 1.5).
//! Generic over the byte stream, so TCP and WebSocket share it.

use crate::codec::{
    CONNACK_UNACCEPTABLE_PROTOCOL, Codec, CodecError, DecodeError, Packet, Version,
};
use crate::convert;
use crate::registry::{Claim, Registry};
use crate::session::{SESSION_PREFIX, Session, reason};
use crate::{Config, topic};
use bytes::BytesMut;
use futures_util::FutureExt;
use rmqtt_codec::v5::{self, ConnectAckReason as C, DisconnectReasonCode as D};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switchboard_api::{Broker, Credit, Inbox, PublishOptions, ReadRoom, SinkEvent};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Deliveries are not taken from the queue while this much output is unwritten.
const OUTPUT_HIGH_WATER: usize = 1 << 20;

struct Io<S> {
    stream: S,
    rbuf: BytesMut,
    wbuf: BytesMut,
    codec: Codec,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Io<S> {
    /// Reads until a whole packet is decoded. `Ok(None)`: the peer closed.
    async fn read_packet(&mut self) -> Result<Option<Packet>, CodecError> {
        loop {
            if let Some(p) = self.codec.decode(&mut self.rbuf)? {
                return Ok(Some(p));
            }
            match self.stream.read_buf(&mut self.rbuf).await {
                Ok(0) | Err(_) => return Ok(None),
                Ok(_) => {}
            }
        }
    }

    fn encode(&mut self, p: Packet) {
        if let Err(e) = self.codec.encode(p, &mut self.wbuf) {
            tracing::debug!("packet not sent: {e}");
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
            // Idle connections should not keep a large buffer around.
            if self.wbuf.capacity() > 64 * 1024 {
                self.wbuf = BytesMut::with_capacity(1024);
            }
        }
        Ok(())
    }
}

/// Serves one connection until it closes.
pub async fn serve<S>(
    stream: S,
    peer: SocketAddr,
    broker: Arc<dyn Broker>,
    cfg: Arc<Config>,
    registry: Registry,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let inbox = Arc::new(Inbox::default());
    // Boxed: the handshake's state would otherwise stay in every connection's
    // future for its whole life.
    let opened = Box::pin(open(
        stream,
        peer,
        broker.clone(),
        cfg,
        &registry,
        &shutdown,
        inbox.clone(),
    ))
    .await;
    if let Some((io, session, claim, will, keepalive)) = opened {
        run(
            io, session, claim, will, keepalive, inbox, broker, registry, shutdown,
        )
        .await;
    }
}

type Opened<S> = (Io<S>, Session, Claim, Option<v5::LastWill>, u16);

/// Reads CONNECT (within the timeout) and answers it.
async fn open<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: SocketAddr,
    broker: Arc<dyn Broker>,
    cfg: Arc<Config>,
    registry: &Registry,
    shutdown: &CancellationToken,
    inbox: Arc<Inbox>,
) -> Option<Opened<S>> {
    let mut io = Io {
        stream,
        rbuf: BytesMut::with_capacity(256),
        wbuf: BytesMut::new(),
        codec: Codec::new(cfg.max_connect_size),
    };
    let first = tokio::select! {
        r = tokio::time::timeout(cfg.connect_timeout, io.read_packet()) => r,
        _ = shutdown.cancelled() => return None,
    };
    let connect = match first {
        Ok(Ok(Some(Packet::Connect(c)))) => c,
        Ok(Err(CodecError::UnsupportedProtocol { name, level })) => {
            tracing::debug!(%peer, name, level, "MQTT: unsupported protocol");
            let _ = io.stream.write_all(&CONNACK_UNACCEPTABLE_PROTOCOL).await;
            return None;
        }
        Ok(Err(CodecError::Decode(DecodeError::InvalidClientId))) => {
            // rmqtt refuses an empty client id without a clean session while
            // decoding; the client is owed a CONNACK saying so.
            let refusal: &[u8] = match io.codec.version() {
                Some(Version::V5) => &[0x20, 0x03, 0x00, 0x85, 0x00],
                _ => &[0x20, 0x02, 0x00, 0x02],
            };
            let _ = io.stream.write_all(refusal).await;
            return None;
        }
        Ok(Err(e)) => {
            tracing::debug!(%peer, "MQTT: bad first packet: {e}");
            return None;
        }
        Err(_) => {
            tracing::debug!(%peer, "MQTT: no CONNECT within {:?}", cfg.connect_timeout);
            return None;
        }
        Ok(Ok(_)) => return None,
    };
    let Some((session, claim, will, keepalive)) =
        handshake(&mut io, *connect, peer, broker, cfg, registry, inbox).await
    else {
        let _ = io.flush().await;
        return None;
    };
    Some((io, session, claim, will, keepalive))
}

#[allow(clippy::too_many_arguments)]
async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: Io<S>,
    mut session: Session,
    claim: Claim,
    will: Option<v5::LastWill>,
    keepalive: u16,
    inbox: Arc<Inbox>,
    broker: Arc<dyn Broker>,
    registry: Registry,
    shutdown: CancellationToken,
) {
    if let Err(e) = session.start() {
        tracing::warn!("MQTT session {}: {e}", session.client_id);
    }
    let mut durable = broker.durable_watch();
    let mut durable_lsn = durable.as_ref().map_or(u64::MAX, |w| *w.borrow());
    release(&mut io, &mut session, durable_lsn);
    let limit = (keepalive > 0).then(|| Duration::from_millis(u64::from(keepalive) * 1500));
    let mut deadline = limit.map(|l| Instant::now() + l);
    // A resource alarm holds publishers back: decoding stops right before a PUBLISH
    // and the socket is not read (TCP back-pressure, DESIGN.md §3), so subscribers
    // keep acknowledging. Keepalive is suspended while held: the client's PINGREQs
    // wait unread behind the PUBLISH.
    let mut alarm = broker.alarm_watch();
    let mut blocked = alarm.as_ref().is_some_and(|a| a.borrow().is_some());
    let mut held = false;
    let mut end = End::Abrupt;
    // Packets that came in the same read as CONNECT (a client need not wait for
    // CONNACK, MQTT-3.1.4) are already buffered: handle input before the first read.
    let mut input = true;
    let mut read_room = ReadRoom::default();
    loop {
        if input && !held {
            input = false;
            match handle_input(&mut io, &mut session, blocked) {
                Ok(Input::Done) => {}
                Ok(Input::Held) => {
                    held = true;
                    deadline = None;
                }
                Ok(Input::End(e)) => {
                    end = e;
                    break;
                }
                Err((code, why)) => {
                    tracing::debug!(client = session.client_id, "MQTT: closing: {why}");
                    if let Some(p) = session.disconnect_packet(code, why) {
                        io.encode(p);
                    }
                    break;
                }
            }
            release(&mut io, &mut session, durable_lsn);
        }
        if io.flush().await.is_err() {
            break;
        }
        let accepting = io.wbuf.len() < OUTPUT_HIGH_WATER;
        let room = read_room.prepare(&mut io.rbuf);
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                if let Some(p) = session.disconnect_packet(D::ServerShuttingDown, "server shutting down") {
                    io.encode(p);
                }
                end = End::Server;
                break;
            }
            _ = claim.kicked.cancelled() => {
                // What the client sent before the new connection came (acks, often)
                // still counts.
                while let Some(Ok(n)) = io.stream.read_buf(&mut io.rbuf).now_or_never() {
                    if n == 0 {
                        break;
                    }
                }
                end = match handle_input(&mut io, &mut session, blocked) {
                    Ok(Input::End(e)) => e,
                    _ => End::TakenOver,
                };
                if let Some(p) = session.disconnect_packet(D::SessionTakenOver, "another connection took over this client id") {
                    io.encode(p);
                }
                break;
            }
            _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)).await }, if deadline.is_some() => {
                if let Some(p) = session.disconnect_packet(D::KeepAliveTimeout, "keep alive timeout") {
                    io.encode(p);
                }
                break;
            }
            r = switchboard_api::changed(&mut durable) => {
                if r.is_err() { break; }
                if let Some(w) = durable.as_mut() { durable_lsn = *w.borrow_and_update(); }
            }
            ev = inbox.recv(), if accepting => {
                // Take what else is waiting too, so one write carries many deliveries.
                let mut next = Some(ev);
                let mut n = 0;
                while let Some(ev) = next {
                    match ev {
                        SinkEvent::Deliver { consumer, delivery } => session.deliver(consumer, delivery),
                        SinkEvent::Cancelled { consumer } => {
                            session.consumers.remove(&consumer);
                        }
                    }
                    n += 1;
                    next = if n < 256 { inbox.try_pop() } else { None };
                }
            }
            r = switchboard_api::changed(&mut alarm) => {
                if r.is_err() {
                    alarm = None;
                    blocked = false;
                } else if let Some(a) = alarm.as_mut() {
                    blocked = a.borrow_and_update().is_some();
                }
                if held && !blocked {
                    held = false;
                    input = true;
                    deadline = limit.map(|l| Instant::now() + l);
                }
            }
            r = io.stream.read_buf(&mut io.rbuf), if !held => {
                match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read_room.read(n, room),
                }
                deadline = limit.map(|l| Instant::now() + l);
                input = true;
            }
        }
        release(&mut io, &mut session, durable_lsn);
    }
    let _ = io.flush().await;
    let _ = io.stream.shutdown().await;
    let end_session = session.expiry == 0;
    session.stop_consuming();
    let parked = session.close(end_session, inbox.drain_deliveries());
    if !parked.is_empty() {
        registry.park(&session.vhost, &session.client_id, parked);
    }
    if let Some(w) = will {
        let send = match end {
            End::Normal | End::Server => false,
            End::TakenOver => w.will_delay_interval_sec.unwrap_or(0) == 0,
            End::Abrupt | End::WithWill => true,
        };
        if send {
            let delay = w.will_delay_interval_sec.unwrap_or(0).min(if end_session {
                0
            } else {
                session.expiry
            });
            publish_will(
                broker,
                registry,
                session.vhost.clone(),
                session.client_id.clone(),
                w,
                (delay, claim.id()),
            );
        }
    }
    drop(claim);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// DISCONNECT with reason 0: the will is discarded.
    Normal,
    /// 5.0 DISCONNECT 0x04: close, but send the will.
    WithWill,
    /// The connection dropped, timed out, or broke the protocol.
    Abrupt,
    TakenOver,
    Server,
}

enum Input {
    /// Everything buffered was handled.
    Done,
    /// Stopped before a PUBLISH because of a resource alarm.
    Held,
    End(End),
}

/// Decodes and handles every whole packet in the read buffer (with `hold_publish`,
/// up to the first PUBLISH).
fn handle_input<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut Io<S>,
    s: &mut Session,
    hold_publish: bool,
) -> Result<Input, crate::session::Violation> {
    loop {
        if hold_publish && io.rbuf.first().is_some_and(|b| b >> 4 == 3) {
            return Ok(Input::Held);
        }
        let p = match io.codec.decode(&mut io.rbuf) {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(Input::Done),
            Err(CodecError::TooLarge { .. })
            | Err(CodecError::Decode(rmqtt_codec::error::DecodeError::MaxSizeExceeded {
                ..
            })) => {
                return Err((D::PacketTooLarge, "packet exceeds the maximum packet size"));
            }
            Err(CodecError::Decode(rmqtt_codec::error::DecodeError::InvalidTopicName)) => {
                return Err((D::TopicNameInvalid, "invalid topic name"));
            }
            Err(_) => return Err((D::MalformedPacket, "malformed packet")),
        };
        match p {
            Packet::Publish(p) => s.publish(p)?,
            Packet::PublishAck(a) => s.puback(a.packet_id.get()),
            Packet::PublishReceived(a) => s.pubrec(a.packet_id.get()),
            Packet::PublishRelease(a) => s.pubrel(a.packet_id.get()),
            Packet::PublishComplete(a) => s.pubcomp(a.packet_id.get()),
            Packet::Subscribe(sub) => s.subscribe(sub)?,
            Packet::Unsubscribe(u) => s.unsubscribe(u),
            Packet::PingRequest => s.send(0, Packet::PingResponse),
            Packet::Disconnect(d) => {
                if let Some(e) = d.session_expiry_interval_secs {
                    if s.expiry == 0 && e != 0 {
                        return Err((
                            D::ProtocolError,
                            "session expiry set on DISCONNECT after 0 on CONNECT",
                        ));
                    }
                    s.expiry = e;
                }
                return Ok(Input::End(
                    if d.reason_code == D::DisconnectWithWillMessage {
                        End::WithWill
                    } else {
                        End::Normal
                    },
                ));
            }
            Packet::Connect(_) => return Err((D::ProtocolError, "second CONNECT")),
            Packet::Auth(_) => {
                return Err((
                    D::BadAuthenticationMethod,
                    "enhanced authentication is not supported",
                ));
            }
            _ => return Err((D::ProtocolError, "packet a client may not send")),
        }
    }
}

/// Encodes the pending packets whose journal position is durable, in order.
fn release<S: AsyncRead + AsyncWrite + Unpin>(io: &mut Io<S>, s: &mut Session, durable: u64) {
    while let Some((lsn, _)) = s.pending.front() {
        if *lsn > durable {
            break;
        }
        if let Some((_, p)) = s.pending.pop_front() {
            io.encode(p);
        }
    }
}

fn refuse<S: AsyncRead + AsyncWrite + Unpin>(io: &mut Io<S>, code: C, why: &str) {
    io.encode(Packet::ConnectAck(Box::new(v5::ConnectAck {
        reason_code: code,
        reason_string: reason(why),
        ..Default::default()
    })));
}

async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut Io<S>,
    c: v5::Connect,
    peer: SocketAddr,
    broker: Arc<dyn Broker>,
    cfg: Arc<Config>,
    registry: &Registry,
    inbox: Arc<Inbox>,
) -> Option<(Session, Claim, Option<v5::LastWill>, u16)> {
    let version = io.codec.version()?;
    if !version.is_v5() && c.username.is_none() && c.password.is_some() {
        // 3.1.1 §3.1.2.9: a password without a user name is malformed; no CONNACK.
        return None;
    }
    let mut client_id = c.client_id.to_string();
    let mut assigned = None;
    if client_id.is_empty() {
        if !c.clean_start && !version.is_v5() {
            refuse(
                io,
                C::ClientIdentifierNotValid,
                "empty client id needs a clean session",
            );
            return None;
        }
        client_id = format!("sb-{}-{}", std::process::id(), broker.connection_opened());
        assigned = version.is_v5().then(|| client_id.clone());
    }
    if client_id.len() > 200 {
        refuse(
            io,
            C::ClientIdentifierNotValid,
            "client id longer than 200 bytes",
        );
        return None;
    }
    if let Some(w) = &c.last_will
        && !topic::valid_name(&w.topic)
    {
        refuse(io, C::TopicNameInvalid, "invalid will topic");
        return None;
    }
    let creds = match (&c.username, &c.password) {
        (Some(u), p) => Some((
            u.to_string(),
            p.as_ref()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default(),
        )),
        (None, _) if peer.ip().is_loopback() => cfg.anonymous_user.clone(),
        (None, _) => None,
    };
    let user = match creds.map(|(u, p)| broker.authenticate(&u, &p, peer)) {
        Some(Ok(u)) => u,
        Some(Err(e)) => {
            tracing::info!(%peer, "MQTT login refused: {e}");
            refuse(io, C::BadUserNameOrPassword, "bad user name or password");
            return None;
        }
        None => {
            refuse(io, C::NotAuthorized, "credentials required");
            return None;
        }
    };
    if broker.open_vhost(&user, &cfg.vhost).is_err() {
        refuse(io, C::NotAuthorized, "no access to the MQTT vhost");
        return None;
    }
    let claim = registry.claim(&cfg.vhost, &client_id).await;
    let queue = format!("{SESSION_PREFIX}{client_id}");
    let conn = broker.connection_opened();
    if c.clean_start {
        let _ = broker.delete_queue(&cfg.vhost, &queue, false, false, conn);
        let _ = broker.keyed_put(&cfg.vhost, crate::SESSIONS, &client_id, None);
    }
    let present = !c.clean_start && broker.queue_exists(&cfg.vhost, &queue);
    let parked = registry.unpark(&cfg.vhost, &client_id);
    let parked = if present { parked } else { HashMap::new() };
    let receive_max = c
        .receive_max
        .map_or(cfg.max_inflight, |r| r.get().min(cfg.max_inflight));
    let s = Session {
        broker: broker.clone(),
        cfg: cfg.clone(),
        version,
        conn,
        vhost: cfg.vhost.clone(),
        client_id,
        queue,
        expiry: c.session_expiry_interval_secs,
        queue_ready: false,
        sink: inbox,
        credit: Arc::new(Credit::new(u32::from(receive_max))),
        consumers: HashMap::new(),
        next_tag: 0,
        subs: BTreeMap::new(),
        next_pid: 0,
        out: HashMap::new(),
        in_qos2: BTreeSet::new(),
        rel: BTreeSet::new(),
        aliases: HashMap::new(),
        client_max_packet: c.max_packet_size.map_or(u32::MAX, |m| m.get()),
        pending: VecDeque::new(),
        present,
        q2_out: BTreeMap::new(),
        held_retained: VecDeque::new(),
        parked,
    };
    io.codec.set_max_inbound(cfg.max_packet_size);
    if let Some(m) = c.max_packet_size {
        io.codec.set_max_outbound(m.get());
    }
    io.encode(Packet::ConnectAck(Box::new(v5::ConnectAck {
        session_present: present,
        reason_code: C::Success,
        receive_max: std::num::NonZeroU16::new(cfg.max_inflight)
            .unwrap_or(std::num::NonZeroU16::MAX),
        max_packet_size: Some(cfg.max_packet_size),
        assigned_client_id: assigned.map(Into::into),
        topic_alias_max: cfg.topic_alias_max,
        ..Default::default()
    })));
    Some((s, claim, c.last_will, c.keep_alive))
}

fn publish_will(
    broker: Arc<dyn Broker>,
    registry: Registry,
    vhost: String,
    client_id: String,
    w: v5::LastWill,
    (delay, claim): (u32, u64),
) {
    let p = rmqtt_codec::types::Publish {
        dup: false,
        retain: w.retain,
        qos: w.qos,
        topic: w.topic.clone(),
        packet_id: None,
        payload: w.message.clone(),
        properties: Some(v5::PublishProperties {
            correlation_data: w.correlation_data.clone(),
            message_expiry_interval: w.message_expiry_interval,
            content_type: w.content_type.clone(),
            user_properties: w.user_properties.clone(),
            is_utf8_payload: w.is_utf8_payload.unwrap_or(false),
            response_topic: w.response_topic.clone(),
            ..Default::default()
        }),
    };
    let (vhost2, client_id2) = (vhost.clone(), client_id.clone());
    let send = move |broker: &dyn Broker| {
        let msg = convert::to_message(&p, &p.topic, &client_id);
        if p.retain {
            let value = (!p.payload.is_empty()).then(|| {
                let mut m = msg.clone();
                m.properties.delivery_mode = Some(2);
                m
            });
            let _ = broker.keyed_put(&vhost, crate::RETAINED, &msg.routing_key, value);
        }
        if let Err(e) = broker.publish(&vhost, msg, PublishOptions::default()) {
            tracing::warn!("will of {client_id} not published: {e}");
        }
    };
    if delay == 0 {
        send(&*broker);
        return;
    }
    // The client may already be back (its new connection took the id while this
    // one was closing): then there is no will to wait for.
    let Some((id, cancelled)) = registry.delay_will(&vhost2, &client_id2, claim) else {
        return;
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = cancelled.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_secs(u64::from(delay))) => {
                registry.will_done(&vhost2, &client_id2, id);
                send(&*broker);
            }
        }
    });
}
