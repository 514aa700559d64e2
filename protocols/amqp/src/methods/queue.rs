use crate::convert::{short, table_from_amqp};
use crate::error::*;
use crate::session::Session;
use amq_protocol::protocol::{AMQPClass, queue};
use switchboard_api::QueueDecl;

impl Session {
    pub(crate) fn queue_method(
        &mut self,
        ch: u16,
        m: queue::AMQPMethod,
        id: (u16, u16),
    ) -> Result<()> {
        use queue::AMQPMethod as M;
        let b = self.broker.clone();
        let vhost = self.vhost.clone();
        let conn = self.conn_id;
        let e = |err| AmqpError::from_broker(err, id);
        let (reply, nowait) = match m {
            M::Declare(d) => {
                let decl = QueueDecl {
                    name: d.queue.as_str().to_string(),
                    durable: d.durable,
                    exclusive: d.exclusive,
                    auto_delete: d.auto_delete,
                    passive: d.passive,
                    arguments: table_from_amqp(&d.arguments),
                };
                let info = b.declare_queue(&vhost, &decl, conn).map_err(e)?;
                (
                    M::DeclareOk(queue::DeclareOk {
                        queue: short(&info.name),
                        message_count: info.messages,
                        consumer_count: info.consumers,
                    }),
                    d.nowait,
                )
            }
            M::Bind(d) => {
                b.bind_queue(
                    &vhost,
                    d.queue.as_str(),
                    d.exchange.as_str(),
                    d.routing_key.as_str(),
                    &table_from_amqp(&d.arguments),
                    conn,
                )
                .map_err(e)?;
                (M::BindOk(queue::BindOk {}), d.nowait)
            }
            M::Unbind(d) => {
                b.unbind_queue(
                    &vhost,
                    d.queue.as_str(),
                    d.exchange.as_str(),
                    d.routing_key.as_str(),
                    &table_from_amqp(&d.arguments),
                    conn,
                )
                .map_err(e)?;
                (M::UnbindOk(queue::UnbindOk {}), false)
            }
            M::Purge(d) => {
                let n = b.purge_queue(&vhost, d.queue.as_str(), conn).map_err(e)?;
                (M::PurgeOk(queue::PurgeOk { message_count: n }), d.nowait)
            }
            M::Delete(d) => {
                let n = b
                    .delete_queue(&vhost, d.queue.as_str(), d.if_unused, d.if_empty, conn)
                    .map_err(e)?;
                (M::DeleteOk(queue::DeleteOk { message_count: n }), d.nowait)
            }
            _ => {
                return Err(AmqpError::connection(
                    COMMAND_INVALID,
                    "COMMAND_INVALID - server-only queue method",
                    id,
                ));
            }
        };
        if !nowait {
            self.send(ch, AMQPClass::Queue(reply));
        }
        Ok(())
    }
}
