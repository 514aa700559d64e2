//! The tokio side of one STOMP connection after CONNECT (`connect.rs`): a loop over
//! socket reads, deliveries, the journal's durable position, resource alarms and
//! heart-beats in both directions. Generic over the byte stream, so TCP and
//! WebSocket share it.

use crate::Config;
use crate::codec::Item;
use crate::connect::{Beats, open};
use crate::send::{Next, error_frame};
use crate::session::{Session, StompError};
use crate::wire::Wire;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switchboard_api::conn::{Inbox, Watches, next_value};
use switchboard_api::{Broker, SinkEvent, Transport};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Serves one connection until it closes.
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
    let inbox = Arc::new(Inbox::default());
    // Boxed: the handshake's state would otherwise stay in every connection's
    // future for its whole life.
    let opened = Box::pin(open(
        stream,
        peer,
        transport,
        &broker,
        &cfg,
        &shutdown,
        inbox.clone(),
    ))
    .await;
    if let Some((wire, session, beats)) = opened {
        let mut conn = Conn::new(wire, session, beats, inbox, &broker);
        conn.run(&shutdown).await;
        conn.finish().await;
    }
}

/// One connection after CONNECTED: its parts, and the state of its loop.
struct Conn<S> {
    wire: Wire<S>,
    session: Session,
    beats: Beats,
    inbox: Arc<Inbox>,
    watches: Watches,
    /// Decoding stopped before a SEND because of a resource alarm, and the socket
    /// is not read (TCP back-pressure); the client's heart-beats are not checked
    /// meanwhile.
    held: bool,
    /// The client's heart-beats may be this late (twice what it promised).
    recv_limit: Option<Duration>,
    last_read: Instant,
    last_write: Instant,
    /// DISCONNECT came: write what is owed (receipts wait for the journal), then
    /// close.
    closing: bool,
    /// Bytes arrived that were not decoded yet.
    input: bool,
}

/// What woke the loop.
enum Wake {
    Shutdown,
    HeartBeatsMissed,
    HeartBeatDue,
    Durable(Option<u64>),
    Alarm(Option<Option<String>>),
    Events(SinkEvent),
    Read(std::io::Result<usize>),
}

/// Whether the loop goes on.
#[derive(PartialEq, Eq)]
enum Flow {
    Go,
    Stop,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn new(
        wire: Wire<S>,
        session: Session,
        beats: Beats,
        inbox: Arc<Inbox>,
        broker: &Arc<dyn Broker>,
    ) -> Self {
        let now = Instant::now();
        Conn {
            wire,
            session,
            beats,
            inbox,
            watches: Watches::new(broker.as_ref()),
            held: false,
            recv_limit: (!beats.recv.is_zero()).then(|| beats.recv * 2),
            last_read: now,
            last_write: now,
            closing: false,
            // Frames that came in the same read as CONNECT are already buffered.
            input: true,
        }
    }

    /// The loop: handle what was read, write what is released, wait for the next
    /// thing to do.
    async fn run(&mut self, shutdown: &CancellationToken) {
        loop {
            if self.input && !self.held && !self.closing {
                self.input = false;
                if self.on_input() == Flow::Stop {
                    return;
                }
            }
            self.release();
            if !self.wire.io.wbuf.is_empty() {
                if self.wire.io.flush().await.is_err() {
                    return;
                }
                self.last_write = Instant::now();
            }
            if self.closing && self.session.pending.is_empty() {
                return;
            }
            let wake = self.wait(shutdown).await;
            if self.on_wake(wake) == Flow::Stop {
                return;
            }
        }
    }

