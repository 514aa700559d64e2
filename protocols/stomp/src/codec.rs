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
//! frame we send. The encoder lives in `encode.rs`, [`Version`] in `version.rs` and
//! [`FrameError`] in `error.rs` (frame.rs needs them too, and must not import the
//! codec that imports it); all are re-exported here.
//!
//! Decoding leaves a frame's header lines in the read buffer until the blank line
//! and keeps them as one block: [`Codec::decode_inbound`] returns an [`Inbound`]
//! whose headers are spans of it (the broker's path, no copy per header);
//! [`Decoder::decode`] returns the owned [`Frame`] made from it.

pub use crate::encode::{encode_frame, encoded_size};
pub use crate::error::FrameError;
use crate::error::show;
pub use crate::frame::CONTENT_LENGTH;
use crate::frame::{Command, Escaping, Frame, escaping, unescape};
pub use crate::inbound::Inbound;
use crate::inbound::Span;
pub use crate::version::Version;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::ops::Range;
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
pub enum Item<F = Frame> {
    Frame(F),
    /// A bare EOL (LF or CR LF) between frames.
    HeartBeat,
}

/// A frame whose command and headers have been read. Until the blank line, the
/// header lines stay at the front of the read buffer and `spans` point into it;
/// then they become `block`, so the spans need no change.
#[derive(Debug)]
struct Partial {
    command: Command,
    spans: Vec<(Span, Span)>,
    unescaped: String,
    header_bytes: usize,
    block: Bytes,
}

impl Partial {
    /// The first `receipt` header so far, for an ERROR about this frame.
    fn receipt(&self, block: &[u8]) -> Option<String> {
        let text = |s: Span| {
            let all = if s.unescaped {
                self.unescaped.as_bytes()
            } else {
                block
            };
            all.get(s.start..s.end).unwrap_or_default()
        };
        self.spans
            .iter()
            .find(|(n, _)| text(*n) == b"receipt")
            .map(|(_, v)| String::from_utf8_lossy(text(*v)).into_owned())
    }
}

/// What one header line did.
enum Line {
    /// No whole line yet.
    Wait,
    Header,
    /// The blank line: the body's content-length, if given.
    End(Option<usize>),
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
    /// The `receipt` header of a frame refused halfway, so that its ERROR can
    /// still name it. Only filled on error: the common frame copies nothing.
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

    /// As [`Decoder::decode`], but the frame keeps its header block as received
    /// ([`Inbound`]): what the broker's own connections read.
    pub fn decode_inbound(
        &mut self,
        src: &mut BytesMut,
    ) -> Result<Option<Item<Inbound>>, FrameError> {
        let r = self.step(src);
        if r.is_err() {
            self.state = State::Between;
            self.scanned = 0;
        }
        r
    }

