//! Scenario names and the topology they stand for. Protocol-independent: each
//! protocol module maps a [`Topology`] onto its own objects (AMQP queues and a
//! fanout exchange; MQTT topics; STOMP destinations; SQS queues). The SQS scenarios
//! (`sqs-batch`, `sqs-single`, `sqs-send-latency`, `sqs-fifo`) are `Shared`
//! topologies: N senders and N competing receivers on one queue. The SNS ones
//! (`sns-publish`, `sns-latency`, `sns-http`) are `Fanout`: N publishers to one
//! topic with two SQS queues subscribed (`sns-http`: one HTTP endpoint).

use anyhow::{Result, bail};
use std::time::Duration;

/// How messages flow from publishers to consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// Publisher `i` sends straight to queue `i % queues`; one consumer per queue.
    Direct,
    /// Every publisher sends to one fanout point bound to all queues; one
    /// consumer per queue, so each message is delivered `queues` times.
    Fanout,
    /// No traffic: `queues` idle connections, each subscribed to its own topic,
    /// held open while the broker's memory is sampled (MQTT only).
    Idle,
    /// Every publisher sends to the one queue, which `publishers` competing
    /// consumers share: each message is delivered once, to one of them (STOMP only).
    Shared,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// The name as given on the command line, with N/K resolved (e.g. `q4-4`).
    pub name: String,
    pub publishers: usize,
    pub queues: usize,
    pub routing: Routing,
}

impl Topology {
    /// Consumers: one per queue, except `Shared` (one per publisher, all on queue 0).
    pub fn consumers(&self) -> usize {
        match self.routing {
            Routing::Shared => self.publishers,
            _ => self.queues,
        }
    }

    /// The queue consumer `c` consumes from.
    pub fn queue_of(&self, c: usize) -> usize {
        match self.routing {
            Routing::Shared => 0,
            _ => c,
        }
    }

    /// Queue indices that receive what publisher `p` sends.
    pub fn targets_of(&self, p: usize) -> Vec<usize> {
        match self.routing {
            Routing::Direct => vec![p % self.queues],
            Routing::Shared => vec![0],
            Routing::Fanout => (0..self.queues).collect(),
            Routing::Idle => Vec::new(),
        }
    }

