//! Bytes ⇄ STOMP frames, for STOMP 1.0, 1.1 and 1.2. Pure, no I/O: a
//! `tokio_util` [`Decoder`]/[`Encoder`] that splits a byte stream into frames.
//!
//! Framing (STOMP 1.2 §STOMP Frames, §Augmented BNF):
//! - A frame is a command line, header lines, a blank line, a body and a NUL. Every
//!   line may end in LF or CR LF, whatever the version (ActiveMQ and RabbitMQ accept
//!   CR LF from 1.0 clients too). A CR anywhere else in the command or a header line
//!   is an error, as in RabbitMQ: 1.2 wants it escaped as `\r`, and 1.0/1.1 have no
//!   way to carry it that a CR LF reader would not eat.
//! - Between frames, each EOL is a heart-beat ([`Item::HeartBeat`]); NUL bytes there
//!   are skipped silently (RabbitMQ does the same for clients that send `\0\n`).
//! - With `content-length` (the first one, surrounding spaces allowed) the body is
//!   exactly that many bytes, NULs included, and a NUL must follow. Without it the
//!   body runs to the first NUL. Every command may carry `content-length`.
//!
//! Limits ([`Limits`]) are checked before anything is buffered past them: the
//! command line is refused once it is longer than any command, header lines as soon
//! as together they pass `max_header_bytes` (even mid-line), `content-length` before
//! one body byte is read, and a NUL-terminated body as soon as it passes `max_body`.
//!
//! Header escaping follows the version set with [`Codec::set_version`]: none before
//! it is known and in 1.0; `\n`, `\c`, `\\` in 1.1; also `\r` in 1.2. Any other
//! escape (`\t`, `\r` in 1.1, a trailing `\`) is an error. CONNECT, STOMP and
//! CONNECTED are never escaped, in any version. Header values may contain unescaped
//! colons (the first `:` ends the name), which every broker accepts. Names and values
//! must be UTF-8. Under 1.0, leading spaces and tabs of values are dropped, see
//! [`Frame::trim_v10_values`].
//!
//! Encoding uses LF line ends, escapes by the same version rule, and writes a correct
//! `content-length` whenever the body is non-empty or the frame carries one (any
//! `content-length` in the frame is replaced, so a body with NULs always survives).
//! Where a frame's escaping has no way to keep it well-formed (LF or CR in a value,
//! LF, CR or `:` in a name of an unescaped frame: 1.0, version unknown, CONNECT,
//! STOMP, CONNECTED; CR under 1.1) the STOMP 1.2 escape is written anyway, as
//! RabbitMQ does for every version: a header's content can never split or corrupt a
//! frame we send. The encoder lives in `frame.rs`, [`Version`] in `version.rs` and
//! [`FrameError`] in `error.rs` (frame.rs needs them too, and must not import the
//! codec that imports it); all are re-exported here.

pub use crate::error::FrameError;
use crate::error::show;
pub use crate::frame::{CONTENT_LENGTH, encode_frame, encoded_size};
use crate::frame::{Command, Escaping, Frame, escaping, unescape};
pub use crate::version::Version;
use bytes::{Buf, BufMut, Bytes, BytesMut};
/// The traits, re-exported so callers need not name `tokio_util`.
pub use tokio_util::codec::{Decoder, Encoder};

/// What a heart-beat is on the wire.
pub const HEART_BEAT: &[u8] = b"\n";
/// The longest possible command line: `UNSUBSCRIBE\r\n`.
const COMMAND_LINE_MAX: usize = Command::MAX_LEN + 2;
/// Bytes reserved ahead for a body whose content-length is known: enough to read
/// efficiently, not so much that a header alone makes us allocate `max_body`.
const BODY_RESERVE: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// All header lines of a frame together, line endings included (not the
    /// command line, which is bounded by the longest command).
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 64 * 1024,
            max_headers: 1000,
            max_body: 16 * 1024 * 1024,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Frame(Frame),
    /// A bare EOL (LF or CR LF) between frames.
    HeartBeat,
}

/// A frame whose command and headers have been read.
#[derive(Debug)]
struct Partial {
    command: Command,
    headers: Vec<(String, String)>,
    header_bytes: usize,
}

#[derive(Debug)]
enum State {
    Between,
    Command,
    Headers(Partial),
    Body(Partial, Option<usize>),
}

#[derive(Debug)]
pub struct Codec {
    limits: Limits,
    version: Option<Version>,
    state: State,
    /// Bytes at the front of the buffer already searched for the current line's LF
    /// or the body's NUL, so a frame arriving in small reads is scanned once.
    scanned: usize,
    /// The `receipt` header of the frame being decoded, so that an ERROR for a
    /// frame refused halfway can still name it.
    receipt: Option<String>,
}

