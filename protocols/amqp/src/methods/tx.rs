use crate::channel::{Confirm, Tx};
use crate::error::*;
use crate::session::Session;
use amq_protocol::protocol::{AMQPClass, tx};

impl Session {
    pub(crate) fn tx_method(&mut self, ch: u16, m: tx::AMQPMethod, id: (u16, u16)) -> Result<()> {
        use tx::AMQPMethod as M;
        let c = self.chan(ch)?;
        let not_tx = || {
            AmqpError::channel(
                PRECONDITION_FAILED,
                "PRECONDITION_FAILED - channel is not transactional",
                id,
            )
        };
        let reply = match m {
            M::Select(_) => {
                if c.confirm {
                    return Err(AmqpError::channel(
                        PRECONDITION_FAILED,
                        "PRECONDITION_FAILED - cannot switch from confirm to tx mode",
                        id,
                    ));
                }
                c.tx.get_or_insert_with(Tx::default);
                M::SelectOk(tx::SelectOk {})
            }
            M::Commit(_) => {
                let work = c.tx.as_mut().map(std::mem::take).ok_or_else(not_tx)?;
                let lsn = self.commit(ch, work, id)?;
                // commit-ok only once the transaction's messages are durable.
                self.confirm(ch, lsn, Confirm::CommitOk);
                return Ok(());
            }
            M::Rollback(_) => {
                let t = c.tx.as_mut().ok_or_else(not_tx)?;
                *t = Tx::default();
                M::RollbackOk(tx::RollbackOk {})
            }
            _ => {
                return Err(AmqpError::connection(
                    COMMAND_INVALID,
                    "COMMAND_INVALID - server-only tx method",
                    id,
                ));
            }
        };
        self.send(ch, AMQPClass::Tx(reply));
        Ok(())
    }

    /// Applies a transaction's publishes, then its settlements, in the order sent.
    fn commit(&mut self, ch: u16, work: Tx, id: (u16, u16)) -> Result<u64> {
        let mut lsn = 0;
        for (msg, mandatory, props) in work.publishes {
            lsn = lsn.max(self.route_publish(ch, msg, mandatory, props, id)?);
        }
        for (tag, multiple, how) in work.settles {
            self.settle_tags(ch, tag, multiple, how, id)?;
        }
        Ok(lsn)
    }
}
