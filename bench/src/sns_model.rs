//! What the SNS scenarios share: the figures they report ([`Subscriber`],
//! [`SnsExtra`], [`result`]) and their time limits. Below `sns.rs`, `sns_load.rs`
//! and `sns_http.rs`, which all use it.

use crate::report::{Latency, ScenarioResult};
use crate::scenario::RunSpec;
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A request without a reply for this long fails the run (long polls add their wait).
pub const OP_TIMEOUT: Duration = Duration::from_secs(30);
/// Draining stops once nothing arrived for this long.
pub const IDLE_CUTOFF: Duration = Duration::from_secs(5);
/// What one subscriber got.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Subscriber {
    /// `all`, `match` (filtered) or `http`.
    pub name: String,
    pub raw: bool,
    pub expected: u64,
    /// Distinct messages delivered.
    pub delivered: u64,
    /// Still in the queue when the drain ended (ApproximateNumberOfMessages and
    /// ...NotVisible): slow, not lost.
    #[serde(default)]
    pub backlog: u64,
    /// expected − delivered − backlog.
    pub lost: u64,
    /// Delivered twice, or (to `match`) without matching the filter.
    pub unexpected: u64,
    /// From the send stamp to the ReceiveMessage reply (or the POST's arrival).
    pub e2e: Latency,
}

/// What an SNS scenario reports besides [`ScenarioResult`] (the `sns` object of its
/// JSON line).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SnsExtra {
    /// publish, latency or http.
    pub kind: String,
    pub publishers: usize,
    /// Publishes per second asked for, all publishers together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_rate: Option<f64>,
    /// From topic creation to its deletion: what CPU percentages divide by.
    pub wall_secs: f64,
    /// Publish request latency (client side, signing to the whole reply read).
    pub publish: Latency,
    /// Deliveries (distinct, all subscribers) ÷ time from the first publish to the
    /// last delivery (sns-publish: deliveries happen in the drain; see its time).
    pub delivery_rate: f64,
    /// Seconds the drain after publishing took.
    pub drain_secs: f64,
    /// All deliveries' latency from the send stamp.
    pub e2e: Latency,
    pub subscribers: Vec<Subscriber>,
    /// TCP connections the workers opened (moto closes each after one reply).
    pub connections: u64,
    /// How the HTTP subscription was confirmed, or anything else worth saying.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

pub async fn timed<T>(f: impl Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(OP_TIMEOUT, f).await {
        Ok(r) => r,
        Err(_) => bail!("no reply within {OP_TIMEOUT:?}"),
    }
}

/// The common result fields from the SNS figures.
pub fn result(
    spec: &RunSpec,
    x: &SnsExtra,
    published: u64,
    expected: u64,
    publish_secs: f64,
    consume_ns: u64,
) -> ScenarioResult {
    let per = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    let delivered: u64 = x.subscribers.iter().map(|s| s.delivered).sum();
    ScenarioResult {
        protocol: "sns".into(),
        scenario: spec.topology.name.clone(),
        size: spec.size,
        rate_limit: x.target_rate,
        publishers: x.publishers,
        queues: x.subscribers.len(),
        consumers: x.subscribers.len(),
        published,
        confirmed: published,
        expected,
        consumed: delivered,
        backlog: x.subscribers.iter().map(|s| s.backlog).sum(),
        missing: x.subscribers.iter().map(|s| s.lost).sum(),
        unexpected: x.subscribers.iter().map(|s| s.unexpected).sum(),
        publish_secs,
        consume_secs: consume_ns as f64 / 1e9,
        publish_rate: per(published, publish_secs),
        consume_rate: x.delivery_rate,
        latency: x.publish.clone(),
        ..Default::default()
    }
}
