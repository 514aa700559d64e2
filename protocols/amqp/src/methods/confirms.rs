//! Telling publishers "accepted": publisher confirms, mandatory returns and
//! tx.commit-ok, each released only once the journal has made the publish durable
//! (DESIGN.md §3), and always in publish order per channel.

use crate::channel::{Awaiting, Confirm};
use crate::codec;
use crate::session::Session;
use amq_protocol::protocol::{AMQPClass, basic, tx};

impl Session {
    /// The journal position known durable now (everything, without a store).
    pub(crate) fn durable_lsn(&self) -> u64 {
        self.durable.as_ref().map_or(u64::MAX, |rx| *rx.borrow())
    }

    /// Owes `what` to the publisher on channel `ch` once `lsn` is durable.
    pub(crate) fn confirm(&mut self, ch: u16, lsn: u64, what: Confirm) {
        let durable = self.durable_lsn();
        let Some(c) = self.channels.get_mut(&ch) else {
            return;
        };
        if c.awaiting.is_empty() && lsn <= durable {
            self.emit(ch, what);
        } else {
            c.awaiting.push_back(Awaiting { lsn, what });
        }
    }

    /// True while some publish waits for the journal.
    pub fn awaiting_durable(&self) -> bool {
        self.channels.values().any(|c| !c.awaiting.is_empty())
    }

    /// The journal advanced: release what is now durable, in order.
    pub fn on_durable(&mut self) {
        let durable = self.durable_lsn();
        let chans: Vec<u16> = self
            .channels
            .iter()
            .filter(|(_, c)| c.awaiting.front().is_some_and(|a| a.lsn <= durable))
            .map(|(ch, _)| *ch)
            .collect();
        for ch in chans {
            while let Some(c) = self.channels.get_mut(&ch) {
                if c.awaiting.front().is_none_or(|a| a.lsn > durable) {
                    break;
                }
                let Some(a) = c.awaiting.pop_front() else {
                    break;
                };
                self.emit(ch, a.what);
            }
        }
    }

    fn emit(&mut self, ch: u16, what: Confirm) {
        let Some(c) = self.channels.get_mut(&ch) else {
            return;
        };
        match what {
            // Consecutive acks coalesce into one `ack multiple` at the next flush.
            Confirm::Ack(seq) => c.ack_upto = Some(seq),
            other => {
                let upto = c.ack_upto.take();
                if let Some(upto) = upto {
                    self.send(ch, ack(upto, true));
                }
                match other {
                    Confirm::Nack(seq) => self.send(
                        ch,
                        AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack {
                            delivery_tag: seq,
                            multiple: false,
                            requeue: false,
                        })),
                    ),
                    Confirm::Return { frames, ack: tag } => {
                        self.out.extend_from_slice(&frames);
                        if let Some(tag) = tag {
                            self.send(ch, ack(tag, false));
                        }
                    }
                    Confirm::CommitOk => {
                        self.send(ch, AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})))
                    }
                    Confirm::Ack(_) => {}
                }
            }
        }
    }

    /// Frames of a basic.return for an unroutable mandatory publish.
    pub(crate) fn return_frames(
        &self,
        ch: u16,
        exchange: &str,
        key: &str,
        props: &amq_protocol::protocol::BasicProperties,
        body: &[u8],
    ) -> Vec<u8> {
        let mut frames = Vec::with_capacity(body.len() + 128);
        codec::encode_method(
            &mut frames,
            ch,
            AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
                reply_code: crate::error::NO_ROUTE,
                reply_text: "NO_ROUTE".into(),
                exchange: crate::convert::short(exchange),
                routing_key: crate::convert::short(key),
            })),
        );
        codec::encode_content(&mut frames, ch, props, body, self.frame_max);
        frames
    }
}

fn ack(tag: u64, multiple: bool) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
        delivery_tag: tag,
        multiple,
    }))
}