impl Codec {
    /// A codec for a new connection: version unknown, so nothing is escaped.
    pub fn new(limits: Limits) -> Codec {
        Codec {
            limits,
            version: None,
            state: State::Between,
            scanned: 0,
            receipt: None,
        }
    }

    /// The negotiated version, set once CONNECTED is sent. Call it before the next
    /// frame is decoded (`FramedRead` decodes one frame per poll, so setting it while
    /// handling CONNECT is in time even when the client pipelined more frames).
    pub fn set_version(&mut self, v: Version) {
        self.version = Some(v);
    }

    pub fn version(&self) -> Option<Version> {
        self.version
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// New limits, from the next line or body check on (e.g. larger once logged in).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The `receipt` header of a frame decoding stopped in (after an error).
    pub fn partial_receipt(&self) -> Option<&str> {
        self.receipt.as_deref()
    }

    /// True between frames (nothing of a frame has been consumed).
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Between)
    }

    fn step(&mut self, src: &mut BytesMut) -> Result<Option<Item>, FrameError> {
        loop {
            // The state is taken out and put back; an early `return Ok(None)` puts
            // back what it has, an error leaves `Between` (see `decode`).
            let next = match std::mem::replace(&mut self.state, State::Between) {
                State::Between => match (src.first(), src.get(1)) {
                    (None, _) | (Some(b'\r'), None) => return Ok(None),
                    (Some(0), _) => {
                        src.advance(1);
                        State::Between
                    }
                    (Some(b'\n'), _) => {
                        src.advance(1);
                        return Ok(Some(Item::HeartBeat));
                    }
                    (Some(b'\r'), Some(b'\n')) => {
                        src.advance(2);
                        return Ok(Some(Item::HeartBeat));
                    }
                    _ => {
                        self.scanned = 0;
                        State::Command
                    }
                },
                State::Command => match take_line(src, &mut self.scanned, COMMAND_LINE_MAX) {
                    Some(Ok((line, _))) => State::Headers(Partial {
                        command: Command::parse(&line)
                            .ok_or_else(|| FrameError::UnknownCommand(show(&line)))?,
                        headers: Vec::new(),
                        header_bytes: 0,
                    }),
                    None => {
                        self.state = State::Command;
                        return Ok(None);
                    }
                    Some(Err(())) => {
                        let n = src.len().min(COMMAND_LINE_MAX);
                        return Err(FrameError::UnknownCommand(show(&src[..n])));
                    }
                },
                State::Headers(mut p) => {
                    let max = self.limits.max_header_bytes;
                    let room = max.saturating_sub(p.header_bytes);
                    // +2: the blank line ending the headers is not a header line.
                    let (line, raw) =
                        match take_line(src, &mut self.scanned, room.saturating_add(2)) {
                            Some(Ok(l)) => l,
                            None => {
                                self.state = State::Headers(p);
                                return Ok(None);
                            }
                            Some(Err(())) => return Err(FrameError::HeadersTooLong { max }),
                        };
                    if line.is_empty() {
                        let length = content_length(&p.headers, self.limits.max_body)?;
                        State::Body(p, length)
                    } else {
                        self.header_line(&mut p, &line, raw)?;
                        if self.receipt.is_none()
                            && let Some((name, value)) = p.headers.last()
                            && name == "receipt"
                        {
                            self.receipt = Some(value.clone());
                        }
                        State::Headers(p)
                    }
                }
                State::Body(p, Some(length)) => match src.get(length) {
                    None => {
                        src.reserve((length - src.len()).saturating_add(1).min(BODY_RESERVE));
                        self.state = State::Body(p, Some(length));
                        return Ok(None);
                    }
                    Some(0) => {
                        let body = src.split_to(length).freeze();
                        src.advance(1);
                        return Ok(Some(self.finish(p, body)));
                    }
                    Some(_) => return Err(FrameError::NotTerminated(length)),
                },
                State::Body(p, None) => {
                    let max = self.limits.max_body;
                    let from = self.scanned.min(src.len());
                    let Some(i) = src[from..].iter().position(|&b| b == 0) else {
                        if src.len() > max {
                            return Err(FrameError::BodyTooLarge { max });
                        }
                        self.scanned = src.len();
                        self.state = State::Body(p, None);
                        return Ok(None);
                    };
                    let end = from + i;
                    if end > max {
                        return Err(FrameError::BodyTooLarge { max });
                    }
                    let body = src.split_to(end).freeze();
                    src.advance(1);
                    return Ok(Some(self.finish(p, body)));
                }
            };
            self.state = next;
        }
    }

    /// One header line of `raw` bytes on the wire, checked against the limits.
    fn header_line(&self, p: &mut Partial, line: &[u8], raw: usize) -> Result<(), FrameError> {
        let max = self.limits.max_header_bytes;
        if raw > max.saturating_sub(p.header_bytes) {
            return Err(FrameError::HeadersTooLong { max });
        }
        if p.headers.len() >= self.limits.max_headers {
            return Err(FrameError::TooManyHeaders {
                max: self.limits.max_headers,
            });
        }
        p.header_bytes += raw;
        let (name, mut value) =
            parse_header(line, escaping(self.version, p.command), self.version)?;
        if self.version == Some(Version::V10) {
            let start = value.len() - value.trim_start_matches([' ', '\t']).len();
            value.drain(..start);
        }
        p.headers.push((name, value));
        Ok(())
    }

    fn finish(&mut self, p: Partial, body: Bytes) -> Item {
        self.scanned = 0;
        self.receipt = None;
        let mut frame = Frame {
            command: p.command,
            headers: p.headers,
            body,
        };
        // A CONNECT without accept-version comes from a 1.0 client (STOMP 1.1
        // §Protocol Negotiation): give it the 1.0 leniency too.
        if self.version.is_none()
            && matches!(frame.command, Command::Connect | Command::Stomp)
            && frame.header("accept-version").is_none()
        {
            frame.trim_v10_values();
        }
        Item::Frame(frame)
    }
}