    /// Parse `q1-1`, `qN-N` (N = `n`), `q<n>-<n>`, `fanout-K` (K = `k`), `fanout-<k>`,
    /// `fanin-N`, `fanin-<n>`, `shared-N`, `shared-<n>`, `idle` (10,000 connections)
    /// and `idle-<n>`.
    pub fn parse(name: &str, n: usize, k: usize) -> Result<Self> {
        if name == "idle" || name.starts_with("idle-") {
            let c = match name.strip_prefix("idle-") {
                None => IDLE_DEFAULT,
                Some(c) => c
                    .parse::<usize>()
                    .ok()
                    .filter(|c| (1..=1_000_000).contains(c))
                    .ok_or_else(|| {
                        anyhow::anyhow!("scenario {name:?}: idle-<n> needs 1..=1000000 connections")
                    })?,
            };
            return Ok(Self {
                name: format!("idle-{c}"),
                publishers: 0,
                queues: c,
                routing: Routing::Idle,
            });
        }
        let num = |s: &str, default: usize| -> Result<usize> {
            let v = match s {
                "N" | "K" => default,
                _ => s
                    .parse::<usize>()
                    .map_err(|_| anyhow::anyhow!("scenario {name:?}: {s:?} is not a number"))?,
            };
            if v == 0 || v > 1024 {
                bail!("scenario {name:?}: count must be 1..=1024, got {v}");
            }
            Ok(v)
        };
        if let Some(rest) = name.strip_prefix("sqs-") {
            // N senders -> one SQS queue -> N receivers (sqs-send-latency: 1 sender).
            for kind in ["batch", "single", "send-latency", "fifo"] {
                let Some(tail) = rest.strip_prefix(kind) else {
                    continue;
                };
                let w = match tail.strip_prefix('-') {
                    Some(w) => num(w, n)?,
                    None if tail.is_empty() && kind == "send-latency" => 1,
                    None if tail.is_empty() => num("N", n)?,
                    None => continue,
                };
                return Ok(Self {
                    name: format!("sqs-{kind}-{w}"),
                    publishers: w,
                    queues: 1,
                    routing: Routing::Shared,
                });
            }
            bail!(
                "unknown SQS scenario {name:?}: expected sqs-batch, sqs-single, \
                 sqs-send-latency or sqs-fifo (optionally -<workers>)"
            );
        }
        if let Some(rest) = name.strip_prefix("sns-") {
            // N publishers -> one SNS topic -> two SQS queues (sns-http: an HTTP
            // endpoint).
            for (kind, queues) in [("publish", 2), ("latency", 2), ("http", 1)] {
                let Some(tail) = rest.strip_prefix(kind) else {
                    continue;
                };
                let w = match tail.strip_prefix('-') {
                    Some(w) => num(w, n)?,
                    None if tail.is_empty() => num("N", n)?,
                    None => continue,
                };
                return Ok(Self {
                    name: format!("sns-{kind}-{w}"),
                    publishers: w,
                    queues,
                    routing: Routing::Fanout,
                });
            }
            bail!(
                "unknown SNS scenario {name:?}: expected sns-publish, sns-latency or sns-http \
                 (optionally -<publishers>)"
            );
        }
        if let Some(rest) = name.strip_prefix("fanout-") {
            let k = num(rest, k)?;
            return Ok(Self {
                name: format!("fanout-{k}"),
                publishers: 1,
                queues: k,
                routing: Routing::Fanout,
            });
        }
        if let Some(rest) = name.strip_prefix("fanin-") {
            // N publishers -> one queue/topic -> one consumer.
            let p = num(rest, n)?;
            return Ok(Self {
                name: format!("fanin-{p}"),
                publishers: p,
                queues: 1,
                routing: Routing::Direct,
            });
        }
        if let Some(rest) = name.strip_prefix("shared-") {
            // N publishers -> one queue -> N competing consumers.
            let p = num(rest, n)?;
            return Ok(Self {
                name: format!("shared-{p}"),
                publishers: p,
                queues: 1,
                routing: Routing::Shared,
            });
        }
        if let Some(rest) = name.strip_prefix('q')
            && let Some((a, b)) = rest.split_once('-')
        {
            let p = num(a, n)?;
            let c = num(b, n)?;
            if p != c {
                bail!(
                    "scenario {name:?}: qP-C needs P == C (one publisher, queue and consumer per lane)"
                );
            }
            return Ok(Self {
                name: format!("q{p}-{p}"),
                publishers: p,
                queues: p,
                routing: Routing::Direct,
            });
        }
        bail!(
            "unknown scenario {name:?}: expected q1-1, qN-N, q<n>-<n>, fanout-K, fanout-<k>, \
             fanin-N, fanin-<n>, shared-N, shared-<n>, idle or idle-<n>"
        )
    }
}

/// Connections of `idle` without a count.
pub const IDLE_DEFAULT: usize = 10_000;

/// When publishers stop.
#[derive(Debug, Clone, Copy)]
pub struct StopRule {
    /// Stop each publisher after this long (if set).
    pub duration: Option<Duration>,
    /// Stop each publisher after this many messages (if set).
    pub count: Option<u64>,
}

