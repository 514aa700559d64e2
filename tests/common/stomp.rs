//! STOMP helpers for the end-to-end tests (tests/stomp_*.rs).
//!
//! [`Stomp`] is a small async STOMP client over a tokio `TcpStream` (TCP_NODELAY)
//! built on the frontend's own codec (`switchboard_stomp::codec::Codec`): frames are
//! encoded and decoded exactly as the server does, with the negotiated version's
//! header escaping. Every wait is bounded by [`WAIT`](super::WAIT); the `request`
//! style calls add a `receipt` header and wait for the matching RECEIPT, keeping any
//! MESSAGE that arrives meanwhile for [`Stomp::next_frame`]. `write_raw` and
//! `write_bytewise` put arbitrary bytes on the socket for framing tests.
//!
//! `SWITCHBOARD_STOMP_ADDR=host:port` runs the tests that do not need our own
//! binary against another STOMP broker (e.g. RabbitMQ's plugin, with
//! `SWITCHBOARD_AMQP_URL` naming its AMQP side), to check that the tests
//! themselves assert what RabbitMQ does.

use super::{Server, WAIT};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::time::Duration;
use switchboard_stomp::codec::{Codec, Decoder, Encoder, Item, Limits, Version};
pub use switchboard_stomp::frame::{Command, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long a test waits to be sure something does *not* arrive.
pub const QUIET: Duration = Duration::from_millis(500);

/// The STOMP broker a test talks to.
pub struct Broker {
    /// Our own binary, or the external broker of `SWITCHBOARD_AMQP_URL` (None when
    /// only `SWITCHBOARD_STOMP_ADDR` is set).
    pub server: Option<Server>,
    /// `host:port` of its STOMP listener.
    pub addr: String,
}

impl Broker {
    /// `SWITCHBOARD_STOMP_ADDR` if set, else a fresh Switchboard. None (skip the
    /// test) when only an external AMQP broker was named.
    pub fn start() -> Option<Broker> {
        if let Some(addr) = external_addr() {
            let server = Server::external().then(Server::start);
            return Some(Broker { server, addr });
        }
        Self::own()
    }

    /// [`start`](Self::start), for tests that also need the AMQP side.
    pub fn with_amqp() -> Option<Broker> {
        Self::start().filter(|b| b.server.is_some())
    }

    /// Only our own binary (restarts, crashes); None to skip.
    pub fn own() -> Option<Broker> {
        if Server::external() || external_addr().is_some() {
            return None;
        }
        Some(Broker::of(Server::start()))
    }

    pub fn of(server: Server) -> Broker {
        let addr = server
            .stomp_addr()
            .expect("no stomp= in the listening line")
            .to_string();
        Broker {
            server: Some(server),
            addr,
        }
    }

    /// True for our own binary (not an external broker).
    pub fn is_own(&self) -> bool {
        self.server.as_ref().is_some_and(|s| !s.is_external())
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("a broker with an AMQP side")
    }

    pub fn server_mut(&mut self) -> &mut Server {
        self.server.as_mut().expect("a broker with an AMQP side")
    }

    /// A STOMP 1.2 connection as guest.
    pub async fn connect(&self) -> Stomp {
        Stomp::connect(&self.addr).await
    }
}

fn external_addr() -> Option<String> {
    std::env::var("SWITCHBOARD_STOMP_ADDR")
        .ok()
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
}

/// A frame from parts.
pub fn frame(command: Command, headers: &[(&str, &str)], body: &[u8]) -> Frame {
    let mut f = Frame::new(command);
    for (k, v) in headers {
        f = f.with_header(*k, *v);
    }
    f.with_body(Bytes::copy_from_slice(body))
}

/// The value of header `name`; panics (showing the frame) if it is missing.
pub fn hdr<'a>(f: &'a Frame, name: &str) -> &'a str {
    f.header(name)
        .unwrap_or_else(|| panic!("no '{name}' header in {}", show(f)))
}

