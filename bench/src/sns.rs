//! Amazon SNS driver (`--url http://[key:secret@]HOST:PORT`, the SQS endpoint):
//! SNS's AWS Query protocol (`Action=Publish&Version=2010-03-31&...`, SigV4 scope
//! `sns`) and SQS's JSON protocol on the same keep-alive connections
//! (`sqs_client`), one per worker.
//!
//! Every scenario creates a topic under a unique name and deletes it (and its
//! queues) at the end, also after an error:
//! - `sns-publish-N`: two SQS queues subscribed, `all` (the signed JSON envelope)
//!   and `match` (FilterPolicy `{"kind":["match"]}` on a message attribute,
//!   RawMessageDelivery); N publishers loop Publish for `--duration` with every
//!   other message's `kind` = `match`. Nothing is received while they publish: the
//!   figure is the Publish rate. Then both queues are drained (ReceiveMessage +
//!   DeleteMessageBatch) and checked: every message in `all`, exactly the matching
//!   ones in `match`. `--raw-delivery` makes `all` raw too (no signature to make
//!   per message received).
//! - `sns-latency-N`: the same topology, the publishers together at `--rate`
//!   (default 1,000 msg/s), two receivers per queue long-polling while they
//!   publish: Publish → ReceiveMessage latency, from a stamp in the message.
//! - `sns-http-N` (`sns_http.rs`): an HTTP endpoint in this process subscribed
//!   (confirmed by fetching the SubscribeURL of its SubscriptionConfirmation), N
//!   publishers as fast as they can (or at `--rate`): deliveries/s and latency.
//!
//! Messages are text, as SQS's: 16 hex digits of the send stamp, 16 of the id
//! (publisher << 40 | sequence), filler. Receivers mark ids in a bitmap per
//! (queue, publisher): lost = accepted by Publish but never delivered where it
//! should have been, +N = delivered twice, or to `match` without matching.

use crate::clock;
use crate::interrupted;
use crate::report::{Latency, ScenarioResult};
use crate::scenario::RunSpec;
pub use crate::sns_load::{
    Form, Progress, Seen, join_publishers, joined, message_text, sns_el, start_publishers,
};
use crate::sns_model::{IDLE_CUTOFF, SnsExtra, result, timed};
use crate::sqs_client::{Client, Target};
use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

pub use crate::sqs::BODY_MIN;
/// `sns-latency`'s rate when `--rate` is not given (all publishers together).
pub const DEFAULT_RATE: f64 = 1000.0;
/// Receivers per queue (two, so one is always waiting in a long poll while the
/// other deletes).
const RECEIVERS: usize = 2;
/// The policy of the `match` subscription (on the attribute `kind`).
const FILTER_POLICY: &str = r#"{"kind":["match"]}"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Publish,
    Latency,
    Http,
}

impl Kind {
    fn of(name: &str) -> Option<Kind> {
        let rest = name.strip_prefix("sns-")?;
        [
            ("publish", Kind::Publish),
            ("latency", Kind::Latency),
            ("http", Kind::Http),
        ]
        .into_iter()
        .find(|(k, _)| rest.starts_with(k))
        .map(|(_, v)| v)
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Publish => "publish",
            Kind::Latency => "latency",
            Kind::Http => "http",
        }
    }
}

/// The SQS queues of the two-queue topology.
struct Queue {
    name: &'static str,
    url: String,
    filtered: bool,
    raw: bool,
}

/// What `run` made, to delete at the end.
#[derive(Default)]
struct Made {
    topic: Option<String>,
    queues: Vec<String>,
}

