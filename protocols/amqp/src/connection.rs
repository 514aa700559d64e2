//! The tokio side of one AMQP connection: read frames, feed the session, write what
//! it produces, interleave deliveries from queues, enforce timeouts.

use crate::Config;
use crate::codec::{self, PROTOCOL_HEADER};
use crate::session::{Phase, Session};
use bytes::{Buf, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switchboard_api::Broker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;

/// Stop reading from the client and taking deliveries while this much output waits
/// for the socket: a client that does not read cannot make us buffer without bound.
const OUT_HIGH_WATER: usize = 1 << 20;
/// Deliveries taken from the event channel per turn before writing.
const EVENTS_PER_TURN: usize = 256;

/// Serves one client connection until it closes, fails, or `shutdown` fires.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<dyn Broker>,
    cfg: Arc<Config>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let mut inbuf = BytesMut::with_capacity(64 * 1024);

    // Protocol header, within the handshake timeout.
    let header = timeout(cfg.handshake_timeout, async {
        while inbuf.len() < 8 {
            if rd.read_buf(&mut inbuf).await.ok()? == 0 {
                return None;
            }
        }
        Some(())
    })
    .await;
    if !matches!(header, Ok(Some(()))) {
        return;
    }
    if &inbuf[..8] != PROTOCOL_HEADER {
        // The spec: answer with the version we speak, then close.
        let _ = wr.write_all(PROTOCOL_HEADER).await;
        let _ = wr.shutdown().await;
        return;
    }
    inbuf.advance(8);

    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut s = Session::new(broker, cfg.clone(), peer, tx);
    s.start();
    let handshake_deadline = Instant::now() + cfg.handshake_timeout;
    let mut last_read = Instant::now();
    let mut last_write = Instant::now();
    let mut closing_deadline: Option<Instant> = None;
    let mut pending: BytesMut = BytesMut::new();
    // Our own receiver of the journal position, to wake when publishes become durable.
    let mut durable = s.durable.clone();
    // Resource alarm: while on, a connection that publishes is not read from.
    let mut alarm = s.broker.alarm_watch();
    let mut alarm_reason: Option<String> =
        alarm.as_mut().and_then(|a| a.borrow_and_update().clone());
    // Whether this client was sent connection.blocked (it may connect mid-alarm).
    let mut told_blocked = false;

    loop {
        // Decode and handle every complete frame already buffered; during a resource
        // alarm stop before the next publish (and stop reading: back-pressure).
        while s.phase != Phase::Closed {
            if alarm_reason.is_some()
                && s.phase == Phase::Open
                && codec::starts_with_publish(&inbuf)
            {
                break;
            }
            match codec::decode(&mut inbuf, s.frame_max().max(codec::FRAME_MIN_SIZE)) {
                Ok(Some(f)) => s.handle(f),
                Ok(None) => break,
                Err(e) => {
                    s.frame_error(&e);
                    inbuf.clear();
                    break;
                }
            }
        }
        // As RabbitMQ: a connection hears connection.blocked once it publishes (or
        // tries to) during an alarm, and connection.unblocked when the alarm clears.
        let held = alarm_reason.is_some() && codec::starts_with_publish(&inbuf);
        let block_now = alarm_reason.is_some() && (s.has_published || held);
        if s.phase == Phase::Open && block_now != told_blocked {
            s.on_alarm(alarm_reason.as_deref().filter(|_| block_now));
            told_blocked = block_now;
        }
        s.before_flush();
        if !s.out.is_empty() {
            pending.extend_from_slice(&s.out);
            s.out.clear();
        }
        if s.phase == Phase::Closed {
            break;
        }
        if s.phase == Phase::Closing && closing_deadline.is_none() {
            closing_deadline = Some(Instant::now() + Duration::from_secs(3));
        }

        let hb = s.heartbeat_secs();
        let now = Instant::now();
        let deadline = if s.phase != Phase::Open && s.phase != Phase::Closing {
            handshake_deadline
        } else if let Some(d) = closing_deadline {
            d
        } else if hb > 0 {
            // Send a heartbeat when idle for hb/2; give up after 2 missed ones.
            let send_at = last_write + Duration::from_secs(hb as u64) / 2;
            let dead_at = last_read + Duration::from_secs(hb as u64 * 2);
            send_at.min(dead_at)
        } else {
            now + Duration::from_secs(3600)
        };
        let can_take = pending.len() < OUT_HIGH_WATER;
        let can_read = can_take && !held;

        tokio::select! {
            biased;
            _ = shutdown.cancelled(), if closing_deadline.is_none() => {
                s.close_connection(crate::Reply {
                    code: crate::error::CONNECTION_FORCED,
                    text: "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'".into(),
                    class_id: 0,
                    method_id: 0,
                });
            }
            r = wr.write(&pending), if !pending.is_empty() => {
                match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        pending.advance(n);
                        last_write = Instant::now();
                    }
                }
            }
            r = switchboard_api::changed(&mut alarm), if alarm.is_some() => {
                match (r, alarm.as_mut()) {
                    (Ok(()), Some(a)) => alarm_reason = a.borrow_and_update().clone(),
                    _ => alarm = None,
                }
            }
            r = rd.read_buf(&mut inbuf), if can_read => {
                match r {
                    Ok(0) | Err(_) => break,
                    Ok(_) => last_read = Instant::now(),
                }
            }
            r = switchboard_api::changed(&mut durable), if durable.is_some() && s.awaiting_durable() => {
                if r.is_err() {
                    // The store is gone (shutdown): nothing more will become durable.
                    durable = None;
                } else {
                    s.on_durable();
                }
            }
            ev = rx.recv(), if can_take && s.phase == Phase::Open => {
                if let Some(ev) = ev {
                    s.on_event(ev);
                    for _ in 1..EVENTS_PER_TURN {
                        match rx.try_recv() {
                            Ok(ev) => s.on_event(ev),
                            Err(_) => break,
                        }
                    }
                }
            }
            _ = sleep_until(deadline) => {
                let now = Instant::now();
                if s.phase != Phase::Open && s.phase != Phase::Closing {
                    tracing::debug!(%peer, "handshake timed out");
                    break;
                }
                if closing_deadline.is_some_and(|d| d <= now) {
                    break;
                }
                if hb > 0 {
                    if last_read + Duration::from_secs(hb as u64 * 2) <= now {
                        tracing::info!(%peer, "missed heartbeats from client, closing");
                        break;
                    }
                    if pending.is_empty() && last_write + Duration::from_secs(hb as u64) / 2 <= now {
                        codec::encode_heartbeat(&mut s.out);
                    }
                }
            }
        }
    }
    // Best effort: whatever close/close-ok we queued.
    if !pending.is_empty() {
        let _ = timeout(Duration::from_secs(1), wr.write_all(&pending)).await;
    }
    let _ = wr.shutdown().await;
    s.cleanup();
    // Deliveries that raced with the close go back to their queues.
    rx.close();
    while let Ok(ev) = rx.try_recv() {
        if let switchboard_api::SinkEvent::Deliver { delivery, .. } = ev {
            delivery
                .queue
                .settle(&[delivery.seq], switchboard_api::Settle::Requeue);
        }
    }
}
