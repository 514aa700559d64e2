//! The wire encoder (the rules are in `codec`'s module docs, which re-exports it).
//!
//! [`Writer`] writes a frame header by header into a [`Sink`], so a frame need not
//! exist as a [`Frame`] to be sent: the session writes MESSAGE frames straight
//! from the core message into the connection's buffer. The same writer run over
//! a counting sink gives the exact size first, so the buffer grows once.

use crate::frame::{CONTENT_LENGTH, Command, Escaping, Frame, escaping};
use crate::version::Version;
use bytes::{BufMut, BytesMut};

/// Where a [`Writer`] writes: appended to a buffer, or only counted (`usize`).
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);
    fn put_escaped(&mut self, s: &str, escaping: Escaping, name: bool);
}

impl Sink for BytesMut {
    fn put(&mut self, bytes: &[u8]) {
        self.put_slice(bytes);
    }

    fn put_escaped(&mut self, s: &str, escaping: Escaping, name: bool) {
        let bytes = s.as_bytes();
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if let Some(esc) = escape_for(b, escaping, name) {
                self.put_slice(&bytes[start..i]);
                self.put_slice(esc);
                start = i + 1;
            }
        }
        self.put_slice(&bytes[start..]);
    }
}

impl Sink for usize {
    fn put(&mut self, bytes: &[u8]) {
        *self += bytes.len();
    }

    fn put_escaped(&mut self, s: &str, escaping: Escaping, name: bool) {
        *self += s.len()
            + s.bytes()
                .filter(|&b| escape_for(b, escaping, name).is_some())
                .count();
    }
}

/// The escape written for byte `b`, if any (the rule is in `codec`'s module docs).
fn escape_for(b: u8, escaping: Escaping, name: bool) -> Option<&'static [u8]> {
    match b {
        b'\n' => Some(b"\\n"),
        b'\r' => Some(b"\\r"),
        b':' if name || escaping != Escaping::None => Some(b"\\c"),
        b'\\' if escaping != Escaping::None => Some(b"\\\\"),
        _ => None,
    }
}

/// `n` in decimal, on the stack.
pub(crate) struct Decimal {
    digits: [u8; 20],
    start: usize,
}

impl Decimal {
    pub fn new(mut n: u64) -> Decimal {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        Decimal { digits, start }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits were written, so this never falls back.
        std::str::from_utf8(&self.digits[self.start..]).unwrap_or_default()
    }
}

/// One frame on its way out: the command line when made, then [`Writer::header`]
/// for each header in order, then [`Writer::finish`] with the body.
pub(crate) struct Writer<'a, S: Sink> {
    sink: &'a mut S,
    escaping: Escaping,
    body_len: usize,
    length_written: bool,
}

impl<'a, S: Sink> Writer<'a, S> {
    pub fn new(
        sink: &'a mut S,
        command: Command,
        version: Option<Version>,
        body_len: usize,
    ) -> Self {
        sink.put(command.as_str().as_bytes());
        sink.put(b"\n");
        Writer {
            sink,
            escaping: escaping(version, command),
            body_len,
            length_written: false,
        }
    }

    /// A `content-length` header is written with the body's real length, at the
    /// first one's place; later ones are dropped.
    pub fn header(&mut self, name: &str, value: &str) {
        self.header_parts(name, &[value]);
    }

    /// A header whose value is `parts` one after the other.
    pub fn header_parts(&mut self, name: &str, parts: &[&str]) {
        if name == CONTENT_LENGTH {
            self.put_length();
            return;
        }
        self.sink.put_escaped(name, self.escaping, true);
        self.sink.put(b":");
        for part in parts {
            self.sink.put_escaped(part, self.escaping, false);
        }
        self.sink.put(b"\n");
    }

    fn put_length(&mut self) {
        if !std::mem::replace(&mut self.length_written, true) {
            self.sink.put(CONTENT_LENGTH.as_bytes());
            self.sink.put(b":");
            self.sink
                .put(Decimal::new(self.body_len as u64).as_str().as_bytes());
            self.sink.put(b"\n");
        }
    }

    /// `body` must be the `body_len` bytes the writer was made for.
    pub fn finish(mut self, body: &[u8]) {
        if !body.is_empty() {
            self.put_length();
        }
        self.sink.put(b"\n");
        self.sink.put(body);
        self.sink.put(b"\0");
    }
}

fn write_frame<S: Sink>(frame: &Frame, version: Option<Version>, sink: &mut S) {
    let mut w = Writer::new(sink, frame.command, version, frame.body.len());
    for (name, value) in &frame.headers {
        w.header(name, value);
    }
    w.finish(&frame.body);
}

