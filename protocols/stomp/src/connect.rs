//! CONNECT (or STOMP): read it within the timeout, agree on a version and
//! heart-beats, log the client in, pick its vhost, answer CONNECTED.

use crate::Config;
use crate::codec::{Codec, Version};
use crate::frame::{Command, Frame};
use crate::inbound::Inbound;
use crate::send::error_frame;
use crate::session::{Session, StompError};
use crate::wire::Wire;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switchboard_api::conn::{Inbox, Io};
use switchboard_api::{Broker, User};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

/// Heart-beat intervals agreed on CONNECT: how often we send, how often the
/// client promised to (zero: none).
#[derive(Clone, Copy)]
pub(crate) struct Beats {
    pub send: Duration,
    pub recv: Duration,
}

/// Reads CONNECT and answers it; `None` when the connection is over (refused,
/// timed out, closed, or the broker is stopping).
pub(crate) async fn open<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: SocketAddr,
    transport: switchboard_api::Transport,
    broker: &Arc<dyn Broker>,
    cfg: &Arc<Config>,
    shutdown: &CancellationToken,
    inbox: Arc<Inbox>,
) -> Option<(Wire<S>, Session, Beats)> {
    let mut wire = Wire {
        io: Io::new(stream),
        codec: Codec::new(cfg.limits),
    };
    let mut f = read_connect(&mut wire, cfg, shutdown).await?;
    let version = version(&mut wire, &f).await?;
    if version == Version::V10 {
        // STOMP 1.0 brokers trim header values; the codec does it for frames
        // decoded as 1.0, but this CONNECT was decoded before the version was known.
        f.trim_v10_values();
    }
    let cert_user = transport.cert_user.as_deref();
    let user = login(&mut wire, &f, (peer, cert_user), broker, cfg).await?;
    let (vhost, scoped) = vhost(&mut wire, &f, &user, broker, cfg).await?;
    // The session acts as the user: every broker call is checked against its
    // permissions.
    let broker = &scoped;
    let (beats, hb) = negotiate(f.header("heart-beat"), cfg.heartbeat_floor);
    let conn = broker.connection_opened();
    let mut props = switchboard_api::Table::new();
    for h in ["host", "heart-beat", "client-id", "accept-version"] {
        if let Some(v) = f.header(h) {
            props.insert(h.into(), switchboard_api::Value::string(v));
        }
    }
    let admitted = broker.connection_describe(
        conn,
        switchboard_api::admin::ConnectionMeta {
            protocol: transport.label(&format!("STOMP {}", version.as_str())),
            peer,
            user: user.name.clone(),
            vhost: vhost.clone(),
            client_properties: props,
            channels: Arc::new(std::sync::atomic::AtomicU32::new(1)),
            limited: true,
        },
    );
    if let Err(e) = admitted {
        tracing::info!(%peer, user = %user.name, "STOMP connection refused: {e}");
        broker.connection_closed(conn);
        wire.fail(&StompError::new("Bad CONNECT", e.to_string()), Some(&f))
            .await;
        return None;
    }
    let session_id = format!("session-{conn}");
    let connected = Frame::new(Command::Connected)
        .with_header("version", version.as_str())
        .with_header("session", session_id.as_str())
        .with_header("server", concat!("Switchboard/", env!("CARGO_PKG_VERSION")))
        .with_header("heart-beat", hb);
    wire.encode(connected);
    wire.codec.set_version(version);
    let session = Session {
        broker: broker.clone(),
        cfg: cfg.clone(),
        conn,
        vhost,
        version,
        client_id: f
            .header("client-id")
            .map_or_else(|| user.name.clone(), str::to_string),
        inbox,
        subs: HashMap::new(),
        by_tag: HashMap::new(),
        next_tag: 0,
        unacked: BTreeMap::new(),
        next_ack: 1,
        temp: HashMap::new(),
        tx: HashMap::new(),
        pending: VecDeque::new(),
        sent_lsn: 0,
    };
    Some((wire, session, beats))
}

/// The first frame, within the connect timeout; it must be CONNECT or STOMP.
async fn read_connect<S: AsyncRead + AsyncWrite + Unpin>(
    wire: &mut Wire<S>,
    cfg: &Config,
    shutdown: &CancellationToken,
) -> Option<Inbound> {
    let first = tokio::select! {
        r = tokio::time::timeout(cfg.connect_timeout, wire.read_frame()) => r,
        _ = shutdown.cancelled() => return None,
    };
    let f = match first {
        Ok(Ok(Some(f))) => f,
        Ok(Err(e)) => {
            let receipt = wire.refused_receipt();
            wire.encode(error_frame(&e, receipt.as_deref()));
            let _ = wire.io.flush().await;
            return None;
        }
        Ok(Ok(None)) | Err(_) => return None,
    };
    if !matches!(f.command, Command::Connect | Command::Stomp) {
        let e = StompError::new(
            "Expected CONNECT",
            format!(
                "the first frame must be CONNECT or STOMP, not {}",
                f.command.as_str()
            ),
        );
        wire.fail(&e, Some(&f)).await;
        return None;
    }
    Some(f)
}

/// The newest version both sides speak, or an ERROR saying which we do.
async fn version<S: AsyncRead + AsyncWrite + Unpin>(
    wire: &mut Wire<S>,
    f: &Inbound,
) -> Option<Version> {
    if let Some(v) = pick_version(f.header("accept-version")) {
        return Some(v);
    }
    let err = error_frame(
        &StompError::new("Version mismatch", "Supported versions are 1.0,1.1,1.2"),
        f.header("receipt"),
    );
    wire.encode(err);
    let _ = wire.io.flush().await;
    None
}