    fn step(&mut self, src: &mut BytesMut) -> Result<Option<Item<Inbound>>, FrameError> {
        loop {
            // The state is taken out and put back; an early `return Ok(None)` puts
            // back what it has, an error leaves `Between` (see `decode_inbound`).
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
                        self.receipt = None;
                        State::Command
                    }
                },
                State::Command => match next_line(src, 0, &mut self.scanned, COMMAND_LINE_MAX) {
                    Some(Ok((line, raw))) => {
                        let command = Command::parse(&src[line.clone()])
                            .ok_or_else(|| FrameError::UnknownCommand(show(&src[line])))?;
                        src.advance(raw);
                        State::Headers(Partial {
                            command,
                            spans: Vec::new(),
                            unescaped: String::new(),
                            header_bytes: 0,
                            block: Bytes::new(),
                        })
                    }
                    None => {
                        self.state = State::Command;
                        return Ok(None);
                    }
                    Some(Err(())) => {
                        let n = src.len().min(COMMAND_LINE_MAX);
                        return Err(FrameError::UnknownCommand(show(&src[..n])));
                    }
                },
                State::Headers(mut p) => match self.header_line(src, &mut p) {
                    Ok(Line::Wait) => {
                        self.state = State::Headers(p);
                        return Ok(None);
                    }
                    Ok(Line::Header) => State::Headers(p),
                    Ok(Line::End(length)) => State::Body(p, length),
                    Err(e) => {
                        self.receipt = p.receipt(&src[..]);
                        return Err(e);
                    }
                },
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
                    Some(_) => {
                        self.receipt = p.receipt(&p.block);
                        return Err(FrameError::NotTerminated(length));
                    }
                },
                State::Body(p, None) => {
                    let max = self.limits.max_body;
                    let from = self.scanned.min(src.len());
                    let Some(i) = src[from..].iter().position(|&b| b == 0) else {
                        if src.len() > max {
                            self.receipt = p.receipt(&p.block);
                            return Err(FrameError::BodyTooLarge { max });
                        }
                        self.scanned = src.len();
                        self.state = State::Body(p, None);
                        return Ok(None);
                    };
                    let end = from + i;
                    if end > max {
                        self.receipt = p.receipt(&p.block);
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

    /// The next header line, checked against the limits, or the blank line that
    /// ends them. Header lines are left in `src` until then (see [`Partial`]).
    fn header_line(&mut self, src: &mut BytesMut, p: &mut Partial) -> Result<Line, FrameError> {
        let max = self.limits.max_header_bytes;
        let room = max.saturating_sub(p.header_bytes);
        // +2: the blank line ending the headers is not a header line.
        let (line, raw) = match next_line(
            src,
            p.header_bytes,
            &mut self.scanned,
            room.saturating_add(2),
        ) {
            Some(Ok(l)) => l,
            None => return Ok(Line::Wait),
            Some(Err(())) => return Err(FrameError::HeadersTooLong { max }),
        };
        if line.is_empty() {
            let length = content_length(p, &src[..], self.limits.max_body)?;
            p.block = src.split_to(p.header_bytes).freeze();
            src.advance(raw);
            return Ok(Line::End(length));
        }
        if raw > room {
            return Err(FrameError::HeadersTooLong { max });
        }
        if p.spans.len() >= self.limits.max_headers {
            return Err(FrameError::TooManyHeaders {
                max: self.limits.max_headers,
            });
        }
        p.header_bytes += raw;
        let esc = escaping(self.version, p.command);
        let (name, mut value) = parse_header(&src[..], line, esc, self.version, &mut p.unescaped)?;
        if self.version == Some(Version::V10) {
            // Unescaped under 1.0, so the value is in the block.
            value.start += src[value.start..value.end]
                .iter()
                .take_while(|&&b| b == b' ' || b == b'\t')
                .count();
        }
        p.spans.push((name, value));
        Ok(Line::Header)
    }

    fn finish(&mut self, p: Partial, body: Bytes) -> Item<Inbound> {
        self.scanned = 0;
        self.receipt = None;
        let mut frame = Inbound {
            command: p.command,
            block: p.block,
            unescaped: p.unescaped,
            spans: p.spans,
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

/// The next line of `src` from `from` on, as the range of its text (without LF or
/// CR LF) and its length on the wire. `Some(Err)` when the line, EOL included, is
/// or will be longer than `limit`. `scanned` is where the search for LF may
/// resume (an offset in `src`).
fn next_line(
    src: &[u8],
    from: usize,
    scanned: &mut usize,
    limit: usize,
) -> Option<Result<(Range<usize>, usize), ()>> {
    let resume = (*scanned).max(from).min(src.len());
    let Some(i) = src[resume..].iter().position(|&b| b == b'\n') else {
        *scanned = src.len();
        return (src.len().saturating_sub(from) >= limit).then_some(Err(()));
    };
    let lf = resume + i;
    let raw = lf + 1 - from;
    if raw > limit {
        return Some(Err(()));
    }
    *scanned = 0;
    let end = if lf > from && src[lf - 1] == b'\r' {
        lf - 1
    } else {
        lf
    };
    Some(Ok((from..end, raw)))
}

/// Checks one header line (`src[line]`) and returns where its name and value are.
/// A part with an escape is unescaped into `unescaped`; every other part stays
/// a span of `src`.
fn parse_header(
    src: &[u8],
    line: Range<usize>,
    escaping: Escaping,
    version: Option<Version>,
    unescaped: &mut String,
) -> Result<(Span, Span), FrameError> {
    let text = &src[line.clone()];
    if text.contains(&b'\r') {
        return Err(FrameError::BareCarriageReturn(show(text)));
    }
    let colon = text
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(|| FrameError::HeaderWithoutColon(show(text)))?;
    let mut part = |range: Range<usize>| -> Result<Span, FrameError> {
        let bytes = &src[range.clone()];
        if escaping == Escaping::None || !bytes.contains(&b'\\') {
            std::str::from_utf8(bytes).map_err(|_| FrameError::InvalidUtf8(show(text)))?;
            return Ok(Span {
                start: range.start,
                end: range.end,
                unescaped: false,
            });
        }
        let decoded = String::from_utf8(unescape(bytes, escaping, text, version)?)
            .map_err(|_| FrameError::InvalidUtf8(show(text)))?;
        let start = unescaped.len();
        unescaped.push_str(&decoded);
        Ok(Span {
            start,
            end: unescaped.len(),
            unescaped: true,
        })
    };
    let name = part(line.start..line.start + colon)?;
    let value = part(line.start + colon + 1..line.end)?;
    Ok((name, value))
}

/// The first `content-length`, checked against `max_body` before any body byte.
/// `src` holds the header lines `p`'s spans point into.
fn content_length(p: &Partial, src: &[u8], max_body: usize) -> Result<Option<usize>, FrameError> {
    let bytes = |s: Span| {
        let all = if s.unescaped {
            p.unescaped.as_bytes()
        } else {
            src
        };
        all.get(s.start..s.end).unwrap_or_default()
    };
    let Some((_, value)) = p
        .spans
        .iter()
        .find(|(n, _)| bytes(*n) == CONTENT_LENGTH.as_bytes())
    else {
        return Ok(None);
    };
    let value = bytes(*value);
    let digits = trim_blank(value);
    if digits.is_empty() || !digits.iter().all(|b| b.is_ascii_digit()) {
        return Err(FrameError::ContentLengthNotANumber(show(value)));
    }
    match std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<usize>().ok())
    {
        Some(n) if n <= max_body => Ok(Some(n)),
        _ => Err(FrameError::ContentLengthTooLarge {
            length: show(digits),
            max: max_body,
        }),
    }
}

/// `b` without leading and trailing spaces and tabs.
fn trim_blank(b: &[u8]) -> &[u8] {
    let blank = |c: &u8| *c == b' ' || *c == b'\t';
    let start = b.iter().position(|c| !blank(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !blank(c)).map_or(start, |i| i + 1);
    &b[start..end.max(start)]
}

impl Decoder for Codec {
    type Item = Item;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Item>, FrameError> {
        Ok(match self.decode_inbound(src)? {
            Some(Item::Frame(f)) => Some(Item::Frame(f.to_frame())),
            Some(Item::HeartBeat) => Some(Item::HeartBeat),
            None => None,
        })
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
