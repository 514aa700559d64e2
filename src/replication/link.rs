//! The connection between the nodes of a pair, and `switchboard ctl`'s to a node:
//! plain TCP, or with `replication.tls` mutual TLS on the certificates of the
//! client listeners (`src/tls/`). Both nodes present their own certificate and
//! verify the other's against `tls.ca`, so a replication port accepts only the
//! other node (and `ctl` run with the node's settings): it hands out the whole
//! journal and takes `promote`.
//!
//! A node whose peer speaks the other kind of link fails the handshake on both
//! sides within `HANDSHAKE` and says why in its log; nothing is replicated.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use super::wire::{self, Msg};
use crate::config::Config;
use crate::tls::{Acceptor, Connector, HandshakeError, Stream};

pub type ReadEnd = ReadHalf<Stream>;
pub type WriteEnd = WriteHalf<Stream>;

const CONNECT: Duration = Duration::from_secs(1);
/// A handshake between two nodes on one network takes milliseconds; a peer that
/// has not finished in this time speaks something else or is stuck.
pub const HANDSHAKE: Duration = Duration::from_secs(5);

/// How this node reaches its peer and is reached by it.
#[derive(Default)]
pub struct Link {
    tls: Option<Tls>,
}

struct Tls {
    acceptor: Acceptor,
    connector: Connector,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot connect to {0}: timed out")]
    ConnectTimeout(String),
    #[error("{addr}: {source} (is replication.tls on at both ends?)")]
    Handshake {
        addr: String,
        source: HandshakeError,
    },
    #[error("{addr}: no answer: {reason}{hint}")]
    NoAnswer {
        addr: String,
        reason: String,
        hint: &'static str,
    },
}

/// Why a connection to the replication port was dropped before its first message.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("{0} (is replication.tls on at the peer, with a certificate signed by tls.ca?)")]
    Tls(HandshakeError),
    #[error(
        "a TLS handshake on the plain replication port (replication.tls is on at the peer, off here)"
    )]
    TlsOnPlain,
    #[error("nothing sent within {0:?}")]
    Silent(Duration),
}

impl Refused {
    /// A bare connect and close, as the standby's check that the active's port
    /// still answers makes: not worth a warning.
    pub fn is_quiet(&self) -> bool {
        match self {
            Refused::Tls(e) => e.is_silent_close(),
            Refused::TlsOnPlain => false,
            Refused::Silent(_) => true,
        }
    }
}

impl Link {
    /// From `replication.tls` and the `tls` files; an error names what is missing
    /// or which file is bad.
    pub fn new(cfg: &Config) -> Result<Link, String> {
        let Some(s) = cfg.replication_tls()? else {
            return Ok(Link::default());
        };
        let tls = Tls {
            acceptor: Acceptor::new(&s).map_err(|e| e.to_string())?,
            connector: Connector::new(&s).map_err(|e| e.to_string())?,
        };
        Ok(Link { tls: Some(tls) })
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Reads the certificate, key and CA again (SIGHUP); on an error the files in
    /// use stay. Connections already open keep what they negotiated.
    pub fn reload(&self, cfg: &Config) {
        let Some(t) = &self.tls else { return };
        let s = match cfg.replication_tls() {
            Ok(Some(s)) => s,
            Ok(None) => {
                tracing::warn!("replication.tls turned off: the link changes only at a restart");
                return;
            }
            Err(e) => {
                tracing::error!("replication TLS not reloaded: {e}");
                return;
            }
        };
        match t.acceptor.reload(&s).and_then(|()| t.connector.reload(&s)) {
            Ok(()) => tracing::info!("replication TLS certificate reloaded"),
            Err(e) => tracing::error!("replication TLS not reloaded, the old files stay: {e}"),
        }
    }

    /// Connects to a replication port, `HOST:PORT`; with TLS, HOST is the name
    /// the peer's certificate must carry.
    pub async fn connect(&self, addr: &str) -> Result<Stream, LinkError> {
        let tcp = match tokio::time::timeout(CONNECT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                return Err(LinkError::Connect {
                    addr: addr.into(),
                    source,
                });
            }
            Err(_) => return Err(LinkError::ConnectTimeout(addr.into())),
        };
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(Stream::Plain(tcp)),
            Some(t) => t
                .connector
                .connect(tcp, addr, HANDSHAKE)
                .await
                .map_err(|source| LinkError::Handshake {
                    addr: addr.into(),
                    source,
                }),
        }
    }

    /// The server side of a connection to this node's replication port.
    pub async fn accept(&self, tcp: TcpStream) -> Result<Stream, Refused> {
        let _ = tcp.set_nodelay(true);
        if let Some(t) = &self.tls {
            return match t.acceptor.handshake(tcp, HANDSHAKE).await {
                Ok((s, _)) => Ok(s),
                Err(e) => Err(Refused::Tls(e)),
            };
        }
        // Every message starts with its length, little-endian, and the first one
        // a node or ctl sends is a few dozen bytes: 0x16 0x03 is a TLS record.
        let mut head = [0u8; 2];
        match tokio::time::timeout(HANDSHAKE, tcp.peek(&mut head)).await {
            Ok(Ok(2)) if head == [0x16, 0x03] => Err(Refused::TlsOnPlain),
            Ok(_) => Ok(Stream::Plain(tcp)),
            Err(_) => Err(Refused::Silent(HANDSHAKE)),
        }
    }

    /// One question to a node's replication port and its answer.
    pub async fn ask(&self, addr: &str, msg: &Msg) -> Result<Msg, LinkError> {
        let mut s = self.connect(addr).await?;
        let no_answer = |reason: String| LinkError::NoAnswer {
            addr: addr.into(),
            reason,
            // A TLS port closes on a plain client's first bytes; this side cannot
            // tell that from a node that went away, so it says what to check.
            hint: if self.is_tls() {
                ""
            } else {
                " (if the node's replication port uses TLS, run with its replication.tls and tls settings too)"
            },
        };
        wire::write(&mut s, msg)
            .await
            .map_err(|e| no_answer(e.to_string()))?;
        match tokio::time::timeout(HANDSHAKE, wire::read(&mut s)).await {
            Ok(Ok(Some(m))) => Ok(m),
            Ok(Ok(None)) => Err(no_answer("the connection was closed".into())),
            Ok(Err(e)) => Err(no_answer(e.to_string())),
            Err(_) => Err(no_answer(format!("nothing within {HANDSHAKE:?}"))),
        }
    }
}

