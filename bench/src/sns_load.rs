//! The load side of the SNS scenarios: the Query form, publishers (Publish with a
//! stamp and an id in the message, every other one matching the filter) and what
//! a subscriber saw (a bitmap per publisher, latencies).

use crate::clock;
use crate::interrupted;
use crate::mqtt_client::mark;
use crate::report::Latency;
use crate::scenario::RunSpec;
use crate::sns_model::{Subscriber, timed};
use crate::sqs::BODY_MIN;
use crate::sqs_client::{Client, Target, xml_text};
use anyhow::{Result, anyhow};
use hdrhistogram::Histogram;
use serde::Deserialize;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

const ID_SEQ_BITS: u32 = 40;
const SNS_VERSION: &str = "2010-03-31";
/// The attribute the `match` subscription filters on.
const FILTER_ATTR: &str = "kind";

/// An SNS Query form: `Action`, `Version`, then [`Form::add`]ed pairs.
pub struct Form(Vec<u8>);

impl Form {
    pub fn new(action: &str) -> Form {
        let mut f = Form(Vec::with_capacity(512));
        f.0.extend_from_slice(b"Action=");
        f.0.extend_from_slice(action.as_bytes());
        f.add("Version", SNS_VERSION);
        f
    }

    pub fn add(&mut self, key: &str, value: &str) -> &mut Form {
        self.0.push(b'&');
        encode(&mut self.0, key);
        self.0.push(b'=');
        encode(&mut self.0, value);
        self
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// Percent-encoding as SigV4 canonicalizes: all but `A-Za-z0-9-_.~`.
fn encode(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b);
        } else {
            let _ = write!(Vec8(out), "%{b:02X}");
        }
    }
}

struct Vec8<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Vec8<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// A task's result; its panic is an error too.
pub async fn joined<T>(t: tokio::task::JoinHandle<Result<T>>, what: &'static str) -> Result<T> {
    t.await
        .map_err(|e| anyhow!("{what} task: {e}"))?
        .map_err(|e| e.context(what))
}

/// An SNS call whose reply must have `element`; returns its text.
pub async fn sns_el(
    c: &mut Client,
    action: &'static str,
    f: Form,
    element: &str,
) -> Result<String> {
    let reply = timed(c.sns(action, f.into_bytes())).await?;
    let text = String::from_utf8_lossy(&reply);
    xml_text(&text, element)
        .map(str::to_string)
        .ok_or_else(|| anyhow!("{action}: no {element} in {}", &text[..text.len().min(300)]))
}

/// (publisher, sequence) of a message text, if it is one of ours.
pub fn parse_id(text: &str) -> Option<(u64, u64, u64)> {
    let hex = |s: Option<&str>| s.and_then(|s| u64::from_str_radix(s, 16).ok());
    let (stamp, id) = (hex(text.get(..16))?, hex(text.get(16..32))?);
    Some((stamp, id >> ID_SEQ_BITS, id & ((1 << ID_SEQ_BITS) - 1)))
}

/// Whether message `seq` carries `kind` = `match` (every other one).
pub fn matching(seq: u64) -> bool {
    seq.is_multiple_of(2)
}

/// The message text inside an SQS body or an HTTP POST: the envelope's `Message`,
/// or the body itself (raw delivery).
pub fn message_text(body: &str) -> Option<String> {
    if !body.starts_with('{') {
        return Some(body.to_string());
    }
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(rename = "Message")]
        message: String,
    }
    serde_json::from_str::<Envelope>(body)
        .ok()
        .map(|e| e.message)
}

/// What a subscriber saw: a bitmap per publisher, and latencies.
pub struct Seen {
    pub bits: Vec<Vec<u64>>,
    pub e2e: Histogram<u64>,
    pub received: u64,
    pub unexpected: u64,
    /// When the last message arrived (clock ns).
    pub last_ns: u64,
}

impl Seen {
    pub fn new(publishers: usize) -> Seen {
        Seen {
            bits: vec![Vec::new(); publishers],
            e2e: clock::new_histogram(),
            received: 0,
            unexpected: 0,
            last_ns: 0,
        }
    }

    /// Records one delivered text; `filtered`: only matching messages belong here.
    pub fn record(&mut self, text: &str, now: u64, filtered: bool) {
        let Some((stamp, p, s)) =
            parse_id(text).filter(|(_, p, _)| (*p as usize) < self.bits.len())
        else {
            self.unexpected += 1;
            return;
        };
        self.received += 1;
        self.last_ns = self.last_ns.max(now);
        self.e2e
            .saturating_record((now.saturating_sub(stamp) / 1000).max(1));
        if !mark(&mut self.bits[p as usize], s) || (filtered && !matching(s)) {
            self.unexpected += 1;
        }
    }

    pub fn distinct(&self) -> u64 {
        self.bits
            .iter()
            .flatten()
            .map(|w| u64::from(w.count_ones()))
            .sum()
    }

    /// The figures of a subscriber that should have got `expected` of them.
    pub fn summary(&self, name: &str, raw: bool, expected: u64) -> Subscriber {
        let delivered = self.distinct();
        Subscriber {
            name: name.into(),
            raw,
            expected,
            delivered,
            backlog: 0,
            lost: expected.saturating_sub(delivered),
            unexpected: self.unexpected,
            e2e: Latency::from_histogram(&self.e2e),
        }
    }
}

