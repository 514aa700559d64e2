//! Durable entities: vhosts, exchanges, queues and bindings, kept in one small file
//! rewritten atomically on every change (write a temporary file, fsync it, rename it
//! over the old one, fsync the directory). A change is durable when the call returns.
//!
//! They live outside the journal so that journal compaction only ever has to reason
//! about messages; a broker has few entities and changes them rarely.

use super::codec::{Dec, DecodeError, Enc};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use switchboard_api::Table;

const MAGIC: &[u8; 8] = b"SBDEFS01";
const FILE: &str = "definitions.bin";

#[derive(Clone, Debug, PartialEq)]
pub struct ExchangeDef {
    pub kind: String,
    pub auto_delete: bool,
    pub internal: bool,
    pub args: Table,
}

#[derive(Clone, Debug, PartialEq)]
pub struct QueueDef {
    /// Journal records name queues by this id; ids are never reused.
    pub id: u64,
    pub auto_delete: bool,
    pub args: Table,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BindingDef {
    pub source: String,
    pub dest_is_queue: bool,
    pub dest: String,
    pub key: String,
    pub args: Table,
}

/// (vhost, name)
pub type Key = (String, String);

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Definitions {
    pub next_queue_id: u64,
    pub vhosts: Vec<String>,
    pub exchanges: BTreeMap<Key, ExchangeDef>,
    pub queues: BTreeMap<Key, QueueDef>,
    /// Per vhost.
    pub bindings: BTreeMap<String, Vec<BindingDef>>,
}

#[derive(Debug, thiserror::Error)]
pub enum DefinitionsError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is damaged ({why}); move it away to start without definitions")]
    Damaged { path: PathBuf, why: String },
}

impl Definitions {
    /// Loads the file, or empty definitions when there is none yet.
    pub fn load(dir: &Path) -> Result<Definitions, DefinitionsError> {
        let path = dir.join(FILE);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Definitions {
                    next_queue_id: 1,
                    ..Default::default()
                });
            }
            Err(source) => return Err(DefinitionsError::Io { path, source }),
        };
        let damaged = |why: &str| DefinitionsError::Damaged {
            path: path.clone(),
            why: why.to_string(),
        };
        if data.len() < 16 || &data[..8] != MAGIC {
            return Err(damaged("bad header"));
        }
        let crc = u32::from_le_bytes([data[8], data[9], data[10], data[11]]);
        let len = u32::from_le_bytes([data[12], data[13], data[14], data[15]]) as usize;
        let body = data.get(16..16 + len).ok_or_else(|| damaged("truncated"))?;
        if crc32c::crc32c(body) != crc {
            return Err(damaged("checksum mismatch"));
        }
        decode(body).map_err(|e| damaged(&e.to_string()))
    }

    /// Writes the file atomically and durably.
    pub fn save(&self, dir: &Path) -> Result<(), DefinitionsError> {
        let path = dir.join(FILE);
        let tmp = dir.join(format!("{FILE}.tmp"));
        let io = |source| DefinitionsError::Io {
            path: path.clone(),
            source,
        };
        // Encoded once, in place after the header: one buffer, no copy of the body.
        let mut out = Vec::with_capacity(self.size_hint());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[0; 8]);
        encode(self, &mut out);
        let len = out.len() - 16;
        let crc = crc32c::crc32c(&out[16..]);
        out[8..12].copy_from_slice(&crc.to_le_bytes());
        out[12..16].copy_from_slice(&(len as u32).to_le_bytes());
        let mut f = File::create(&tmp).map_err(io)?;
        f.write_all(&out).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io)?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        Ok(())
    }
}

impl Definitions {
    /// About what the file takes, so that writing it grows no buffer.
    fn size_hint(&self) -> usize {
        64 + 96 * (self.exchanges.len() + self.queues.len())
            + self.bindings.values().map(|b| 96 * b.len()).sum::<usize>()
    }

    /// The file's body: what a standby starting from a snapshot receives.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        encode(self, &mut out);
        out
    }

    pub fn from_bytes(body: &[u8]) -> Result<Definitions, DecodeError> {
        decode(body)
    }
}

// One encoding of each entity, shared by the file and the journal's DefOp records.
impl ExchangeDef {
    pub(super) fn encode(&self, e: &mut Enc<'_>) {
        e.str(&self.kind);
        e.bool(self.auto_delete);
        e.bool(self.internal);
        e.table(&self.args);
    }