pub fn text(f: &Frame) -> String {
    String::from_utf8_lossy(&f.body).into_owned()
}

/// A frame for assertion messages.
pub fn show(f: &Frame) -> String {
    format!("{} {:?} body={:?}", f.command, f.headers, text(f))
}

/// What one read from the server gave.
#[derive(Debug)]
pub enum Read {
    Frame(Frame),
    HeartBeat,
    /// End of stream (or reset).
    Closed,
    TimedOut,
}

pub struct Stomp {
    stream: TcpStream,
    codec: Codec,
    rbuf: BytesMut,
    /// Frames read while waiting for a RECEIPT, handed out by `next_frame` first.
    backlog: VecDeque<Frame>,
    /// Heart-beats received so far.
    pub heart_beats: usize,
    /// The server's CONNECTED frame.
    pub connected: Option<Frame>,
    receipts: u64,
}

impl Stomp {
    /// A TCP connection and nothing else (no CONNECT sent).
    pub async fn open(addr: &str) -> Stomp {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .unwrap_or_else(|_| panic!("timed out connecting to {addr}"))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.set_nodelay(true).expect("TCP_NODELAY");
        Stomp {
            stream,
            codec: Codec::new(Limits::default()),
            rbuf: BytesMut::with_capacity(4096),
            backlog: VecDeque::new(),
            heart_beats: 0,
            connected: None,
            receipts: 0,
        }
    }

    /// STOMP 1.2 as guest/guest on vhost `/`, no heart-beats.
    pub async fn connect(addr: &str) -> Stomp {
        Self::connect_with(addr, &[]).await
    }

    /// CONNECT with the default headers, `extra` overriding them; panics unless the
    /// answer is CONNECTED.
    pub async fn connect_with(addr: &str, extra: &[(&str, &str)]) -> Stomp {
        let mut c = Self::open(addr).await;
        let mut headers: Vec<(&str, &str)> = vec![
            ("accept-version", "1.2"),
            ("host", "/"),
            ("login", "guest"),
            ("passcode", "guest"),
            ("heart-beat", "0,0"),
        ];
        for (k, v) in extra {
            match headers.iter_mut().find(|(n, _)| n == k) {
                Some(h) => h.1 = v,
                None => headers.push((k, v)),
            }
        }
        let reply = c.handshake(&frame(Command::Connect, &headers, b"")).await;
        assert_eq!(
            reply.command,
            Command::Connected,
            "CONNECT refused: {}",
            show(&reply)
        );
        c
    }

    /// Sends `connect` and returns the server's answer (CONNECTED or ERROR); on
    /// CONNECTED the codec takes the negotiated version.
    pub async fn handshake(&mut self, connect: &Frame) -> Frame {
        self.write(connect).await;
        let reply = self.next_frame().await;
        if reply.command == Command::Connected {
            let v = reply.header("version").unwrap_or("1.0");
            self.codec
                .set_version(Version::parse(v).unwrap_or(Version::V10));
            self.connected = Some(reply.clone());
        }
        reply
    }

    /// The version agreed in CONNECTED (1.0 before).
    pub fn version(&self) -> Version {
        self.codec.version().unwrap_or(Version::V10)
    }

    /// Encodes and writes one frame.
    pub async fn write(&mut self, f: &Frame) {
        let mut out = BytesMut::new();
        self.codec.encode(f, &mut out).expect("encode");
        self.write_raw(&out).await;
    }

    /// The bytes `f` is on the wire under the current version.
    pub fn encode(&mut self, f: &Frame) -> Vec<u8> {
        let mut out = BytesMut::new();
        self.codec.encode(f, &mut out).expect("encode");
        out.to_vec()
    }

