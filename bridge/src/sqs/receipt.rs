//! Receipt handles: which hand-out of which message in which queue. A handle names
//! the delivery count, so a message received again gets a new handle and only the
//! latest one settles it (the core checks the count under the queue lock).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::fmt::Write as _;

const PREFIX: &str = "SB1";

/// A handle decoded on the stack up to this many bytes: every handle of a queue
/// name SQS allows fits (a longer one is decoded on the heap). Deletes are as
/// frequent as sends, and decoding allocated twice per handle.
const STACK_HANDLE: usize = 384;

/// The delivery a handle names, in the queue it was checked against.
#[derive(Debug, PartialEq, Eq)]
pub struct Receipt {
    pub seq: u64,
    pub delivery_count: u32,
}

pub fn encode(queue: &str, seq: u64, delivery_count: u32) -> String {
    let mut raw = String::with_capacity(32 + queue.len());
    let _ = write!(raw, "{seq}:{delivery_count}:{queue}");
    let mut out = String::with_capacity(PREFIX.len() + raw.len().div_ceil(3) * 4);
    out.push_str(PREFIX);
    URL_SAFE_NO_PAD.encode_string(raw, &mut out);
    out
}

/// The delivery `handle` names, if it is a well-formed handle of `queue`.
pub fn decode_for(handle: &str, queue: &str) -> Option<Receipt> {
    let b64 = handle.strip_prefix(PREFIX)?;
    let mut buf = [0u8; STACK_HANDLE];
    match URL_SAFE_NO_PAD.decode_slice(b64, &mut buf) {
        Ok(n) => parse(&buf[..n], queue),
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
            parse(&URL_SAFE_NO_PAD.decode(b64).ok()?, queue)
        }
        Err(_) => None,
    }
}

/// `seq:delivery_count:queue`.
fn parse(raw: &[u8], queue: &str) -> Option<Receipt> {
    let mut parts = raw.splitn(3, |b| *b == b':');
    let seq = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let delivery_count = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    (parts.next()? == queue.as_bytes()).then_some(Receipt {
        seq,
        delivery_count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let h = encode("orders.fifo", 42, 3);
        assert_eq!(
            decode_for(&h, "orders.fifo"),
            Some(Receipt {
                seq: 42,
                delivery_count: 3
            })
        );
        // Another queue's handle is not this queue's.
        assert_eq!(decode_for(&h, "orders"), None);
        assert_eq!(decode_for(&h, "orders.fifo2"), None);
        assert_ne!(h, encode("orders.fifo", 42, 4));
        for bad in ["", "SB1", "SB1!!!", "xyz", "SB1MTox"] {
            assert!(decode_for(bad, "orders.fifo").is_none(), "{bad}");
            assert!(decode_for(bad, "").is_none(), "{bad}");
        }
        // A cut handle never names the same delivery.
        let cut = decode_for(&h[..h.len() - 3], "orders.fifo");
        assert!(cut.is_none_or(|c| c.delivery_count != 3));
    }

    #[test]
    fn long_names_decode_on_the_heap() {
        let long = format!("us-west-2/{}", "q".repeat(STACK_HANDLE));
        let h = encode(&long, u64::MAX, u32::MAX);
        assert_eq!(
            decode_for(&h, &long),
            Some(Receipt {
                seq: u64::MAX,
                delivery_count: u32::MAX
            })
        );
        let short = encode("us-west-2/q", 7, 1);
        assert_eq!(decode_for(&short, "us-west-2/q").map(|r| r.seq), Some(7));
    }

    #[test]
    fn the_encoding_is_unchanged() {
        // Handles given out before an upgrade must still settle after it.
        let old = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode("42:3:orders.fifo"));
        assert_eq!(encode("orders.fifo", 42, 3), old);
    }
}
