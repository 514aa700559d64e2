use crate::convert::table_from_amqp;
use crate::error::*;
use crate::session::Session;
use amq_protocol::protocol::{AMQPClass, exchange};
use switchboard_api::ExchangeDecl;

impl Session {
    pub(crate) fn exchange_method(
        &mut self,
        ch: u16,
        m: exchange::AMQPMethod,
        id: (u16, u16),
    ) -> Result<()> {
        use exchange::AMQPMethod as M;
        let b = self.broker.clone();
        let vhost = self.vhost.clone();
        let e = |err| AmqpError::from_broker(err, id);
        let (reply, nowait) = match m {
            M::Declare(d) => {
                let decl = ExchangeDecl {
                    name: d.exchange.as_str().to_string(),
                    kind: d.kind.as_str().to_string(),
                    durable: d.durable,
                    auto_delete: d.auto_delete,
                    internal: d.internal,
                    passive: d.passive,
                    arguments: table_from_amqp(&d.arguments),
                };
                if !d.passive && decl.name.is_empty() {
                    return Err(AmqpError::channel(
                        ACCESS_REFUSED,
                        "ACCESS_REFUSED - operation not permitted on the default exchange",
                        id,
                    ));
                }
                b.declare_exchange(&vhost, &decl).map_err(e)?;
                (M::DeclareOk(exchange::DeclareOk {}), d.nowait)
            }
            M::Delete(d) => {
                b.delete_exchange(&vhost, d.exchange.as_str(), d.if_unused)
                    .map_err(e)?;
                (M::DeleteOk(exchange::DeleteOk {}), d.nowait)
            }
            M::Bind(d) => {
                b.bind_exchange(
                    &vhost,
                    d.destination.as_str(),
                    d.source.as_str(),
                    d.routing_key.as_str(),
                    &table_from_amqp(&d.arguments),
                )
                .map_err(e)?;
                (M::BindOk(exchange::BindOk {}), d.nowait)
            }
            M::Unbind(d) => {
                b.unbind_exchange(
                    &vhost,
                    d.destination.as_str(),
                    d.source.as_str(),
                    d.routing_key.as_str(),
                    &table_from_amqp(&d.arguments),
                )
                .map_err(e)?;
                (M::UnbindOk(exchange::UnbindOk {}), d.nowait)
            }
            _ => {
                return Err(AmqpError::connection(
                    COMMAND_INVALID,
                    "COMMAND_INVALID - server-only exchange method",
                    id,
                ));
            }
        };
        if !nowait {
            self.send(ch, AMQPClass::Exchange(reply));
        }
        Ok(())
    }
}
