//! Limits that keep one tenant from taking the broker: connections per user and
//! per vhost, new connections per second from one source address, queues per
//! vhost. 0 means no limit. Each refusal is counted by reason for `/metrics`.
//!
//! Invariants: the per-source table holds at most [`MAX_SOURCES`] addresses
//! (idle ones are dropped first, then all), so a flood of sources cannot grow
//! memory; limits are read on every check, so a SIGHUP reload applies to the
//! next connection or declaration.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const MAX_SOURCES: usize = 65_536;

/// The limits, as configured (`[quotas]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct Quotas {
    pub max_connections_per_user: u32,
    pub max_connections_per_vhost: u32,
    pub max_queues_per_vhost: u32,
    /// New connections per second one source address may open (a burst of as
    /// many is allowed).
    pub connections_per_second_per_source: u32,
}

/// Why something was refused, for the metric's `reason` label.
#[derive(Clone, Copy, Debug)]
pub enum Refusal {
    UserConnections,
    VhostConnections,
    SourceRate,
    VhostQueues,
}

impl Refusal {
    pub const ALL: [Refusal; 4] = [
        Refusal::UserConnections,
        Refusal::VhostConnections,
        Refusal::SourceRate,
        Refusal::VhostQueues,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Refusal::UserConnections => "user_connection_limit",
            Refusal::VhostConnections => "vhost_connection_limit",
            Refusal::SourceRate => "source_connection_rate",
            Refusal::VhostQueues => "vhost_queue_limit",
        }
    }
}

#[derive(Default)]
pub struct Limiter {
    quotas: Mutex<Quotas>,
    sources: Mutex<HashMap<IpAddr, (f64, Instant)>>,
    refused: [AtomicU64; 4],
}

impl Limiter {
    pub fn set(&self, q: Quotas) {
        *self.quotas.lock().unwrap_or_else(|e| e.into_inner()) = q;
    }

    pub fn get(&self) -> Quotas {
        *self.quotas.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn refuse(&self, why: Refusal) {
        self.refused[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn refused(&self) -> Vec<(&'static str, u64)> {
        Refusal::ALL
            .iter()
            .map(|r| (r.label(), self.refused[*r as usize].load(Ordering::Relaxed)))
            .collect()
    }

    /// Whether a new connection from `ip` is within its source's rate (a token
    /// bucket of `rate` tokens refilled at `rate` per second).
    pub fn admit_source(&self, ip: IpAddr) -> bool {
        let rate = self.get().connections_per_second_per_source;
        if rate == 0 {
            return true;
        }
        let rate = f64::from(rate);
        let now = Instant::now();
        let mut map = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_SOURCES && !map.contains_key(&ip) {
            // A full bucket's source has nothing to remember.
            map.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < rate
            });
            if map.len() >= MAX_SOURCES {
                map.clear();
            }
        }
        let (tokens, at) = map.entry(ip).or_insert((rate, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(rate);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            drop(map);
            self.refuse(Refusal::SourceRate);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_gets_its_burst_then_waits() {
        let l = Limiter::default();
        let ip: IpAddr = "10.1.1.1".parse().unwrap();
        assert!((0..100).all(|_| l.admit_source(ip)), "no limit by default");
        l.set(Quotas {
            connections_per_second_per_source: 3,
            ..Default::default()
        });
        let other: IpAddr = "10.1.1.2".parse().unwrap();
        assert!((0..3).all(|_| l.admit_source(other)));
        assert!(!l.admit_source(other));
        assert!(l.admit_source("10.1.1.3".parse().unwrap()));
        assert_eq!(l.refused()[2], ("source_connection_rate", 1));
    }
}
