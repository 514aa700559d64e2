//! The channel class: open, close both ways, flow. Its methods arrive before the
//! channel exists (open) or while it is closing (close-ok), so `Session` routes them
//! here before it checks that the channel is open, not through `Session::method`.

use crate::channel::Channel;
use crate::convert::short;
use crate::error::*;
use crate::session::Session;
use amq_protocol::protocol::{AMQPClass, channel};

impl Session {
    pub(crate) fn channel_method(
        &mut self,
        ch: u16,
        m: channel::AMQPMethod,
        id: (u16, u16),
    ) -> Result<()> {
        use channel::AMQPMethod as M;
        match m {
            M::Open(_) => {
                if self.channels.contains_key(&ch) {
                    return Err(AmqpError::connection(
                        CHANNEL_ERROR,
                        format!("CHANNEL_ERROR - second 'channel.open' seen on channel {ch}"),
                        id,
                    ));
                }
                self.channels.insert(ch, Channel::new());
                self.send(ch, AMQPClass::Channel(M::OpenOk(channel::OpenOk {})));
                Ok(())
            }
            M::Close(_) => {
                if !self.channels.contains_key(&ch) {
                    return Err(AmqpError::connection(
                        CHANNEL_ERROR,
                        format!("CHANNEL_ERROR - expected 'channel.open' on channel {ch}"),
                        id,
                    ));
                }
                self.release_channel(ch);
                self.channels.remove(&ch);
                self.send(ch, AMQPClass::Channel(M::CloseOk(channel::CloseOk {})));
                Ok(())
            }
            M::CloseOk(_) => {
                if self.channels.get(&ch).is_some_and(|c| c.closing) {
                    self.channels.remove(&ch);
                }
                Ok(())
            }
            M::Flow(f) => {
                if !self.channels.contains_key(&ch) {
                    return Err(AmqpError::connection(
                        CHANNEL_ERROR,
                        format!("CHANNEL_ERROR - expected 'channel.open' on channel {ch}"),
                        id,
                    ));
                }
                if !f.active {
                    return Err(AmqpError::connection(
                        NOT_IMPLEMENTED,
                        "NOT_IMPLEMENTED - active=false",
                        id,
                    ));
                }
                self.send(
                    ch,
                    AMQPClass::Channel(M::FlowOk(channel::FlowOk { active: true })),
                );
                Ok(())
            }
            M::FlowOk(_) => Ok(()),
            M::OpenOk(_) => Err(AmqpError::connection(
                COMMAND_INVALID,
                "COMMAND_INVALID - channel.open-ok is sent by servers",
                id,
            )),
        }
    }

    /// Closes one channel with a channel error: requeue its deliveries, cancel its
    /// consumers, send channel.close and wait for close-ok.
    pub(crate) fn close_channel_with(&mut self, ch: u16, r: Reply) {
        self.release_channel(ch);
        if let Some(c) = self.channels.get_mut(&ch) {
            c.closing = true;
        }
        self.send(
            ch,
            AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                reply_code: r.code,
                reply_text: short(&r.text),
                class_id: r.class_id,
                method_id: r.method_id,
            })),
        );
    }
}
