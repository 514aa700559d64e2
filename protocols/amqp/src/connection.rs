//! The tokio side of one AMQP connection: read frames, feed the session, write what
//! it produces, interleave deliveries from queues, enforce timeouts.
//!
//! Unlike MQTT and STOMP, output is written by a `select!` arm ([`Io::transfer`])
//! rather than before it: a client that stops reading still has its heartbeats
//! checked and still hears connection.close on shutdown.

use crate::Config;
use crate::codec::{self, PROTOCOL_HEADER};
use crate::session::{Phase, Session};
use bytes::Buf;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switchboard_api::Transport;
use switchboard_api::conn::{Inbox, Io, Moved, next_value};
use switchboard_api::{Broker, Settle, SinkEvent};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;

/// How long a connection that sent connection.close waits for close-ok.
const CLOSE_OK_WAIT: Duration = Duration::from_secs(3);
/// How long the last output (close, close-ok) may take once the loop is over.
const LINGER: Duration = Duration::from_secs(1);
/// Session output buffers that grew past this are dropped once copied out, so a
/// connection that was busy once does not keep them while idle.
const KEEP_OUT_CAPACITY: usize = 64 * 1024;

/// Serves one client connection (TCP or TLS; the accept loop sets TCP_NODELAY)
/// until it closes, fails, or `shutdown` fires.
pub async fn serve<S>(
    stream: S,
    peer: SocketAddr,
    transport: Transport,
    broker: Arc<dyn Broker>,
    cfg: Arc<Config>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut io = Io::new(stream);
    if !protocol_header(&mut io, cfg.handshake_timeout).await {
        return;
    }
    let inbox = Arc::new(Inbox::default());
    let session = Session::new(
        broker,
        cfg.clone(),
        peer,
        transport.cert_user,
        inbox.clone(),
    );
    let mut conn = Conn::new(io, session, inbox, peer, cfg.handshake_timeout);
    conn.run(&shutdown).await;
    conn.finish().await;
}

/// Reads the 8-byte protocol header within the handshake timeout. False: the
/// connection is over (timed out, closed, or another protocol, which the spec
/// answers with the header we speak).
async fn protocol_header<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut Io<S>,
    within: Duration,
) -> bool {
    let read = timeout(within, async {
        while io.rbuf.len() < 8 {
            if io.read().await.ok()? == 0 {
                return None;
            }
        }
        Some(())
    })
    .await;
    if !matches!(read, Ok(Some(()))) {
        return false;
    }
    if &io.rbuf[..8] != PROTOCOL_HEADER {
        let _ = io.stream.write_all(PROTOCOL_HEADER).await;
        let _ = io.stream.shutdown().await;
        return false;
    }
    io.rbuf.advance(8);
    true
}

/// One open connection: its socket, its protocol state and the broker's signals it
/// follows.
struct Conn<S> {
    io: Io<S>,
    s: Session,
    inbox: Arc<Inbox>,
    peer: SocketAddr,
    /// Our own receiver of the journal position, to wake when publishes become
    /// durable (the session reads its own when releasing confirms).
    durable: Option<watch::Receiver<u64>>,
    /// Resource alarm: while on, a connection that publishes is not read from.
    alarm: Option<watch::Receiver<Option<String>>>,
    alarm_reason: Option<String>,
    /// Whether this client was sent connection.blocked (it may connect mid-alarm).
    told_blocked: bool,
    handshake_deadline: Instant,
    closing_deadline: Option<Instant>,
    last_read: Instant,
    last_write: Instant,
}

/// What woke the loop.
enum Wake {
    Shutdown,
    Alarm(Option<Option<String>>),
    Io(std::io::Result<Moved>),
    Durable(Option<u64>),
    Events(SinkEvent),
    Deadline,
}

