//! The STOMP frame model: a command, headers in wire order, and a body of bytes.
//!
//! Header names and values are the *decoded* strings (escapes resolved by the codec
//! for the connection's version). Repeated headers are kept in the order received;
//! [`Frame::header`] returns the first, as STOMP 1.2 §Repeated Header Entries says.
//!
//! Which escaping a frame gets, and unescaping, are here too, next to the model;
//! the encoder is `encode.rs`, the decoder `codec.rs` (whose docs state the rules);
//! [`crate::inbound::Inbound`] is the decoder's cheaper form of a received frame.

use crate::error::{FrameError, show};
use crate::version::Version;
use bytes::Bytes;

/// Every command of STOMP 1.0–1.2, client frames then server frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    Connect,
    Stomp,
    Connected,
    Send,
    Subscribe,
    Unsubscribe,
    Ack,
    Nack,
    Begin,
    Commit,
    Abort,
    Disconnect,
    Message,
    Receipt,
    Error,
}

impl Command {
    pub const ALL: [Command; 15] = [
        Command::Connect,
        Command::Stomp,
        Command::Connected,
        Command::Send,
        Command::Subscribe,
        Command::Unsubscribe,
        Command::Ack,
        Command::Nack,
        Command::Begin,
        Command::Commit,
        Command::Abort,
        Command::Disconnect,
        Command::Message,
        Command::Receipt,
        Command::Error,
    ];

    /// Length of the longest command name (`UNSUBSCRIBE`).
    pub const MAX_LEN: usize = 11;