/// Publishers' shared counters.
pub struct Progress {
    /// Messages Publish accepted, per publisher (so the matching ones are known).
    pub sent: Vec<AtomicU64>,
    pub failed: AtomicBool,
}

impl Progress {
    pub fn new(publishers: usize) -> Progress {
        Progress {
            sent: (0..publishers).map(|_| AtomicU64::new(0)).collect(),
            failed: AtomicBool::new(false),
        }
    }

    pub fn total(&self) -> u64 {
        self.sent.iter().map(|s| s.load(Ordering::Relaxed)).sum()
    }

    pub fn matching(&self) -> u64 {
        self.sent
            .iter()
            .map(|s| s.load(Ordering::Relaxed).div_ceil(2))
            .sum()
    }
}

/// One publisher's result.
pub struct PubOut {
    pub latency: Histogram<u64>,
    pub first_ns: u64,
    pub last_ns: u64,
    pub connects: u64,
}

/// Publishes to `topic` until the stop rule; `rate`: this publisher's share (msg/s).
pub async fn publisher(
    mut c: Client,
    spec: Arc<RunSpec>,
    topic: Arc<String>,
    index: usize,
    rate: Option<f64>,
    progress: Arc<Progress>,
    t0: Instant,
) -> Result<PubOut> {
    let mut out = PubOut {
        latency: clock::new_histogram(),
        first_ns: u64::MAX,
        last_ns: 0,
        connects: 0,
    };
    let deadline = spec.stop.duration.map(|d| t0 + d);
    let max = spec.stop.count.unwrap_or(u64::MAX).min(1 << ID_SEQ_BITS);
    let filler: String = clock::template(spec.size)[BODY_MIN.min(spec.size)..]
        .iter()
        .map(|&b| b as char)
        .collect();
    let mut text = String::with_capacity(spec.size);
    let mut seq = 0u64;
    while seq < max
        && deadline.is_none_or(|d| Instant::now() < d)
        && !interrupted()
        && !progress.failed.load(Ordering::Relaxed)
    {
        if let Some(r) = rate {
            let at = t0 + Duration::from_secs_f64(seq as f64 / r);
            if at > Instant::now() {
                tokio::time::sleep_until(at).await;
                continue;
            }
        }
        text.clear();
        let id = (index as u64) << ID_SEQ_BITS | seq;
        let start = clock::now_ns();
        let _ = write!(text, "{start:016x}{id:016x}{filler}");
        let mut f = Form::new("Publish");
        f.add("TopicArn", &topic)
            .add("Message", &text)
            .add("MessageAttributes.entry.1.Name", FILTER_ATTR)
            .add("MessageAttributes.entry.1.Value.DataType", "String")
            .add(
                "MessageAttributes.entry.1.Value.StringValue",
                if matching(seq) { "match" } else { "other" },
            );
        sns_el(&mut c, "Publish", f, "MessageId").await?;
        let now = clock::now_ns();
        out.latency
            .saturating_record((now.saturating_sub(start) / 1000).max(1));
        out.first_ns = out.first_ns.min(start);
        out.last_ns = now;
        seq += 1;
        progress.sent[index].store(seq, Ordering::Relaxed);
    }
    out.connects = c.connects;
    Ok(out)
}

/// Starts `n` publishers (connections opened first), sharing `total_rate`.
pub async fn start_publishers(
    target: &Target,
    spec: &RunSpec,
    topic: &str,
    total_rate: Option<f64>,
    progress: &Arc<Progress>,
) -> Result<(Vec<tokio::task::JoinHandle<Result<PubOut>>>, u64)> {
    let n = spec.topology.publishers;
    let mut conns = Vec::new();
    for _ in 0..n {
        conns.push(Client::connect(target).await?);
    }
    let (spec, topic) = (Arc::new(spec.clone()), Arc::new(topic.to_string()));
    let t0 = Instant::now();
    let t0_ns = clock::now_ns();
    let tasks = conns
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let (spec, topic, progress) = (spec.clone(), topic.clone(), progress.clone());
            let rate = total_rate.map(|r| r / n as f64);
            tokio::spawn(async move {
                let r = publisher(c, spec, topic, i, rate, progress.clone(), t0).await;
                if r.is_err() {
                    progress.failed.store(true, Ordering::Relaxed);
                }
                r
            })
        })
        .collect();
    Ok((tasks, t0_ns))
}

/// The publishers' merged figures: (latency, first send, last reply, connections).
pub async fn join_publishers(
    tasks: Vec<tokio::task::JoinHandle<Result<PubOut>>>,
) -> Result<(Histogram<u64>, u64, u64, u64)> {
    let (mut h, mut first, mut last, mut conns) = (clock::new_histogram(), u64::MAX, 0, 0);
    let mut err = None;
    for t in tasks {
        match joined(t, "publisher").await {
            Ok(o) => {
                h.add(&o.latency)
                    .map_err(|e| anyhow!("merging histograms: {e}"))?;
                first = first.min(o.first_ns);
                last = last.max(o.last_ns);
                conns += o.connects;
            }
            Err(e) => {
                err.get_or_insert(e);
            }
        }
    }
    match err {
        Some(e) => Err(e),
        None => Ok((h, first, last, conns)),
    }
}
