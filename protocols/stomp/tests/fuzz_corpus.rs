//! Replays the fuzz corpus (`fuzz/corpus/stomp_frame`, target `stomp_frame`) the way
//! the fuzz target runs it: before the version is known and after `set_version` for
//! 1.0, 1.1 and 1.2, with the target's small limits, re-encoding every frame and
//! comparing a split feed with the whole. Nothing may panic.
//!
//! The hand-written seeds (written by `write_seeds` below: `cargo test -p
//! switchboard-stomp --test fuzz_corpus -- --ignored`) say more by their names:
//! `valid-<v>_*` decodes whole, without error, under `v` (`none`, `10`, `11`, `12`);
//! `bad-<v>_*` is refused under `v`, `bad-all_*` under every version.

use bytes::{BufMut, BytesMut};
use std::path::PathBuf;
use switchboard_stomp::codec::{
    CONTENT_LENGTH, Codec, Decoder, FrameError, Item, Limits, Version, encode_frame, encoded_size,
};
use switchboard_stomp::frame::Frame;

/// The fuzz target's limits.
const LIMITS: Limits = Limits {
    max_header_bytes: 512,
    max_headers: 16,
    max_body: 1024,
};

const VERSIONS: [(&str, Option<Version>); 4] = [
    ("none", None),
    ("10", Some(Version::V10)),
    ("11", Some(Version::V11)),
    ("12", Some(Version::V12)),
];

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/stomp_frame")
}

fn codec(version: Option<Version>, limits: Limits) -> Codec {
    let mut c = Codec::new(limits);
    if let Some(v) = version {
        c.set_version(v);
    }
    c
}

struct Outcome {
    items: Vec<Item>,
    error: Option<FrameError>,
    left: usize,
}

fn decode(version: Option<Version>, chunks: &[&[u8]]) -> Outcome {
    let mut c = codec(version, LIMITS);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for chunk in chunks {
        buf.put_slice(chunk);
        loop {
            let before = buf.len();
            match c.decode(&mut buf) {
                Ok(Some(item)) => {
                    assert!(buf.len() < before, "an item out of no input");
                    items.push(item);
                }
                Ok(None) => break,
                Err(e) => {
                    return Outcome {
                        items,
                        error: Some(e),
                        left: buf.len(),
                    };
                }
            }
        }
    }
    Outcome {
        items,
        error: None,
        left: buf.len(),
    }
}

fn without_length(f: &Frame) -> Frame {
    let mut f = f.clone();
    f.headers.retain(|(n, _)| n != CONTENT_LENGTH);
    f
}

fn check_reencode(name: &str, version: Option<Version>, f: &Frame) {
    let mut out = BytesMut::new();
    encode_frame(f, version, &mut out);
    assert_eq!(out.len(), encoded_size(f, version), "{name}");
    match codec(version, Limits::default()).decode(&mut out) {
        Ok(Some(Item::Frame(g))) => {
            assert_eq!(without_length(&g), without_length(f), "{name} {version:?}");
            assert!(out.is_empty(), "{name} {version:?}: left {out:?}");
        }
        other => panic!("{name} {version:?}: {f:?} re-decodes as {other:?}"),
    }
}

#[test]
fn corpus_replays() {
    let mut seen = 0;
    let mut named = 0;
    for entry in std::fs::read_dir(corpus()).expect("corpus directory") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let data = std::fs::read(&path).expect("read corpus file");
        let (kind, rest) = name.split_once('-').unwrap_or(("", ""));
        let label = rest.split_once('_').map(|(v, _)| v).unwrap_or("");
        for (v_label, version) in VERSIONS {
            let whole = decode(version, &[&data]);
            for item in &whole.items {
                if let Item::Frame(f) = item {
                    check_reencode(&name, version, f);
                }
            }
            if let Some(&first) = data.first() {
                let (a, b) = data.split_at(usize::from(first) % data.len());
                let split = decode(version, &[a, b]);
                assert_eq!(split.items, whole.items, "{name} {version:?}");
                assert_eq!(split.error.is_some(), whole.error.is_some(), "{name}");
            }
            let applies = label == v_label || label == "all";
            match kind {
                "valid" if applies => {
                    assert!(whole.error.is_none(), "{name}: {:?}", whole.error);
                    assert_eq!(whole.left, 0, "{name}: {} bytes left", whole.left);
                    assert!(
                        whole.items.iter().any(|i| matches!(i, Item::Frame(_))),
                        "{name}: no frame"
                    );
                }
                "bad" if applies => {
                    assert!(whole.error.is_some(), "{name} {version:?}: accepted");
                }
                _ => {}
            }
        }
        named += usize::from(kind == "valid" || kind == "bad");
        seen += 1;
    }
    assert!(named >= 60, "only {named} hand-written seeds");
    assert!(
        seen <= 300,
        "corpus has {seen} files; minimise it (cargo fuzz cmin)"
    );
}

