//! Changes to the definitions as values: the active applies one to its file and
//! appends it to the journal, so a standby that receives the journal applies the
//! same change to its own file (DESIGN.md §5). The file stays the authority at
//! start-up; these records only carry changes across.

use super::codec::{Dec, DecodeError, Enc};
use super::definitions::{BindingDef, Definitions, ExchangeDef, QueueDef};
use switchboard_api::Table;

/// Leading byte of a definitions record in the journal (after the message records'
/// tags, see `record.rs`).
pub(super) const TAG_DEFS: u8 = 5;

#[derive(Clone, Debug, PartialEq)]
pub enum DefOp {
    PutVhost(String),
    PutExchange {
        vhost: String,
        name: String,
        def: ExchangeDef,
    },
    DelExchange {
        vhost: String,
        name: String,
    },
    PutQueue {
        vhost: String,
        name: String,
        def: QueueDef,
    },
    DelQueue {
        vhost: String,
        name: String,
    },
    SetQueueArgs {
        vhost: String,
        name: String,
        args: Table,
    },
    PutBinding {
        vhost: String,
        b: BindingDef,
    },
    DelBinding {
        vhost: String,
        b: BindingDef,
    },
}

impl Definitions {
    /// Applies `op`; false when it changed nothing (so nothing needs saving).
    pub fn apply(&mut self, op: &DefOp) -> bool {
        let key = |v: &str, n: &str| (v.to_string(), n.to_string());
        match op {
            DefOp::PutVhost(v) => {
                if self.vhosts.contains(v) {
                    return false;
                }
                self.vhosts.push(v.clone());
            }
            DefOp::PutExchange { vhost, name, def } => {
                let old = self.exchanges.insert(key(vhost, name), def.clone());
                return old.as_ref() != Some(def);
            }
            DefOp::DelExchange { vhost, name } => {
                let had = self.exchanges.remove(&key(vhost, name)).is_some();
                let bs = self.bindings.get_mut(vhost);
                let before = bs.as_ref().map_or(0, |b| b.len());
                if let Some(bs) = bs {
                    bs.retain(|b| b.source != *name && (b.dest_is_queue || b.dest != *name));
                    return had || bs.len() != before;
                }
                return had;
            }
            DefOp::PutQueue { vhost, name, def } => {
                self.next_queue_id = self.next_queue_id.max(def.id + 1);
                let old = self.queues.insert(key(vhost, name), def.clone());
                return old.as_ref() != Some(def);
            }
            DefOp::DelQueue { vhost, name } => {
                let had = self.queues.remove(&key(vhost, name)).is_some();
                if let Some(bs) = self.bindings.get_mut(vhost) {
                    let before = bs.len();
                    bs.retain(|b| !(b.dest_is_queue && b.dest == *name));
                    return had || bs.len() != before;
                }
                return had;
            }
            DefOp::SetQueueArgs { vhost, name, args } => {
                match self.queues.get_mut(&key(vhost, name)) {
                    Some(q) if q.args != *args => q.args = args.clone(),
                    _ => return false,
                }
            }
            DefOp::PutBinding { vhost, b } => {
                let bs = self.bindings.entry(vhost.clone()).or_default();
                if bs.contains(b) {
                    return false;
                }
                bs.push(b.clone());
            }
            DefOp::DelBinding { vhost, b } => {
                let Some(bs) = self.bindings.get_mut(vhost) else {
                    return false;
                };
                let before = bs.len();
                bs.retain(|x| x != b);
                return bs.len() != before;
            }
        }
        true
    }
}

const PUT_VHOST: u8 = 1;
const PUT_EXCHANGE: u8 = 2;
const DEL_EXCHANGE: u8 = 3;
const PUT_QUEUE: u8 = 4;
const DEL_QUEUE: u8 = 5;
const SET_QUEUE_ARGS: u8 = 6;
const PUT_BINDING: u8 = 7;
const DEL_BINDING: u8 = 8;

