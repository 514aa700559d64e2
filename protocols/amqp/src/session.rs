//! One AMQP connection's protocol state machine, without I/O: frames in, bytes out
//! (in `out`), broker calls in between. `connection.rs` owns the socket. This file
//! keeps the state and routes frames; every method class, connection and channel
//! included, is handled in `methods/`.

use crate::Config;
use crate::channel::{Channel, Unacked, settle_grouped};
use crate::codec::{self, Frame};
use crate::convert::short;
use crate::error::*;
use amq_protocol::protocol::{AMQPClass, basic};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use switchboard_api::{Broker, ConnectionId, Inbox, QueueHandle, Settle, SinkEvent, User};

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

pub struct Session {
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) cfg: Arc<Config>,
    pub(crate) peer: SocketAddr,
    pub conn_id: ConnectionId,
    pub phase: Phase,
    pub(crate) user: Option<User>,
    /// The user a verified client certificate names: offers EXTERNAL.
    pub(crate) cert_user: Option<String>,
    pub(crate) vhost: String,
    pub(crate) frame_max: u32,
    pub(crate) channel_max: u16,
    /// Negotiated heartbeat in seconds; 0 = off.
    pub heartbeat: u16,
    pub(crate) cancel_notify: bool,
    /// What the client said in connection.start-ok, for the admin API.
    pub(crate) client_properties: switchboard_api::Table,
    /// Open channels, read by the admin API.
    pub(crate) channel_count: Arc<std::sync::atomic::AtomicU32>,
    /// The client understands connection.blocked / unblocked.
    pub(crate) blocked_notify: bool,
    /// It has published: an alarm blocks it (and tells it so) from now on.
    pub has_published: bool,
    /// Set by a refused login: how long to wait before the refusal is sent.
    pub refusal_delay: Option<std::time::Duration>,

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
        cert_user: Option<String>,
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
            cert_user,
            vhost: String::new(),
            cancel_notify: false,
            client_properties: switchboard_api::Table::new(),
            channel_count: Arc::default(),
            blocked_notify: false,
            has_published: false,
            refusal_delay: None,

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

    /// Handles one decoded frame. Connection errors are turned into connection.close
    /// here; the caller only looks at `phase` afterwards.
    pub fn handle(&mut self, frame: Frame) {
        if let Err(e) = self.dispatch(frame) {
            self.fail(e);
        }
        let open = u32::try_from(self.channels.len()).unwrap_or(u32::MAX);
        self.channel_count
            .store(open, std::sync::atomic::Ordering::Relaxed);
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

    fn dispatch(&mut self, frame: Frame) -> Result<()> {
        match self.phase {
            Phase::Closed => return Ok(()),
            Phase::Closing => {
                if let Frame::Method(0, m) = frame {
                    self.closing_method(*m);
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

    /// Cancels a channel's consumers and requeues its unacked deliveries, in order.
    pub(crate) fn release_channel(&mut self, ch: u16) {
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

    pub(crate) fn release_all(&mut self) {
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

    /// Whether the peer misses heartbeats: true when the limit passed.
    pub fn heartbeat_secs(&self) -> u16 {
        if self.phase == Phase::Open {
            self.heartbeat
        } else {
            0
        }
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
