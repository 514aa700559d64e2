//! Failed logins, per source address: each refusal is logged (user, address,
//! protocol — never the password) and answered after a delay that doubles with
//! the address's recent failures, so guessing passwords is slow while a user who
//! mistyped once barely notices. The frontends sleep the delay on their own task:
//! nothing else waits.
//!
//! Invariants: at most [`MAX_SOURCES`] addresses are remembered (older ones are
//! dropped first, then all), so a flood of sources cannot grow memory; an address
//! without a failure for [`WINDOW`] starts again from [`BASE`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const BASE: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(2);
const WINDOW: Duration = Duration::from_secs(30);
const MAX_SOURCES: usize = 65_536;

#[derive(Default)]
pub struct Refusals {
    by_source: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    total: std::sync::atomic::AtomicU64,
}

impl Refusals {
    /// Refused logins since start.
    pub fn count(&self) -> u64 {
        self.total.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records a refused login from `peer`; returns how long to wait before saying so.
    pub fn refused(&self, peer: SocketAddr, user: &str, protocol: &str) -> Duration {
        self.total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = Instant::now();
        let mut map = self.by_source.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_SOURCES && !map.contains_key(&peer.ip()) {
            map.retain(|_, (_, at)| now.duration_since(*at) < WINDOW);
            if map.len() >= MAX_SOURCES {
                map.clear();
            }
        }
        let e = map.entry(peer.ip()).or_insert((0, now));
        if now.duration_since(e.1) >= WINDOW {
            e.0 = 0;
        }
        e.0 = e.0.saturating_add(1);
        e.1 = now;
        let n = e.0;
        drop(map);
        let delay = BASE.saturating_mul(1u32 << (n - 1).min(16)).min(MAX);
        tracing::warn!(%peer, user, protocol, failures = n, ?delay, "login refused");
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_per_source_up_to_the_cap() {
        let r = Refusals::default();
        let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        assert_eq!(r.refused(a, "u", "AMQP"), Duration::from_millis(100));
        assert_eq!(r.refused(a, "u", "AMQP"), Duration::from_millis(200));
        assert_eq!(r.refused(a, "u", "MQTT"), Duration::from_millis(400));
        // Another address is not slowed by the first one's failures.
        assert_eq!(r.refused(b, "u", "STOMP"), Duration::from_millis(100));
        for _ in 0..20 {
            r.refused(a, "u", "AMQP");
        }
        assert_eq!(r.refused(a, "u", "AMQP"), MAX);
    }
}
