//! Unit tests of the codec, one rule each (see the module docs of `codec`).

use super::*;

const ALL_VERSIONS: [Option<Version>; 4] = [
    None,
    Some(Version::V10),
    Some(Version::V11),
    Some(Version::V12),
];

fn codec(v: Option<Version>) -> Codec {
    codec_with(v, Limits::default())
}

fn codec_with(v: Option<Version>, limits: Limits) -> Codec {
    let mut c = Codec::new(limits);
    if let Some(v) = v {
        c.set_version(v);
    }
    c
}

/// Decodes everything `buf` holds.
pub(super) fn drain(
    c: &mut Codec,
    buf: &mut BytesMut,
    out: &mut Vec<Item>,
) -> Result<(), FrameError> {
    while let Some(item) = c.decode(buf)? {
        out.push(item);
    }
    Ok(())
}

fn items(v: Option<Version>, bytes: &[u8]) -> Result<Vec<Item>, FrameError> {
    let mut out = Vec::new();
    let mut buf = BytesMut::from(bytes);
    drain(&mut codec(v), &mut buf, &mut out)?;
    Ok(out)
}

/// The one frame `bytes` holds, nothing left over.
fn one(v: Option<Version>, bytes: &[u8]) -> Frame {
    let mut c = codec(v);
    let mut buf = BytesMut::from(bytes);
    let Ok(Some(Item::Frame(f))) = c.decode(&mut buf) else {
        panic!("{v:?}: no frame in {bytes:?}")
    };
    assert!(buf.is_empty() && c.is_idle(), "{v:?}: left {buf:?}");
    f
}

fn err(v: Option<Version>, bytes: &[u8]) -> FrameError {
    err_with(v, Limits::default(), bytes)
}

fn err_with(v: Option<Version>, limits: Limits, bytes: &[u8]) -> FrameError {
    let mut c = codec_with(v, limits);
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    match drain(&mut c, &mut buf, &mut out) {
        Err(e) => e,
        Ok(()) => panic!("{v:?}: {bytes:?} accepted: {out:?}"),
    }
}

fn frame_of(item: &Item) -> &Frame {
    match item {
        Item::Frame(f) => f,
        Item::HeartBeat => panic!("heart-beat where a frame was expected"),
    }
}

const STREAM: &[u8] = b"\n\r\nCONNECT\naccept-version:1.2\nhost:/\n\n\0\nSEND\r\ndestination:/queue/a\r\n\r\nhello\0\r\n\0\0SUBSCRIBE\nid:0\ndestination:/topic/x\nack:client\n\n\0";

#[test]
fn splits_a_stream_into_frames_and_heart_beats() {
    let got = items(None, STREAM).unwrap();
    let kinds: Vec<_> = got
        .iter()
        .map(|i| match i {
            Item::HeartBeat => "hb",
            Item::Frame(f) => f.command.as_str(),
        })
        .collect();
    assert_eq!(
        kinds,
        ["hb", "hb", "CONNECT", "hb", "SEND", "hb", "SUBSCRIBE"]
    );
    let send = frame_of(&got[4]);
    assert_eq!(send.headers, [("destination".into(), "/queue/a".into())]);
    assert_eq!(&send.body[..], b"hello");
}

#[test]
fn one_byte_at_a_time_gives_the_same_items() {
    let whole = items(None, STREAM).unwrap();
    let mut c = codec(None);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for &b in STREAM {
        buf.put_u8(b);
        drain(&mut c, &mut buf, &mut got).unwrap();
    }
    assert_eq!(got, whole);
    assert!(buf.is_empty() && c.is_idle());
}

#[tokio::test]
async fn runs_under_framed_read() {
    use futures_util::StreamExt;
    use tokio_util::codec::FramedRead;
    let mut framed = FramedRead::new(STREAM, codec(None));
    let mut got = Vec::new();
    while let Some(item) = framed.next().await {
        got.push(item.unwrap());
    }
    assert_eq!(got, items(None, STREAM).unwrap());
    // A stream that ends inside a frame ends in an error, after the whole frames.
    let mut framed = FramedRead::new(&b"SEND\n\n\0\nSEND\nk:v\n"[..], codec(None));
    assert!(matches!(framed.next().await, Some(Ok(Item::Frame(_)))));
    assert!(matches!(framed.next().await, Some(Ok(Item::HeartBeat))));
    assert!(matches!(
        framed.next().await,
        Some(Err(FrameError::Truncated))
    ));
}

