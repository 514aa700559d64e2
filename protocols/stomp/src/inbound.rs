//! A frame as the broker receives it: the header block stays the bytes read from
//! the socket, and each header is a pair of spans into it. Only a header with an
//! escape gets its decoded text copied (into one side string per frame), so the
//! common frame costs one `Vec` of spans instead of two `String`s per header.
//!
//! Every span was checked to be UTF-8 (after unescaping) when the codec decoded
//! the frame, and the spans follow the same rules [`Frame`] states: wire order,
//! repeats kept, [`Inbound::header`] returns the first. [`Inbound::to_frame`] gives
//! the owned model for callers that want to change the headers.

use crate::frame::{Command, Frame, boolean};
use bytes::Bytes;

/// Where one header name or value is: in the header block as received, or in
/// the side string of unescaped text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: usize,
    pub end: usize,
    pub unescaped: bool,
}

#[derive(Clone)]
pub struct Inbound {
    pub command: Command,
    pub(crate) block: Bytes,
    pub(crate) unescaped: String,
    pub(crate) spans: Vec<(Span, Span)>,
    pub body: Bytes,
}

impl Inbound {
    fn raw(&self, s: Span) -> &[u8] {
        let all = if s.unescaped {
            self.unescaped.as_bytes()
        } else {
            &self.block[..]
        };
        all.get(s.start..s.end).unwrap_or_default()
    }

    fn text(&self, s: Span) -> &str {
        // The codec validated every span, so this never falls back.
        std::str::from_utf8(self.raw(s)).unwrap_or_default()
    }

    /// The value of the first header called `name` (names are case-sensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.spans
            .iter()
            .find(|(n, _)| self.raw(*n) == name.as_bytes())
            .map(|(_, v)| self.text(*v))
    }

    /// As [`Frame::flag`].
    pub fn flag(&self, name: &str) -> Option<bool> {
        boolean(self.header(name)?)
    }

    /// Every (name, value) in wire order, repeats included.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.spans
            .iter()
            .map(|(n, v)| (self.text(*n), self.text(*v)))
    }

    pub fn header_count(&self) -> usize {
        self.spans.len()
    }

    /// Whether an earlier header than the `i`th has the same name (STOMP 1.2: the
    /// first of repeated headers wins).
    pub fn is_repeat(&self, i: usize) -> bool {
        let Some((name, _)) = self.spans.get(i) else {
            return false;
        };
        let name = self.raw(*name);
        self.spans[..i].iter().any(|(n, _)| self.raw(*n) == name)
    }

    /// As [`Frame::trim_v10_values`]: moves each value's start past leading spaces
    /// and tabs, copying nothing.
    pub fn trim_v10_values(&mut self) {
        for i in 0..self.spans.len() {
            let v = self.spans[i].1;
            let skip = self
                .raw(v)
                .iter()
                .take_while(|&&b| b == b' ' || b == b'\t')
                .count();
            self.spans[i].1.start += skip;
        }
    }

    /// The owned frame with the same command, headers and body.
    pub fn to_frame(&self) -> Frame {
        Frame {
            command: self.command,
            headers: self
                .headers()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: self.body.clone(),
        }
    }
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("command", &self.command)
            .field("headers", &self.headers().collect::<Vec<_>>())
            .field("body", &self.body)
            .finish()
    }
}

#[cfg(test)]
impl Inbound {
    /// `f` as the codec decodes it from a STOMP 1.2 peer.
    pub(crate) fn of(f: &Frame) -> Inbound {
        use crate::codec::{Codec, Item, Limits};
        use crate::version::Version;
        let mut c = Codec::new(Limits::default());
        c.set_version(Version::V12);
        let mut buf = bytes::BytesMut::new();
        crate::encode::encode_frame(f, Some(Version::V12), &mut buf);
        match c.decode_inbound(&mut buf) {
            Ok(Some(Item::Frame(i))) => i,
            other => panic!("{f:?} decodes as {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::codec::{Codec, Item, Limits, Version};
    use crate::frame::Command;
    use bytes::BytesMut;

    fn inbound(v: Option<Version>, bytes: &[u8]) -> super::Inbound {
        let mut c = Codec::new(Limits::default());
        if let Some(v) = v {
            c.set_version(v);
        }
        let mut buf = BytesMut::from(bytes);
        let Ok(Some(Item::Frame(f))) = c.decode_inbound(&mut buf) else {
            panic!("{v:?}: no frame in {bytes:?}")
        };
        assert!(buf.is_empty(), "{v:?}: left {buf:?}");
        f
    }

    #[test]
    fn only_escaped_headers_are_copied() {
        let f = inbound(
            Some(Version::V12),
            b"SEND\r\ndestination:/queue/a\r\nk\\cey:a\\nb\r\nplain:x:y\r\ndestination:/queue/b\r\n\r\nhi\0",
        );
        assert_eq!(f.command, Command::Send);
        assert_eq!(f.header("destination"), Some("/queue/a"));
        assert_eq!(f.header("k:ey"), Some("a\nb"));
        assert_eq!(f.header("plain"), Some("x:y"));
        assert_eq!(f.header("k\\cey"), None);
        assert_eq!(f.unescaped, "k:eya\nb");
        assert!(f.is_repeat(3) && !f.is_repeat(0) && !f.is_repeat(9));
        assert_eq!(f.header_count(), 4);
        assert_eq!(&f.body[..], b"hi");
        // Without escaping (1.0), a backslash is text and nothing is copied.
        let f = inbound(Some(Version::V10), b"SEND\nk\\c:  a\\nb \n\n\0");
        assert_eq!(f.header("k\\c"), Some("a\\nb "));
        assert!(f.unescaped.is_empty());
    }

    #[test]
    fn v10_connect_is_trimmed_without_copies() {
        let mut f = inbound(None, b"CONNECT\nlogin: \tguest\npasscode:\n\n\0");
        assert_eq!(f.header("login"), Some("guest"));
        assert_eq!(f.header("passcode"), Some(""));
        f.trim_v10_values();
        assert_eq!(f.header("login"), Some("guest"));
        let f = inbound(None, b"CONNECT\naccept-version:1.2\nlogin: guest\n\n\0");
        assert_eq!(f.header("login"), Some(" guest"));
        assert_eq!(
            f.to_frame().headers,
            [
                ("accept-version".to_string(), "1.2".to_string()),
                ("login".into(), " guest".into())
            ]
        );
    }
}