pub async fn run(url: &str, spec: &RunSpec) -> Result<(ScenarioResult, SnsExtra)> {
    let target = Target::parse(url)?;
    let Some(kind) = Kind::of(&spec.topology.name) else {
        bail!(
            "{} is not an SNS scenario: use sns-publish, sns-latency or sns-http",
            spec.topology.name
        );
    };
    if spec.size < BODY_MIN {
        bail!("--size must be at least {BODY_MIN} for SNS (timestamp and message id)");
    }
    let started = Instant::now();
    let mut control = Client::connect(&target).await?;
    let mut made = Made::default();
    let outcome = setup_and_measure(&target, &mut control, spec, kind, &mut made).await;
    let cleaned = cleanup(&target, &mut control, &made).await;
    let (mut r, mut x) = outcome?;
    cleaned?;
    x.wall_secs = started.elapsed().as_secs_f64();
    x.kind = kind.name().into();
    r.protocol = "sns".into();
    Ok((r, x))
}

async fn setup_and_measure(
    target: &Target,
    c: &mut Client,
    spec: &RunSpec,
    kind: Kind,
    made: &mut Made,
) -> Result<(ScenarioResult, SnsExtra)> {
    let mut f = Form::new("CreateTopic");
    f.add("Name", &spec.prefix);
    let topic = sns_el(c, "CreateTopic", f, "TopicArn")
        .await
        .with_context(|| format!("creating topic {}", spec.prefix))?;
    made.topic = Some(topic.clone());
    if kind == Kind::Http {
        return crate::sns_http::measure(target, c, spec, &topic).await;
    }
    let mut queues = Vec::new();
    for (name, filtered) in [("all", false), ("match", true)] {
        #[derive(Deserialize)]
        struct Created {
            #[serde(rename = "QueueUrl")]
            url: String,
        }
        #[derive(Deserialize)]
        struct Attrs {
            #[serde(rename = "Attributes")]
            attributes: std::collections::HashMap<String, String>,
        }
        let qname = format!("{}-{name}", spec.prefix);
        let body = serde_json::json!({ "QueueName": qname }).to_string();
        let q: Created = timed(c.call("CreateQueue", body.into_bytes()))
            .await
            .with_context(|| format!("creating queue {qname}"))?;
        made.queues.push(q.url.clone());
        let body = serde_json::json!({ "QueueUrl": q.url, "AttributeNames": ["QueueArn"] });
        let a: Attrs = timed(c.call("GetQueueAttributes", body.to_string().into_bytes())).await?;
        let arn = a
            .attributes
            .get("QueueArn")
            .ok_or_else(|| anyhow!("GetQueueAttributes: no QueueArn for {qname}"))?;
        let mut f = Form::new("Subscribe");
        f.add("TopicArn", &topic)
            .add("Protocol", "sqs")
            .add("Endpoint", arn)
            .add("ReturnSubscriptionArn", "true");
        if filtered || spec.sns_raw {
            f.add("Attributes.entry.1.key", "RawMessageDelivery")
                .add("Attributes.entry.1.value", "true");
        }
        if filtered {
            f.add("Attributes.entry.2.key", "FilterPolicy")
                .add("Attributes.entry.2.value", FILTER_POLICY);
        }
        sns_el(c, "Subscribe", f, "SubscriptionArn")
            .await
            .with_context(|| format!("subscribing {qname}"))?;
        queues.push(Queue {
            name,
            url: q.url,
            filtered,
            raw: filtered || spec.sns_raw,
        });
    }
    measure_queues(target, spec, kind, &topic, queues).await
}

async fn cleanup(target: &Target, c: &mut Client, made: &Made) -> Result<()> {
    // A fresh connection if the old one broke.
    if Client::connect(target).await.map(|n| *c = n).is_err() {
        return Ok(());
    }
    let mut first_err = None;
    for q in &made.queues {
        let body = serde_json::json!({ "QueueUrl": q }).to_string();
        if let Err(e) = timed(c.call_raw("DeleteQueue", body.into_bytes())).await {
            first_err.get_or_insert(e.context(format!("deleting queue {q}")));
        }
    }
    if let Some(t) = &made.topic {
        let mut f = Form::new("DeleteTopic");
        f.add("TopicArn", t);
        if let Err(e) = timed(c.sns("DeleteTopic", f.into_bytes())).await {
            first_err.get_or_insert(e.context(format!("deleting topic {t}")));
        }
    }
    first_err.map_or(Ok(()), Err)
}

