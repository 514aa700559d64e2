//! The tokio side of one STOMP connection: CONNECT within a timeout, then a loop
//! over socket reads, deliveries, the journal's durable position, resource alarms
//! and heart-beats in both directions. Generic over the byte stream, so TCP and
//! WebSocket share it.

use crate::Config;
use crate::codec::{Codec, Item, Version};
use crate::frame::{Command, Frame};
use crate::send::{Next, error_frame};
use crate::session::{Session, StompError};
use bytes::BytesMut;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switchboard_api::{Broker, Inbox, ReadRoom, SinkEvent};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::sync::CancellationToken;

/// Deliveries are not taken from the queues while this much output is unwritten.
const OUTPUT_HIGH_WATER: usize = 1 << 20;

struct Io<S> {
    stream: S,
    rbuf: BytesMut,
    wbuf: BytesMut,
    codec: Codec,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Io<S> {
    fn encode(&mut self, f: Frame) {
        if let Err(e) = self.codec.encode(f, &mut self.wbuf) {
            tracing::debug!("STOMP frame not sent: {e}");
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
            if self.wbuf.capacity() > 64 * 1024 {
                self.wbuf = BytesMut::with_capacity(1024);
            }
        }
        Ok(())
    }

    /// The next frame (heart-beats skipped); `Ok(None)` when the peer closed.
    async fn read_frame(&mut self) -> Result<Option<Frame>, StompError> {
        loop {
            match self.codec.decode(&mut self.rbuf) {
                Ok(Some(Item::Frame(f))) => return Ok(Some(f)),
                Ok(Some(Item::HeartBeat)) => continue,
                Ok(None) => {}
                Err(e) => return Err(StompError::new(e.to_string(), e.to_string())),
            }
            match self.stream.read_buf(&mut self.rbuf).await {
                Ok(0) | Err(_) => return Ok(None),
                Ok(_) => {}
            }
        }
    }

    /// Sends ERROR and closes.
    async fn fail(&mut self, e: &StompError, culprit: Option<&Frame>) {
        self.encode(error_frame(e, culprit.and_then(|f| f.header("receipt"))));
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
    }
}

/// Serves one connection until it closes.
pub async fn serve<S>(
    stream: S,
    peer: SocketAddr,
    broker: Arc<dyn Broker>,
    cfg: Arc<Config>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let inbox = Arc::new(Inbox::default());
    let opened = Box::pin(open(
        stream,
        peer,
        broker.clone(),
        cfg,
        &shutdown,
        inbox.clone(),
    ))
    .await;
    if let Some((io, session, beats)) = opened {
        run(io, session, beats, inbox, broker, shutdown).await;
    }
}

/// Heart-beat intervals agreed on CONNECT: how often we send, how often the
/// client promised to (zero: none).
#[derive(Clone, Copy)]
struct Beats {
    send: Duration,
    recv: Duration,
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
    let floor = floor.as_millis() as u64;
    let send = if cy == 0 { 0 } else { cy.max(floor) };
    let recv = if cx == 0 { 0 } else { cx.max(floor) };
    (
        Beats {
            send: Duration::from_millis(send),
            recv: Duration::from_millis(recv),
        },
        format!("{send},{recv}"),
    )
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

async fn open<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: SocketAddr,
    broker: Arc<dyn Broker>,
    cfg: Arc<Config>,
    shutdown: &CancellationToken,
    inbox: Arc<Inbox>,
) -> Option<(Io<S>, Session, Beats)> {
    let mut io = Io {
        stream,
        rbuf: BytesMut::with_capacity(256),
        wbuf: BytesMut::new(),
        codec: Codec::new(cfg.limits),
    };
    let first = tokio::select! {
        r = tokio::time::timeout(cfg.connect_timeout, io.read_frame()) => r,
        _ = shutdown.cancelled() => return None,
    };
    let mut f = match first {
        Ok(Ok(Some(f))) => f,
        Ok(Err(e)) => {
            let receipt = io
                .codec
                .partial_receipt()
                .map(str::to_string)
                .or_else(|| receipt_in(&io.rbuf));
            io.encode(error_frame(&e, receipt.as_deref()));
            let _ = io.flush().await;
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
        io.fail(&e, Some(&f)).await;
        return None;
    }
    let Some(version) = pick_version(f.header("accept-version")) else {
        let mut err = error_frame(
            &StompError::new(
                "Supported protocol versions are 1.0,1.1,1.2",
                "no common protocol version",
            ),
            f.header("receipt"),
        );
        err = err.with_header("version", "1.0,1.1,1.2");
        io.encode(err);
        let _ = io.flush().await;
        return None;
    };
    if version == Version::V10 {
        // STOMP 1.0 brokers trim header values; the codec does it for frames
        // decoded as 1.0, but this CONNECT was decoded before the version was known.
        f.trim_v10_values();
    }
    let creds = match (f.header("login"), f.header("passcode")) {
        (Some(u), p) => Some((u.to_string(), p.unwrap_or("").to_string())),
        (None, _) if peer.ip().is_loopback() => cfg.anonymous_user.clone(),
        (None, _) => None,
    };
    let user = match creds.map(|(u, p)| broker.authenticate(&u, &p, peer)) {
        Some(Ok(u)) => u,
        Some(Err(e)) => {
            tracing::info!(%peer, "STOMP login refused: {e}");
            let e = StompError::new("Access refused", "bad login or passcode");
            io.fail(&e, Some(&f)).await;
            return None;
        }
        None => {
            let e = StompError::new("Access refused", "login and passcode required");
            io.fail(&e, Some(&f)).await;
            return None;
        }
    };
    let vhost = match f.header("host") {
        Some(h) if broker.open_vhost(&user, h).is_ok() => h.to_string(),
        // Many clients put the server's host name here (stomp.py does): that is
        // not a vhost, so it means the default one.
        Some(h) if h == "localhost" || h.parse::<std::net::IpAddr>().is_ok() => {
            cfg.default_vhost.clone()
        }
        Some(h) => {
            let e = StompError::new(
                "Virtual host access denied",
                format!(
                    "vhost '{h}' does not exist or user '{}' may not use it",
                    user.name
                ),
            );
            io.fail(&e, Some(&f)).await;
            return None;
        }
        None => cfg.default_vhost.clone(),
    };
    if broker.open_vhost(&user, &vhost).is_err() {
        let e = StompError::new(
            "Virtual host access denied",
            format!("no access to '{vhost}'"),
        );
        io.fail(&e, Some(&f)).await;
        return None;
    }
    let (beats, hb) = negotiate(f.header("heart-beat"), cfg.heartbeat_floor);
    let conn = broker.connection_opened();
    let session_id = format!("session-{conn}");
    let connected = Frame::new(Command::Connected)
        .with_header("version", version.as_str())
        .with_header("session", session_id.as_str())
        .with_header("server", concat!("Switchboard/", env!("CARGO_PKG_VERSION")))
        .with_header("heart-beat", hb);
    io.encode(connected);
    io.codec.set_version(version);
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
    Some((io, session, beats))
}

async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: Io<S>,
    mut session: Session,
    beats: Beats,
    inbox: Arc<Inbox>,
    broker: Arc<dyn Broker>,
    shutdown: CancellationToken,
) {
    let mut durable = broker.durable_watch();
    let mut durable_lsn = durable.as_ref().map_or(u64::MAX, |w| *w.borrow());
    // Resource alarms hold publishers back: decoding stops right before a SEND and
    // the socket is not read (TCP back-pressure); the client's heart-beats are not
    // checked meanwhile.
    let mut alarm = broker.alarm_watch();
    let mut blocked = alarm.as_ref().is_some_and(|a| a.borrow().is_some());
    let mut held = false;
    let recv_limit = (!beats.recv.is_zero()).then(|| beats.recv * 2);
    let mut last_read = Instant::now();
    let mut last_write = Instant::now();
    let mut closing = false;
    // Frames that came in the same read as CONNECT are already buffered.
    let mut input = true;
    let mut read_room = ReadRoom::default();
    loop {
        if input && !held && !closing {
            input = false;
            match handle_input(&mut io, &mut session, blocked) {
                Ok(Input::Done) => {}
                Ok(Input::Held) => held = true,
                Ok(Input::Disconnect) => closing = true,
                Err((e, receipt)) => {
                    tracing::debug!("STOMP: closing: {}", e.message);
                    io.encode(error_frame(&e, receipt.as_deref()));
                    break;
                }
            }
        }
        release(&mut io, &mut session, durable_lsn);
        if !io.wbuf.is_empty() {
            if io.flush().await.is_err() {
                break;
            }
            last_write = Instant::now();
        }
        if closing && session.pending.is_empty() {
            break;
        }
        let accepting = io.wbuf.len() < OUTPUT_HIGH_WATER && !closing;
        let send_at = (!beats.send.is_zero()).then(|| last_write + beats.send);
        let dead_at = recv_limit.filter(|_| !held).map(|l| last_read + l);
        let room = read_room.prepare(&mut io.rbuf);
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                let e = StompError::new("Server shutting down", "the broker is stopping");
                io.encode(error_frame(&e, None));
                break;
            }
            _ = async { tokio::time::sleep_until(dead_at.unwrap_or_else(Instant::now)).await }, if dead_at.is_some() => {
                tracing::debug!("STOMP client missed its heart-beats; closing");
                break;
            }
            _ = async { tokio::time::sleep_until(send_at.unwrap_or_else(Instant::now)).await }, if send_at.is_some() => {
                io.wbuf.extend_from_slice(b"\n");
            }
            r = switchboard_api::changed(&mut durable) => {
                if r.is_err() { break; }
                if let Some(w) = durable.as_mut() { durable_lsn = *w.borrow_and_update(); }
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
                    last_read = Instant::now();
                }
            }
            ev = inbox.recv(), if accepting => {
                let mut next = Some(ev);
                let mut n = 0;
                while let Some(ev) = next {
                    match ev {
                        SinkEvent::Deliver { consumer, delivery } => session.deliver(consumer, delivery),
                        SinkEvent::Cancelled { consumer } => {
                            if let Some(id) = session.by_tag.remove(&consumer) {
                                session.subs.remove(&id);
                            }
                        }
                    }
                    n += 1;
                    next = if n < 256 { inbox.try_pop() } else { None };
                }
            }
            r = io.stream.read_buf(&mut io.rbuf), if !held && !closing => {
                match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read_room.read(n, room),
                }
                last_read = Instant::now();
                input = true;
            }
        }
    }
    let _ = io.flush().await;
    let _ = io.stream.shutdown().await;
    session.close();
}