    async fn wait(&mut self, shutdown: &CancellationToken) -> Wake {
        let accepting = self.wire.io.accepting() && !self.closing;
        let reading = !self.held && !self.closing;
        let send_at = (!self.beats.send.is_zero()).then(|| self.last_write + self.beats.send);
        let dead_at = self
            .recv_limit
            .filter(|_| !self.held)
            .map(|l| self.last_read + l);
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => Wake::Shutdown,
            _ = async { tokio::time::sleep_until(dead_at.unwrap_or_else(Instant::now)).await }, if dead_at.is_some() => Wake::HeartBeatsMissed,
            _ = async { tokio::time::sleep_until(send_at.unwrap_or_else(Instant::now)).await }, if send_at.is_some() => Wake::HeartBeatDue,
            v = next_value(&mut self.watches.durable) => Wake::Durable(v),
            v = next_value(&mut self.watches.alarm) => Wake::Alarm(v),
            ev = self.inbox.recv(), if accepting => Wake::Events(ev),
            r = self.wire.io.read(), if reading => Wake::Read(r),
        }
    }

    fn on_wake(&mut self, wake: Wake) -> Flow {
        match wake {
            Wake::Shutdown => {
                let e = StompError::new("Server shutting down", "the broker is stopping");
                self.wire.encode(error_frame(&e, None));
                return Flow::Stop;
            }
            Wake::HeartBeatsMissed => {
                tracing::debug!("STOMP client missed its heart-beats; closing");
                return Flow::Stop;
            }
            Wake::HeartBeatDue => self.wire.io.wbuf.extend_from_slice(b"\n"),
            Wake::Durable(None) => return Flow::Stop,
            Wake::Durable(Some(lsn)) => self.watches.durable_lsn = lsn,
            Wake::Alarm(v) => self.on_alarm(v),
            Wake::Events(first) => self.on_events(first),
            Wake::Read(Ok(0) | Err(_)) => return Flow::Stop,
            Wake::Read(Ok(_)) => {
                self.last_read = Instant::now();
                self.input = true;
            }
        }
        Flow::Go
    }

    /// Handles the frames read so far; a client error is answered with ERROR and
    /// ends the connection.
    fn on_input(&mut self) -> Flow {
        match handle_input(&mut self.wire, &mut self.session, self.watches.blocked) {
            Ok(Input::Done) => {}
            Ok(Input::Held) => self.held = true,
            Ok(Input::Disconnect) => self.closing = true,
            Err((e, receipt)) => {
                tracing::debug!("STOMP: closing: {}", e.message);
                self.wire.encode(error_frame(&e, receipt.as_deref()));
                return Flow::Stop;
            }
        }
        Flow::Go
    }

    /// `None`: the alarm is gone (shutdown), so nothing is blocked any more.
    fn on_alarm(&mut self, v: Option<Option<String>>) {
        self.watches.blocked = v.is_some_and(|reason| reason.is_some());
        if self.held && !self.watches.blocked {
            self.held = false;
            self.input = true;
            self.last_read = Instant::now();
        }
    }

    /// Takes a batch of deliveries, so one write carries many.
    fn on_events(&mut self, first: SinkEvent) {
        for ev in self.inbox.batch(first) {
            match ev {
                SinkEvent::Deliver { consumer, delivery } => {
                    self.session
                        .deliver(consumer, delivery, &mut self.wire.io.wbuf)
                }
                SinkEvent::Cancelled { consumer } => {
                    if let Some(id) = self.session.by_tag.remove(&consumer) {
                        self.session.subs.remove(&id);
                    }
                }
            }
        }
    }

    /// Encodes the pending frames whose journal position is durable, in order.
    fn release(&mut self) {
        for f in self.watches.release(&mut self.session.pending) {
            self.wire.encode(f);
        }
    }

    /// Writes what is left and ends the session (its unacknowledged messages and
    /// what was still in the inbox go back to their queues).
    async fn finish(mut self) {
        self.wire.io.close(None).await;
        self.session.close();
    }
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
    wire: &mut Wire<S>,
    s: &mut Session,
    hold_send: bool,
) -> Result<Input, (StompError, Option<String>)> {
    loop {
        if hold_send && starts_with_send(&wire.io.rbuf) {
            return Ok(Input::Held);
        }
        let f = match wire.codec.decode_inbound(&mut wire.io.rbuf) {
            Ok(Some(Item::Frame(f))) => f,
            Ok(Some(Item::HeartBeat)) => continue,
            Ok(None) => return Ok(Input::Done),
            Err(e) => {
                let e = StompError::from(e);
                return Err((e, wire.refused_receipt()));
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

fn starts_with_send(buf: &[u8]) -> bool {
    let start = buf
        .iter()
        .position(|b| *b != b'\n' && *b != b'\r')
        .unwrap_or(buf.len());
    buf[start..].starts_with(b"SEND")
}
