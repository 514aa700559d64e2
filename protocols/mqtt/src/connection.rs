//! The tokio side of one MQTT connection after CONNECT (`connect.rs`): read and
//! decode, feed the session, write what it releases, keepalive (× 1.5), resource
//! alarms, takeover by another connection, and the will at the end. Generic over
//! the byte stream, so TCP and WebSocket share it.

use crate::Config;
use crate::codec::{CodecError, Packet};
use crate::connect::{Accepted, open};
use crate::registry::{Claim, Registry};
use crate::session::Session;
use crate::will::publish_will;
use crate::wire::Wire;
use futures_util::FutureExt;
use rmqtt_codec::v5::{self, DisconnectReasonCode as D};
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
    registry: Registry,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // The handshake boxed, and the connection after it boxed, built in a closure
    // so that no value of it is bound in this future's own state (a binding keeps
    // its space here for the connection's whole life): each part is allocated at
    // its own size, not a task sized for the handshake, the loop and the end at
    // once — an idle connection's biggest cost.
    let conn = Box::pin(open(
        stream,
        peer,
        transport,
        broker.clone(),
        cfg,
        &registry,
        &shutdown,
    ))
    .await
    .map(|(wire, accepted, inbox)| {
        Box::pin(Conn::new(wire, accepted, inbox, registry).serve(shutdown.clone()))
    });
    if let Some(conn) = conn {
        conn.await;
    }
}

/// One connection after CONNACK: its parts, and the state of its loop.
struct Conn<S> {
    wire: Wire<S>,
    session: Session,
    claim: Claim,
    will: Option<v5::LastWill>,
    inbox: Arc<Inbox>,
    registry: Registry,
    /// Keepalive × 1.5; `None`: the client asked for none.
    limit: Option<Duration>,
    /// When the keepalive runs out; `None` also while input is held by an alarm
    /// (the client's PINGREQs wait unread behind the held PUBLISH).
    deadline: Option<Instant>,
    watches: Watches,
    /// Decoding stopped before a PUBLISH because of a resource alarm, and the
    /// socket is not read (TCP back-pressure, DESIGN.md §3), so subscribers keep
    /// acknowledging.
    held: bool,
    /// Bytes arrived that were not decoded yet.
    input: bool,
}

/// What woke the loop.
enum Wake {
    Shutdown,
    Kicked,
    KeepaliveTimeout,
    Durable(Option<u64>),
    Events(SinkEvent),
    Alarm(Option<Option<String>>),
    Relieved,
    Read(std::io::Result<usize>),
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn new(wire: Wire<S>, accepted: Accepted, inbox: Arc<Inbox>, registry: Registry) -> Self {
        let Accepted {
            session,
            claim,
            will,
            keepalive,
        } = accepted;
        let limit = (keepalive > 0).then(|| Duration::from_millis(u64::from(keepalive) * 1500));
        let watches = Watches::new(session.broker.as_ref());
        Conn {
            watches,
            wire,
            session,
            claim,
            will,
            inbox,
            registry,
            limit,
            deadline: limit.map(|l| Instant::now() + l),
            held: false,
            // Packets that came in the same read as CONNECT (a client need not wait
            // for CONNACK, MQTT-3.1.4) are already buffered.
            input: true,
        }
    }

    /// The loop: handle what was read, write what is released, wait for the next
    /// thing to do. Returns how the connection ended.
    async fn run(&mut self, shutdown: &CancellationToken) -> End {
        if let Err(e) = self.session.start() {
            tracing::warn!("MQTT session {}: {e}", self.session.client_id);
        }
        self.release();
        loop {
            if self.input && !self.held {
                self.input = false;
                if let Some(end) = self.on_input() {
                    return end;
                }
                self.release();
            }
            if self.wire.io.flush().await.is_err() {
                return End::Abrupt;
            }
            let wake = self.wait(shutdown).await;
            if let Some(end) = self.on_wake(wake) {
                return end;
            }
            self.release();
        }
    }