enum Input {
    Done,
    /// Stopped before a SEND because of a resource alarm.
    Held,
    Disconnect,
}

/// Decodes and handles every whole frame in the read buffer (with `hold_send`,
/// up to the first SEND).
fn handle_input<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut Io<S>,
    s: &mut Session,
    hold_send: bool,
) -> Result<Input, (StompError, Option<String>)> {
    loop {
        if hold_send && starts_with_send(&io.rbuf) {
            return Ok(Input::Held);
        }
        let f = match io.codec.decode(&mut io.rbuf) {
            Ok(Some(Item::Frame(f))) => f,
            Ok(Some(Item::HeartBeat)) => continue,
            Ok(None) => return Ok(Input::Done),
            Err(e) => {
                let receipt = io
                    .codec
                    .partial_receipt()
                    .map(str::to_string)
                    .or_else(|| receipt_in(&io.rbuf));
                return Err((StompError::new(e.to_string(), e.to_string()), receipt));
            }
        };
        let receipt = f.header("receipt").map(str::to_string);
        match s.handle(f) {
            Ok(Next::Continue) => {}
            Ok(Next::Disconnect) => return Ok(Input::Disconnect),
            Err(e) => return Err((e, receipt)),
        }
    }
}

/// The `receipt` header of a frame the codec refused, read from the raw bytes (so
/// the ERROR can name it, as RabbitMQ's does); best effort, first 64 KiB only.
fn receipt_in(buf: &[u8]) -> Option<String> {
    let head = &buf[..buf.len().min(64 * 1024)];
    let start = head.iter().position(|b| *b != b'\n' && *b != b'\r')?;
    head[start..]
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix(b"receipt:"))
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::to_string)
}

fn starts_with_send(buf: &[u8]) -> bool {
    let start = buf
        .iter()
        .position(|b| *b != b'\n' && *b != b'\r')
        .unwrap_or(buf.len());
    buf[start..].starts_with(b"SEND")
}

/// Encodes the pending frames whose journal position is durable, in order.
fn release<S: AsyncRead + AsyncWrite + Unpin>(io: &mut Io<S>, s: &mut Session, durable: u64) {
    while let Some((lsn, _)) = s.pending.front() {
        if *lsn > durable {
            break;
        }
        if let Some((_, f)) = s.pending.pop_front() {
            io.encode(f);
        }
    }
}
