//! Property tests: encode → decode round-trips arbitrary frames under every version,
//! splitting a valid stream anywhere yields the same items, and whatever decodes
//! from arbitrary bytes re-encodes to the same frame.

use super::tests::drain;
use super::*;
use proptest::prelude::*;

const VERSIONS: [Option<Version>; 4] = [
    None,
    Some(Version::V10),
    Some(Version::V11),
    Some(Version::V12),
];

/// What survives each escaping: 1.2 carries everything, 1.1 everything but CR, and
/// unescaped headers (1.0, handshake frames) no EOL bytes, nor a colon in a name.
const ESCAPED_12: &[char] = &[
    'a', 'Z', '0', ' ', '\t', ':', '\\', '\n', '\r', 'é', '☃', '/', '-', '😀',
];
const ESCAPED_11: &[char] = &[
    'a', 'Z', '0', ' ', '\t', ':', '\\', '\n', 'é', '☃', '/', '-', '😀',
];
const RAW_VALUE: &[char] = &[
    'a', 'Z', '0', ' ', '\t', ':', '\\', 'é', '☃', '/', '-', '😀',
];
const RAW_NAME: &[char] = &['a', 'Z', '0', ' ', '\t', '\\', 'é', '☃', '/', '-', '😀'];

fn text(chars: &'static [char], max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(chars), 0..max).prop_map(String::from_iter)
}

fn codec_for(version: Option<Version>) -> Codec {
    let mut c = Codec::new(Limits::default());
    if let Some(v) = version {
        c.set_version(v);
    }
    c
}

/// Any frame the encoder can carry faithfully under `version`.
fn frame(version: Option<Version>) -> BoxedStrategy<Frame> {
    prop::sample::select(Command::ALL.to_vec())
        .prop_flat_map(move |command| {
            let (names, values) = match escaping(version, command) {
                Escaping::None => (RAW_NAME, RAW_VALUE),
                Escaping::V11 => (ESCAPED_11, ESCAPED_11),
                Escaping::V12 => (ESCAPED_12, ESCAPED_12),
            };
            (
                prop::collection::vec((text(names, 8), text(values, 12)), 0..6),
                prop::collection::vec(any::<u8>(), 0..40),
            )
                .prop_map(move |(headers, body)| Frame {
                    command,
                    headers,
                    body: body.into(),
                })
        })
        .boxed()
}

/// `f` as the decoder returns it: 1.0 leniency applied, content-length added.
fn expected(f: &Frame, version: Option<Version>) -> Frame {
    let mut e = f.clone();
    let v10_connect = version.is_none()
        && matches!(f.command, Command::Connect | Command::Stomp)
        && f.header("accept-version").is_none();
    if version == Some(Version::V10) || v10_connect {
        e.trim_v10_values();
    }
    if !f.body.is_empty() {
        e.headers
            .push((CONTENT_LENGTH.into(), f.body.len().to_string()));
    }
    e
}

#[derive(Clone, Debug)]
enum Piece {
    Frame(Frame),
    Lf,
    CrLf,
    Nul,
}

fn stream(version: Option<Version>) -> impl Strategy<Value = Vec<Piece>> {
    let piece = prop_oneof![
        4 => frame(version).prop_map(Piece::Frame),
        1 => Just(Piece::Lf),
        1 => Just(Piece::CrLf),
        1 => Just(Piece::Nul),
    ];
    prop::collection::vec(piece, 0..5)
}

fn encode_stream(pieces: &[Piece], version: Option<Version>) -> (Vec<u8>, Vec<Item>) {
    let mut bytes = BytesMut::new();
    let mut items = Vec::new();
    for p in pieces {
        match p {
            Piece::Frame(f) => {
                encode_frame(f, version, &mut bytes);
                items.push(Item::Frame(expected(f, version)));
            }
            Piece::Lf => {
                bytes.put_slice(b"\n");
                items.push(Item::HeartBeat);
            }
            Piece::CrLf => {
                bytes.put_slice(b"\r\n");
                items.push(Item::HeartBeat);
            }
            Piece::Nul => bytes.put_u8(0),
        }
    }
    (bytes.to_vec(), items)
}

fn decode_chunks(version: Option<Version>, chunks: &[&[u8]]) -> Vec<Item> {
    let mut c = codec_for(version);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.put_slice(chunk);
        drain(&mut c, &mut buf, &mut out).expect("valid stream");
    }
    assert!(buf.is_empty() && c.is_idle(), "left over: {buf:?}");
    out
}

/// Headers other than content-length, which the encoder rewrites.
fn without_length(f: &Frame) -> (Command, Vec<(String, String)>, Bytes) {
    let headers = f
        .headers
        .iter()
        .filter(|(n, _)| n != CONTENT_LENGTH)
        .cloned()
        .collect();
    (f.command, headers, f.body.clone())
}

/// Pieces of STOMP syntax, so that random input often gets past the command line.
const TOKENS: &[&[u8]] = &[
    b"SEND\n",
    b"MESSAGE\r\n",
    b"CONNECT\n",
    b"ERROR\n",
    b"\n",
    b"\r\n",
    b"\r",
    b":",
    b"\\",
    b"\\n",
    b"\\c",
    b"\\r",
    b"\\t",
    b"\0",
    b"content-length:",
    b"2",
    b" ",
    b"accept-version:1.2\n",
    b"dest",
    b"\xc3\xa9",
    b"\xff",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encode_decode_round_trips_under_every_version(
        frames in (frame(VERSIONS[0]), frame(VERSIONS[1]), frame(VERSIONS[2]), frame(VERSIONS[3]))
    ) {
        let frames = [frames.0, frames.1, frames.2, frames.3];
        for (version, f) in VERSIONS.into_iter().zip(frames) {
            let mut out = BytesMut::new();
            encode_frame(&f, version, &mut out);
            prop_assert_eq!(out.len(), encoded_size(&f, version));
            let got = codec_for(version).decode(&mut out);
            prop_assert_eq!(got.ok(), Some(Some(Item::Frame(expected(&f, version)))), "{:?}", version);
            prop_assert!(out.is_empty());
        }
    }

    #[test]
    fn decoded_frames_re_encode_to_themselves(
        parts in prop::collection::vec(prop::sample::select(TOKENS), 0..40)
    ) {
        let bytes = parts.concat();
        for version in VERSIONS {
            let mut c = codec_for(version);
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(item)) = c.decode(&mut buf) {
                let Item::Frame(f) = item else { continue };
                let mut out = BytesMut::new();
                encode_frame(&f, version, &mut out);
                let again = codec_for(version).decode(&mut out);
                let Ok(Some(Item::Frame(g))) = again else {
                    return Err(TestCaseError::fail(format!("{version:?}: {f:?} re-decodes as {again:?}")));
                };
                prop_assert_eq!(without_length(&g), without_length(&f));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_split_of_a_valid_stream_gives_the_same_items(
        (version, pieces) in prop::sample::select(VERSIONS.to_vec())
            .prop_flat_map(|v| (Just(v), stream(v)))
    ) {
        let (bytes, want) = encode_stream(&pieces, version);
        prop_assert_eq!(&decode_chunks(version, &[&bytes]), &want);
        for cut in 0..=bytes.len() {
            let (a, b) = bytes.split_at(cut);
            prop_assert_eq!(&decode_chunks(version, &[a, b]), &want, "cut at {}", cut);
        }
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        prop_assert_eq!(&decode_chunks(version, &bytewise), &want);
    }
}