fn pick_version(accept: Option<&str>) -> Option<Version> {
    let Some(a) = accept else {
        return Some(Version::V10);
    };
    let offered: Vec<&str> = a.split(',').map(str::trim).collect();
    [
        ("1.2", Version::V12),
        ("1.1", Version::V11),
        ("1.0", Version::V10),
    ]
    .into_iter()
    .find(|(s, _)| offered.contains(s))
    .map(|(_, v)| v)
}

/// The user `login`/`passcode` name (or the anonymous one, on loopback, when
/// configured). With a verified client certificate, a CONNECT without `passcode`
/// (and without `login`, or with the certificate's) logs in the certificate's
/// user, as RabbitMQ's `ssl_cert_login`.
async fn login<S: AsyncRead + AsyncWrite + Unpin>(
    wire: &mut Wire<S>,
    f: &Inbound,
    (peer, cert_user): (SocketAddr, Option<&str>),
    broker: &Arc<dyn Broker>,
    cfg: &Config,
) -> Option<User> {
    if let Some(cert) = cert_user
        && f.header("passcode").is_none()
        && f.header("login").is_none_or(|l| l == cert)
    {
        let e = match broker.authenticate_external(cert, peer) {
            Ok(u) => return Some(u),
            Err(e) => e,
        };
        tracing::info!(%peer, user = %cert, "STOMP certificate login refused: {e}");
        let e = StompError::new("Bad CONNECT", format!("Access refused for user '{cert}'"));
        tokio::time::sleep(broker.login_refused(peer, cert, "STOMP")).await;
        wire.fail(&e, Some(f)).await;
        return None;
    }
    let creds = match (f.header("login"), f.header("passcode")) {
        (Some(u), p) => Some((u.to_string(), p.unwrap_or("").to_string())),
        (None, _) if peer.ip().is_loopback() => cfg.anonymous_user.clone(),
        (None, _) => None,
    };
    let (e, login) = match creds.map(|(u, p)| (broker.authenticate(&u, &p, peer), u)) {
        Some((Ok(u), _)) => return Some(u),
        Some((Err(e), login)) => {
            tracing::info!(%peer, "STOMP login refused: {e}");
            let text = format!("Access refused for user '{login}'");
            (StompError::new("Bad CONNECT", text), login)
        }
        None => (
            StompError::new("Bad CONNECT", "login and passcode required"),
            String::new(),
        ),
    };
    // A refused login is answered late: guessing passwords is slow.
    tokio::time::sleep(broker.login_refused(peer, &login, "STOMP")).await;
    wire.fail(&e, Some(f)).await;
    None
}

/// The vhost `host` names, if the user may use it, and the broker as the user
/// may use it there.
async fn vhost<S: AsyncRead + AsyncWrite + Unpin>(
    wire: &mut Wire<S>,
    f: &Inbound,
    user: &User,
    broker: &Arc<dyn Broker>,
    cfg: &Config,
) -> Option<(String, Arc<dyn Broker>)> {
    let vhost = match f.header("host") {
        Some(h) if broker.open_vhost(user, h).is_ok() => h.to_string(),
        // Many clients put the server's host name here (stomp.py does): that is
        // not a vhost, so it means the default one.
        Some(h) if h == "localhost" || h.parse::<std::net::IpAddr>().is_ok() => {
            cfg.default_vhost.clone()
        }
        Some(h) => {
            let e = StompError::new("Bad CONNECT", format!("Virtual host '{h}' access denied"));
            wire.fail(&e, Some(f)).await;
            return None;
        }
        None => cfg.default_vhost.clone(),
    };
    match broker.open_vhost(user, &vhost) {
        Ok(scoped) => Some((vhost, scoped)),
        Err(e) => {
            tracing::info!(user = %user.name, "STOMP connection refused: {e}");
            let e = StompError::new(
                "Bad CONNECT",
                format!("Virtual host '{vhost}' access denied"),
            );
            wire.fail(&e, Some(f)).await;
            None
        }
    }
}

fn negotiate(header: Option<&str>, floor: Duration) -> (Beats, String) {
    let (cx, cy) = header
        .and_then(|h| h.split_once(','))
        .map(|(a, b)| {
            (
                a.trim().parse::<u64>().unwrap_or(0),
                b.trim().parse::<u64>().unwrap_or(0),
            )
        })
        .unwrap_or((0, 0));
    // RabbitMQ counts heart-beats in whole seconds (anything under one second is
    // one second); clients and tests written against it see the same values here.
    let seconds = |ms: u64| match ms {
        0 => 0,
        1..1000 => 1000,
        ms => ms / 1000 * 1000,
    };
    let floor = floor.as_millis() as u64;
    let send = if cy == 0 { 0 } else { seconds(cy).max(floor) };
    let recv = if cx == 0 { 0 } else { seconds(cx).max(floor) };
    (
        Beats {
            send: Duration::from_millis(send),
            recv: Duration::from_millis(recv),
        },
        format!("{send},{recv}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heart_beats_in_whole_seconds_as_rabbitmq() {
        let floor = Duration::from_millis(100);
        assert_eq!(negotiate(Some("0,0"), floor).1, "0,0");
        assert_eq!(negotiate(Some("250,1500"), floor).1, "1000,1000");
        assert_eq!(negotiate(Some("4999,10000"), floor).1, "10000,4000");
        assert_eq!(negotiate(None, floor).1, "0,0");
    }
}
