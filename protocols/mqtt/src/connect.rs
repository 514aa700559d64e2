//! CONNECT: read it within the timeout, check it, log the client in, claim its
//! client id, set up its session and answer CONNACK.

use crate::codec::{
    CONNACK_UNACCEPTABLE_PROTOCOL, Codec, CodecError, DecodeError, Packet, Version,
};
use crate::registry::{Claim, Registry};
use crate::session::{SESSION_PREFIX, Session, reason};
use crate::wire::Wire;
use crate::{Config, topic};
use rmqtt_codec::v5::{self, ConnectAckReason as C};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use switchboard_api::conn::{Inbox, Io};
use switchboard_api::{Broker, Credit, User};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// Reads CONNECT (within the timeout) and answers it.
pub(crate) async fn open<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: SocketAddr,
    transport: switchboard_api::Transport,
    broker: Arc<dyn Broker>,
    cfg: Arc<Config>,
    registry: &Registry,
    shutdown: &CancellationToken,
) -> Option<(Wire<S>, Accepted, Arc<Inbox>)> {
    let mut wire = Wire {
        io: Io::new(stream),
        codec: Codec::new(cfg.max_connect_size),
    };
    let first = tokio::select! {
        r = tokio::time::timeout(cfg.connect_timeout, wire.read_packet()) => r,
        _ = shutdown.cancelled() => return None,
    };
    let connect = match first {
        Ok(Ok(Some(Packet::Connect(c)))) => c,
        Ok(Err(CodecError::UnsupportedProtocol { name, level })) => {
            tracing::debug!(%peer, name, level, "MQTT: unsupported protocol");
            let _ = wire
                .io
                .stream
                .write_all(&CONNACK_UNACCEPTABLE_PROTOCOL)
                .await;
            return None;
        }
        Ok(Err(CodecError::Decode(DecodeError::InvalidClientId))) => {
            // rmqtt refuses an empty client id without a clean session while
            // decoding; the client is owed a CONNACK saying so.
            let refusal: &[u8] = match wire.codec.version() {
                Some(Version::V5) => &[0x20, 0x03, 0x00, 0x85, 0x00],
                _ => &[0x20, 0x02, 0x00, 0x02],
            };
            let _ = wire.io.stream.write_all(refusal).await;
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
    let inbox = Arc::new(Inbox::default());
    let ctx = Ctx {
        peer,
        transport,
        broker: &broker,
        cfg: &cfg,
        registry,
    };
    let Some(accepted) = handshake(&mut wire, *connect, ctx, inbox.clone()).await else {
        let _ = wire.io.flush().await;
        return None;
    };
    Some((wire, accepted, inbox))
}

fn refuse<S: AsyncRead + AsyncWrite + Unpin>(wire: &mut Wire<S>, code: C, why: &str) {
    wire.encode(Packet::ConnectAck(Box::new(v5::ConnectAck {
        reason_code: code,
        reason_string: reason(why),
        ..Default::default()
    })));
}

/// What the handshake needs from the listener.
struct Ctx<'a> {
    peer: SocketAddr,
    /// What the transport proved: TLS, a certificate's user (MQTTS with mTLS),
    /// WebSocket.
    transport: switchboard_api::Transport,
    broker: &'a Arc<dyn Broker>,
    cfg: &'a Arc<Config>,
    registry: &'a Registry,
}

/// What an accepted CONNECT leaves the connection with.
pub(crate) struct Accepted {
    pub session: Session,
    pub claim: Claim,
    pub will: Option<v5::LastWill>,
    pub keepalive: u16,
}

/// Checks CONNECT, logs the client in, takes its client id and answers CONNACK;
/// `None` when refused (the refusal, if the client is owed one, is in `wire`).
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    wire: &mut Wire<S>,
    c: v5::Connect,
    ctx: Ctx<'_>,
    inbox: Arc<Inbox>,
) -> Option<Accepted> {
    let version = wire.codec.version()?;
    if !version.is_v5() && c.username.is_none() && c.password.is_some() {
        // 3.1.1 §3.1.2.9: a password without a user name is malformed; no CONNACK.
        return None;
    }
    let keepalive = match keepalive(c.keep_alive, ctx.cfg.max_keepalive) {
        Ok(k) => k,
        Err(()) if !version.is_v5() => {
            refuse(
                wire,
                C::ClientIdentifierNotValid,
                "keepalive above the maximum",
            );
            return None;
        }
        Err(()) => ctx.cfg.max_keepalive,
    };
    let (client_id, assigned) = client_id(wire, &c, version, ctx.broker)?;
    if let Some(w) = &c.last_will
        && !topic::valid_name(&w.topic)
    {
        refuse(wire, C::TopicNameInvalid, "invalid will topic");
        return None;
    }
    let user = match login(wire, &c, &ctx) {
        Ok(u) => u,
        Err(delay) => {
            // A refused login is answered late (the CONNACK is flushed after).
            tokio::time::sleep(delay).await;
            return None;
        }
    };
    // From here on the session acts as the user: every broker call is checked
    // against its permissions.
    let scoped = match ctx.broker.open_vhost(&user, &ctx.cfg.vhost) {
        Ok(b) => b,
        Err(e) => {
            tracing::info!(peer = %ctx.peer, user = %user.name, "MQTT connection refused: {e}");
            refuse(wire, C::NotAuthorized, "no access to the MQTT vhost");
            return None;
        }
    };
    let ctx = Ctx {
        broker: &scoped,
        ..ctx
    };
    // Admitted (connection limits) before anything of the session changes.
    let conn = ctx.broker.connection_opened();
    if let Err(e) = describe(conn, &client_id, version, &user, keepalive, &ctx) {
        tracing::info!(peer = %ctx.peer, user = %user.name, "MQTT connection refused: {e}");
        ctx.broker.connection_closed(conn);
        refuse(wire, C::QuotaExceeded, "connection limit reached");
        return None;
    }
    let claim = ctx.registry.claim(&ctx.cfg.vhost, &client_id).await;
    let session = new_session(&c, version, (client_id, conn), &ctx, inbox);
    wire.codec.set_max_inbound(ctx.cfg.max_packet_size);
    if let Some(m) = c.max_packet_size {
        wire.codec.set_max_outbound(m.get());
    }
    wire.encode(Packet::ConnectAck(Box::new(v5::ConnectAck {
        session_present: session.present,
        reason_code: C::Success,
        receive_max: std::num::NonZeroU16::new(ctx.cfg.max_inflight)
            .unwrap_or(std::num::NonZeroU16::MAX),
        max_packet_size: Some(ctx.cfg.max_packet_size),
        assigned_client_id: assigned.map(Into::into),
        topic_alias_max: ctx.cfg.topic_alias_max,
        server_keepalive_sec: (keepalive != c.keep_alive).then_some(keepalive),
        ..Default::default()
    })));
    Some(Accepted {
        session,
        claim,
        will: c.last_will,
        keepalive,
    })
}