/// Everything a protocol driver needs to run one scenario.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub topology: Topology,
    pub stop: StopRule,
    pub size: usize,
    pub confirm: bool,
    pub confirm_window: usize,
    pub persistent: bool,
    /// AMQP `x-queue-type` of the declared queues (quorum, classic, …).
    pub queue_type: Option<String>,
    pub prefetch: u16,
    pub ack_every: u64,
    pub auto_ack: bool,
    /// Per-publisher rate limit in msgs/s (None = as fast as possible).
    pub rate: Option<f64>,
    /// Publishers wait while this many of their messages are not yet consumed.
    pub max_lag: Option<u64>,
    /// Publishes handed to the client library before waiting for the oldest.
    pub pipeline: usize,
    /// How long consumers may take, after publishers finish, to receive the rest
    /// (what is still queued after that is reported as backlog, not as lost).
    pub drain_timeout: Duration,
    /// Prefix of every object the run declares (unique per run and scenario).
    pub prefix: String,
    /// MQTT: QoS of publishes and subscriptions (0 or 1).
    pub qos: u8,
    /// MQTT: protocol 5.0 instead of 3.1.1.
    pub mqtt_v5: bool,
    /// STOMP: a RECEIPT on every Nth SEND (None: the driver's default).
    pub receipt_every: Option<u64>,
    /// STOMP: `auto`, `client` or `client-individual` (None: the driver's default).
    pub stomp_ack: Option<String>,
    /// The broker's pid (`--watch-pid`), for scenarios that report its memory themselves.
    pub broker_pid: Option<u32>,
    /// SQS: entries per SendMessageBatch and MaxNumberOfMessages (1..=10).
    pub sqs_batch: usize,
    /// SQS: ReceiveMessage WaitTimeSeconds (0..=20).
    pub wait_secs: u64,
    /// SQS FIFO: MessageGroupIds the messages are spread over.
    pub groups: usize,
    /// SNS `sns-http`: subscribe with RawMessageDelivery.
    pub sns_raw: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let t = Topology::parse("q1-1", 4, 4).unwrap();
        assert_eq!((t.publishers, t.queues, t.routing), (1, 1, Routing::Direct));
        let t = Topology::parse("qN-N", 3, 4).unwrap();
        assert_eq!((t.name.as_str(), t.publishers, t.queues), ("q3-3", 3, 3));
        let t = Topology::parse("q8-8", 3, 4).unwrap();
        assert_eq!(t.queues, 8);
        let t = Topology::parse("fanout-K", 3, 5).unwrap();
        assert_eq!(
            (t.name.as_str(), t.publishers, t.queues, t.routing),
            ("fanout-5", 1, 5, Routing::Fanout)
        );
        assert_eq!(t.targets_of(0), vec![0, 1, 2, 3, 4]);
        assert!(Topology::parse("q2-3", 4, 4).is_err());
        assert!(Topology::parse("topic-1", 4, 4).is_err());
        assert!(Topology::parse("fanout-0", 4, 4).is_err());
        let t = Topology::parse("fanin-N", 3, 5).unwrap();
        assert_eq!((t.name.as_str(), t.publishers, t.queues), ("fanin-3", 3, 1));
        assert_eq!(t.targets_of(2), vec![0]);
        let t = Topology::parse("idle", 3, 5).unwrap();
        assert_eq!(
            (t.name.as_str(), t.queues, t.routing),
            ("idle-10000", 10_000, Routing::Idle)
        );
        assert_eq!(Topology::parse("idle-20", 3, 5).unwrap().queues, 20);
        let t = Topology::parse("shared-N", 3, 5).unwrap();
        assert_eq!(
            (t.name.as_str(), t.publishers, t.queues, t.consumers()),
            ("shared-3", 3, 1, 3)
        );
        assert_eq!((t.targets_of(2), t.queue_of(2)), (vec![0], 0));
        assert!(Topology::parse("idle-0", 3, 5).is_err());
        let t = Topology::parse("sqs-batch", 3, 5).unwrap();
        assert_eq!(
            (t.name.as_str(), t.publishers, t.consumers()),
            ("sqs-batch-3", 3, 3)
        );
        assert_eq!(
            Topology::parse("sqs-fifo-8", 3, 5).unwrap().name,
            "sqs-fifo-8"
        );
        assert_eq!(
            Topology::parse("sqs-send-latency", 3, 5).unwrap().name,
            "sqs-send-latency-1"
        );
        assert!(Topology::parse("sqs-batchy", 3, 5).is_err());
        assert!(Topology::parse("sqs-other", 3, 5).is_err());
        let t = Topology::parse("sns-publish", 3, 5).unwrap();
        assert_eq!(
            (t.name.as_str(), t.publishers, t.queues),
            ("sns-publish-3", 3, 2)
        );
        assert_eq!(Topology::parse("sns-http-8", 3, 5).unwrap().queues, 1);
        assert!(Topology::parse("sns-other", 3, 5).is_err());
    }
}
