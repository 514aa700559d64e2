use crate::channel::{ChanConsumer, Unacked, settle_grouped};
use crate::codec;
use crate::convert::{properties_to_amqp, short, table_from_amqp};
use crate::error::*;
use crate::session::Session;
use amq_protocol::protocol::{AMQPClass, basic};
use switchboard_api::{ConsumerSpec, Delivery, Settle, Value};

/// Deliveries a no-ack consumer may have queued towards this connection: the queue
/// stops pushing at this many until the connection has written them out.
const NO_ACK_WINDOW: u32 = 2000;

impl Session {
    pub(crate) fn basic_method(
        &mut self,
        ch: u16,
        m: basic::AMQPMethod,
        id: (u16, u16),
    ) -> Result<()> {
        use basic::AMQPMethod as M;
        match m {
            M::Publish(p) => self.publish_method(ch, p, id),
            M::Qos(q) => {
                let c = self.chan(ch)?;
                if q.global {
                    c.shared.set_limit(q.prefetch_count.into());
                } else {
                    c.prefetch = q.prefetch_count.into();
                }
                self.send(ch, AMQPClass::Basic(M::QosOk(basic::QosOk {})));
                Ok(())
            }
            M::Consume(c) => self.consume(ch, c, id),
            M::Cancel(c) => {
                let tag = c.consumer_tag.as_str().to_string();
                let chan = self.chan(ch)?;
                if let Some(cc) = chan.consumers.remove(&tag) {
                    cc.handle.cancel();
                    self.consumers.remove(&cc.id);
                }
                if !c.nowait {
                    self.send(
                        ch,
                        AMQPClass::Basic(M::CancelOk(basic::CancelOk {
                            consumer_tag: short(&tag),
                        })),
                    );
                }
                Ok(())
            }
            M::Get(g) => self.get(ch, g, id),
            M::Ack(a) => self.settle_method(ch, a.delivery_tag, a.multiple, Settle::Ack, id),
            M::Nack(n) => {
                let how = if n.requeue {
                    Settle::Requeue
                } else {
                    Settle::Reject
                };
                self.settle_method(ch, n.delivery_tag, n.multiple, how, id)
            }
            M::Reject(r) => {
                let how = if r.requeue {
                    Settle::Requeue
                } else {
                    Settle::Reject
                };
                self.settle_method(ch, r.delivery_tag, false, how, id)
            }
            M::Recover(r) if !r.requeue => Err(AmqpError::connection(
                NOT_IMPLEMENTED,
                "NOT_IMPLEMENTED - requeue=false",
                id,
            )),
            M::RecoverAsync(r) if !r.requeue => Err(AmqpError::connection(
                NOT_IMPLEMENTED,
                "NOT_IMPLEMENTED - requeue=false",
                id,
            )),
            M::Recover(_) => {
                self.recover(ch)?;
                self.send(ch, AMQPClass::Basic(M::RecoverOk(basic::RecoverOk {})));
                Ok(())
            }
            M::RecoverAsync(_) => self.recover(ch),
            _ => Err(AmqpError::connection(
                COMMAND_INVALID,
                "COMMAND_INVALID - server-only basic method",
                id,
            )),
        }
    }

    /// basic.recover: every unacked delivery goes back to its queue, redelivered.
    fn recover(&mut self, ch: u16) -> Result<()> {
        let c = self.chan(ch)?;
        let all = std::mem::take(&mut c.unacked);
        settle_grouped(all.into_values(), Settle::Requeue);
        Ok(())
    }