/// Takes the next line (without its LF or CR LF) and its length on the wire.
/// `Some(Err)` when the line, EOL included, is or will be longer than `limit`.
fn take_line(
    src: &mut BytesMut,
    scanned: &mut usize,
    limit: usize,
) -> Option<Result<(BytesMut, usize), ()>> {
    let from = (*scanned).min(src.len());
    let Some(i) = src[from..].iter().position(|&b| b == b'\n') else {
        *scanned = src.len();
        return (src.len() >= limit).then_some(Err(()));
    };
    let raw = from + i + 1;
    if raw > limit {
        return Some(Err(()));
    }
    *scanned = 0;
    let mut line = src.split_to(raw);
    line.truncate(raw - 1);
    if line.last() == Some(&b'\r') {
        line.truncate(raw - 2);
    }
    Some(Ok((line, raw)))
}

fn parse_header(
    line: &[u8],
    escaping: Escaping,
    version: Option<Version>,
) -> Result<(String, String), FrameError> {
    if line.contains(&b'\r') {
        return Err(FrameError::BareCarriageReturn(show(line)));
    }
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(|| FrameError::HeaderWithoutColon(show(line)))?;
    let text = |part: &[u8]| -> Result<String, FrameError> {
        let bytes = unescape(part, escaping, line, version)?;
        String::from_utf8(bytes).map_err(|_| FrameError::InvalidUtf8(show(line)))
    };
    Ok((text(&line[..colon])?, text(&line[colon + 1..])?))
}

/// The first `content-length`, checked against `max_body` before any body byte.
fn content_length(
    headers: &[(String, String)],
    max_body: usize,
) -> Result<Option<usize>, FrameError> {
    let Some((_, value)) = headers.iter().find(|(n, _)| n == CONTENT_LENGTH) else {
        return Ok(None);
    };
    let digits = value.trim_matches([' ', '\t']);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FrameError::ContentLengthNotANumber(show(value.as_bytes())));
    }
    match digits.parse::<usize>() {
        Ok(n) if n <= max_body => Ok(Some(n)),
        _ => Err(FrameError::ContentLengthTooLarge {
            length: show(digits.as_bytes()),
            max: max_body,
        }),
    }
}

impl Decoder for Codec {
    type Item = Item;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Item>, FrameError> {
        let r = self.step(src);
        if r.is_err() {
            self.state = State::Between;
            self.scanned = 0;
        }
        r
    }

    /// At end of stream, a frame cut short is an error; a lone trailing CR is not.
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Item>, FrameError> {
        if let Some(item) = self.decode(src)? {
            return Ok(Some(item));
        }
        let idle = self.is_idle() && src.iter().all(|&b| b == b'\r');
        src.clear();
        self.state = State::Between;
        self.scanned = 0;
        if idle {
            Ok(None)
        } else {
            Err(FrameError::Truncated)
        }
    }
}

impl Encoder<&Frame> for Codec {
    type Error = FrameError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        encode_frame(frame, self.version, dst);
        Ok(())
    }
}

impl Encoder<Frame> for Codec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        encode_frame(&frame, self.version, dst);
        Ok(())
    }
}

impl Encoder<Item> for Codec {
    type Error = FrameError;

    fn encode(&mut self, item: Item, dst: &mut BytesMut) -> Result<(), FrameError> {
        match item {
            Item::Frame(f) => encode_frame(&f, self.version, dst),
            Item::HeartBeat => dst.put_slice(HEART_BEAT),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod props;
