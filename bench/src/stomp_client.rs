//! A minimal STOMP 1.2 client on the project's own codec (`switchboard-stomp`):
//! one TCP connection, one read buffer and one write buffer, no task of its own.
//! The caller encodes any number of frames and writes them with one `flush`; reads
//! take whatever the socket has and the caller decodes every whole frame from it.
//! An ERROR frame from the broker becomes an error carrying its `message` and body.

use anyhow::{Context, Result, anyhow, bail};
use bytes::BytesMut;
use std::time::Duration;
use switchboard_stomp::codec::{Codec, Decoder, Item, Limits, Version, encode_frame};
use switchboard_stomp::frame::{Command, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Read buffer space made available before every read.
const READ_CHUNK: usize = 64 * 1024;

/// `stomp://[login[:passcode]@]host[:port][/vhost]`; the vhost goes in the `host`
/// header (default `/`; `%2f` is `/`), login and passcode default to guest.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: String,
    pub login: String,
    pub passcode: String,
    pub vhost: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target> {
        let rest = url
            .strip_prefix("stomp://")
            .ok_or_else(|| anyhow!("expected stomp://host:port, got {url:?}"))?;
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (Some(a), r),
            None => (None, rest),
        };
        let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
        if hostport.is_empty() {
            bail!("no host in {url:?}");
        }
        let addr = if hostport
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            hostport.to_string()
        } else {
            format!("{hostport}:61613")
        };
        let (login, passcode) = match auth.map(|a| a.split_once(':').unwrap_or((a, ""))) {
            Some((l, p)) => (l.to_string(), p.to_string()),
            None => ("guest".into(), "guest".into()),
        };
        let vhost = match path.replace("%2f", "/").replace("%2F", "/") {
            v if v.is_empty() => "/".to_string(),
            v => v,
        };
        Ok(Target {
            addr,
            login,
            passcode,
            vhost,
        })
    }
}

pub struct Conn {
    stream: TcpStream,
    rbuf: BytesMut,
    pub wbuf: BytesMut,
    codec: Codec,
    /// Set once the broker's ERROR frame or the end of the stream was seen.
    closed: bool,
}

impl Conn {
    /// Connects, sends CONNECT (1.2, no heart-beats) and waits for CONNECTED.
    pub async fn connect(t: &Target) -> Result<Conn> {
        let fut = async {
            let stream = TcpStream::connect(&t.addr)
                .await
                .with_context(|| format!("connecting to {}", t.addr))?;
            stream.set_nodelay(true)?;
            let mut c = Conn {
                stream,
                rbuf: BytesMut::with_capacity(READ_CHUNK),
                wbuf: BytesMut::with_capacity(16 * 1024),
                codec: Codec::new(Limits::default()),
                closed: false,
            };
            let connect = Frame::new(Command::Connect)
                .with_header("accept-version", "1.2")
                .with_header("host", t.vhost.as_str())
                .with_header("login", t.login.as_str())
                .with_header("passcode", t.passcode.as_str())
                .with_header("heart-beat", "0,0");
            c.encode(&connect);
            c.flush().await?;
            let f = c.next_blocking().await?;
            if f.command != Command::Connected {
                bail!("expected CONNECTED, got {}", f.command);
            }
            if f.header("version") != Some("1.2") {
                bail!(
                    "the broker does not speak STOMP 1.2 (version {:?})",
                    f.header("version")
                );
            }
            c.codec.set_version(Version::V12);
            Ok(c)
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, fut).await {
            Ok(r) => r.with_context(|| format!("STOMP connect to {}", t.addr)),
            Err(_) => bail!(
                "STOMP connect to {}: no CONNECTED within {CONNECT_TIMEOUT:?}",
                t.addr
            ),
        }
    }

    /// Appends a frame to the write buffer (STOMP 1.2 encoding).
    pub fn encode(&mut self, f: &Frame) {
        encode_frame(f, self.codec.version(), &mut self.wbuf);
    }