impl DefOp {
    /// The journal record: `TAG_DEFS`, then the op.
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        let mut e = Enc(out);
        e.u8(TAG_DEFS);
        match self {
            DefOp::PutVhost(v) => {
                e.u8(PUT_VHOST);
                e.str(v);
            }
            DefOp::PutExchange { vhost, name, def } => {
                e.u8(PUT_EXCHANGE);
                e.str(vhost);
                e.str(name);
                def.encode(&mut e);
            }
            DefOp::DelExchange { vhost, name } => {
                e.u8(DEL_EXCHANGE);
                e.str(vhost);
                e.str(name);
            }
            DefOp::PutQueue { vhost, name, def } => {
                e.u8(PUT_QUEUE);
                e.str(vhost);
                e.str(name);
                def.encode(&mut e);
            }
            DefOp::DelQueue { vhost, name } => {
                e.u8(DEL_QUEUE);
                e.str(vhost);
                e.str(name);
            }
            DefOp::SetQueueArgs { vhost, name, args } => {
                e.u8(SET_QUEUE_ARGS);
                e.str(vhost);
                e.str(name);
                e.table(args);
            }
            DefOp::PutBinding { vhost, b } | DefOp::DelBinding { vhost, b } => {
                e.u8(if matches!(self, DefOp::PutBinding { .. }) {
                    PUT_BINDING
                } else {
                    DEL_BINDING
                });
                e.str(vhost);
                b.encode(&mut e);
            }
        }
    }

    /// Decodes a journal record that starts with `TAG_DEFS`.
    pub fn decode(record: &[u8]) -> Result<DefOp, DecodeError> {
        let mut d = Dec::new(record);
        match d.u8()? {
            TAG_DEFS => {}
            t => return Err(DecodeError::UnknownTag(t)),
        }
        Ok(match d.u8()? {
            PUT_VHOST => DefOp::PutVhost(d.string()?),
            PUT_EXCHANGE => DefOp::PutExchange {
                vhost: d.string()?,
                name: d.string()?,
                def: ExchangeDef::decode(&mut d)?,
            },
            DEL_EXCHANGE => DefOp::DelExchange {
                vhost: d.string()?,
                name: d.string()?,
            },
            PUT_QUEUE => DefOp::PutQueue {
                vhost: d.string()?,
                name: d.string()?,
                def: QueueDef::decode(&mut d)?,
            },
            DEL_QUEUE => DefOp::DelQueue {
                vhost: d.string()?,
                name: d.string()?,
            },
            SET_QUEUE_ARGS => DefOp::SetQueueArgs {
                vhost: d.string()?,
                name: d.string()?,
                args: d.table()?,
            },
            op @ (PUT_BINDING | DEL_BINDING) => {
                let vhost = d.string()?;
                let b = BindingDef::decode(&mut d)?;
                if op == PUT_BINDING {
                    DefOp::PutBinding { vhost, b }
                } else {
                    DefOp::DelBinding { vhost, b }
                }
            }
            t => return Err(DecodeError::UnknownTag(t)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_round_trip_and_apply_like_the_file() {
        let b = BindingDef {
            source: "amq.topic".into(),
            dest_is_queue: true,
            dest: "q".into(),
            key: "a.#".into(),
            args: Table::new(),
        };
        let ops = [
            DefOp::PutVhost("dev".into()),
            DefOp::PutQueue {
                vhost: "dev".into(),
                name: "q".into(),
                def: QueueDef {
                    id: 9,
                    auto_delete: false,
                    args: Table::new(),
                },
            },
            DefOp::PutBinding {
                vhost: "dev".into(),
                b: b.clone(),
            },
            DefOp::DelQueue {
                vhost: "dev".into(),
                name: "q".into(),
            },
        ];
        let mut d = Definitions::default();
        for op in &ops {
            let mut buf = Vec::new();
            op.encode(&mut buf);
            let back = DefOp::decode(&buf).unwrap();
            assert_eq!(&back, op);
            assert!(d.apply(&back));
        }
        assert_eq!(d.next_queue_id, 10);
        assert!(d.queues.is_empty());
        assert!(
            d.bindings["dev"].is_empty(),
            "deleting a queue drops its bindings"
        );
        assert!(!d.apply(&ops[0]), "a vhost put twice changes nothing");
    }
}