    pub async fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
        self.stream.flush().await.expect("flush");
    }

    /// One byte per write (each flushed, TCP_NODELAY: one segment each).
    pub async fn write_bytewise(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.stream.write_all(&[*b]).await.expect("write");
            self.stream.flush().await.expect("flush");
        }
    }

    /// Writes `f` with a fresh `receipt` header and waits for its RECEIPT; frames
    /// arriving meanwhile are kept for `next_frame`. Panics on ERROR.
    pub async fn request(&mut self, f: Frame) -> Frame {
        self.receipts += 1;
        let id = format!("r-{}", self.receipts);
        self.write(&f.with_header("receipt", id.as_str())).await;
        self.receipt(&id).await
    }

    /// Waits for RECEIPT `id`, keeping other frames; panics on ERROR.
    pub async fn receipt(&mut self, id: &str) -> Frame {
        if let Some(i) = self
            .backlog
            .iter()
            .position(|f| f.command == Command::Receipt && f.header("receipt-id") == Some(id))
        {
            return self.backlog.remove(i).expect("kept frame");
        }
        let deadline = Instant::now() + WAIT;
        loop {
            match self.read_socket(deadline).await {
                Read::Frame(f)
                    if f.command == Command::Receipt && f.header("receipt-id") == Some(id) =>
                {
                    return f;
                }
                Read::Frame(f) if f.command == Command::Error => {
                    panic!("ERROR while waiting for receipt {id}: {}", show(&f))
                }
                Read::Frame(f) => self.backlog.push_back(f),
                Read::HeartBeat => {}
                Read::Closed => panic!("connection closed while waiting for receipt {id}"),
                Read::TimedOut => panic!("no receipt {id} within {WAIT:?}"),
            }
        }
    }

    /// SEND with a receipt.
    pub async fn send(&mut self, dest: &str, body: &str) {
        self.send_with(dest, &[], body.as_bytes()).await;
    }

    /// SEND with `headers`, `body` and a receipt.
    pub async fn send_with(&mut self, dest: &str, headers: &[(&str, &str)], body: &[u8]) {
        let f = frame(Command::Send, headers, body).with_header("destination", dest);
        self.request(f).await;
    }

    /// SUBSCRIBE with a receipt (so it is in place when this returns).
    pub async fn subscribe(&mut self, id: &str, dest: &str, ack: &str) {
        self.subscribe_with(id, dest, &[("ack", ack)]).await;
    }

    pub async fn subscribe_with(&mut self, id: &str, dest: &str, headers: &[(&str, &str)]) {
        let f = frame(Command::Subscribe, headers, b"")
            .with_header("id", id)
            .with_header("destination", dest);
        self.request(f).await;
    }

    /// The ACK (or NACK) frame for MESSAGE `m`, by version: `id` = its `ack`
    /// header in 1.2, `message-id` (+ `subscription`) before.
    pub fn settle_frame(&self, command: Command, m: &Frame, extra: &[(&str, &str)]) -> Frame {
        let f = frame(command, extra, b"");
        if self.version() == Version::V12 {
            f.with_header("id", hdr(m, "ack"))
        } else {
            f.with_header("message-id", hdr(m, "message-id"))
                .with_header("subscription", hdr(m, "subscription"))
        }
    }

    /// ACK of `m`, with a receipt.
    pub async fn ack(&mut self, m: &Frame) {
        let f = self.settle_frame(Command::Ack, m, &[]);
        self.request(f).await;
    }

    /// NACK of `m` with `extra` headers (`requeue:false`, `transaction`), with a receipt.
    pub async fn nack(&mut self, m: &Frame, extra: &[(&str, &str)]) {
        let f = self.settle_frame(Command::Nack, m, extra);
        self.request(f).await;
    }

    /// ACK of `m` inside transaction `tx`, with a receipt.
    pub async fn ack_in(&mut self, tx: &str, m: &Frame) {
        let f = self.settle_frame(Command::Ack, m, &[("transaction", tx)]);
        self.request(f).await;
    }

    pub async fn begin(&mut self, tx: &str) -> Frame {
        self.request(frame(Command::Begin, &[("transaction", tx)], b""))
            .await
    }

    pub async fn commit(&mut self, tx: &str) -> Frame {
        self.request(frame(Command::Commit, &[("transaction", tx)], b""))
            .await
    }

    pub async fn abort(&mut self, tx: &str) -> Frame {
        self.request(frame(Command::Abort, &[("transaction", tx)], b""))
            .await
    }

    /// DISCONNECT with a receipt, then waits for the server to close.
    pub async fn disconnect(mut self) {
        self.request(frame(Command::Disconnect, &[], b"")).await;
        self.assert_closed(WAIT).await;
    }

    /// The next item from the server within `timeout` (kept frames first).
    pub async fn read(&mut self, timeout: Duration) -> Read {
        self.read_until(Instant::now() + timeout).await
    }

    async fn read_until(&mut self, deadline: Instant) -> Read {
        match self.backlog.pop_front() {
            Some(f) => Read::Frame(f),
            None => self.read_socket(deadline).await,
        }
    }

    /// The next item from the socket (not from the kept frames).
    async fn read_socket(&mut self, deadline: Instant) -> Read {
        loop {
            match self.codec.decode(&mut self.rbuf) {
                Ok(Some(Item::Frame(f))) => return Read::Frame(f),
                Ok(Some(Item::HeartBeat)) => {
                    self.heart_beats += 1;
                    return Read::HeartBeat;
                }
                Ok(None) => {}
                Err(e) => panic!("undecodable bytes from the server: {e}"),
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.rbuf)).await {
                Err(_) => return Read::TimedOut,
                Ok(Ok(0)) | Ok(Err(_)) => {
                    assert!(
                        self.codec.is_idle() && self.rbuf.iter().all(|b| *b == b'\r'),
                        "connection closed in the middle of a frame: {:?}",
                        self.rbuf
                    );
                    return Read::Closed;
                }
                Ok(Ok(_)) => {}
            }
        }
    }

    /// The next frame within [`WAIT`] (heart-beats skipped); panics on timeout or close.
    pub async fn next_frame(&mut self) -> Frame {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.read_until(deadline).await {
                Read::Frame(f) => return f,
                Read::HeartBeat => {}
                Read::Closed => panic!("connection closed while waiting for a frame"),
                Read::TimedOut => panic!("no frame within {WAIT:?}"),
            }
        }
    }

    /// The next frame, which must be a MESSAGE.
    pub async fn next_message(&mut self) -> Frame {
        let f = self.next_frame().await;
        assert_eq!(
            f.command,
            Command::Message,
            "expected MESSAGE: {}",
            show(&f)
        );
        f
    }

    /// The next `n` MESSAGEs.
    pub async fn messages(&mut self, n: usize) -> Vec<Frame> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next_message().await);
        }
        out
    }

    /// The next frame, which must be an ERROR.
    pub async fn next_error(&mut self) -> Frame {
        let f = self.next_frame().await;
        assert_eq!(f.command, Command::Error, "expected ERROR: {}", show(&f));
        f
    }

    /// Asserts that no frame arrives for `quiet` (heart-beats are fine).
    pub async fn no_frame(&mut self, quiet: Duration) {
        let deadline = Instant::now() + quiet;
        loop {
            match self.read_until(deadline).await {
                Read::Frame(f) => panic!("unexpected frame: {}", show(&f)),
                Read::HeartBeat => {}
                Read::Closed => panic!("connection closed unexpectedly"),
                Read::TimedOut => return,
            }
        }
    }

    /// Asserts that the server closes the connection within `timeout`, with no
    /// frame before (heart-beats are fine).
    pub async fn assert_closed(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_until(deadline).await {
                Read::Frame(f) => panic!("frame instead of close: {}", show(&f)),
                Read::HeartBeat => {}
                Read::Closed => return,
                Read::TimedOut => panic!("connection still open after {timeout:?}"),
            }
        }
    }
}