/// One valid frame of every command, as a client or server of `version` writes it.
fn frames(version: &str) -> Vec<(&'static str, String)> {
    let (eol, dest, extra) = match version {
        "10" => ("\n", "destination: /queue/a", "x-note:a\\b"),
        "11" => (
            "\n",
            "destination:/queue/a",
            "x-json:{\"k\"\\c\"a\\nb\\\\c\"}",
        ),
        _ => (
            "\r\n",
            "destination:/queue/a",
            "x-json:{\"k\"\\c\"a\\r\\nb\\\\c\"}",
        ),
    };
    let accept = match version {
        "10" => "",
        "11" => "accept-version:1.0,1.1",
        _ => "accept-version:1.0,1.1,1.2",
    };
    let ack = match version {
        "10" => "message-id:m-1".to_string(),
        "11" => format!("subscription:0{eol}message-id:m-1"),
        _ => "id:m-1".to_string(),
    };
    // Lines joined by the version's EOL; empty parts (no accept-version) left out.
    let f = |parts: &[&str], body: &str| {
        let mut s = String::new();
        for p in parts.iter().filter(|p| !p.is_empty()) {
            s.push_str(p);
            s.push_str(eol);
        }
        s.push_str(eol);
        s.push_str(body);
        s.push('\0');
        s
    };
    let login = [
        "host:/",
        "login:guest",
        "passcode:guest",
        "heart-beat:10000,10000",
    ];
    let connected = ["version:1.2", "session:s-1", "server:Switchboard/0.1"];
    let tx = "transaction:tx-1";
    let error = [
        "ERROR",
        "message:malformed frame received",
        "content-type:text/plain",
    ];
    // Heart-beats around and between frames, a NUL between them, repeated headers.
    let (one, two) = (f(&["SEND", dest], "1"), f(&["SEND", "x:1", "x:2"], "2"));
    let stream = format!("{eol}{one}{eol}{eol}{two}\0{eol}");
    vec![
        (
            "connect",
            f(&[&["CONNECT", accept][..], &login].concat(), ""),
        ),
        ("stomp", f(&["STOMP", accept, "host:/"], "")),
        (
            "connected",
            f(&[&["CONNECTED"][..], &connected].concat(), ""),
        ),
        (
            "send",
            f(
                &[
                    "SEND",
                    dest,
                    "content-type:text/plain",
                    "receipt:r-1",
                    extra,
                ],
                "hi",
            ),
        ),
        (
            "send_length",
            f(&["SEND", dest, "content-length:5"], "a\0b\0c"),
        ),
        (
            "subscribe",
            f(
                &["SUBSCRIBE", "id:0", "destination:/topic/a.b", "ack:client"],
                "",
            ),
        ),
        ("unsubscribe", f(&["UNSUBSCRIBE", "id:0"], "")),
        ("ack", f(&["ACK", &ack, tx], "")),
        ("nack", f(&["NACK", &ack], "")),
        ("begin", f(&["BEGIN", tx], "")),
        ("commit", f(&["COMMIT", tx], "")),
        ("abort", f(&["ABORT", tx], "")),
        ("disconnect", f(&["DISCONNECT", "receipt:77"], "")),
        (
            "message",
            f(
                &["MESSAGE", "subscription:0", "message-id:007", dest, extra],
                "hi",
            ),
        ),
        ("receipt", f(&["RECEIPT", "receipt-id:77"], "")),
        ("error", f(&error, "MESSAGE\n-----\nbad")),
        ("stream", stream),
    ]
}

const BAD: &[(&str, &[u8])] = &[
    ("bad-all_unknown_command", b"send\n\n\0"),
    ("bad-all_http", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    ("bad-all_no_colon", b"SEND\ndestination\n\n\0"),
    (
        "bad-all_length_nan",
        b"SEND\ncontent-length:five\n\nhello\0",
    ),
    ("bad-all_length_too_big", b"SEND\ncontent-length:4096\n\n"),
    ("bad-all_not_terminated", b"SEND\ncontent-length:2\n\nabc\0"),
    ("bad-all_bare_cr", b"SEND\nk:a\rb\n\n\0"),
    ("bad-all_utf8", b"SEND\nk:\xc3\x28\n\n\0"),
    ("bad-11_escape_r", b"SEND\nk:a\\rb\n\n\0"),
    ("bad-11_escape_t", b"MESSAGE\nk:a\\tb\n\n\0"),
    ("bad-12_escape_t", b"SEND\nk:a\\tb\n\n\0"),
    ("bad-12_dangling_backslash", b"SEND\nk:a\\\n\n\0"),
];

/// Writes the hand-made seeds into the corpus directory.
#[test]
#[ignore = "writes fuzz/corpus/stomp_frame; run by hand"]
fn write_seeds() {
    let dir = corpus();
    std::fs::create_dir_all(&dir).expect("corpus directory");
    for (label, _) in VERSIONS {
        if label == "none" {
            // Before the version is known only the handshake is expected.
            for v in ["10", "11", "12"] {
                for (name, bytes) in frames(v).into_iter().take(2) {
                    let path = dir.join(format!("valid-none_{name}{v}"));
                    std::fs::write(path, bytes).expect("write seed");
                }
            }
            continue;
        }
        for (name, bytes) in frames(label) {
            std::fs::write(dir.join(format!("valid-{label}_{name}")), bytes).expect("write seed");
        }
    }
    for (name, bytes) in BAD {
        std::fs::write(dir.join(name), bytes).expect("write seed");
    }
    let many = format!("SEND\n{}\n\0", "a:1\n".repeat(17));
    std::fs::write(dir.join("bad-all_too_many_headers"), many).expect("write seed");
}
