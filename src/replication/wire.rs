//! The protocol between the two nodes of a pair, over the replication port (TCP, or
//! TLS with `replication.tls`: `link.rs`):
//! each message is `u32 length | u8 type | body`, integers little-endian, strings
//! and byte blobs as `u32 length | bytes`. See docs/REPLICATION.md for the
//! conversation; this file only encodes and decodes.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest message accepted: a batch of records is cut at about 1 MiB, but one
/// record (a large message) may be bigger.
pub const MAX_MESSAGE: usize = 512 << 20;

/// Where a standby starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// Keep records up to `truncate_to`, drop the rest; the stream continues after it.
    Continue { truncate_to: u64 },
    /// The records needed are gone: start over from these definitions and an
    /// empty journal continuing at `first_lsn`.
    Snapshot {
        first_lsn: u64,
        definitions: Vec<u8>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// Standby → active: who it is and where its journal ends.
    Hello {
        node: String,
        epoch: u64,
        last_epoch: u64,
        last_lsn: u64,
    },
    /// Active → standby: where to start, and the active's client ports (for the
    /// standby's forwarding of client connections).
    Welcome {
        epoch: u64,
        start: Start,
        ports: Vec<(String, u16)>,
    },
    /// Active → standby: journal frames as on disk.
    Records(Vec<u8>),
    /// Active → standby: segments below this LSN hold nothing live any more.
    Retire(u64),
    /// Standby → active: everything up to this LSN is durable here.
    Ack(u64),
    Ping,
    /// Anyone → node: what are you?
    Status,
    StatusReply(Status),
    /// `switchboard ctl promote` → a standby with a static lock.
    Promote,
    /// The node will not do what was asked (e.g. a standby asked for records).
    Refused {
        epoch: u64,
        reason: String,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    pub node: String,
    pub active: bool,
    pub epoch: u64,
    pub last_lsn: u64,
    /// Active: its standby is in sync. Standby: it is connected and caught up.
    pub in_sync: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("message of {0} bytes exceeds the limit")]
    TooLong(usize),
    #[error("malformed message: {0}")]
    Malformed(&'static str),
}

const HELLO: u8 = 1;
const WELCOME: u8 = 2;
const RECORDS: u8 = 3;
const RETIRE: u8 = 4;
const ACK: u8 = 5;
const PING: u8 = 6;
const STATUS: u8 = 7;
const STATUS_REPLY: u8 = 8;
const PROMOTE: u8 = 9;
const REFUSED: u8 = 10;

struct W<'a>(&'a mut Vec<u8>);

impl W<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(&(b.len() as u32).to_le_bytes());
        self.0.extend_from_slice(b);
    }
}

struct R<'a>(&'a [u8]);

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(WireError::Malformed("truncated"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        let mut a = [0u8; 2];
        a.copy_from_slice(self.take(2)?);
        Ok(u16::from_le_bytes(a))
    }
    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        let n = u32::from_le_bytes(a) as usize;
        self.take(n)
    }
    fn string(&mut self) -> Result<String, WireError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| WireError::Malformed("not UTF-8"))
    }
    fn bool(&mut self) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError::Malformed("a flag is 0 or 1")),
        }
    }
}

