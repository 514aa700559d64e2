//! Send timestamps carried in message bodies, and the latency histogram.
//!
//! Publishers and consumers live in the same process, so a monotonic clock
//! shared by both is exact: the body's first 8 bytes are the nanoseconds since
//! [`origin`] (little endian) at the moment the message was handed to the
//! client library; the consumer subtracts that from its own reading.

use hdrhistogram::Histogram;
use std::sync::OnceLock;
use std::time::Instant;

/// Bytes of every body taken by the timestamp.
pub const STAMP_LEN: usize = 8;

static ORIGIN: OnceLock<Instant> = OnceLock::new();

pub fn origin() -> Instant {
    *ORIGIN.get_or_init(Instant::now)
}

/// Nanoseconds since [`origin`].
pub fn now_ns() -> u64 {
    origin().elapsed().as_nanos() as u64
}

/// A body of `size` bytes (at least [`STAMP_LEN`]) with filler after the stamp.
pub fn template(size: usize) -> Vec<u8> {
    let mut body: Vec<u8> = (0..size.max(STAMP_LEN))
        .map(|i| b'a' + (i % 26) as u8)
        .collect();
    body[..STAMP_LEN].fill(0);
    body
}

pub fn stamp(body: &mut [u8]) {
    body[..STAMP_LEN].copy_from_slice(&now_ns().to_le_bytes());
}

/// The stamp in `body`, if it has one.
pub fn read_stamp(body: &[u8]) -> Option<u64> {
    body.get(..STAMP_LEN)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
}

/// Latencies in microseconds, 1 µs to 1 hour, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// Record the latency of a body received now. Returns false if it had no stamp.
pub fn record(hist: &mut Histogram<u64>, body: &[u8], now: u64) -> bool {
    match read_stamp(body) {
        Some(sent) => {
            let us = now.saturating_sub(sent) / 1000;
            hist.saturating_record(us.max(1));
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trip() {
        let mut b = template(128);
        assert_eq!(b.len(), 128);
        stamp(&mut b);
        let s = read_stamp(&b).unwrap();
        assert!(s <= now_ns());
        let mut h = new_histogram();
        assert!(record(&mut h, &b, s + 2_500_000));
        assert_eq!(h.len(), 1);
        assert!((2490..=2510).contains(&h.value_at_quantile(0.5)));
        assert!(!record(&mut h, b"short", 0));
        assert_eq!(template(1).len(), STAMP_LEN);
    }
}
