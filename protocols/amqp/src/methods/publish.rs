//! basic.publish: method, content header and body frames assembled into a message.

use crate::channel::{Confirm, Pending};
use crate::convert::properties_from_amqp;
use crate::error::*;
use crate::session::Session;
use amq_protocol::protocol::{BasicProperties, basic};
use bytes::{Bytes, BytesMut};
use switchboard_api::{Message, PublishOptions};

const PUBLISH_IDS: (u16, u16) = (60, 40);
/// Bodies at least this large share the read buffer instead of being copied.
const SHARE_BODY_FROM: usize = 16 * 1024;

impl Session {
    pub(crate) fn publish_method(
        &mut self,
        ch: u16,
        p: basic::Publish,
        id: (u16, u16),
    ) -> Result<()> {
        if p.immediate {
            return Err(AmqpError::connection(
                NOT_IMPLEMENTED,
                "NOT_IMPLEMENTED - immediate=true",
                id,
            ));
        }
        self.has_published = true;
        let c = self.chan(ch)?;
        c.publish = Some(Pending {
            exchange: p.exchange.as_str().to_string(),
            routing_key: p.routing_key.as_str().to_string(),
            mandatory: p.mandatory,
            properties: None,
            body_size: 0,
            body: BytesMut::new(),
            single: None,
        });
        Ok(())
    }

    pub(crate) fn content_header(
        &mut self,
        ch: u16,
        class_id: u16,
        body_size: u64,
        props: Box<BasicProperties>,
    ) -> Result<()> {
        let max = self.cfg.max_message_size;
        let c = self.chan(ch)?;
        let Some(p) = c.publish.as_mut().filter(|p| p.properties.is_none()) else {
            return Err(AmqpError::connection(
                UNEXPECTED_FRAME,
                "UNEXPECTED_FRAME - content header without basic.publish",
                (0, 0),
            ));
        };
        if class_id != 60 {
            return Err(AmqpError::connection(
                UNEXPECTED_FRAME,
                format!("UNEXPECTED_FRAME - content header for class {class_id}, expected 60"),
                PUBLISH_IDS,
            ));
        }
        if body_size > max {
            c.publish = None;
            return Err(AmqpError::channel(
                PRECONDITION_FAILED,
                format!(
                    "PRECONDITION_FAILED - message size {body_size} is larger than configured max size {max}"
                ),
                PUBLISH_IDS,
            ));
        }
        p.properties = Some(props);
        p.body_size = body_size;
        if body_size == 0 {
            return self.complete_publish(ch);
        }
        // Only a body of several frames can stay half-sent for long: count what
        // every channel has declared and not finished.
        if body_size > u64::from(self.frame_max()) {
            let budget = self.cfg.max_partial_bytes;
            let pending: u64 = self
                .channels
                .values()
                .filter_map(|c| c.publish.as_ref())
                .filter(|p| p.properties.is_some())
                .map(|p| p.body_size)
                .sum();
            if pending > budget {
                return Err(AmqpError::connection(
                    RESOURCE_ERROR,
                    format!(
                        "RESOURCE_ERROR - messages in progress on this connection declare {pending} bytes, above the budget of {budget}"
                    ),
                    PUBLISH_IDS,
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn content_body(&mut self, ch: u16, data: Bytes) -> Result<()> {
        let c = self.chan(ch)?;
        let Some(p) = c.publish.as_mut().filter(|p| p.properties.is_some()) else {
            return Err(AmqpError::connection(
                UNEXPECTED_FRAME,
                "UNEXPECTED_FRAME - content body without content header",
                (0, 0),
            ));
        };
        let have = p.single.as_ref().map_or(0, Bytes::len) + p.body.len();
        if have as u64 + data.len() as u64 > p.body_size {
            return Err(AmqpError::connection(
                FRAME_ERROR,
                format!(
                    "FRAME_ERROR - content body exceeds the declared size {}",
                    p.body_size
                ),
                PUBLISH_IDS,
            ));
        }
        // The common case is a body in one frame. A large one keeps its slice of the
        // read buffer; a small one is copied out, because a slice pins the whole read
        // chunk (64 KiB) for as long as the message lives in some queue.
        if have == 0 && data.len() as u64 == p.body_size {
            p.single = Some(if data.len() >= SHARE_BODY_FROM {
                data
            } else {
                Bytes::copy_from_slice(&data)
            });
        } else {
            if let Some(first) = p.single.take() {
                p.body.extend_from_slice(&first);
            }
            p.body.extend_from_slice(&data);
        }
        let done = p.single.as_ref().map_or(0, Bytes::len) + p.body.len();
        if done as u64 == p.body_size {
            return self.complete_publish(ch);
        }
        Ok(())
    }

    fn complete_publish(&mut self, ch: u16) -> Result<()> {
        let user = self
            .user
            .as_ref()
            .map(|u| u.name.clone())
            .unwrap_or_default();
        let c = self.chan(ch)?;
        let Some(p) = c.publish.take() else {
            return Ok(());
        };
        let props = p.properties.unwrap_or_default();
        if let Some(claimed) = props.user_id()
            && claimed.as_str() != user
        {
            return Err(AmqpError::channel(
                PRECONDITION_FAILED,
                format!(
                    "PRECONDITION_FAILED - user_id property set to '{claimed}' but authenticated user was '{user}'"
                ),
                PUBLISH_IDS,
            ));
        }
        let body = p.single.unwrap_or_else(|| p.body.freeze());
        let msg = Message {
            exchange: p.exchange,
            routing_key: p.routing_key,
            properties: properties_from_amqp(&props),
            body,
            ..Default::default()
        };
        if let Some(tx) = &mut c.tx {
            tx.publishes.push((msg, p.mandatory, props));
            return Ok(());
        }
        self.route_publish(ch, msg, p.mandatory, props, PUBLISH_IDS)
            .map(|_| ())
    }

    /// Routes a complete message and tells the publisher: basic.return when mandatory
    /// and unroutable, then basic.ack / basic.nack in confirm mode.
    pub(crate) fn route_publish(
        &mut self,
        ch: u16,
        msg: Message,
        mandatory: bool,
        props: Box<BasicProperties>,
        id: (u16, u16),
    ) -> Result<u64> {
        let vhost = self.vhost.clone();
        let returned = mandatory.then(|| {
            (
                msg.exchange.clone(),
                msg.routing_key.clone(),
                msg.body.clone(),
            )
        });
        let outcome = self
            .broker
            .publish(
                &vhost,
                msg,
                PublishOptions {
                    mandatory,
                    ..Default::default()
                },
            )
            .map_err(|e| AmqpError::from_broker(e, id))?;
        let frames = returned
            .filter(|_| !outcome.routed())
            .map(|(exchange, key, body)| self.return_frames(ch, &exchange, &key, &props, &body));
        let c = self.chan(ch)?;
        let what = if c.confirm {
            c.publish_seq += 1;
            let seq = c.publish_seq;
            Some(match frames {
                _ if outcome.rejected => Confirm::Nack(seq),
                Some(frames) => Confirm::Return {
                    frames,
                    ack: Some(seq),
                },
                None => Confirm::Ack(seq),
            })
        } else {
            frames.map(|frames| Confirm::Return { frames, ack: None })
        };
        if let Some(what) = what {
            self.confirm(ch, outcome.lsn, what);
        }
        Ok(outcome.lsn)
    }
}