impl Msg {
    /// Appends the whole message, length prefix included.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        let mut w = W(out);
        match self {
            Msg::Hello {
                node,
                epoch,
                last_epoch,
                last_lsn,
            } => {
                w.u8(HELLO);
                w.bytes(node.as_bytes());
                w.u64(*epoch);
                w.u64(*last_epoch);
                w.u64(*last_lsn);
            }
            Msg::Welcome {
                epoch,
                start,
                ports,
            } => {
                w.u8(WELCOME);
                w.u64(*epoch);
                match start {
                    Start::Continue { truncate_to } => {
                        w.u8(0);
                        w.u64(*truncate_to);
                    }
                    Start::Snapshot {
                        first_lsn,
                        definitions,
                    } => {
                        w.u8(1);
                        w.u64(*first_lsn);
                        w.bytes(definitions);
                    }
                }
                w.u8(ports.len().min(255) as u8);
                for (name, port) in ports.iter().take(255) {
                    w.bytes(name.as_bytes());
                    w.0.extend_from_slice(&port.to_le_bytes());
                }
            }
            Msg::Records(b) => {
                w.u8(RECORDS);
                w.0.extend_from_slice(b);
            }
            Msg::Retire(l) => {
                w.u8(RETIRE);
                w.u64(*l);
            }
            Msg::Ack(l) => {
                w.u8(ACK);
                w.u64(*l);
            }
            Msg::Ping => w.u8(PING),
            Msg::Status => w.u8(STATUS),
            Msg::StatusReply(s) => {
                w.u8(STATUS_REPLY);
                w.bytes(s.node.as_bytes());
                w.u8(s.active as u8);
                w.u64(s.epoch);
                w.u64(s.last_lsn);
                w.u8(s.in_sync as u8);
            }
            Msg::Promote => w.u8(PROMOTE),
            Msg::Refused { epoch, reason } => {
                w.u8(REFUSED);
                w.u64(*epoch);
                w.bytes(reason.as_bytes());
            }
        }
        let len = (out.len() - start - 4) as u32;
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    }

    /// Decodes one message body (type byte and what follows).
    pub fn decode(body: &[u8]) -> Result<Msg, WireError> {
        let mut r = R(body);
        let msg = match r.u8()? {
            HELLO => Msg::Hello {
                node: r.string()?,
                epoch: r.u64()?,
                last_epoch: r.u64()?,
                last_lsn: r.u64()?,
            },
            WELCOME => {
                let epoch = r.u64()?;
                let start = match r.u8()? {
                    0 => Start::Continue {
                        truncate_to: r.u64()?,
                    },
                    1 => Start::Snapshot {
                        first_lsn: r.u64()?,
                        definitions: r.bytes()?.to_vec(),
                    },
                    _ => return Err(WireError::Malformed("unknown start")),
                };
                let n = r.u8()?;
                let mut ports = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    ports.push((r.string()?, r.u16()?));
                }
                Msg::Welcome {
                    epoch,
                    start,
                    ports,
                }
            }
            RECORDS => return Ok(Msg::Records(r.0.to_vec())),
            RETIRE => Msg::Retire(r.u64()?),
            ACK => Msg::Ack(r.u64()?),
            PING => Msg::Ping,
            STATUS => Msg::Status,
            STATUS_REPLY => Msg::StatusReply(Status {
                node: r.string()?,
                active: r.bool()?,
                epoch: r.u64()?,
                last_lsn: r.u64()?,
                in_sync: r.bool()?,
            }),
            PROMOTE => Msg::Promote,
            REFUSED => Msg::Refused {
                epoch: r.u64()?,
                reason: r.string()?,
            },
            _ => return Err(WireError::Malformed("unknown message type")),
        };
        if !r.0.is_empty() {
            return Err(WireError::Malformed("trailing bytes"));
        }
        Ok(msg)
    }
}

/// Reads one message; `Ok(None)` at a clean end of stream.
pub async fn read<S: AsyncRead + Unpin>(s: &mut S) -> Result<Option<Msg>, WireError> {
    let mut len = [0u8; 4];
    match s.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_MESSAGE {
        return Err(WireError::TooLong(len));
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await?;
    Msg::decode(&body).map(Some)
}

pub async fn write<S: AsyncWrite + Unpin>(s: &mut S, msg: &Msg) -> Result<(), WireError> {
    let mut buf = Vec::new();
    msg.encode(&mut buf);
    s.write_all(&buf).await?;
    Ok(())
}

/// Reads messages on their own task until the stream ends or fails: a read cut
/// short by `select!` would lose bytes of the stream.
pub fn spawn_reader<R>(mut rd: R) -> tokio::sync::mpsc::Receiver<Msg>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    // Small: each message may be a 1 MiB batch of records, and a standby catching
    // up reads far faster than its disk writes.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        while let Ok(Some(m)) = read(&mut rd).await {
            if tx.send(m).await.is_err() {
                return;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips_and_garbage_is_an_error() {
        let msgs = [
            Msg::Hello {
                node: "a".into(),
                epoch: 3,
                last_epoch: 2,
                last_lsn: 99,
            },
            Msg::Welcome {
                epoch: 3,
                start: Start::Snapshot {
                    first_lsn: 7,
                    definitions: vec![1, 2, 3],
                },
                ports: vec![("amqp".into(), 5672)],
            },
            Msg::Records(vec![9; 40]),
            Msg::Ack(5),
            Msg::StatusReply(Status {
                node: "b".into(),
                active: true,
                epoch: 4,
                last_lsn: 10,
                in_sync: true,
            }),
            Msg::Refused {
                epoch: 1,
                reason: "standby".into(),
            },
        ];
        for m in msgs {
            let mut buf = Vec::new();
            m.encode(&mut buf);
            assert_eq!(Msg::decode(&buf[4..]).unwrap(), m);
            for cut in 1..buf.len() - 4 {
                if !matches!(m, Msg::Records(_)) {
                    assert!(Msg::decode(&buf[4..4 + cut]).is_err(), "{m:?} cut at {cut}");
                }
            }
        }
        assert!(Msg::decode(&[200]).is_err());
    }
}