#[test]
fn crlf_line_endings_everywhere() {
    for v in ALL_VERSIONS {
        let f = one(v, b"SEND\r\ndestination:/q\r\nreceipt:r1\r\n\r\nbody\0");
        assert_eq!(f.header("destination"), Some("/q"));
        assert_eq!(f.header("receipt"), Some("r1"));
        assert_eq!(&f.body[..], b"body");
    }
}

#[test]
fn content_length_body_may_hold_nul_and_needs_nul_after() {
    let f = one(None, b"SEND\ncontent-length:5\n\na\0b\0c\0");
    assert_eq!(&f.body[..], b"a\0b\0c");
    // Spaces around the number are tolerated (RabbitMQ and ActiveMQ strip them).
    let f = one(Some(Version::V12), b"SEND\ncontent-length: 3 \n\nabc\0");
    assert_eq!(&f.body[..], b"abc");
    assert!(matches!(
        err(None, b"SEND\ncontent-length:2\n\nabc\0"),
        FrameError::NotTerminated(2)
    ));
    // The first content-length wins, like every repeated header.
    let f = one(None, b"SEND\ncontent-length:1\ncontent-length:9\n\nx\0");
    assert_eq!(&f.body[..], b"x");
    // Waits for the body and the NUL, however the bytes come.
    let mut c = codec(None);
    let mut buf = BytesMut::from(&b"MESSAGE\ncontent-length:4\n\nab"[..]);
    assert!(c.decode(&mut buf).unwrap().is_none());
    buf.put_slice(b"\0d");
    assert!(c.decode(&mut buf).unwrap().is_none());
    buf.put_slice(b"\0");
    let Some(Item::Frame(f)) = c.decode(&mut buf).unwrap() else {
        panic!()
    };
    assert_eq!(&f.body[..], b"ab\0d");
}

#[test]
fn bad_content_length_is_refused() {
    for bad in ["abc", "-1", "", "1 2", "0x10", "+5"] {
        let bytes = format!("SEND\ncontent-length:{bad}\n\n\0");
        let e = err(None, bytes.as_bytes());
        assert!(
            matches!(e, FrameError::ContentLengthNotANumber(_)),
            "{bad}: {e}"
        );
    }
    let e = err(None, b"SEND\ncontent-length:12ab\n\n\0");
    assert_eq!(e.to_string(), "content-length \"12ab\" is not a number");
}

#[test]
fn content_length_checked_before_the_body_arrives() {
    let small = Limits {
        max_body: 10,
        ..Limits::default()
    };
    let e = err_with(None, small, b"SEND\ncontent-length:11\n\n");
    assert_eq!(
        e.to_string(),
        "content-length 11 exceeds the limit of 10 bytes"
    );
    let e = err_with(
        None,
        small,
        b"SEND\ncontent-length:99999999999999999999999\n\n",
    );
    assert!(matches!(e, FrameError::ContentLengthTooLarge { .. }));
    // Limits at their maximum do not overflow.
    let huge = Limits {
        max_header_bytes: usize::MAX,
        max_headers: usize::MAX,
        max_body: usize::MAX,
    };
    let mut c = codec_with(None, huge);
    let max = format!("SEND\ncontent-length:{}\nk:v\n\nabc", usize::MAX);
    assert!(
        c.decode(&mut BytesMut::from(max.as_bytes()))
            .unwrap()
            .is_none()
    );
    let f = one(None, b"SEND\ncontent-length:0\n\n\0");
    assert!(f.body.is_empty());
}