/// Exactly how many bytes [`encode_frame`] writes for `frame` under `version`.
pub fn encoded_size(frame: &Frame, version: Option<Version>) -> usize {
    let mut size = 0;
    write_frame(frame, version, &mut size);
    size
}

/// Appends `frame` as the peer of `version` expects it. The content-length header
/// goes where the frame's first one was, or last.
pub fn encode_frame(frame: &Frame, version: Option<Version>, dst: &mut BytesMut) {
    dst.reserve(encoded_size(frame, version));
    write_frame(frame, version, dst);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Codec, Decoder, Encoder, Item, Limits};
    use bytes::Bytes;

    fn codec(v: Option<Version>) -> Codec {
        let mut c = Codec::new(Limits::default());
        if let Some(v) = v {
            c.set_version(v);
        }
        c
    }

    /// The one frame `bytes` holds, nothing left over.
    fn one(v: Option<Version>, bytes: &[u8]) -> Frame {
        let mut buf = BytesMut::from(bytes);
        let Ok(Some(Item::Frame(f))) = codec(v).decode(&mut buf) else {
            panic!("{v:?}: no frame in {bytes:?}")
        };
        assert!(buf.is_empty(), "{v:?}: left {buf:?}");
        f
    }

    #[test]
    fn decimals() {
        for n in [0, 7, 10, 99, 12345, u64::MAX] {
            assert_eq!(Decimal::new(n).as_str(), n.to_string());
        }
    }

    #[test]
    fn encoding_adds_or_fixes_content_length() {
        let f = Frame::new(Command::Message)
            .with_header("destination", "/queue/a")
            .with_body(Bytes::from_static(b"a\0b"));
        let mut out = BytesMut::new();
        encode_frame(&f, Some(Version::V12), &mut out);
        assert_eq!(
            &out[..],
            b"MESSAGE\ndestination:/queue/a\ncontent-length:3\n\na\0b\0"
        );
        assert_eq!(encoded_size(&f, Some(Version::V12)), out.len());
        let back = one(Some(Version::V12), &out);
        assert_eq!(&back.body[..], b"a\0b");
        // A wrong content-length is replaced where it stood; duplicates are dropped.
        let f = Frame::new(Command::Error)
            .with_header("content-length", "99")
            .with_header("message", "boom")
            .with_header("content-length", "1")
            .with_body(Bytes::from_static(b"details"));
        let mut out = BytesMut::new();
        encode_frame(&f, None, &mut out);
        assert_eq!(
            &out[..],
            b"ERROR\ncontent-length:7\nmessage:boom\n\ndetails\0"
        );
        assert_eq!(encoded_size(&f, None), out.len());
        // No body, no content-length.
        let f = Frame::new(Command::Receipt).with_header("receipt-id", "r-1");
        let mut out = BytesMut::new();
        Encoder::<&Frame>::encode(&mut codec(Some(Version::V11)), &f, &mut out).unwrap();
        assert_eq!(&out[..], b"RECEIPT\nreceipt-id:r-1\n\n\0");
        let mut out = BytesMut::new();
        Encoder::<Item>::encode(&mut codec(None), Item::HeartBeat, &mut out).unwrap();
        assert_eq!(&out[..], b"\n");
    }

    #[test]
    fn encoding_escapes_by_version() {
        let f = Frame::new(Command::Message).with_header("n:a\\me", "a:b\nc\\d\re");
        let cases: [(Option<Version>, &[u8]); 4] = [
            (None, b"MESSAGE\nn\\ca\\me:a:b\\nc\\d\\re\n\n\0"),
            (
                Some(Version::V10),
                b"MESSAGE\nn\\ca\\me:a:b\\nc\\d\\re\n\n\0",
            ),
            (
                Some(Version::V11),
                b"MESSAGE\nn\\ca\\\\me:a\\cb\\nc\\\\d\\re\n\n\0",
            ),
            (
                Some(Version::V12),
                b"MESSAGE\nn\\ca\\\\me:a\\cb\\nc\\\\d\\re\n\n\0",
            ),
        ];
        for (v, want) in cases {
            let mut out = BytesMut::new();
            Encoder::<Frame>::encode(&mut codec(v), f.clone(), &mut out).unwrap();
            assert_eq!(&out[..], want, "{v:?}");
            assert_eq!(encoded_size(&f, v), out.len());
        }
        assert_eq!(one(Some(Version::V12), cases[3].1).headers, f.headers);
    }
}