    /// Writes the write buffer out.
    pub async fn flush(&mut self) -> Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.stream.write_all(&self.wbuf).await {
            // The broker may have said why before closing.
            let _ = self.stream.try_read_buf(&mut self.rbuf);
            while let Ok(Some(_)) = self.next() {}
            return Err(anyhow!(e).context("writing to the broker"));
        }
        self.wbuf.clear();
        Ok(())
    }

    /// Waits for bytes from the broker; an error once it closed the connection.
    pub async fn read(&mut self) -> Result<()> {
        self.rbuf.reserve(READ_CHUNK);
        let n = self.stream.read_buf(&mut self.rbuf).await?;
        self.after_read(n)
    }

    /// Takes what the socket has without waiting; false if it had nothing.
    pub fn try_read(&mut self) -> Result<bool> {
        self.rbuf.reserve(READ_CHUNK);
        match self.stream.try_read_buf(&mut self.rbuf) {
            Ok(n) => self.after_read(n).map(|_| true),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn after_read(&mut self, n: usize) -> Result<()> {
        if n == 0 {
            // Surface an ERROR frame left in the buffer before the end.
            while self.next()?.is_some() {}
            self.closed = true;
            bail!("the broker closed the connection");
        }
        Ok(())
    }

    /// The next whole frame already read (heart-beats skipped); ERROR is an error.
    // A fallible step over the read buffer, not an iterator: `Iterator` cannot say
    // "nothing yet" apart from "an error".
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Frame>> {
        loop {
            match self.codec.decode(&mut self.rbuf) {
                Ok(Some(Item::HeartBeat)) => continue,
                Ok(Some(Item::Frame(f))) if f.command == Command::Error => {
                    self.closed = true;
                    bail!("{}", error_text(&f));
                }
                Ok(Some(Item::Frame(f))) => return Ok(Some(f)),
                Ok(None) => return Ok(None),
                Err(e) => bail!("undecodable frame from the broker: {e}"),
            }
        }
    }

    /// The next frame, reading as needed.
    pub async fn next_blocking(&mut self) -> Result<Frame> {
        loop {
            if let Some(f) = self.next()? {
                return Ok(f);
            }
            self.read().await?;
        }
    }

    /// Sends `f` with `receipt:<id>` and waits for that RECEIPT (any other frame
    /// before it is an error: use it before messages can arrive).
    pub async fn request(&mut self, f: Frame, id: &str, timeout: Duration) -> Result<()> {
        let what = f.command;
        self.encode(&f.with_header("receipt", id));
        self.flush().await?;
        let wait = async {
            let r = self.next_blocking().await?;
            match (r.command, r.header("receipt-id")) {
                (Command::Receipt, Some(got)) if got == id => Ok(()),
                (c, _) => bail!("expected the RECEIPT for {what}, got {c}"),
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => r.with_context(|| format!("{what}")),
            Err(_) => bail!("{what}: no RECEIPT within {timeout:?}"),
        }
    }

    /// Best effort: DISCONNECT and close the write side.
    pub async fn close(mut self) {
        if !self.closed {
            self.encode(&Frame::new(Command::Disconnect));
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                let _ = self.flush().await;
                let _ = self.stream.shutdown().await;
            })
            .await;
        }
    }
}

/// `message` header and body of an ERROR frame, for an error message.
pub fn error_text(f: &Frame) -> String {
    let msg = f.header("message").unwrap_or("(no message)");
    let body = String::from_utf8_lossy(&f.body);
    let body = body.trim();
    if body.is_empty() || body == msg {
        format!("broker ERROR: {msg}")
    } else {
        format!("broker ERROR: {msg}: {body}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("stomp://127.0.0.1:61613").unwrap();
        assert_eq!(
            (t.addr.as_str(), t.login.as_str(), t.vhost.as_str()),
            ("127.0.0.1:61613", "guest", "/")
        );
        let t = Target::parse("stomp://u:p@localhost/%2f").unwrap();
        assert_eq!(
            (
                t.addr.as_str(),
                t.login.as_str(),
                t.passcode.as_str(),
                t.vhost.as_str()
            ),
            ("localhost:61613", "u", "p", "/")
        );
        let t = Target::parse("stomp://h:1/v1").unwrap();
        assert_eq!((t.addr.as_str(), t.vhost.as_str()), ("h:1", "v1"));
        assert!(Target::parse("amqp://h").is_err());
    }
}