#[test]
fn body_without_length_is_bounded_while_it_arrives() {
    let small = Limits {
        max_body: 10,
        ..Limits::default()
    };
    let mut c = codec_with(None, small);
    let mut buf = BytesMut::from(&b"SEND\n\n0123456789"[..]);
    assert!(c.decode(&mut buf).unwrap().is_none(), "exactly the limit");
    buf.put_u8(b'x');
    assert!(matches!(
        c.decode(&mut buf),
        Err(FrameError::BodyTooLarge { max: 10 })
    ));
    let mut c = codec_with(None, small);
    let mut buf = BytesMut::from(&b"SEND\n\n0123456789\0"[..]);
    assert!(matches!(c.decode(&mut buf), Ok(Some(Item::Frame(_)))));
}

#[test]
fn endless_header_line_is_refused_at_the_limit() {
    let limits = Limits {
        max_header_bytes: 100,
        ..Limits::default()
    };
    let mut c = codec_with(None, limits);
    let mut buf = BytesMut::from(&b"SEND\n"[..]);
    let mut fed = 0;
    let e = loop {
        buf.put_u8(b'a');
        fed += 1;
        match c.decode(&mut buf) {
            Ok(None) => assert!(fed <= 102, "still buffering after {fed} bytes"),
            Ok(Some(i)) => panic!("{i:?}"),
            Err(e) => break e,
        }
    };
    assert!(fed <= 102, "{fed}");
    assert_eq!(e.to_string(), "frame headers exceed the limit of 100 bytes");
    // A megabyte in one read is refused as well, without looking for its end.
    let mut big = b"SEND\nk:".to_vec();
    big.resize(1 << 20, b'v');
    assert!(matches!(
        err_with(None, limits, &big),
        FrameError::HeadersTooLong { max: 100 }
    ));
}

#[test]
fn header_bytes_count_all_lines_together() {
    let limits = Limits {
        max_header_bytes: 20,
        ..Limits::default()
    };
    // Two lines of 10 bytes: at the limit, accepted.
    let mut c = codec_with(None, limits);
    let mut buf = BytesMut::from(&b"SEND\naaaa:bbbb\ncccc:dddd\n\n\0"[..]);
    assert!(matches!(c.decode(&mut buf), Ok(Some(Item::Frame(_)))));
    // A third line is over.
    assert!(matches!(
        err_with(None, limits, b"SEND\naaaa:bbbb\ncccc:dddd\ne:f\n\n\0"),
        FrameError::HeadersTooLong { .. }
    ));
}

#[test]
fn too_many_headers() {
    let limits = Limits {
        max_headers: 3,
        ..Limits::default()
    };
    let mut c = codec_with(None, limits);
    let mut buf = BytesMut::from(&b"SEND\na:1\nb:2\nc:3\n\n\0"[..]);
    assert!(matches!(c.decode(&mut buf), Ok(Some(Item::Frame(_)))));
    let e = err_with(None, limits, b"SEND\na:1\nb:2\nc:3\nd:4\n\n\0");
    assert_eq!(e.to_string(), "frame has more than 3 headers");
}