    /// The command named exactly `name` (commands are case-sensitive).
    pub fn parse(name: &[u8]) -> Option<Command> {
        Some(match name {
            b"CONNECT" => Command::Connect,
            b"STOMP" => Command::Stomp,
            b"CONNECTED" => Command::Connected,
            b"SEND" => Command::Send,
            b"SUBSCRIBE" => Command::Subscribe,
            b"UNSUBSCRIBE" => Command::Unsubscribe,
            b"ACK" => Command::Ack,
            b"NACK" => Command::Nack,
            b"BEGIN" => Command::Begin,
            b"COMMIT" => Command::Commit,
            b"ABORT" => Command::Abort,
            b"DISCONNECT" => Command::Disconnect,
            b"MESSAGE" => Command::Message,
            b"RECEIPT" => Command::Receipt,
            b"ERROR" => Command::Error,
            _ => return None,
        })
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Command::Connect => "CONNECT",
            Command::Stomp => "STOMP",
            Command::Connected => "CONNECTED",
            Command::Send => "SEND",
            Command::Subscribe => "SUBSCRIBE",
            Command::Unsubscribe => "UNSUBSCRIBE",
            Command::Ack => "ACK",
            Command::Nack => "NACK",
            Command::Begin => "BEGIN",
            Command::Commit => "COMMIT",
            Command::Abort => "ABORT",
            Command::Disconnect => "DISCONNECT",
            Command::Message => "MESSAGE",
            Command::Receipt => "RECEIPT",
            Command::Error => "ERROR",
        }
    }

    /// CONNECT, STOMP and CONNECTED: their headers are never escaped, in any version
    /// (STOMP 1.2 §Value Encoding), because they are sent before the version is agreed.
    pub fn is_handshake(&self) -> bool {
        matches!(self, Command::Connect | Command::Stomp | Command::Connected)
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub command: Command,
    /// Decoded (name, value) pairs in wire order; repeats are kept.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// A STOMP boolean header value (see [`Frame::flag`]).
pub fn boolean(v: &str) -> Option<bool> {
    match v {
        "true" | "True" => Some(true),
        "false" | "False" => Some(false),
        _ => None,
    }
}

impl Frame {
    pub fn new(command: Command) -> Frame {
        Frame {
            command,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// The value of the first header called `name` (names are case-sensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean header as RabbitMQ reads it: `true`/`false`, and `True`/`False`
    /// because Python clients send `str(True)`. Anything else is no answer (`None`),
    /// so each caller keeps its own default.
    pub fn flag(&self, name: &str) -> Option<bool> {
        boolean(self.header(name)?)
    }

    /// Appends a header (an existing one of the same name still wins in [`header`]).
    ///
    /// [`header`]: Frame::header
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Frame {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn with_body(mut self, body: impl Into<Bytes>) -> Frame {
        self.body = body.into();
        self
    }

    /// STOMP 1.0 leniency: strips spaces and tabs at the start of every header
    /// value, as RabbitMQ (`rabbit_stomp_util:trim_headers`, applied to every frame of
    /// a 1.0 connection, its CONNECT included) and ActiveMQ Artemis (its 1.0 decoder:
    /// "the STOMP spec examples seem to imply that whitespace should be trimmed";
    /// the 1.0 examples write `login: <username>`) do. Trailing whitespace is kept, as
    /// both keep it (only ActiveMQ Classic trims both ends). The codec applies this to
    /// every frame it decodes under [`Version::V10`] and to a CONNECT/STOMP frame
    /// without `accept-version` (a 1.0 client); a session that negotiates 1.0 from an
    /// explicit `accept-version:1.0` calls it on that CONNECT itself.
    pub fn trim_v10_values(&mut self) {
        for (_, v) in &mut self.headers {
            let start = v.len() - v.trim_start_matches([' ', '\t']).len();
            v.drain(..start);
        }
    }
}

// ---- Which escaping a frame gets, and unescaping (the rules are in `codec`'s
// module docs) ----

pub const CONTENT_LENGTH: &str = "content-length";

/// How header text is escaped in one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Escaping {
    None,
    V11,
    V12,
}

pub(crate) fn escaping(version: Option<Version>, command: Command) -> Escaping {
    match version {
        _ if command.is_handshake() => Escaping::None,
        None | Some(Version::V10) => Escaping::None,
        Some(Version::V11) => Escaping::V11,
        Some(Version::V12) => Escaping::V12,
    }
}

/// Resolves the escapes of one header name or value (`line` is for the error).
pub(crate) fn unescape(
    part: &[u8],
    escaping: Escaping,
    line: &[u8],
    version: Option<Version>,
) -> Result<Vec<u8>, FrameError> {
    if escaping == Escaping::None || !part.contains(&b'\\') {
        return Ok(part.to_vec());
    }
    let mut out = Vec::with_capacity(part.len());
    let mut bytes = part.iter();
    while let Some(&b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        out.push(match bytes.next() {
            Some(b'n') => b'\n',
            Some(b'c') => b':',
            Some(b'\\') => b'\\',
            Some(b'r') if escaping == Escaping::V12 => b'\r',
            next => {
                let mut sequence = String::from("\\");
                if let Some(&n) = next {
                    sequence.push_str(&show(&[n]));
                }
                return Err(FrameError::InvalidEscape {
                    sequence,
                    line: show(line),
                    version: version.unwrap_or(Version::V11),
                });
            }
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names_round_trip() {
        for c in Command::ALL {
            assert_eq!(Command::parse(c.as_str().as_bytes()), Some(c));
            assert!(c.as_str().len() <= Command::MAX_LEN);
            assert_eq!(c.to_string(), c.as_str());
        }
        assert_eq!(Command::parse(b"send"), None);
        assert_eq!(Command::parse(b"SEND "), None);
        assert_eq!(Command::parse(b""), None);
        let handshake: Vec<_> = Command::ALL
            .into_iter()
            .filter(|c| c.is_handshake())
            .collect();
        assert_eq!(
            handshake,
            [Command::Connect, Command::Stomp, Command::Connected]
        );
    }

    #[test]
    fn first_header_wins_and_builders() {
        let f = Frame::new(Command::Send)
            .with_header("destination", "/queue/a")
            .with_header("destination", "/queue/b")
            .with_body(Bytes::from_static(b"hi"));
        assert_eq!(f.header("destination"), Some("/queue/a"));
        assert_eq!(f.header("Destination"), None);
        assert_eq!(f.headers.len(), 2);
        assert_eq!(&f.body[..], b"hi");
    }

    #[test]
    fn v10_trim_is_leading_only() {
        let mut f = Frame::new(Command::Connect)
            .with_header("login", " \t guest ")
            .with_header("passcode", "")
            .with_header("x", "   ");
        f.trim_v10_values();
        assert_eq!(f.header("login"), Some("guest "));
        assert_eq!(f.header("passcode"), Some(""));
        assert_eq!(f.header("x"), Some(""));
    }
}