    async fn wait(&mut self, shutdown: &CancellationToken) -> Wake {
        let accepting = self.wire.io.accepting();
        let deadline = self.deadline;
        let reading = !self.held && !self.session.flow.full();
        let max_hold = self.session.cfg.backlog_max_hold;
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => Wake::Shutdown,
            _ = self.claim.kicked.cancelled() => Wake::Kicked,
            _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)).await }, if deadline.is_some() => Wake::KeepaliveTimeout,
            v = next_value(&mut self.watches.durable) => Wake::Durable(v),
            ev = self.inbox.recv(), if accepting => Wake::Events(ev),
            v = next_value(&mut self.watches.alarm) => Wake::Alarm(v),
            _ = crate::flow::relief(&mut self.session.flow, max_hold) => Wake::Relieved,
            r = self.wire.io.read(), if reading => Wake::Read(r),
        }
    }

    /// Does what woke the loop; `Some` when the connection is over.
    fn on_wake(&mut self, wake: Wake) -> Option<End> {
        match wake {
            Wake::Shutdown => {
                self.disconnect(D::ServerShuttingDown, "server shutting down");
                return Some(End::Server);
            }
            Wake::Kicked => return Some(self.on_kicked()),
            Wake::KeepaliveTimeout => {
                self.disconnect(D::KeepAliveTimeout, "keep alive timeout");
                return Some(End::Abrupt);
            }
            Wake::Durable(None) => return Some(End::Abrupt),
            Wake::Durable(Some(lsn)) => self.watches.durable_lsn = lsn,
            Wake::Events(first) => self.on_events(first),
            Wake::Alarm(v) => self.on_alarm(v),
            Wake::Relieved => {
                let held = self.session.flow.release();
                self.session.pending.extend(held);
            }
            Wake::Read(Ok(0) | Err(_)) => return Some(End::Abrupt),
            Wake::Read(Ok(_)) => {
                self.deadline = self.limit.map(|l| Instant::now() + l);
                self.input = true;
            }
        }
        None
    }

    /// Handles the packets read so far; `Some` when they end the connection.
    fn on_input(&mut self) -> Option<End> {
        match handle_input(&mut self.wire, &mut self.session, self.watches.blocked) {
            Ok(Input::Done) => None,
            Ok(Input::Held) => {
                self.held = true;
                self.deadline = None;
                None
            }
            Ok(Input::End(e)) => Some(e),
            Err((code, why)) => {
                tracing::debug!(client = self.session.client_id, "MQTT: closing: {why}");
                self.disconnect(code, why);
                Some(End::Abrupt)
            }
        }
    }

    /// Another connection took the client id. What this one sent before (acks,
    /// often) still counts.
    fn on_kicked(&mut self) -> End {
        while let Some(Ok(n)) = self.wire.io.read().now_or_never() {
            if n == 0 {
                break;
            }
        }
        let end = match handle_input(&mut self.wire, &mut self.session, self.watches.blocked) {
            Ok(Input::End(e)) => e,
            _ => End::TakenOver,
        };
        self.disconnect(
            D::SessionTakenOver,
            "another connection took over this client id",
        );
        end
    }

    /// Takes a batch of deliveries, so one write carries many.
    fn on_events(&mut self, first: SinkEvent) {
        for ev in self.inbox.batch(first) {
            match ev {
                SinkEvent::Deliver { consumer, delivery } => {
                    self.session.deliver(consumer, delivery)
                }
                SinkEvent::Cancelled { consumer } => {
                    self.session.consumers.remove(&consumer);
                }
            }
        }
    }

    /// `None`: the alarm is gone (shutdown), so nothing is blocked any more.
    fn on_alarm(&mut self, v: Option<Option<String>>) {
        self.watches.blocked = v.is_some_and(|reason| reason.is_some());
        if self.held && !self.watches.blocked {
            self.held = false;
            self.input = true;
            self.deadline = self.limit.map(|l| Instant::now() + l);
        }
    }

    /// Encodes the pending packets whose journal position is durable, in order.
    fn release(&mut self) {
        for p in self.watches.release(&mut self.session.pending) {
            self.wire.encode(p);
        }
        // Given back once drained: a few slots of packets cost an idle connection
        // half a KiB, a busy one a new buffer per wake at most.
        if self.session.pending.is_empty() && self.session.pending.capacity() > 0 {
            self.session.pending = Default::default();
        }
    }

    fn disconnect(&mut self, code: D, why: &str) {
        if let Some(p) = self.session.disconnect_packet(code, why) {
            self.wire.encode(p);
        }
    }

    /// Writes what is left, parks or ends the session, and publishes the will when
    /// the way the connection ended calls for it.
    async fn serve(mut self, shutdown: CancellationToken) {
        let end = self.run(&shutdown).await;
        self.finish(end).await;
    }

    /// Takes `&mut self`, not `self`: a finish future that owned the connection
    /// would keep a second copy of it beside the loop's.
    async fn finish(&mut self, end: End) {
        self.wire.io.close(None).await;
        let session = &mut self.session;
        let end_session = session.expiry == 0;
        session.stop_consuming();
        let parked = session.close(end_session, self.inbox.drain_deliveries());
        if !parked.is_empty() {
            self.registry
                .park(&session.vhost, &session.client_id, parked);
        }
        if let Some(w) = self.will.take()
            && let Some(delay) = will_delay(end, &w, end_session, session.expiry)
        {
            // As the user: a will is a publish like any other.
            publish_will(
                session.broker.clone(),
                self.registry.clone(),
                session.vhost.clone(),
                session.client_id.clone(),
                w,
                (delay, self.claim.id()),
            );
        }
    }
}

/// Whether the will is sent after this end, and after how many seconds.
fn will_delay(end: End, w: &v5::LastWill, end_session: bool, expiry: u32) -> Option<u32> {
    let send = match end {
        End::Normal | End::Server => false,
        End::TakenOver => w.will_delay_interval_sec.unwrap_or(0) == 0,
        End::Abrupt | End::WithWill => true,
    };
    let max = if end_session { 0 } else { expiry };
    send.then(|| w.will_delay_interval_sec.unwrap_or(0).min(max))
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
    wire: &mut Wire<S>,
    s: &mut Session,
    hold_publish: bool,
) -> Result<Input, crate::session::Violation> {
    loop {
        if hold_publish && wire.io.rbuf.first().is_some_and(|b| b >> 4 == 3) {
            return Ok(Input::Held);
        }
        let p = match wire.codec.decode(&mut wire.io.rbuf) {
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
                    s.set_expiry(e);
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