#[test]
fn unknown_and_endless_commands() {
    let e = err(None, b"send\n\n\0");
    assert_eq!(e.to_string(), "unknown command \"send\"");
    assert!(matches!(
        err(None, b"SEND \n\n\0"),
        FrameError::UnknownCommand(_)
    ));
    // An HTTP request to the STOMP port: refused on its first line.
    let e = err(None, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(matches!(e, FrameError::UnknownCommand(ref s) if s.starts_with("GET / HTTP")));
    // No LF at all: refused once longer than any command, not buffered.
    let mut c = codec(None);
    let mut buf = BytesMut::from(&b"UNSUBSCRIBE\r"[..]);
    assert!(c.decode(&mut buf).unwrap().is_none());
    buf.put_slice(b"X");
    assert!(matches!(
        c.decode(&mut buf),
        Err(FrameError::UnknownCommand(_))
    ));
    assert!(matches!(
        err(
            None,
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\xaa\xbb\xcc\xdd"
        ),
        FrameError::UnknownCommand(_)
    ));
}

#[test]
fn header_line_without_colon() {
    let e = err(Some(Version::V12), b"SEND\ndestination\n\n\0");
    assert_eq!(
        e.to_string(),
        "header line \"destination\" has no ':' between name and value"
    );
}

#[test]
fn escapes_by_version() {
    let bytes = b"SEND\na\\cb:x\\ny\\\\z\n\n\0";
    for v in [None, Some(Version::V10)] {
        let f = one(v, bytes);
        assert_eq!(f.headers, [("a\\cb".into(), "x\\ny\\\\z".into())], "{v:?}");
    }
    for v in [Some(Version::V11), Some(Version::V12)] {
        let f = one(v, bytes);
        assert_eq!(f.headers, [("a:b".into(), "x\ny\\z".into())], "{v:?}");
    }
    // \r: a 1.2 escape only.
    assert_eq!(
        one(Some(Version::V12), b"SEND\nk:a\\rb\n\n\0").header("k"),
        Some("a\rb")
    );
    let e = err(Some(Version::V11), b"SEND\nk:a\\rb\n\n\0");
    assert_eq!(
        e.to_string(),
        "invalid escape sequence \"\\r\" in header line \"k:a\\\\rb\" (STOMP 1.1 allows only \\n, \\c and \\\\)"
    );
    assert_eq!(
        one(Some(Version::V10), b"SEND\nk:a\\rb\n\n\0").header("k"),
        Some("a\\rb")
    );
    // Undefined escapes and a dangling backslash.
    for v in [Some(Version::V11), Some(Version::V12)] {
        for bad in [
            &b"SEND\nk:a\\tb\n\n\0"[..],
            b"SEND\nk:a\\\n\n\0",
            b"SEND\nk\\x:v\n\n\0",
        ] {
            assert!(
                matches!(err(v, bad), FrameError::InvalidEscape { .. }),
                "{v:?} {bad:?}"
            );
        }
    }
}

#[test]
fn handshake_frames_are_never_escaped() {
    for v in ALL_VERSIONS {
        for cmd in ["CONNECT", "STOMP", "CONNECTED"] {
            let bytes = format!("{cmd}\naccept-version:1.2\npasscode:a\\tb\\n\n\n\0");
            let f = one(v, bytes.as_bytes());
            assert_eq!(f.header("passcode"), Some("a\\tb\\n"), "{v:?} {cmd}");
        }
        let f = Frame::new(Command::Connected).with_header("server", "a\\b:c");
        let mut out = BytesMut::new();
        encode_frame(&f, v, &mut out);
        assert_eq!(&out[..], b"CONNECTED\nserver:a\\b:c\n\n\0");
    }
}

#[test]
fn bare_carriage_return_is_an_error() {
    for v in ALL_VERSIONS {
        let e = err(v, b"SEND\nk:a\rb\n\n\0");
        assert!(matches!(e, FrameError::BareCarriageReturn(_)), "{v:?}: {e}");
        assert!(matches!(
            err(v, b"SE\rND\n\n\0"),
            FrameError::UnknownCommand(_)
        ));
        assert!(matches!(
            err(v, b"\r\rSEND\n\n\0"),
            FrameError::UnknownCommand(_)
        ));
    }
}

#[test]
fn headers_must_be_utf8_bodies_need_not() {
    for v in ALL_VERSIONS {
        assert!(matches!(
            err(v, b"SEND\nk:\xff\n\n\0"),
            FrameError::InvalidUtf8(_)
        ));
        assert!(matches!(
            err(v, b"SEND\n\xc3:v\n\n\0"),
            FrameError::InvalidUtf8(_)
        ));
        let f = one(v, "SEND\nclé:☃\n\n\u{ff}\0".as_bytes());
        assert_eq!(f.header("clé"), Some("☃"));
        assert_eq!(&one(v, b"SEND\n\n\xff\xfe\0").body[..], b"\xff\xfe");
    }
}

#[test]
fn colons_in_values_and_repeated_headers() {
    for v in ALL_VERSIONS {
        let f = one(
            v,
            b"SEND\ndestination:/queue/a:b\nx:1\nx:2\n:empty-name\n\n\0",
        );
        assert_eq!(f.header("destination"), Some("/queue/a:b"));
        assert_eq!(f.header("x"), Some("1"));
        assert_eq!(f.headers.len(), 4);
        assert_eq!(f.headers[2], ("x".into(), "2".into()));
        assert_eq!(f.header(""), Some("empty-name"));
    }
}

#[test]
fn v10_values_lose_leading_whitespace_only() {
    let bytes = b"SEND\ndestination: \t/queue/a \nempty:\n\n\0";
    let f = one(Some(Version::V10), bytes);
    assert_eq!(f.header("destination"), Some("/queue/a "));
    assert_eq!(f.header("empty"), Some(""));
    for v in [None, Some(Version::V11), Some(Version::V12)] {
        assert_eq!(one(v, bytes).header("destination"), Some(" \t/queue/a "));
    }
    // A 1.0 client's CONNECT (no accept-version) is trimmed before the version is set;
    // a 1.1+ CONNECT keeps its values exactly (a passcode may start with a space).
    let f = one(None, b"CONNECT\nlogin: guest\npasscode: guest\n\n\0");
    assert_eq!(f.header("login"), Some("guest"));
    let f = one(None, b"CONNECT\naccept-version:1.1,1.2\npasscode: pw\n\n\0");
    assert_eq!(f.header("passcode"), Some(" pw"));
}

#[test]
fn version_set_between_pipelined_frames() {
    let mut c = codec(None);
    let mut buf = BytesMut::from(&b"CONNECT\naccept-version:1.2\n\n\0SEND\nk:a\\cb\n\n\0"[..]);
    assert!(matches!(c.decode(&mut buf), Ok(Some(Item::Frame(_)))));
    c.set_version(Version::V12);
    assert_eq!(c.version(), Some(Version::V12));
    let Ok(Some(Item::Frame(f))) = c.decode(&mut buf) else {
        panic!()
    };
    assert_eq!(f.header("k"), Some("a:b"));
}

#[test]
fn end_of_stream() {
    let mut c = codec(None);
    let mut buf = BytesMut::from(&b"SEND\n\nabc"[..]);
    assert!(c.decode(&mut buf).unwrap().is_none());
    assert!(matches!(c.decode_eof(&mut buf), Err(FrameError::Truncated)));
    let mut c = codec(None);
    let mut buf = BytesMut::from(&b"SEND\n\n\0\r"[..]);
    assert!(matches!(c.decode_eof(&mut buf), Ok(Some(Item::Frame(_)))));
    assert!(c.decode_eof(&mut buf).unwrap().is_none());
    assert!(c.decode_eof(&mut BytesMut::new()).unwrap().is_none());
}

#[test]
fn a_different_buffer_never_panics() {
    // The codec remembers how far it searched; a shorter buffer must not break it.
    let mut c = codec(None);
    let mut buf = BytesMut::from(&b"SEND\nlong-header-line"[..]);
    assert!(c.decode(&mut buf).unwrap().is_none());
    assert!(c.decode(&mut BytesMut::new()).unwrap().is_none());
    let mut other = BytesMut::from(&b"x:y\n\nbody"[..]);
    assert!(c.decode(&mut other).unwrap().is_none());
    // (What it decodes from a buffer it has not seen grow is unspecified.)
    let _ = c.decode(&mut BytesMut::from(&b"\0"[..]));
}

#[test]
fn versions_and_errors_read_well() {
    assert_eq!(Version::parse("1.1"), Some(Version::V11));
    assert_eq!(Version::parse("1.3"), None);
    assert!(Version::V10 < Version::V12);
    assert_eq!(Version::V12.to_string(), "1.2");
    let e = err(None, b"FOO\"\n");
    assert_eq!(e.to_string(), "unknown command \"FOO\\\"\"");
    let long = format!("SEND\n{}\n\n\0", "x".repeat(100));
    let FrameError::HeaderWithoutColon(s) = err(None, long.as_bytes()) else {
        panic!()
    };
    assert_eq!(s.chars().count(), 41);
    assert!(FrameError::NotTerminated(5).to_string().contains("NUL"));
}
