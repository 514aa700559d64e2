//! Message rates for RabbitMQ's `message_stats`: the core keeps running totals per
//! queue ([`MessageCounts`]); the API samples them when asked, at most once per
//! [`INTERVAL`] (RabbitMQ's `collect_statistics_interval`), and a rate is the
//! change between the last two samples per second. Sampling on demand costs
//! nothing while nobody looks, and a rate never lags more than one interval
//! behind what the last reader saw.

use serde_json::{Value as Json_, json};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use switchboard_api::MessageCounts;

pub const INTERVAL: Duration = Duration::from_secs(5);

/// A queue not asked about for this long is forgotten (deleted queues).
const FORGET: Duration = Duration::from_secs(600);

#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    counts: MessageCounts,
}

struct Track {
    last: Sample,
    prev: Option<Sample>,
}

impl Track {
    fn new(at: Instant, counts: MessageCounts) -> Track {
        Track {
            last: Sample { at, counts },
            prev: None,
        }
    }

    fn observe(&mut self, at: Instant, counts: MessageCounts) {
        if at.duration_since(self.last.at) >= INTERVAL {
            self.prev = Some(self.last);
            self.last = Sample { at, counts };
        }
    }

    /// Per second between the last two samples: publish, deliver, get, redeliver, ack.
    fn rates(&self) -> [f64; 5] {
        let Some(prev) = self.prev else {
            return [0.0; 5];
        };
        let secs = self.last.at.duration_since(prev.at).as_secs_f64();
        let (a, b) = (split(prev.counts), split(self.last.counts));
        let mut out = [0.0; 5];
        for (o, (x, y)) in out.iter_mut().zip(a.into_iter().zip(b)) {
            // A queue deleted and declared again starts from zero.
            *o = y.saturating_sub(x) as f64 / secs;
        }
        out
    }
}

fn split(c: MessageCounts) -> [u64; 5] {
    [c.publish, c.deliver, c.get, c.redeliver, c.ack]
}

/// Rates of every queue asked about, and of the node.
#[derive(Default)]
pub struct Rates {
    queues: Mutex<HashMap<(String, String), Track>>,
    node: Mutex<Option<Track>>,
}

impl Rates {
    /// `message_stats` of one queue with its current totals.
    pub fn queue(&self, vhost: &str, name: &str, counts: MessageCounts) -> Json_ {
        let now = Instant::now();
        let mut map = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let rates = match map.get_mut(&(vhost.to_string(), name.to_string())) {
            Some(t) => {
                t.observe(now, counts);
                t.rates()
            }
            None => {
                map.insert(
                    (vhost.to_string(), name.to_string()),
                    Track::new(now, counts),
                );
                [0.0; 5]
            }
        };
        stats_json(counts, rates)
    }

    /// `message_stats` of the node; also forgets queues nobody asked about lately.
    pub fn node(&self, counts: MessageCounts) -> Json_ {
        let now = Instant::now();
        let rates = {
            let mut node = self.node.lock().unwrap_or_else(|e| e.into_inner());
            match node.as_mut() {
                Some(t) => {
                    t.observe(now, counts);
                    t.rates()
                }
                None => {
                    *node = Some(Track::new(now, counts));
                    [0.0; 5]
                }
            }
        };
        self.queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, t| now.duration_since(t.last.at) < FORGET);
        stats_json(counts, rates)
    }
}

/// RabbitMQ's shape: each figure with `<figure>_details.rate`; `deliver_get` is
/// what consumers and pulls took together.
fn stats_json(c: MessageCounts, r: [f64; 5]) -> Json_ {
    let [publish, deliver, get, redeliver, ack] = r;
    let round = |x: f64| (x * 10.0).round() / 10.0;
    json!({
        "publish": c.publish, "publish_details": {"rate": round(publish)},
        "deliver": c.deliver, "deliver_details": {"rate": round(deliver)},
        "get": c.get, "get_details": {"rate": round(get)},
        "deliver_get": c.deliver + c.get, "deliver_get_details": {"rate": round(deliver + get)},
        "redeliver": c.redeliver, "redeliver_details": {"rate": round(redeliver)},
        "ack": c.ack, "ack_details": {"rate": round(ack)},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_is_the_change_between_the_last_two_samples() {
        let t0 = Instant::now();
        let mut t = Track::new(t0, MessageCounts::default());
        assert_eq!(t.rates(), [0.0; 5]);
        let c = MessageCounts {
            publish: 100,
            ack: 50,
            ..Default::default()
        };
        // Too soon: not a new sample.
        t.observe(t0 + Duration::from_secs(1), c);
        assert_eq!(t.rates(), [0.0; 5]);
        t.observe(t0 + Duration::from_secs(10), c);
        assert_eq!(t.rates(), [10.0, 0.0, 0.0, 0.0, 5.0]);
        // Nothing happened since: the rate falls to zero at the next sample.
        t.observe(t0 + Duration::from_secs(15), c);
        assert_eq!(t.rates(), [0.0; 5]);
    }
}
