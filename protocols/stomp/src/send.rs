//! SEND, transactions, and the dispatch of every frame after CONNECTED.

use crate::convert;
use crate::destination::Destination;
use crate::frame::{Command, Frame};
use crate::inbound::Inbound;
use crate::session::{AckMode, Result, Session, StompError, required};
use switchboard_api::{PublishOptions, QueueDecl, Table};

/// What the connection does after a frame.
pub enum Next {
    Continue,
    /// DISCONNECT: close once the pending frames (its RECEIPT) are out.
    Disconnect,
}

impl Session {
    pub fn handle(&mut self, f: Inbound) -> Result<Next> {
        match f.command {
            Command::Send => {
                if f.header("message-id").is_some() {
                    // The broker names messages; RabbitMQ refuses a client's name.
                    return Err(StompError::new(
                        "Invalid header",
                        "'message-id' is not allowed on 'SEND'.",
                    ));
                }
                if let Some(tx) = f.header("transaction") {
                    let tx = tx.to_string();
                    self.in_tx(&tx)?;
                    // Its RECEIPT comes at COMMIT, when it is published (RabbitMQ).
                    self.tx.entry(tx).or_default().push(f);
                } else {
                    let lsn = self.send(&f)?;
                    self.receipt(&f, lsn);
                }
            }
            Command::Subscribe => {
                self.subscribe(&f)?;
                self.receipt(&f, 0);
            }
            Command::Unsubscribe => {
                self.unsubscribe(&f)?;
                self.receipt(&f, 0);
            }
            Command::Ack | Command::Nack => {
                if let Some(tx) = f.header("transaction") {
                    let tx = tx.to_string();
                    self.in_tx(&tx)?;
                    self.receipt(&f, 0);
                    self.tx.entry(tx).or_default().push(f);
                } else {
                    self.ack(&f, f.command == Command::Nack)?;
                    self.receipt(&f, 0);
                }
            }
            Command::Begin => {
                let tx = required(&f, "transaction")?.to_string();
                if self.tx.contains_key(&tx) {
                    return Err(StompError::new(
                        "Transaction already started",
                        format!("transaction '{tx}' is already open"),
                    ));
                }
                self.tx.insert(tx, Vec::new());
                self.receipt(&f, 0);
            }
            Command::Commit => {
                let tx = required(&f, "transaction")?.to_string();
                self.in_tx(&tx)?;
                let mut lsn = 0;
                for op in self.tx.remove(&tx).unwrap_or_default() {
                    match op.command {
                        Command::Send => {
                            let sent = self.send(&op)?;
                            self.receipt(&op, sent);
                            lsn = lsn.max(sent);
                        }
                        c => self.ack(&op, c == Command::Nack)?,
                    }
                }
                self.receipt(&f, lsn);
            }
            Command::Abort => {
                let tx = required(&f, "transaction")?.to_string();
                self.in_tx(&tx)?;
                self.tx.remove(&tx);
                self.receipt(&f, 0);
            }
            Command::Disconnect => {
                self.leave();
                self.receipt(&f, 0);
                return Ok(Next::Disconnect);
            }
            Command::Connect | Command::Stomp => {
                return Err(StompError::new(
                    "Already connected",
                    "a second CONNECT on one connection",
                ));
            }
            c => {
                return Err(StompError::new(
                    "Illegal command",
                    format!("{} is a frame only a server sends", c.as_str()),
                ));
            }
        }
        Ok(Next::Continue)
    }

    fn in_tx(&self, tx: &str) -> Result<()> {
        if self.tx.contains_key(tx) {
            Ok(())
        } else {
            Err(StompError::new(
                "Bad transaction",
                format!("Invalid transaction identifier: \"{tx}\""),
            ))
        }
    }

    /// Publishes a SEND; returns the LSN its receipt waits for.
    fn send(&mut self, f: &Inbound) -> Result<u64> {
        let d = required(f, "destination")?;
        let dest = Destination::parse(d)?;
        if let Destination::Queue(q) = &dest {
            self.declare_named(q, f)?;
        }
        let Some((exchange, key)) = dest.publish_target() else {
            return Err(StompError::new(
                "Invalid destination",
                format!("cannot SEND to '{d}'; use it as reply-to"),
            ));
        };
        // A reply queue travels as a plain queue name, which is what an AMQP
        // responder publishes to (default exchange); STOMP readers see it as
        // `/reply-queue/<name>` again.
        let reply_to = match f.header("reply-to") {
            Some(r) if r.starts_with("/temp-queue/") => Some(self.temp_queue(r)?),
            Some(r) => Some(r.strip_prefix("/reply-queue/").unwrap_or(r).to_string()),
            None => None,
        };
        let msg = convert::to_message(f, exchange, key, reply_to);
        let out = self
            .broker
            .publish(&self.vhost, msg, PublishOptions::default())?;
        self.sent_lsn = self.sent_lsn.max(out.lsn);
        Ok(out.lsn)
    }

    /// `/temp-queue/x` as reply-to: the connection's private queue for `x`, created
    /// and subscribed (subscription id = the temp destination) on first use; STOMP
    /// responders see `/reply-queue/<queue>` (RabbitMQ's scheme).
    fn temp_queue(&mut self, dest: &str) -> Result<String> {
        if let Some(q) = self.temp.get(dest) {
            return Ok(q.clone());
        }
        let q = self
            .broker
            .declare_queue(
                &self.vhost,
                &QueueDecl {
                    name: String::new(),
                    durable: false,
                    exclusive: true,
                    auto_delete: true,
                    passive: false,
                    arguments: Table::new(),
                },
                self.conn,
            )?
            .name;
        self.consume(dest.to_string(), q.clone(), AckMode::Auto, None)?;
        self.temp.insert(dest.to_string(), q.clone());
        Ok(q)
    }
}

/// The ERROR frame for `e`, answering the frame whose `receipt` header is given.
pub fn error_frame(e: &StompError, receipt: Option<&str>) -> Frame {
    let mut f = Frame::new(Command::Error)
        .with_header("message", e.message.as_str())
        .with_header("content-type", "text/plain")
        // RabbitMQ names the versions it speaks on every ERROR, not only when
        // negotiation failed.
        .with_header("version", "1.0,1.1,1.2");
    if let Some(r) = receipt {
        f = f.with_header("receipt-id", r);
    }
    f.with_body(bytes::Bytes::from(e.detail.clone()))
}
