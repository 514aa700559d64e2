//! AMQP methods, one file per class. `Session::dispatch` calls `connection` and
//! `channel` itself (they run before a channel is open); the others go through
//! [`Session::method`] on an open channel.

mod basic;
mod channel;
mod confirms;
mod connection;
mod exchange;
mod publish;
mod queue;
mod tx;

use crate::channel::Channel;
use crate::error::*;
use crate::session::Session;
use amq_protocol::protocol::{AMQPClass, access, confirm};

impl Session {
    pub(crate) fn method(&mut self, ch: u16, m: AMQPClass) -> Result<()> {
        let id = crate::session::ids(&m);
        match m {
            AMQPClass::Exchange(m) => self.exchange_method(ch, m, id),
            AMQPClass::Queue(m) => self.queue_method(ch, m, id),
            AMQPClass::Basic(m) => self.basic_method(ch, m, id),
            AMQPClass::Tx(m) => self.tx_method(ch, m, id),
            AMQPClass::Confirm(confirm::AMQPMethod::Select(s)) => {
                let c = self.chan(ch)?;
                if c.tx.is_some() {
                    return Err(AmqpError::channel(
                        PRECONDITION_FAILED,
                        "PRECONDITION_FAILED - cannot switch from tx to confirm mode",
                        id,
                    ));
                }
                c.confirm = true;
                if !s.nowait {
                    self.send(
                        ch,
                        AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {})),
                    );
                }
                Ok(())
            }
            // access.request is obsolete; old clients still send it and expect an ok.
            AMQPClass::Access(access::AMQPMethod::Request(_)) => {
                self.send(
                    ch,
                    AMQPClass::Access(access::AMQPMethod::RequestOk(access::RequestOk {})),
                );
                Ok(())
            }
            other => Err(AmqpError::connection(
                COMMAND_INVALID,
                format!(
                    "COMMAND_INVALID - method {}.{} may not be sent by a client",
                    other.get_amqp_class_id(),
                    other.get_amqp_method_id()
                ),
                id,
            )),
        }
    }

    pub(crate) fn chan(&mut self, ch: u16) -> Result<&mut Channel> {
        self.channels.get_mut(&ch).ok_or_else(|| {
            AmqpError::connection(
                CHANNEL_ERROR,
                format!("CHANNEL_ERROR - no channel {ch}"),
                (20, 0),
            )
        })
    }
}
