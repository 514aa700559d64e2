#![no_main]
//! Arbitrary bytes through the STOMP decoder, four ways: before the version is known
//! (a connection's first bytes) and after `set_version` for 1.0, 1.1 and 1.2, with
//! small limits so the limit checks are reached. For each it checks that
//! - nothing panics and every item consumed input;
//! - every frame re-encodes for that version to exactly `encoded_size` bytes, which
//!   decode back to the same frame (content-length aside: the encoder rewrites it);
//! - the bytes split in two (at a point taken from the input) decode to the same
//!   items, and fail or not the same way, as the whole.

use bytes::{BufMut, BytesMut};
use libfuzzer_sys::fuzz_target;
use switchboard_stomp::codec::{
    CONTENT_LENGTH, Codec, Decoder, Item, Limits, Version, encode_frame, encoded_size,
};
use switchboard_stomp::frame::Frame;

const LIMITS: Limits = Limits {
    max_header_bytes: 512,
    max_headers: 16,
    max_body: 1024,
};

fn codec(version: Option<Version>, limits: Limits) -> Codec {
    let mut c = Codec::new(limits);
    if let Some(v) = version {
        c.set_version(v);
    }
    c
}

fn without_length(f: &Frame) -> Frame {
    let mut f = f.clone();
    f.headers.retain(|(n, _)| n != CONTENT_LENGTH);
    f
}

/// Items from `chunks` fed in turn, and whether decoding ended in an error.
fn decode(version: Option<Version>, chunks: &[&[u8]]) -> (Vec<Item>, bool) {
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
                Err(_) => return (items, true),
            }
        }
    }
    let _ = c.decode_eof(&mut buf);
    (items, false)
}

fn check_reencode(version: Option<Version>, f: &Frame) {
    let mut out = BytesMut::new();
    encode_frame(f, version, &mut out);
    assert_eq!(out.len(), encoded_size(f, version));
    match codec(version, Limits::default()).decode(&mut out) {
        Ok(Some(Item::Frame(g))) => {
            assert_eq!(without_length(&g), without_length(f), "{version:?}");
            assert!(out.is_empty(), "{version:?}: re-encoding left {out:?}");
        }
        other => panic!("{version:?}: {f:?} re-decodes as {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    for version in [
        None,
        Some(Version::V10),
        Some(Version::V11),
        Some(Version::V12),
    ] {
        let (items, failed) = decode(version, &[data]);
        for item in &items {
            if let Item::Frame(f) = item {
                check_reencode(version, f);
            }
        }
        if let Some(&first) = data.first() {
            let (a, b) = data.split_at(usize::from(first) % data.len());
            let (split, split_failed) = decode(version, &[a, b]);
            assert_eq!(split, items, "{version:?}: split at {}", a.len());
            assert_eq!(split_failed, failed, "{version:?}: split at {}", a.len());
        }
    }
});