    fn consume(&mut self, ch: u16, c: basic::Consume, id: (u16, u16)) -> Result<()> {
        let mut tag = c.consumer_tag.as_str().to_string();
        if tag.is_empty() {
            tag = format!("amq.ctag-{}-{}", self.conn_id, self.next_consumer);
        }
        let consumer_id = self.next_consumer;
        self.next_consumer += 1;
        let args = table_from_amqp(&c.arguments);
        let priority = args.get("x-priority").and_then(Value::as_i64).unwrap_or(0) as i32;
        let vhost = self.vhost.clone();
        let sink = self.sink.clone();
        let conn = self.conn_id;
        let broker = self.broker.clone();
        let chan = self.chan(ch)?;
        if chan.consumers.contains_key(&tag) {
            return Err(AmqpError::connection(
                NOT_ALLOWED,
                format!("NOT_ALLOWED - attempt to reuse consumer tag '{tag}'"),
                id,
            ));
        }
        let spec = ConsumerSpec {
            tag: consumer_id,
            owner: conn,
            prefetch: if c.no_ack {
                NO_ACK_WINDOW
            } else {
                chan.prefetch
            },
            shared_credit: (!c.no_ack).then(|| chan.shared.clone()),
            exclusive: c.exclusive,
            priority,
            sink,
        };
        // Deliveries pushed from inside `consume` wait in the event channel, so the
        // consume-ok written below still reaches the client first.
        let handle = broker
            .consume(&vhost, c.queue.as_str(), spec)
            .map_err(|err| AmqpError::from_broker(err, id))?;
        self.consumers.insert(consumer_id, (ch, tag.clone()));
        if !c.nowait {
            self.send(
                ch,
                AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                    consumer_tag: short(&tag),
                })),
            );
        }
        let chan = self.chan(ch)?;
        chan.consumers.insert(
            tag,
            ChanConsumer {
                id: consumer_id,
                handle,
                no_ack: c.no_ack,
            },
        );
        Ok(())
    }

    fn get(&mut self, ch: u16, g: basic::Get, id: (u16, u16)) -> Result<()> {
        let vhost = self.vhost.clone();
        let got = self
            .broker
            .get(&vhost, g.queue.as_str(), self.conn_id, g.no_ack)
            .map_err(|e| AmqpError::from_broker(e, id))?;
        let Some((d, remaining)) = got else {
            self.send(
                ch,
                AMQPClass::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {})),
            );
            return Ok(());
        };
        let frame_max = self.frame_max;
        let c = self.chan(ch)?;
        let tag = c.next_tag;
        c.next_tag += 1;
        if !g.no_ack {
            c.unacked.insert(
                tag,
                Unacked {
                    queue: d.queue.clone(),
                    seq: d.seq,
                },
            );
        }
        self.send(
            ch,
            AMQPClass::Basic(basic::AMQPMethod::GetOk(basic::GetOk {
                delivery_tag: tag,
                redelivered: d.redelivered,
                exchange: short(&d.message.exchange),
                routing_key: short(&d.message.routing_key),
                message_count: remaining,
            })),
        );
        codec::encode_content(
            &mut self.out,
            ch,
            &properties_to_amqp(&d.message.properties),
            &d.message.body,
            frame_max,
        );
        Ok(())
    }

    fn settle_method(
        &mut self,
        ch: u16,
        tag: u64,
        multiple: bool,
        how: Settle,
        id: (u16, u16),
    ) -> Result<()> {
        let c = self.chan(ch)?;
        if let Some(tx) = &mut c.tx {
            let known = if multiple {
                tag == 0 || c.unacked.range(..=tag).next().is_some()
            } else {
                c.unacked.contains_key(&tag)
            };
            if !known {
                return Err(unknown_tag(tag, id));
            }
            tx.settles.push((tag, multiple, how));
            return Ok(());
        }
        self.settle_tags(ch, tag, multiple, how, id)
    }

    /// Settles by delivery tag: one tag, all up to `tag` with `multiple`, or every
    /// outstanding one with `multiple` and tag 0.
    pub(crate) fn settle_tags(
        &mut self,
        ch: u16,
        tag: u64,
        multiple: bool,
        how: Settle,
        id: (u16, u16),
    ) -> Result<()> {
        let c = self.chan(ch)?;
        let taken: Vec<Unacked> = if multiple {
            let upto = if tag == 0 { u64::MAX } else { tag };
            let rest = c.unacked.split_off(&upto.saturating_add(1));
            let done = std::mem::replace(&mut c.unacked, rest);
            if done.is_empty() && tag != 0 {
                return Err(unknown_tag(tag, id));
            }
            done.into_values().collect()
        } else {
            match c.unacked.remove(&tag) {
                Some(u) => vec![u],
                None => return Err(unknown_tag(tag, id)),
            }
        };
        settle_grouped(taken, how);
        Ok(())
    }

    /// Writes a delivery for consumer `consumer`, or hands it back if that consumer is gone.
    pub(crate) fn deliver(&mut self, consumer: u64, d: Delivery) {
        let Some((ch, tag)) = self.consumers.get(&consumer) else {
            d.queue.settle(&[d.seq], Settle::Requeue);
            return;
        };
        let ch = *ch;
        let frame_max = self.frame_max;
        let Some(c) = self.channels.get_mut(&ch).filter(|c| !c.closing) else {
            d.queue.settle(&[d.seq], Settle::Requeue);
            return;
        };
        let Some(cc) = c.consumers.get(tag) else {
            d.queue.settle(&[d.seq], Settle::Requeue);
            return;
        };
        let delivery_tag = c.next_tag;
        c.next_tag += 1;
        if cc.no_ack {
            self.auto_acked.push((d.queue.clone(), d.seq));
        } else {
            c.unacked.insert(
                delivery_tag,
                Unacked {
                    queue: d.queue.clone(),
                    seq: d.seq,
                },
            );
        }
        let m = AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
            consumer_tag: short(tag),
            delivery_tag,
            redelivered: d.redelivered,
            exchange: short(&d.message.exchange),
            routing_key: short(&d.message.routing_key),
        }));
        codec::encode_method(&mut self.out, ch, m);
        codec::encode_content(
            &mut self.out,
            ch,
            &properties_to_amqp(&d.message.properties),
            &d.message.body,
            frame_max,
        );
    }
}

fn unknown_tag(tag: u64, id: (u16, u16)) -> AmqpError {
    AmqpError::channel(
        PRECONDITION_FAILED,
        format!("PRECONDITION_FAILED - unknown delivery tag {tag}"),
        id,
    )
}
