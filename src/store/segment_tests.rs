//! Reading a segment a window at a time must see exactly what parsing the whole
//! file sees: the same records, then the same end or the same damage, at the same
//! offset, whatever the window size and wherever the records straddle it.

use std::fs;
use std::path::Path;

use proptest::prelude::*;
use proptest::sample::Index;

use super::segment::{self, HEADER_LEN, Parsed, SegmentReader};

/// What a reader saw, owned, for comparing two readers.
#[derive(Debug, PartialEq)]
enum Seen {
    Record(u64, u64, Vec<u8>, u64),
    End(u64),
    Corrupt(&'static str, u64),
}

fn frames(sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &len) in sizes.iter().enumerate() {
        let start = out.len();
        out.resize(start + HEADER_LEN + len, 0);
        let lsn = i as u64 + 1;
        segment::write_header(&mut out[start..], len as u32, lsn % 3, lsn);
        for (k, b) in out[start + HEADER_LEN..].iter_mut().enumerate() {
            *b = (k as u8).wrapping_mul(7) ^ lsn as u8;
        }
        segment::seal(&mut out[start..]);
    }
    out
}

fn whole(data: &[u8]) -> Vec<Seen> {
    let mut seen = Vec::new();
    let mut off = 0;
    loop {
        match segment::parse_at(data, off) {
            Parsed::Record {
                epoch,
                lsn,
                payload,
                next,
            } => {
                seen.push(Seen::Record(epoch, lsn, payload.to_vec(), next as u64));
                off = next;
                continue;
            }
            Parsed::End => seen.push(Seen::End(off as u64)),
            Parsed::Corrupt(why) => seen.push(Seen::Corrupt(why, off as u64)),
        }
        return seen;
    }
}

fn windowed(path: &Path, chunk: usize) -> Vec<Seen> {
    let file = fs::File::open(path).expect("open");
    let mut r = SegmentReader::new(&file, chunk).expect("reader");
    let mut seen = Vec::new();
    loop {
        let at = r.offset();
        match r.next().expect("read") {
            Parsed::Record {
                epoch,
                lsn,
                payload,
                ..
            } => {
                let payload = payload.to_vec();
                seen.push(Seen::Record(epoch, lsn, payload, r.offset()));
                continue;
            }
            Parsed::End => seen.push(Seen::End(at)),
            Parsed::Corrupt(why) => seen.push(Seen::Corrupt(why, at)),
        }
        return seen;
    }
}

#[derive(Clone, Debug)]
enum Damage {
    None,
    Truncate(Index),
    Flip(Index, u8),
    /// Rewrite one record's length field (a torn or garbled header).
    Length(Index, u32),
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_windowed_read_sees_what_a_whole_read_sees(
        sizes in prop::collection::vec(prop_oneof![8 => 0..300usize, 1 => 1000..6000usize], 0..30),
        slack in 0..600usize,
        chunk in 1..4000usize,
        damage in prop_oneof![
            Just(Damage::None),
            any::<Index>().prop_map(Damage::Truncate),
            (any::<Index>(), 1..=255u8).prop_map(|(i, m)| Damage::Flip(i, m)),
            (any::<Index>(), any::<u32>()).prop_map(|(i, l)| Damage::Length(i, l)),
        ],
    ) {
        let mut data = frames(&sizes);
        let records = data.len();
        data.resize(records + slack, 0);
        match damage {
            Damage::None => {}
            Damage::Truncate(i) => data.truncate(i.index(data.len() + 1)),
            Damage::Flip(i, m) if !data.is_empty() => {
                let at = i.index(data.len());
                data[at] ^= m;
            }
            Damage::Length(i, len) if !sizes.is_empty() => {
                let k = i.index(sizes.len());
                let at: usize = sizes[..k].iter().map(|s| s + HEADER_LEN).sum();
                data[at..at + 4].copy_from_slice(&len.to_le_bytes());
            }
            _ => {}
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("1.seg");
        fs::write(&path, &data).expect("write");
        let want = whole(&data);
        prop_assert_eq!(windowed(&path, chunk), want);
        for from in [0, records, data.len() / 2] {
            let file = fs::File::open(&path).expect("open");
            let zeros = data.get(from..).is_none_or(|t| t.iter().all(|&b| b == 0));
            prop_assert_eq!(segment::zeros_from(&file, from as u64).expect("read"), zeros);
        }
    }
}