async fn measure_queues(
    target: &Target,
    spec: &RunSpec,
    kind: Kind,
    topic: &str,
    queues: Vec<Queue>,
) -> Result<(ScenarioResult, SnsExtra)> {
    let publishers = spec.topology.publishers;
    let progress = Arc::new(Progress::new(publishers));
    let rate = match kind {
        Kind::Latency => Some(spec.rate.unwrap_or(DEFAULT_RATE)),
        _ => spec.rate,
    };
    let queues: Vec<Arc<Queue>> = queues.into_iter().map(Arc::new).collect();
    let (stop_tx, stop_rx) = watch::channel(false);
    let delivered = Arc::new(AtomicU64::new(0));
    let start_receivers = |stop_rx: &watch::Receiver<bool>| -> Result<Vec<_>> {
        let mut tasks = Vec::new();
        for (qi, q) in queues.iter().enumerate() {
            for _ in 0..RECEIVERS {
                let (q, stop, target) = (q.clone(), stop_rx.clone(), target.clone());
                let d = delivered.clone();
                tasks.push((
                    qi,
                    tokio::spawn(async move {
                        let c = Client::connect(&target).await?;
                        receiver(c, &q, publishers, stop, &d).await
                    }),
                ));
            }
        }
        Ok(tasks)
    };
    // sns-latency receives while publishing; sns-publish only afterwards.
    let mut recv = if kind == Kind::Latency {
        start_receivers(&stop_rx)?
    } else {
        Vec::new()
    };
    let (pubs, t0_ns) = start_publishers(target, spec, topic, rate, &progress).await?;
    let published = join_publishers(pubs).await;
    let drain_start = Instant::now();
    if published.is_ok() && kind == Kind::Publish {
        recv = start_receivers(&stop_rx)?;
    }
    let (pub_hist, first_ns, last_ns, mut connections) = match published {
        Ok(p) => p,
        Err(e) => {
            let _ = stop_tx.send(true);
            return Err(e);
        }
    };
    let expected_all = progress.total();
    let expected = expected_all + progress.matching();
    let deadline = Instant::now() + spec.drain_timeout;
    let (mut last, mut last_change) = (u64::MAX, Instant::now());
    while !interrupted() && Instant::now() < deadline {
        let got = delivered.load(Ordering::Relaxed);
        if got >= expected || recv.iter().any(|(_, t)| t.is_finished()) {
            break;
        }
        if got != last {
            (last, last_change) = (got, Instant::now());
        } else if last_change.elapsed() >= IDLE_CUTOFF {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drain_secs = drain_start.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    let mut seen: Vec<Seen> = queues.iter().map(|_| Seen::new(publishers)).collect();
    let mut all_e2e = clock::new_histogram();
    let mut err = None;
    for (qi, t) in recv {
        match joined(t, "receiver").await {
            Ok((s, conns)) => {
                connections += conns;
                let into = &mut seen[qi];
                for (a, b) in into.bits.iter_mut().zip(&s.bits) {
                    if a.len() < b.len() {
                        a.resize(b.len(), 0);
                    }
                    // A bit in both: the same message from two receivers.
                    for (x, y) in a.iter_mut().zip(b) {
                        into.unexpected += u64::from((*x & y).count_ones());
                        *x |= y;
                    }
                }
                into.e2e
                    .add(&s.e2e)
                    .map_err(|e| anyhow!("histograms: {e}"))?;
                all_e2e
                    .add(&s.e2e)
                    .map_err(|e| anyhow!("histograms: {e}"))?;
                into.received += s.received;
                into.unexpected += s.unexpected;
                into.last_ns = into.last_ns.max(s.last_ns);
            }
            Err(e) => {
                err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = err {
        return Err(e);
    }
    if interrupted() {
        bail!("interrupted");
    }
    let mut subscribers = Vec::new();
    let mut c = Client::connect(target).await?;
    for (q, s) in queues.iter().zip(&seen) {
        let want = if q.filtered {
            progress.matching()
        } else {
            expected_all
        };
        let mut sub = s.summary(q.name, q.raw, want);
        if sub.lost > 0 {
            sub.backlog = backlog(&mut c, &q.url).await?.min(sub.lost);
            sub.lost -= sub.backlog;
        }
        subscribers.push(sub);
    }
    let delivered: u64 = subscribers.iter().map(|s| s.delivered).sum();
    let last_delivery = seen.iter().map(|s| s.last_ns).max().unwrap_or(0);
    let secs = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1e9;
    let per = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    let publish_secs = secs(t0_ns, last_ns);
    let x = SnsExtra {
        kind: String::new(),
        publishers,
        target_rate: rate,
        wall_secs: 0.0,
        publish: Latency::from_histogram(&pub_hist),
        delivery_rate: per(delivered, secs(first_ns.min(last_delivery), last_delivery)),
        drain_secs,
        e2e: Latency::from_histogram(&all_e2e),
        subscribers,
        connections,
        notes: Vec::new(),
    };
    let r = result(
        spec,
        &x,
        expected_all,
        expected,
        publish_secs,
        last_delivery - t0_ns.min(last_delivery),
    );
    Ok((r, x))
}

/// Messages still in a queue, visible or not.
async fn backlog(c: &mut Client, url: &str) -> Result<u64> {
    #[derive(Deserialize)]
    struct Attrs {
        #[serde(rename = "Attributes")]
        attributes: std::collections::HashMap<String, String>,
    }
    let body = serde_json::json!({ "QueueUrl": url, "AttributeNames": [
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"
    ]});
    let a: Attrs = timed(c.call("GetQueueAttributes", body.to_string().into_bytes())).await?;
    Ok(a.attributes
        .values()
        .filter_map(|v| v.parse::<u64>().ok())
        .sum())
}

/// Receives from one queue (batches of 10, 1 s long polls), deletes what it got,
/// until stopped.
async fn receiver(
    mut c: Client,
    q: &Queue,
    publishers: usize,
    mut stop: watch::Receiver<bool>,
    delivered: &AtomicU64,
) -> Result<(Seen, u64)> {
    #[derive(Deserialize)]
    struct Msg {
        #[serde(rename = "ReceiptHandle")]
        handle: String,
        #[serde(rename = "Body")]
        body: String,
    }
    #[derive(Deserialize)]
    struct Got {
        #[serde(rename = "Messages", default)]
        messages: Vec<Msg>,
    }
    let mut seen = Seen::new(publishers);
    let recv_body = serde_json::json!({
        "QueueUrl": q.url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 1
    })
    .to_string();
    while !*stop.borrow() {
        let got: Got = tokio::select! {
            biased;
            _ = stop.changed() => break,
            r = timed(c.call("ReceiveMessage", recv_body.clone().into_bytes())) => r?,
        };
        if got.messages.is_empty() {
            continue;
        }
        let now = clock::now_ns();
        for m in &got.messages {
            match message_text(&m.body) {
                Some(t) => seen.record(&t, now, q.filtered),
                None => seen.unexpected += 1,
            }
        }
        let entries: Vec<_> = got
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| serde_json::json!({ "Id": format!("d{i}"), "ReceiptHandle": m.handle }))
            .collect();
        let body = serde_json::json!({ "QueueUrl": q.url, "Entries": entries }).to_string();
        timed(c.call_raw("DeleteMessageBatch", body.into_bytes())).await?;
        delivered.fetch_add(got.messages.len() as u64, Ordering::Relaxed);
    }
    Ok((seen, c.connects))
}