    pub(super) fn decode(d: &mut Dec<'_>) -> Result<ExchangeDef, DecodeError> {
        Ok(ExchangeDef {
            kind: d.string()?,
            auto_delete: d.bool()?,
            internal: d.bool()?,
            args: d.table()?,
        })
    }
}

impl QueueDef {
    pub(super) fn encode(&self, e: &mut Enc<'_>) {
        e.u64(self.id);
        e.bool(self.auto_delete);
        e.table(&self.args);
    }

    pub(super) fn decode(d: &mut Dec<'_>) -> Result<QueueDef, DecodeError> {
        Ok(QueueDef {
            id: d.u64()?,
            auto_delete: d.bool()?,
            args: d.table()?,
        })
    }
}

impl BindingDef {
    pub(super) fn encode(&self, e: &mut Enc<'_>) {
        e.str(&self.source);
        e.bool(self.dest_is_queue);
        e.str(&self.dest);
        e.str(&self.key);
        e.table(&self.args);
    }

    pub(super) fn decode(d: &mut Dec<'_>) -> Result<BindingDef, DecodeError> {
        Ok(BindingDef {
            source: d.string()?,
            dest_is_queue: d.bool()?,
            dest: d.string()?,
            key: d.string()?,
            args: d.table()?,
        })
    }
}

fn encode(d: &Definitions, out: &mut Vec<u8>) {
    let mut e = Enc(out);
    e.u64(d.next_queue_id);
    e.u32(d.vhosts.len() as u32);
    for v in &d.vhosts {
        e.str(v);
    }
    e.u32(d.exchanges.len() as u32);
    for ((v, n), x) in &d.exchanges {
        e.str(v);
        e.str(n);
        x.encode(&mut e);
    }
    e.u32(d.queues.len() as u32);
    for ((v, n), q) in &d.queues {
        e.str(v);
        e.str(n);
        q.encode(&mut e);
    }
    let total: usize = d.bindings.values().map(Vec::len).sum();
    e.u32(total as u32);
    for (v, bs) in &d.bindings {
        for b in bs {
            e.str(v);
            b.encode(&mut e);
        }
    }
}

fn decode(body: &[u8]) -> Result<Definitions, DecodeError> {
    let mut d = Dec::new(body);
    let mut defs = Definitions {
        next_queue_id: d.u64()?,
        ..Default::default()
    };
    for _ in 0..d.u32()? {
        defs.vhosts.push(d.string()?);
    }
    for _ in 0..d.u32()? {
        let key = (d.string()?, d.string()?);
        defs.exchanges.insert(key, ExchangeDef::decode(&mut d)?);
    }
    for _ in 0..d.u32()? {
        let key = (d.string()?, d.string()?);
        defs.queues.insert(key, QueueDef::decode(&mut d)?);
    }
    for _ in 0..d.u32()? {
        let vhost = d.string()?;
        let b = BindingDef::decode(&mut d)?;
        defs.bindings.entry(vhost).or_default().push(b);
    }
    Ok(defs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_api::Value;

    #[test]
    fn save_load_round_trip_and_damage_is_reported() {
        let dir = std::env::temp_dir().join(format!("sb-defs-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let mut d = Definitions {
            next_queue_id: 7,
            vhosts: vec!["/".into(), "dev".into()],
            ..Default::default()
        };
        let mut args = Table::new();
        args.insert("x-message-ttl".into(), Value::I32(1000));
        d.queues.insert(
            ("/".into(), "q".into()),
            QueueDef {
                id: 6,
                auto_delete: false,
                args: args.clone(),
            },
        );
        d.exchanges.insert(
            ("/".into(), "x".into()),
            ExchangeDef {
                kind: "topic".into(),
                auto_delete: false,
                internal: false,
                args: Table::new(),
            },
        );
        d.bindings.entry("/".into()).or_default().push(BindingDef {
            source: "x".into(),
            dest_is_queue: true,
            dest: "q".into(),
            key: "a.#".into(),
            args,
        });
        d.save(&dir).unwrap();
        assert_eq!(Definitions::load(&dir).unwrap(), d);
        let path = dir.join(FILE);
        let mut raw = fs::read(&path).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        fs::write(&path, raw).unwrap();
        assert!(matches!(
            Definitions::load(&dir),
            Err(DefinitionsError::Damaged { .. })
        ));
        fs::remove_dir_all(&dir).unwrap();
    }
}
