//! One STOMP connection's state after CONNECTED: subscriptions, unacknowledged
//! messages, transactions, temporary queues. SEND and transactions are in
//! `send.rs`. No I/O: frames to send go onto `pending` with the journal position
//! that must be durable first (a RECEIPT means "accepted", DESIGN.md §3).

use crate::Config;
use crate::destination::{Destination, DestinationError, binding_key};
use crate::error::FrameError;
use crate::frame::{Command, Frame};
use crate::inbound::Inbound;
use crate::message::MessageFrame;
use crate::version::Version;
use bytes::BytesMut;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use switchboard_api::{
    Broker, BrokerError, ConnectionId, ConsumerHandle, ConsumerSpec, Delivery, Inbox, QueueDecl,
    Settle, Table, Value,
};

/// A client error: sent as ERROR (with `message`, and `receipt-id` if the frame
/// asked for a receipt), after which the connection closes.
#[derive(Debug)]
pub struct StompError {
    pub message: String,
    pub detail: String,
}

impl StompError {
    pub fn new(message: impl Into<String>, detail: impl Into<String>) -> StompError {
        StompError {
            message: message.into(),
            detail: detail.into(),
        }
    }
}

impl From<DestinationError> for StompError {
    fn from(e: DestinationError) -> StompError {
        StompError::new(e.message(), e.detail())
    }
}

/// Bytes that are not a frame; an unknown command in RabbitMQ's words.
impl From<FrameError> for StompError {
    fn from(e: FrameError) -> StompError {
        match e {
            FrameError::UnknownCommand(c) => StompError::new(
                "Bad command",
                format!("Could not interpret command \"{c}\""),
            ),
            e => StompError::new(e.to_string(), e.to_string()),
        }
    }
}