/// Splits a connection so that a reader task and a writer can use it at once.
pub fn split(s: Stream) -> (ReadEnd, WriteEnd) {
    tokio::io::split(s)
}

/// Says a repeated failure once, then again only when its reason changes or a
/// while has passed: a standby retries every 200 ms.
#[derive(Default)]
pub struct Quiet {
    last: Mutex<Option<(String, Instant)>>,
}

impl Quiet {
    const AGAIN_AFTER: Duration = Duration::from_secs(60);

    pub fn warn(&self, from: Option<SocketAddr>, reason: &dyn std::fmt::Display) {
        let reason = reason.to_string();
        let mut g = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let loud = match &*g {
            Some((r, at)) => *r != reason || at.elapsed() > Self::AGAIN_AFTER,
            None => true,
        };
        if loud {
            *g = Some((reason.clone(), Instant::now()));
        }
        drop(g);
        match (loud, from) {
            (true, Some(peer)) => tracing::warn!(%peer, "replication: refused: {reason}"),
            (true, None) => tracing::warn!("replication: {reason}"),
            (false, Some(peer)) => tracing::debug!(%peer, "replication: refused: {reason}"),
            (false, None) => tracing::debug!("replication: {reason}"),
        }
    }

    /// The failure is over: the next one is said again.
    pub fn clear(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::Path;
    use tokio::net::TcpListener;

    /// The test PKI of `src/tls/testdata`: one node certificate (localhost,
    /// 127.0.0.1, no usage restriction) for both ends, as a pair on one host uses.
    pub(crate) fn tls_link() -> Link {
        let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tls/testdata");
        let mut cfg = Config::default();
        cfg.replication.tls = true;
        cfg.tls.cert = Some(d.join("server.pem"));
        cfg.tls.key = Some(d.join("server.key"));
        cfg.tls.ca = Some(d.join("ca.pem"));
        Link::new(&cfg).unwrap()
    }

    /// `client` connects to a port served by `server`: what each side got.
    async fn meet(
        client: &Link,
        server: &Link,
        host: &str,
    ) -> (Result<Stream, LinkError>, Result<Stream, Refused>) {
        let ip = if host == "localhost" {
            "127.0.0.1"
        } else {
            host
        };
        let l = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = format!("{host}:{}", l.local_addr().unwrap().port());
        let serve = async {
            let (tcp, _) = l.accept().await.unwrap();
            server.accept(tcp).await
        };
        tokio::time::timeout(Duration::from_secs(10), async {
            tokio::join!(client.connect(&addr), serve)
        })
        .await
        .expect("neither side hangs")
    }

    #[tokio::test]
    async fn mutual_tls_by_name_and_by_address() {
        let link = tls_link();
        for host in ["localhost", "127.0.0.1"] {
            let (c, s) = meet(&link, &link, host).await;
            let (Ok(mut c), Ok(mut s)) = (c, s) else {
                panic!("{host}: the handshake failed");
            };
            wire::write(&mut c, &Msg::Status).await.unwrap();
            assert_eq!(wire::read(&mut s).await.unwrap(), Some(Msg::Status));
        }
        // An address of this host the certificate does not name.
        let (c, _) = meet(&link, &link, "127.0.0.2").await;
        assert!(matches!(c, Err(LinkError::Handshake { .. })));
    }

    /// Each kind of node refuses the other with a reason, within the handshake
    /// timeout, and neither gets a message through.
    #[tokio::test]
    async fn a_plain_peer_and_a_tls_port_refuse_each_other() {
        let (tls, plain) = (tls_link(), Link::default());
        let (c, s) = meet(&tls, &plain, "localhost").await;
        assert!(matches!(s, Err(Refused::TlsOnPlain)));
        let Err(e) = c else {
            panic!("a plain port completed a TLS handshake")
        };
        assert!(e.to_string().contains("replication.tls"), "{e}");

        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let serve = async {
            let (tcp, _) = l.accept().await.unwrap();
            tls.accept(tcp).await
        };
        let (asked, served) = tokio::time::timeout(Duration::from_secs(10), async {
            tokio::join!(plain.ask(&addr, &Msg::Status), serve)
        })
        .await
        .expect("neither side hangs");
        let Err(Refused::Tls(e)) = served else {
            panic!("a TLS port accepted plain bytes")
        };
        assert!(!e.is_silent_close(), "{e}");
        let e = asked.unwrap_err();
        assert!(e.to_string().contains("replication.tls"), "{e}");
    }

    #[test]
    fn the_link_needs_the_ca_and_reports_bad_files() {
        let mut cfg = Config::default();
        cfg.replication.tls = true;
        cfg.tls.cert = Some("/nonexistent/node.pem".into());
        cfg.tls.key = Some("/nonexistent/node.key".into());
        let e = Link::new(&cfg).err().unwrap();
        assert!(e.contains("tls.ca"), "{e}");
        cfg.tls.ca = Some("/nonexistent/ca.pem".into());
        let e = Link::new(&cfg).err().unwrap();
        assert!(e.contains("/nonexistent/node.pem"), "{e}");
    }
}