/// Whether the loop goes on.
#[derive(PartialEq, Eq)]
enum Flow {
    Go,
    Stop,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn new(
        io: Io<S>,
        mut s: Session,
        inbox: Arc<Inbox>,
        peer: SocketAddr,
        handshake_timeout: Duration,
    ) -> Conn<S> {
        s.start();
        let now = Instant::now();
        let durable = s.durable.clone();
        let mut alarm = s.broker.alarm_watch();
        let alarm_reason = alarm.as_mut().and_then(|a| a.borrow_and_update().clone());
        Conn {
            io,
            s,
            inbox,
            peer,
            durable,
            alarm,
            alarm_reason,
            told_blocked: false,
            handshake_deadline: now + handshake_timeout,
            closing_deadline: None,
            last_read: now,
            last_write: now,
        }
    }

    async fn run(&mut self, shutdown: &CancellationToken) {
        loop {
            let held = self.handle_input();
            if let Some(d) = self.s.refusal_delay.take() {
                tokio::time::sleep(d).await;
            }
            self.tell_blocked(held);
            self.collect_output();
            if self.s.phase == Phase::Closed {
                return;
            }
            if self.s.phase == Phase::Closing && self.closing_deadline.is_none() {
                self.closing_deadline = Some(Instant::now() + CLOSE_OK_WAIT);
            }
            if self.wait(shutdown, held).await == Flow::Stop {
                return;
            }
        }
    }

    /// Decodes and handles every complete frame already buffered; during a resource
    /// alarm stops before the next publish. Returns whether a publish is held back
    /// (then the socket is not read either: back-pressure).
    fn handle_input(&mut self) -> bool {
        let s = &mut self.s;
        let rbuf = &mut self.io.rbuf;
        while s.phase != Phase::Closed {
            if self.alarm_reason.is_some()
                && s.phase == Phase::Open
                && codec::starts_with_publish(rbuf)
            {
                break;
            }
            match codec::decode(rbuf, s.frame_max().max(codec::FRAME_MIN_SIZE)) {
                Ok(Some(f)) => s.handle(f),
                Ok(None) => break,
                Err(e) => {
                    s.frame_error(&e);
                    rbuf.clear();
                    break;
                }
            }
        }
        self.alarm_reason.is_some() && codec::starts_with_publish(rbuf)
    }

    /// As RabbitMQ: a connection hears connection.blocked once it publishes (or
    /// tries to) during an alarm, and connection.unblocked when the alarm clears.
    fn tell_blocked(&mut self, held: bool) {
        let block_now = self.alarm_reason.is_some() && (self.s.has_published || held);
        if self.s.phase == Phase::Open && block_now != self.told_blocked {
            self.s
                .on_alarm(self.alarm_reason.as_deref().filter(|_| block_now));
            self.told_blocked = block_now;
        }
    }

    /// Moves what the session produced (with its batched confirms) to the output.
    fn collect_output(&mut self) {
        self.s.before_flush();
        if !self.s.out.is_empty() {
            self.io.wbuf.extend_from_slice(&self.s.out);
            self.s.out.clear();
            if self.s.out.capacity() > KEEP_OUT_CAPACITY {
                self.s.out = Vec::new();
            }
        }
    }

    /// Waits for the next thing to do, and does it.
    async fn wait(&mut self, shutdown: &CancellationToken, held: bool) -> Flow {
        let deadline = self.deadline();
        let accepting = self.io.accepting();
        let read = accepting && !held;
        let closing = self.closing_deadline.is_some();
        let events = accepting && self.s.phase == Phase::Open;
        let confirms = self.s.awaiting_durable();
        let writing = !self.io.wbuf.is_empty();
        let wake = tokio::select! {
            biased;
            _ = shutdown.cancelled(), if !closing => Wake::Shutdown,
            v = next_value(&mut self.alarm) => Wake::Alarm(v),
            r = self.io.transfer(read), if read || writing => Wake::Io(r),
            v = next_value(&mut self.durable), if confirms => Wake::Durable(v),
            ev = self.inbox.recv(), if events => Wake::Events(ev),
            _ = sleep_until(deadline) => Wake::Deadline,
        };
        match wake {
            Wake::Shutdown => self.on_shutdown(),
            Wake::Alarm(v) => self.on_alarm(v),
            Wake::Io(r) => return self.on_io(r),
            Wake::Durable(v) => self.on_durable(v),
            Wake::Events(first) => self.on_events(first),
            Wake::Deadline => return self.on_deadline(),
        }
        Flow::Go
    }