/// The keepalive the client asked for, unless it is above `max` (0, no keepalive at
/// all, counts as above a configured maximum).
fn keepalive(asked: u16, max: u16) -> Result<u16, ()> {
    if max == u16::MAX || (asked != 0 && asked <= max) {
        Ok(asked)
    } else {
        Err(())
    }
}

/// The client id to use, and whether we made it up (5.0 tells the client).
fn client_id<S: AsyncRead + AsyncWrite + Unpin>(
    wire: &mut Wire<S>,
    c: &v5::Connect,
    version: Version,
    broker: &Arc<dyn Broker>,
) -> Option<(String, Option<String>)> {
    let mut client_id = c.client_id.to_string();
    let mut assigned = None;
    if client_id.is_empty() {
        if !c.clean_start && !version.is_v5() {
            refuse(
                wire,
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
            wire,
            C::ClientIdentifierNotValid,
            "client id longer than 200 bytes",
        );
        return None;
    }
    Some((client_id, assigned))
}

/// The user CONNECT names (or the anonymous one, on loopback, when configured).
/// With a verified client certificate, a CONNECT without a password (and without
/// a user name, or with the certificate's) logs in the certificate's user, as
/// RabbitMQ's `ssl_cert_login`; a password given is checked as usual.
fn login<S: AsyncRead + AsyncWrite + Unpin>(
    wire: &mut Wire<S>,
    c: &v5::Connect,
    ctx: &Ctx<'_>,
) -> Result<User, std::time::Duration> {
    let peer = ctx.peer;
    if let Some(cert) = &ctx.transport.cert_user
        && c.password.is_none()
        && c.username.as_ref().is_none_or(|u| &**u == cert.as_str())
    {
        return match ctx.broker.authenticate_external(cert, peer) {
            Ok(u) => Ok(u),
            Err(e) => {
                tracing::info!(%peer, user = %cert, "MQTT certificate login refused: {e}");
                refuse(wire, C::NotAuthorized, "certificate user refused");
                Err(ctx.broker.login_refused(peer, cert, "MQTT"))
            }
        };
    }
    let creds = match (&c.username, &c.password) {
        (Some(u), p) => Some((
            u.to_string(),
            p.as_ref()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default(),
        )),
        (None, _) if peer.ip().is_loopback() => ctx.cfg.anonymous_user.clone(),
        (None, _) => None,
    };
    match creds.map(|(u, p)| (ctx.broker.authenticate(&u, &p, peer), u)) {
        Some((Ok(u), _)) => Ok(u),
        Some((Err(e), name)) => {
            tracing::info!(%peer, "MQTT login refused: {e}");
            refuse(wire, C::BadUserNameOrPassword, "bad user name or password");
            Err(ctx.broker.login_refused(peer, &name, "MQTT"))
        }
        None => {
            refuse(wire, C::NotAuthorized, "credentials required");
            Err(ctx.broker.login_refused(peer, "", "MQTT"))
        }
    }
}

/// Tells the admin API who this connection is (RabbitMQ lists the MQTT client id
/// among the client properties too).
fn describe(
    conn: switchboard_api::ConnectionId,
    client_id: &str,
    version: Version,
    user: &User,
    keepalive: u16,
    ctx: &Ctx<'_>,
) -> Result<(), switchboard_api::BrokerError> {
    use switchboard_api::{Table, Value};
    let mut props = Table::new();
    props.insert("client_id".into(), Value::string(client_id));
    props.insert("keepalive".into(), Value::I64(i64::from(keepalive)));
    let version = match version {
        Version::V31 => "3.1",
        Version::V311 => "3.1.1",
        Version::V5 => "5.0",
    };
    ctx.broker.connection_describe(
        conn,
        switchboard_api::admin::ConnectionMeta {
            protocol: ctx.transport.label(&format!("MQTT {version}")),
            peer: ctx.peer,
            user: user.name.clone(),
            vhost: ctx.cfg.vhost.clone(),
            client_properties: props,
            channels: std::sync::Arc::new(std::sync::atomic::AtomicU32::new(1)),
            limited: true,
        },
    )
}

/// The session for an accepted CONNECT: a clean start drops what the client id
/// had; otherwise its queue (and parked in-flight state) carries on.
fn new_session(
    c: &v5::Connect,
    version: Version,
    (client_id, conn): (String, switchboard_api::ConnectionId),
    ctx: &Ctx<'_>,
    inbox: Arc<Inbox>,
) -> Session {
    let (broker, cfg) = (ctx.broker, ctx.cfg);
    let queue = format!("{SESSION_PREFIX}{client_id}");
    if c.clean_start {
        let _ = broker.delete_queue(&cfg.vhost, &queue, false, false, conn);
        let _ = broker.keyed_put(&cfg.vhost, crate::SESSIONS, &client_id, None);
    }
    let present = !c.clean_start && broker.queue_exists(&cfg.vhost, &queue);
    let parked = ctx.registry.unpark(&cfg.vhost, &client_id);
    let parked = if present { parked } else { HashMap::new() };
    let receive_max = c
        .receive_max
        .map_or(cfg.max_inflight, |r| r.get().min(cfg.max_inflight));
    Session {
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
        subs: Default::default(),
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
        flow: Default::default(),
        parked,
    }
}
