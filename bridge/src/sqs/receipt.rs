//! Receipt handles: which hand-out of which message in which queue. A handle names
//! the delivery count, so a message received again gets a new handle and only the
//! latest one settles it (the core checks the count under the queue lock).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const PREFIX: &str = "SB1";

pub struct Receipt {
    pub queue: String,
    pub seq: u64,
    pub delivery_count: u32,
}

pub fn encode(queue: &str, seq: u64, delivery_count: u32) -> String {
    let raw = format!("{seq}:{delivery_count}:{queue}");
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
}

pub fn decode(handle: &str) -> Option<Receipt> {
    let raw = URL_SAFE_NO_PAD.decode(handle.strip_prefix(PREFIX)?).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let mut parts = raw.splitn(3, ':');
    let seq = parts.next()?.parse().ok()?;
    let delivery_count = parts.next()?.parse().ok()?;
    let queue = parts.next()?.to_string();
    Some(Receipt {
        queue,
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
        let r = decode(&h).unwrap();
        assert_eq!(
            (r.queue.as_str(), r.seq, r.delivery_count),
            ("orders.fifo", 42, 3)
        );
        assert_ne!(h, encode("orders.fifo", 42, 4));
        for bad in ["", "SB1", "SB1!!!", "xyz", "SB1MTox"] {
            assert!(decode(bad).is_none(), "{bad}");
        }
        // A cut handle never names the same delivery.
        let cut = decode(&h[..h.len() - 3]);
        assert!(cut.is_none_or(|c| c.queue != "orders.fifo" || c.delivery_count != 3));
    }
}