    /// When the loop must wake even if nothing arrives: the end of the handshake
    /// or of the wait for close-ok, or the next heartbeat to send or to miss.
    fn deadline(&self) -> Instant {
        let hb = self.s.heartbeat_secs();
        if !matches!(self.s.phase, Phase::Open | Phase::Closing) {
            self.handshake_deadline
        } else if let Some(d) = self.closing_deadline {
            d
        } else if hb > 0 {
            // Send a heartbeat when idle for hb/2 (output waiting to be written will
            // do instead); give up after 2 missed ones.
            let dead_at = self.last_read + Duration::from_secs(hb as u64 * 2);
            if self.io.wbuf.is_empty() {
                let send_at = self.last_write + Duration::from_secs(hb as u64) / 2;
                send_at.min(dead_at)
            } else {
                dead_at
            }
        } else {
            Instant::now() + Duration::from_secs(3600)
        }
    }

    fn on_shutdown(&mut self) {
        self.s.close_connection(crate::Reply {
            code: crate::error::CONNECTION_FORCED,
            text: "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
                .into(),
            class_id: 0,
            method_id: 0,
        });
    }

    /// `None`: the alarm is gone (shutdown); the last reason stands.
    fn on_alarm(&mut self, v: Option<Option<String>>) {
        if let Some(reason) = v {
            self.alarm_reason = reason;
        }
    }

    fn on_io(&mut self, r: std::io::Result<Moved>) -> Flow {
        match r {
            Ok(Moved::Read(0) | Moved::Wrote(0)) | Err(_) => return Flow::Stop,
            Ok(Moved::Read(_)) => self.last_read = Instant::now(),
            Ok(Moved::Wrote(_)) => self.last_write = Instant::now(),
        }
        Flow::Go
    }

    /// `None`: the store is gone (shutdown), nothing more will become durable.
    fn on_durable(&mut self, v: Option<u64>) {
        if v.is_some() {
            self.s.on_durable();
        }
    }

    fn on_events(&mut self, first: SinkEvent) {
        for ev in self.inbox.batch(first) {
            self.s.on_event(ev);
        }
    }

    fn on_deadline(&mut self) -> Flow {
        let now = Instant::now();
        if !matches!(self.s.phase, Phase::Open | Phase::Closing) {
            tracing::debug!(peer = %self.peer, "handshake timed out");
            return Flow::Stop;
        }
        if self.closing_deadline.is_some_and(|d| d <= now) {
            return Flow::Stop;
        }
        let hb = self.s.heartbeat_secs();
        if hb > 0 {
            if self.last_read + Duration::from_secs(hb as u64 * 2) <= now {
                tracing::info!(peer = %self.peer, "missed heartbeats from client, closing");
                return Flow::Stop;
            }
            if self.io.wbuf.is_empty()
                && self.last_write + Duration::from_secs(hb as u64) / 2 <= now
            {
                codec::encode_heartbeat(&mut self.s.out);
            }
        }
        Flow::Go
    }

    /// Writes what is left (close, close-ok), ends the session, and hands the
    /// deliveries that raced with the close back to their queues; the session has
    /// cancelled its consumers by then, so no more arrive.
    async fn finish(mut self) {
        self.io.close(Some(LINGER)).await;
        self.s.cleanup();
        for d in self.inbox.drain_deliveries() {
            d.queue.settle(&[d.seq], Settle::Requeue);
        }
    }
}