/// RabbitMQ's STOMP plugin words a core error as the AMQP reply it would close with:
/// `message:not_found`, body `NOT_FOUND - no queue 'q' in vhost '/'`; so do we.
impl From<BrokerError> for StompError {
    fn from(e: BrokerError) -> StompError {
        let kind = e.kind().as_str();
        StompError::new(kind, format!("{} - {e}", kind.to_ascii_uppercase()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckMode {
    Auto,
    Client,
    ClientIndividual,
}

pub struct Sub {
    pub tag: u64,
    pub ack: AckMode,
    pub queue: String,
    consumer: Box<dyn ConsumerHandle>,
}

pub struct Session {
    pub broker: Arc<dyn Broker>,
    pub cfg: Arc<Config>,
    pub conn: ConnectionId,
    pub vhost: String,
    pub version: Version,
    /// ActiveMQ's `client-id` (names durable subscriptions), else the user name.
    pub client_id: String,
    pub inbox: Arc<Inbox>,
    pub subs: HashMap<String, Sub>,
    pub by_tag: HashMap<u64, String>,
    pub next_tag: u64,
    /// Unacknowledged deliveries by their ack number (`message-id`/`ack` header).
    pub unacked: BTreeMap<u64, (u64, Delivery)>,
    pub next_ack: u64,
    /// `/temp-queue/x` → the server-named queue behind it.
    pub temp: HashMap<String, String>,
    pub tx: HashMap<String, Vec<Inbound>>,
    pub pending: VecDeque<(u64, Frame)>,
    /// The highest journal position any SEND of this connection needs: a RECEIPT
    /// (DISCONNECT's above all) covers everything sent before it.
    pub sent_lsn: u64,
}

pub type Result<T> = std::result::Result<T, StompError>;

pub fn required<'a>(f: &'a Inbound, name: &str) -> Result<&'a str> {
    f.header(name).ok_or_else(|| {
        StompError::new(
            format!("Missing {name}"),
            format!("\"{}\" must include a '{name}' header", f.command.as_str()),
        )
    })
}

/// Whether a header says yes, STOMP style: present and not `true` means no.
fn yes(f: &Inbound, name: &str) -> Option<bool> {
    f.header(name).map(|_| f.flag(name) == Some(true))
}

impl Session {
    pub fn send_frame(&mut self, lsn: u64, f: Frame) {
        self.pending.push_back((lsn, f));
    }

    /// RECEIPT for a frame that asked for one, once `lsn` and every earlier SEND
    /// are durable.
    pub fn receipt(&mut self, f: &Inbound, lsn: u64) {
        self.sent_lsn = self.sent_lsn.max(lsn);
        let lsn = self.sent_lsn;
        if let Some(r) = f.header("receipt") {
            let r = Frame::new(Command::Receipt).with_header("receipt-id", r);
            self.send_frame(lsn, r);
        }
    }

    fn declare(&self, decl: QueueDecl) -> Result<String> {
        Ok(self
            .broker
            .declare_queue(&self.vhost, &decl, self.conn)?
            .name)
    }

    /// A queue named by a `/queue/` destination: durable and shared, as RabbitMQ
    /// declares it, unless the frame's headers say otherwise (`x-` headers become
    /// queue arguments). An existing queue is taken as it is unless they do.
    pub fn declare_named(&self, name: &str, f: &Inbound) -> Result<()> {
        let arguments = queue_arguments(f);
        // A queue that exists is used as it is when the frame asks nothing of it:
        // queues made by others (an SQS queue with its arguments, an AMQP queue
        // with a TTL) would otherwise refuse a declare without those arguments.
        let asks = ["durable", "exclusive", "auto-delete"]
            .iter()
            .any(|h| f.header(h).is_some());
        if arguments.is_empty() && !asks && self.broker.queue_exists(&self.vhost, name) {
            return Ok(());
        }
        self.declare(QueueDecl {
            name: name.to_string(),
            durable: yes(f, "durable").unwrap_or(true),
            exclusive: yes(f, "exclusive").unwrap_or(false),
            auto_delete: yes(f, "auto-delete").unwrap_or(false),
            passive: false,
            arguments,
        })?;
        Ok(())
    }

    pub fn subscribe(&mut self, f: &Inbound) -> Result<()> {
        let dest_s = required(f, "destination")?;
        let dest = Destination::parse(dest_s)?;
        let id = match (f.header("id"), self.version) {
            (Some(id), _) => id.to_string(),
            (None, Version::V10) => dest_s.to_string(),
            (None, _) => {
                return Err(StompError::new(
                    "Missing 'id' header",
                    "SUBSCRIBE needs an 'id' header in STOMP 1.1 and 1.2",
                ));
            }
        };
        if self.subs.contains_key(&id) {
            return Err(StompError::new(
                "Duplicated subscription identifier",
                format!("A subscription identified by '{id}' already exists."),
            ));
        }
        let ack = match f.header("ack").unwrap_or("auto") {
            "auto" => AckMode::Auto,
            "client" => AckMode::Client,
            "client-individual" => AckMode::ClientIndividual,
            other => {
                return Err(StompError::new(
                    "Invalid ack mode",
                    format!("ack '{other}' is not auto, client or client-individual"),
                ));
            }
        };
        let queue = match &dest {
            Destination::Queue(q) => {
                self.declare_named(q, f)?;
                q.clone()
            }
            Destination::AmqQueue(q) => {
                if !self.broker.queue_exists(&self.vhost, q) {
                    return Err(StompError::new(
                        "not_found",
                        format!("NOT_FOUND - no queue '{q}' in vhost '{}'", self.vhost),
                    ));
                }
                q.clone()
            }
            Destination::Topic(k) => self.own_queue(f, &id, "amq.topic", &binding_key(k))?,
            Destination::Exchange { name, key } => self.own_queue(f, &id, name, key)?,
            Destination::ReplyQueue(_) | Destination::TempQueue(_) => {
                return Err(StompError::new(
                    "Invalid destination",
                    format!("cannot SUBSCRIBE to '{dest_s}'"),
                ));
            }
        };
        self.consume(id, queue, ack, prefetch(f))?;
        Ok(())
    }

    /// The subscription's own queue for a topic or exchange destination: durable and
    /// named after the client and subscription for a durable subscription (RabbitMQ:
    /// `durable:true` with `auto-delete:false`; ActiveMQ: `activemq.subscriptionName`),
    /// else server-named and deleted with the subscription.
    fn own_queue(&mut self, f: &Inbound, id: &str, exchange: &str, key: &str) -> Result<String> {
        let durable_name = match (
            f.header("activemq.subscriptionName"),
            yes(f, "durable").or(yes(f, "persistent")),
        ) {
            (Some(n), _) => Some(n.to_string()),
            // RabbitMQ names a durable subscription's queue after its id: without
            // one the next SUBSCRIBE could not find the queue again.
            (None, Some(true)) if f.header("id").is_none() => {
                return Err(StompError::new(
                    "Missing Header",
                    "Header 'id' is required for durable subscriptions",
                ));
            }
            (None, Some(true)) => Some(id.to_string()),
            _ => None,
        };
        // `x-queue-name` names the queue (so an AMQP app can read it too), and the
        // other `x-` headers shape it, as RabbitMQ's plugin does.
        let mut arguments = queue_arguments(f);
        let named = arguments
            .remove("x-queue-name")
            .and_then(|v| v.as_str().map(str::to_string));
        let queue = match durable_name {
            Some(n) => self.declare(QueueDecl {
                name: named.unwrap_or_else(|| format!("stomp-subscription-{}-{n}", self.client_id)),
                durable: true,
                exclusive: false,
                auto_delete: yes(f, "auto-delete").unwrap_or(false),
                passive: false,
                arguments,
            })?,
            None => self.declare(QueueDecl {
                exclusive: named.is_none(),
                name: named.unwrap_or_default(),
                durable: false,
                auto_delete: true,
                passive: false,
                arguments,
            })?,
        };
        self.broker
            .bind_queue(&self.vhost, &queue, exchange, key, &Table::new(), self.conn)?;
        Ok(queue)
    }

    pub fn consume(
        &mut self,
        id: String,
        queue: String,
        ack: AckMode,
        prefetch: Option<u32>,
    ) -> Result<()> {
        self.next_tag += 1;
        let tag = self.next_tag;
        let prefetch = match ack {
            // Settled as soon as written: the window only bounds what waits for
            // the socket.
            AckMode::Auto => self.cfg.auto_ack_window,
            _ => prefetch.unwrap_or(self.cfg.default_prefetch),
        };
        let consumer = self.broker.consume(
            &self.vhost,
            &queue,
            ConsumerSpec {
                tag,
                owner: self.conn,
                prefetch,
                shared_credit: None,
                exclusive: false,
                priority: 0,
                sink: self.inbox.clone(),
            },
        )?;
        self.by_tag.insert(tag, id.clone());
        self.subs.insert(
            id,
            Sub {
                tag,
                ack,
                queue,
                consumer,
            },
        );
        Ok(())
    }

    pub fn unsubscribe(&mut self, f: &Inbound) -> Result<()> {
        let id = match (f.header("id"), f.header("destination"), self.version) {
            (Some(id), _, _) => id,
            (None, Some(d), Version::V10) => d,
            _ => {
                return Err(StompError::new(
                    "Missing 'id' header",
                    "UNSUBSCRIBE needs the subscription's 'id'",
                ));
            }
        };
        let Some(sub) = self.subs.remove(id) else {
            return Err(StompError::new(
                "No subscription found",
                format!(
                    "UNSUBSCRIBE must refer to an existing subscription.\n\
                     Subscription to \"id='{id}'\" not found."
                ),
            ));
        };
        sub.consumer.cancel();
        self.by_tag.remove(&sub.tag);
        // Ending a durable subscription for good is asked explicitly, as in both
        // dialects; a plain UNSUBSCRIBE keeps its queue for the next SUBSCRIBE.
        if sub.queue.starts_with("stomp-subscription-")
            && (yes(f, "durable") == Some(true) || f.header("activemq.subscriptionName").is_some())
        {
            let _ = self
                .broker
                .delete_queue(&self.vhost, &sub.queue, false, false, self.conn);
        }
        Ok(())
    }

    /// ACK or NACK (`settle`: Ack, or Requeue/Reject for NACK).
    pub fn ack(&mut self, f: &Inbound, nack: bool) -> Result<()> {
        let id = match self.version {
            Version::V12 => required(f, "id")?,
            _ => required(f, "message-id")?,
        };
        let n: u64 = id.parse().map_err(|_| unknown_id(id))?;
        let Some((tag, _)) = self.unacked.get(&n) else {
            return Err(unknown_id(id));
        };
        let tag = *tag;
        let cumulative = self
            .by_tag
            .get(&tag)
            .and_then(|s| self.subs.get(s))
            .is_some_and(|s| s.ack == AckMode::Client);
        let numbers: Vec<u64> = if cumulative {
            self.unacked
                .range(..=n)
                .filter(|(_, (t, _))| *t == tag)
                .map(|(k, _)| *k)
                .collect()
        } else {
            vec![n]
        };
        let how = match (nack, f.flag("requeue")) {
            (false, _) => Settle::Ack,
            (true, Some(false)) => Settle::Reject,
            (true, _) => Settle::Requeue,
        };
        for k in numbers {
            if let Some((_, d)) = self.unacked.remove(&k) {
                d.queue.settle(&[d.seq], how);
            }
        }
        Ok(())
    }

    /// A delivery from a queue → MESSAGE, written to `out` unless frames written
    /// before it are still pending.
    pub fn deliver(&mut self, tag: u64, d: Delivery, out: &mut BytesMut) {
        let Some(sub_id) = self.by_tag.get(&tag) else {
            // Its subscription is gone: give it back.
            d.queue.settle(&[d.seq], Settle::Requeue);
            return;
        };
        let Some(sub) = self.subs.get(sub_id) else {
            return;
        };
        let n = self.next_ack;
        self.next_ack += 1;
        let frame = MessageFrame {
            subscription: sub_id,
            message: &d.message,
            n,
            ack: sub.ack != AckMode::Auto && self.version == Version::V12,
            redelivered: d.redelivered,
        };
        if self.pending.is_empty() {
            frame.encode(self.version, out);
        } else {
            self.pending.push_back((0, frame.to_frame()));
        }
        if sub.ack == AckMode::Auto {
            d.queue.settle(&[d.seq], Settle::Ack);
        } else {
            self.unacked.insert(n, (tag, d));
        }
    }

    /// The connection is over: cancel subscriptions and put back what was not
    /// acknowledged (also what was still in the inbox).
    pub fn close(&mut self) {
        self.leave();
        self.broker.connection_closed(self.conn);
    }

    /// Ends every subscription and gives back what was handed out and not
    /// acknowledged (and what is still waiting in the inbox), oldest first. Done
    /// when DISCONNECT is read, not when it is answered: the client has stopped
    /// listening, and an `ack:auto` delivery written meanwhile would be settled and
    /// lost.
    pub fn leave(&mut self) {
        self.by_tag.clear();
        for (_, s) in self.subs.drain() {
            s.consumer.cancel();
        }
        let mut back: Vec<Delivery> = std::mem::take(&mut self.unacked)
            .into_values()
            .map(|(_, d)| d)
            .collect();
        back.extend(self.inbox.drain_deliveries());
        back.sort_by_key(|d| d.seq);
        for d in back {
            d.queue.settle(&[d.seq], Settle::Requeue);
        }
    }
}

/// The frame's `x-` headers as queue arguments (numbers as numbers), first of a
/// repeated header winning.
fn queue_arguments(f: &Inbound) -> Table {
    let mut arguments = Table::new();
    for (k, v) in f.headers() {
        if k.starts_with("x-") && !arguments.contains_key(k) {
            let value = match v.parse::<i64>() {
                Ok(n) => Value::I64(n),
                Err(_) => Value::string(v),
            };
            arguments.insert(k.to_string(), value);
        }
    }
    arguments
}

fn unknown_id(id: &str) -> StompError {
    StompError::new(
        "Invalid header",
        format!("no unacknowledged message with id '{id}' on this connection"),
    )
}

/// Consumer credit from RabbitMQ's `prefetch-count` or ActiveMQ's
/// `activemq.prefetchSize` (0 = unlimited).
fn prefetch(f: &Inbound) -> Option<u32> {
    f.header("prefetch-count")
        .or_else(|| f.header("activemq.prefetchSize"))
        .and_then(|v| v.parse().ok())
}