/// Body texts of MESSAGE frames.
pub fn bodies(ms: &[Frame]) -> Vec<String> {
    ms.iter().map(text).collect()
}

// ---- A minimal JSON reader, for headers that carry AMQP tables (x-death) ----

#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Num(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Arr(a) => Some(a),
            _ => None,
        }
    }
}

/// Parses one JSON document (the whole of `s`); None if it is not JSON.
pub fn parse_json(s: &str) -> Option<Json> {
    let mut p = JsonParser {
        s: s.as_bytes(),
        i: 0,
    };
    let v = p.value()?;
    p.ws();
    (p.i == p.s.len()).then_some(v)
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|b| b" \t\r\n".contains(b)) {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &str) -> bool {
        let ok = self.s[self.i..].starts_with(lit.as_bytes());
        if ok {
            self.i += lit.len();
        }
        ok
    }

    fn value(&mut self) -> Option<Json> {
        self.ws();
        match *self.s.get(self.i)? {
            b'n' => self.eat("null").then_some(Json::Null),
            b't' => self.eat("true").then_some(Json::Bool(true)),
            b'f' => self.eat("false").then_some(Json::Bool(false)),
            b'"' => self.string().map(Json::Str),
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.eat("]") {
                    return Some(Json::Arr(items));
                }
                loop {
                    items.push(self.value()?);
                    self.ws();
                    if self.eat("]") {
                        return Some(Json::Arr(items));
                    }
                    if !self.eat(",") {
                        return None;
                    }
                }
            }
            b'{' => {
                self.i += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.eat("}") {
                    return Some(Json::Obj(fields));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.ws();
                    if !self.eat(":") {
                        return None;
                    }
                    fields.push((k, self.value()?));
                    self.ws();
                    if self.eat("}") {
                        return Some(Json::Obj(fields));
                    }
                    if !self.eat(",") {
                        return None;
                    }
                }
            }
            _ => {
                let start = self.i;
                while self
                    .s
                    .get(self.i)
                    .is_some_and(|b| b"+-.eE0123456789".contains(b))
                {
                    self.i += 1;
                }
                std::str::from_utf8(&self.s[start..self.i])
                    .ok()?
                    .parse()
                    .ok()
                    .map(Json::Num)
            }
        }
    }

    fn string(&mut self) -> Option<String> {
        if !self.eat("\"") {
            return None;
        }
        let mut out = String::new();
        loop {
            let rest = std::str::from_utf8(&self.s[self.i..]).ok()?;
            let c = rest.chars().next()?;
            self.i += c.len_utf8();
            match c {
                '"' => return Some(out),
                '\\' => {
                    let e = *self.s.get(self.i)?;
                    self.i += 1;
                    out.push(match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'u' => {
                            let hex = std::str::from_utf8(self.s.get(self.i..self.i + 4)?).ok()?;
                            self.i += 4;
                            char::from_u32(u32::from_str_radix(hex, 16).ok()?)?
                        }
                        _ => return None,
                    });
                }
                c if (c as u32) < 0x20 => return None,
                c => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod json_tests {
    use super::*;

    #[test]
    fn parses_what_the_tests_need() {
        let v = parse_json(r#" [{"count":1,"reason":"rejected","q":"a\"b\u0041","ok":true,"n":null,"rk":["x"],"t":1.5e3}] "#)
            .unwrap();
        let d = &v.as_array().unwrap()[0];
        assert_eq!(d.get("count").and_then(Json::as_f64), Some(1.0));
        assert_eq!(d.get("reason").and_then(Json::as_str), Some("rejected"));
        assert_eq!(d.get("q").and_then(Json::as_str), Some("a\"bA"));
        assert_eq!(d.get("t").and_then(Json::as_f64), Some(1500.0));
        assert!(parse_json("[1,]").is_none());
        assert!(parse_json("{\"a\":1} x").is_none());
        assert!(parse_json("").is_none());
    }
}
