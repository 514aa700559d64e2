//! Amazon SQS driver (`--url http://[key:secret@]HOST:PORT`): AWS JSON 1.0 over
//! keep-alive HTTP/1.1, SigV4-signed (`sqs_client`), one connection per worker.
//!
//! Scenarios (each on one queue, created with CreateQueue under a unique name at the
//! start and deleted with DeleteQueue at the end, also after an error):
//! - `sqs-batch-N`: N senders loop SendMessageBatch (`--batch-size`, default 10,
//!   entries of `--size` bytes), N receivers loop ReceiveMessage
//!   (MaxNumberOfMessages = batch size, WaitTimeSeconds `--wait-secs`) and delete
//!   what they got with one DeleteMessageBatch;
//! - `sqs-single-N`: the same one message at a time: SendMessage, ReceiveMessage
//!   (MaxNumberOfMessages 1), DeleteMessage;
//! - `sqs-send-latency` (1 sender; `sqs-send-latency-N`: N): SendMessage only,
//!   closed loop or at `--rate`, nothing received; the figure is its request latency;
//! - `sqs-fifo-N`: `sqs-batch-N` on a FIFO queue, entries spread round-robin over
//!   `--groups` MessageGroupIds (default 100), each with its own
//!   MessageDeduplicationId; receivers check the order within each group.
//!
//! Every worker is one task on the bench's single thread with its own connection
//! and one request outstanding. Senders hold while `--max-lag` × senders messages
//! (default 50 × senders) are sent but not yet deleted, so the queue stays short
//! and the rate is what flows through it end to end. After the senders stop,
//! receivers get `--drain-timeout` (ending early 5 s after the last deletion) to
//! delete the rest.
//!
//! Bodies are text (SQS bodies are XML characters): 16 hex digits of the send
//! stamp, 16 of the id (sender << 40 | sequence), filler. Receivers record the
//! end-to-end latency from the stamp and mark ids in a bitmap per sender: lost =
//! accepted by the server but never received, +N = received more than once.
//!
//! Figures: messages/s = deleted ÷ time to the last deletion (`sqs-send-latency`:
//! sent ÷ time to the last send); request latency per action (client side: from
//! before signing to the whole reply read), in `latency` the send action's.

use crate::clock;
use crate::interrupted;
use crate::mqtt_client::mark;
use crate::report::{Latency, ScenarioResult, fmt_ms, fmt_rate};
use crate::scenario::RunSpec;
use crate::sqs_client::{Client, Target};
use anyhow::{Context, Result, anyhow, bail};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// Stamp and id, 16 hex digits each.
pub const BODY_MIN: usize = 32;
const ID_SEQ_BITS: u32 = 40;
/// A request without a reply for this long fails the run (long polls add their wait).
const OP_TIMEOUT: Duration = Duration::from_secs(30);
/// After the senders finish, stop waiting once nothing was deleted for this long.
const IDLE_CUTOFF: Duration = Duration::from_secs(5);
/// Default `--max-lag` per sender.
pub const DEFAULT_LAG: u64 = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Batch,
    Single,
    SendLatency,
    Fifo,
}

impl Kind {
    fn of(name: &str) -> Option<Kind> {
        let rest = name.strip_prefix("sqs-")?;
        [
            ("send-latency", Kind::SendLatency),
            ("single", Kind::Single),
            ("batch", Kind::Batch),
            ("fifo", Kind::Fifo),
        ]
        .into_iter()
        .find(|(k, _)| rest.starts_with(k))
        .map(|(_, v)| v)
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Batch => "batch",
            Kind::Single => "single",
            Kind::SendLatency => "send-latency",
            Kind::Fifo => "fifo",
        }
    }

    fn batched(self) -> bool {
        matches!(self, Kind::Batch | Kind::Fifo)
    }
}

/// The actions timed, by index.
const OPS: [&str; 5] = [
    "SendMessage",
    "SendMessageBatch",
    "ReceiveMessage",
    "DeleteMessage",
    "DeleteMessageBatch",
];
const SEND: usize = 0;
const SEND_BATCH: usize = 1;
const RECEIVE: usize = 2;
const DELETE: usize = 3;
const DELETE_BATCH: usize = 4;

/// What an SQS scenario reports besides [`ScenarioResult`] (the `sqs` object of its
/// JSON line).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SqsExtra {
    /// batch, single, send-latency or fifo.
    pub kind: String,
    pub senders: usize,
    pub receivers: usize,
    /// Entries per SendMessageBatch / MaxNumberOfMessages (1 for single).
    pub batch: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<usize>,
    /// Messages sent but not yet deleted that hold the senders (all together).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u64>,
    pub wait_secs: u64,
    /// From the start of the scenario (CreateQueue) to its end (DeleteQueue done):
    /// what broker and client CPU percentages divide by.
    pub wall_secs: f64,
    /// From the first request of the workers to their last reply.
    pub active_secs: f64,
    pub requests: u64,
    /// TCP connections the workers opened: one each, plus one per request after a
    /// `Connection: close` (moto's server closes every connection after one reply).
    #[serde(default)]
    pub connections: u64,
    /// ReceiveMessage replies without messages.
    pub empty_receives: u64,
    /// Request latency per action.
    pub ops: BTreeMap<String, Latency>,
    /// From the send stamp to the ReceiveMessage reply that brought the message.
    pub e2e: Latency,
    /// FIFO: deliveries that came before an earlier message of their group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_order: Option<u64>,
}

impl SqsExtra {
    /// Messages per second through the queue (sent, without receivers).
    pub fn msgs_per_sec(&self, r: &ScenarioResult) -> f64 {
        if self.receivers > 0 {
            r.consume_rate
        } else {
            r.publish_rate
        }
    }

    fn msgs(&self, r: &ScenarioResult) -> u64 {
        if self.receivers > 0 {
            r.consumed
        } else {
            r.confirmed
        }
    }

    pub fn req_per_sec(&self) -> f64 {
        if self.active_secs > 0.0 {
            self.requests as f64 / self.active_secs
        } else {
            0.0
        }
    }

    /// CPU seconds as a percentage of one core over the scenario's wall time.
    fn pct(&self, cpu: Option<f64>) -> Option<f64> {
        cpu.filter(|_| self.wall_secs > 0.0)
            .map(|c| 100.0 * c / self.wall_secs)
    }

    fn send_op(&self) -> &'static str {
        if self.kind == "batch" || self.kind == "fifo" {
            OPS[SEND_BATCH]
        } else {
            OPS[SEND]
        }
    }
}

struct Shared {
    queue_url: String,
    /// Messages the server accepted.
    sent: AtomicU64,
    deleted: AtomicU64,
    last_delete_ns: AtomicU64,
    failed: AtomicBool,
    /// Wakes senders held by the lag bound.
    progress: Notify,
    /// FIFO: last sequence received per (sender, group).
    fifo_last: Mutex<HashMap<(u64, u64), u64>>,
    out_of_order: AtomicU64,
}

struct Out {
    ops: Vec<Histogram<u64>>,
    e2e: Histogram<u64>,
    seen: Vec<Vec<u64>>,
    received: u64,
    foreign: u64,
    empty: u64,
    requests: u64,
    connects: u64,
    sent: u64,
    last_ns: u64,
    first_ns: u64,
}

impl Out {
    fn new(senders: usize) -> Out {
        Out {
            ops: OPS.iter().map(|_| clock::new_histogram()).collect(),
            e2e: clock::new_histogram(),
            seen: vec![Vec::new(); senders],
            received: 0,
            foreign: 0,
            empty: 0,
            requests: 0,
            connects: 0,
            sent: 0,
            last_ns: 0,
            first_ns: u64::MAX,
        }
    }

    fn timed(&mut self, op: usize, start_ns: u64) {
        let now = clock::now_ns();
        self.ops[op].saturating_record((now.saturating_sub(start_ns) / 1000).max(1));
        self.requests += 1;
        self.first_ns = self.first_ns.min(start_ns);
        self.last_ns = self.last_ns.max(now);
    }
}

/// `s` as a JSON string (escaped) appended to `buf`.
fn push_str(buf: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *buf, s).expect("writing to a Vec cannot fail");
}

/// A task's result; its panic is an error too.
async fn joined<T>(t: tokio::task::JoinHandle<Result<T>>, what: &'static str) -> Result<T> {
    t.await
        .map_err(|e| anyhow!("{what} task: {e}"))?
        .map_err(|e| e.context(what))
}

#[derive(Deserialize)]
struct CreateOut {
    #[serde(rename = "QueueUrl")]
    queue_url: String,
}

#[derive(Deserialize)]
struct Failed {
    #[serde(rename = "Id", default)]
    id: String,
    #[serde(rename = "Code", default)]
    code: String,
    #[serde(rename = "Message", default)]
    message: String,
}

#[derive(Deserialize)]
struct BatchOut {
    #[serde(rename = "Successful", default)]
    ok: Vec<serde::de::IgnoredAny>,
    #[serde(rename = "Failed", default)]
    failed: Vec<Failed>,
}

impl BatchOut {
    fn check(self, action: &str, n: usize) -> Result<()> {
        if let Some(f) = self.failed.first() {
            bail!(
                "{action}: {} of {n} entries failed, e.g. {}: {}: {}",
                self.failed.len(),
                f.id,
                f.code,
                f.message
            );
        }
        if self.ok.len() != n {
            bail!("{action}: {} of {n} entries successful", self.ok.len());
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct RecvOut {
    #[serde(rename = "Messages", default)]
    messages: Vec<Msg>,
}

#[derive(Deserialize)]
struct Msg {
    #[serde(rename = "ReceiptHandle")]
    handle: String,
    #[serde(rename = "Body")]
    body: String,
}

#[derive(Deserialize)]
struct Ignore {}

pub async fn run(url: &str, spec: &RunSpec) -> Result<(ScenarioResult, SqsExtra)> {
    let target = Target::parse(url)?;
    let topo = &spec.topology;
    let Some(kind) = Kind::of(&topo.name) else {
        bail!(
            "{} is not an SQS scenario: with an http:// URL use sqs-batch, sqs-single, \
             sqs-send-latency or sqs-fifo",
            topo.name
        );
    };
    if spec.size < BODY_MIN {
        bail!("--size must be at least {BODY_MIN} for SQS (timestamp and message id)");
    }
    let started = Instant::now();
    let mut control = Client::connect(&target).await?;
    let fifo = kind == Kind::Fifo;
    let name = if fifo {
        format!("{}.fifo", spec.prefix)
    } else {
        spec.prefix.clone()
    };
    let mut body = br#"{"QueueName":"#.to_vec();
    push_str(&mut body, &name);
    if fifo {
        body.extend_from_slice(br#","Attributes":{"FifoQueue":"true"}"#);
    }
    body.push(b'}');
    let created: CreateOut = control
        .call("CreateQueue", body)
        .await
        .with_context(|| format!("creating queue {name}"))?;
    let outcome = measure(&target, spec, kind, created.queue_url.clone()).await;

    // Delete the queue whatever happened; a fresh connection if the old one broke.
    let mut body = br#"{"QueueUrl":"#.to_vec();
    push_str(&mut body, &created.queue_url);
    body.push(b'}');
    let deleted = match control.call::<Ignore>("DeleteQueue", body.clone()).await {
        Ok(_) => Ok(()),
        Err(_) => match Client::connect(&target).await {
            Ok(mut c) => c.call::<Ignore>("DeleteQueue", body).await.map(|_| ()),
            Err(e) => Err(e),
        },
    };
    let (mut r, mut x) = outcome?;
    deleted.with_context(|| format!("deleting queue {name}"))?;
    x.wall_secs = started.elapsed().as_secs_f64();
    r.protocol = "sqs".into();
    Ok((r, x))
}

async fn measure(
    target: &Target,
    spec: &RunSpec,
    kind: Kind,
    queue_url: String,
) -> Result<(ScenarioResult, SqsExtra)> {
    let topo = &spec.topology;
    let senders = topo.publishers;
    let receivers = if kind == Kind::SendLatency {
        0
    } else {
        senders
    };
    let batch = if kind.batched() { spec.sqs_batch } else { 1 };
    let lag = (kind != Kind::SendLatency)
        .then(|| spec.max_lag.unwrap_or(DEFAULT_LAG).max(batch as u64) * senders as u64);
    let shared = Arc::new(Shared {
        queue_url,
        sent: AtomicU64::new(0),
        deleted: AtomicU64::new(0),
        last_delete_ns: AtomicU64::new(0),
        failed: AtomicBool::new(false),
        progress: Notify::new(),
        fifo_last: Mutex::new(HashMap::new()),
        out_of_order: AtomicU64::new(0),
    });
    let mut send_conns = Vec::new();
    for _ in 0..senders {
        send_conns.push(Client::connect(target).await?);
    }
    let mut recv_conns = Vec::new();
    for _ in 0..receivers {
        recv_conns.push(Client::connect(target).await?);
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let t0 = Instant::now();
    let t0_ns = clock::now_ns();
    let mut recv_tasks = Vec::new();
    for c in recv_conns {
        let job = Receiver {
            shared: shared.clone(),
            kind,
            batch,
            wait: spec.wait_secs,
            senders,
            groups: spec.groups as u64,
        };
        let (sh, stop) = (shared.clone(), stop_rx.clone());
        recv_tasks.push(tokio::spawn(async move {
            let r = job.run(c, stop).await;
            if r.is_err() {
                sh.failed.store(true, Ordering::Relaxed);
                sh.progress.notify_waiters();
            }
            r
        }));
    }
    let spec_arc = Arc::new(spec.clone());
    let mut send_tasks = Vec::new();
    for (p, c) in send_conns.into_iter().enumerate() {
        let job = Sender {
            shared: shared.clone(),
            spec: spec_arc.clone(),
            kind,
            batch,
            index: p as u64,
            lag,
            t0,
        };
        let sh = shared.clone();
        send_tasks.push(tokio::spawn(async move {
            let r = job.run(c).await;
            if r.is_err() {
                sh.failed.store(true, Ordering::Relaxed);
            }
            r
        }));
    }

    let mut first_err: Option<anyhow::Error> = None;
    let mut outs = Vec::new();
    for t in send_tasks {
        match joined(t, "sender").await {
            Ok(o) => outs.push(o),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    let sent_total = shared.sent.load(Ordering::Relaxed);
    let publish_end_ns = outs.iter().map(|o| o.last_ns).max().unwrap_or(t0_ns);
    if receivers > 0 {
        let deadline = Instant::now() + spec.drain_timeout;
        let (mut last, mut last_change) = (0u64, Instant::now());
        while first_err.is_none() && !interrupted() && Instant::now() < deadline {
            let got = shared.deleted.load(Ordering::Relaxed);
            if got >= sent_total || recv_tasks.iter().any(|t| t.is_finished()) {
                break;
            }
            if got != last {
                (last, last_change) = (got, Instant::now());
            } else if last_change.elapsed() >= IDLE_CUTOFF {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let _ = stop_tx.send(true);
    for t in recv_tasks {
        match joined(t, "receiver").await {
            Ok(o) => outs.push(o),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    if interrupted() {
        bail!("interrupted");
    }

    let mut ops: Vec<Histogram<u64>> = OPS.iter().map(|_| clock::new_histogram()).collect();
    let mut e2e = clock::new_histogram();
    let mut seen: Vec<Vec<u64>> = vec![Vec::new(); senders];
    let (mut received, mut foreign, mut empty, mut requests, mut sent) = (0, 0, 0, 0, 0);
    let mut connections = 0;
    let (mut first_ns, mut last_ns) = (u64::MAX, 0);
    for o in &outs {
        for (a, b) in ops.iter_mut().zip(&o.ops) {
            a.add(b).map_err(|e| anyhow!("merging histograms: {e}"))?;
        }
        e2e.add(&o.e2e)
            .map_err(|e| anyhow!("merging histograms: {e}"))?;
        for (p, bits) in o.seen.iter().enumerate() {
            let len = seen[p].len().max(bits.len());
            seen[p].resize(len, 0);
            seen[p].iter_mut().zip(bits).for_each(|(a, b)| *a |= b);
        }
        received += o.received;
        foreign += o.foreign;
        empty += o.empty;
        requests += o.requests;
        connections += o.connects;
        sent += o.sent;
        first_ns = first_ns.min(o.first_ns);
        last_ns = last_ns.max(o.last_ns);
    }
    let distinct: u64 = seen
        .iter()
        .flatten()
        .map(|w| u64::from(w.count_ones()))
        .sum();
    let consumed = shared.deleted.load(Ordering::Relaxed);
    let consume_end_ns = shared.last_delete_ns.load(Ordering::Relaxed);
    let publish_secs = publish_end_ns.saturating_sub(t0_ns) as f64 / 1e9;
    let consume_secs = consume_end_ns.saturating_sub(t0_ns) as f64 / 1e9;
    let rate = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    let send_op = if kind.batched() { SEND_BATCH } else { SEND };
    let x = SqsExtra {
        kind: kind.name().into(),
        senders,
        receivers,
        batch,
        groups: (kind == Kind::Fifo).then_some(spec.groups),
        max_in_flight: lag,
        wait_secs: spec.wait_secs,
        wall_secs: 0.0,
        active_secs: last_ns.saturating_sub(first_ns.min(last_ns)) as f64 / 1e9,
        requests,
        connections,
        empty_receives: empty,
        ops: OPS
            .iter()
            .zip(&ops)
            .filter(|(_, h)| !h.is_empty())
            .map(|(n, h)| (n.to_string(), Latency::from_histogram(h)))
            .collect(),
        e2e: Latency::from_histogram(&e2e),
        out_of_order: (kind == Kind::Fifo).then(|| shared.out_of_order.load(Ordering::Relaxed)),
    };
    let r = ScenarioResult {
        protocol: "sqs".into(),
        scenario: topo.name.clone(),
        size: spec.size,
        rate_limit: spec.rate,
        publishers: senders,
        queues: 1,
        consumers: receivers,
        published: sent,
        confirmed: sent,
        expected: if receivers > 0 { sent } else { 0 },
        consumed,
        missing: if receivers > 0 {
            sent.saturating_sub(distinct)
        } else {
            0
        },
        unexpected: received.saturating_sub(distinct) + foreign,
        publish_secs,
        consume_secs,
        publish_rate: rate(sent, publish_secs),
        consume_rate: rate(consumed, consume_secs),
        latency: Latency::from_histogram(&ops[send_op]),
        ..Default::default()
    };
    Ok((r, x))
}

struct Sender {
    shared: Arc<Shared>,
    spec: Arc<RunSpec>,
    kind: Kind,
    batch: usize,
    index: u64,
    /// Hold while this many messages are sent and not deleted (all senders).
    lag: Option<u64>,
    t0: Instant,
}

impl Sender {
    async fn run(self, mut c: Client) -> Result<Out> {
        let spec = &self.spec;
        let sh = &self.shared;
        let mut out = Out::new(0);
        let deadline = spec.stop.duration.map(|d| self.t0 + d);
        let max = spec.stop.count.unwrap_or(u64::MAX).min(1 << ID_SEQ_BITS);
        let filler: String = clock::template(spec.size)[BODY_MIN.min(spec.size)..]
            .iter()
            .map(|&b| b as char)
            .collect();
        let groups = self.spec.groups.max(1) as u64;
        let mut seq = 0u64;
        let mut body = Vec::with_capacity(256 + self.batch * (spec.size + 128));
        loop {
            if seq >= max
                || deadline.is_some_and(|d| Instant::now() >= d)
                || interrupted()
                || sh.failed.load(Ordering::Relaxed)
            {
                break;
            }
            if let Some(lag) = self.lag {
                let progress = sh.progress.notified();
                tokio::pin!(progress);
                progress.as_mut().enable();
                let ahead = sh
                    .sent
                    .load(Ordering::Relaxed)
                    .saturating_sub(sh.deleted.load(Ordering::Relaxed));
                if ahead >= lag {
                    let _ = tokio::time::timeout(Duration::from_millis(50), progress).await;
                    continue;
                }
            }
            let n = (self.batch as u64).min(max - seq);
            if let Some(r) = spec.rate {
                let at = self.t0 + Duration::from_secs_f64(seq as f64 / r);
                if at > Instant::now() {
                    tokio::time::sleep_until(at).await;
                    continue;
                }
            }
            body.clear();
            body.extend_from_slice(br#"{"QueueUrl":"#);
            push_str(&mut body, &sh.queue_url);
            let entry = |body: &mut Vec<u8>, s: u64| {
                let id = self.index << ID_SEQ_BITS | s;
                let _ = write!(
                    VecWriter(body),
                    r#""MessageBody":"{:016x}{id:016x}{filler}""#,
                    clock::now_ns()
                );
                if self.kind == Kind::Fifo {
                    let _ = write!(
                        VecWriter(body),
                        r#","MessageGroupId":"g{}","MessageDeduplicationId":"{id:016x}""#,
                        (self.index + s) % groups
                    );
                }
            };
            if self.kind.batched() {
                body.extend_from_slice(br#","Entries":["#);
                for i in 0..n {
                    if i > 0 {
                        body.push(b',');
                    }
                    let _ = write!(VecWriter(&mut body), r#"{{"Id":"m{i}","#);
                    entry(&mut body, seq + i);
                    body.push(b'}');
                }
                body.extend_from_slice(b"]}");
                let start = clock::now_ns();
                let r: BatchOut = timed(c.call("SendMessageBatch", body.clone())).await?;
                out.timed(SEND_BATCH, start);
                r.check("SendMessageBatch", n as usize)?;
            } else {
                body.push(b',');
                entry(&mut body, seq);
                body.push(b'}');
                let start = clock::now_ns();
                let _: Ignore = timed(c.call("SendMessage", body.clone())).await?;
                out.timed(SEND, start);
            }
            seq += n;
            out.sent += n;
            sh.sent.fetch_add(n, Ordering::Relaxed);
        }
        out.connects = c.connects;
        Ok(out)
    }
}

/// `write!` into a byte buffer.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

async fn timed<T>(f: impl Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(OP_TIMEOUT, f).await {
        Ok(r) => r,
        Err(_) => bail!("no reply within {OP_TIMEOUT:?}"),
    }
}

struct Receiver {
    shared: Arc<Shared>,
    kind: Kind,
    batch: usize,
    wait: u64,
    senders: usize,
    groups: u64,
}

impl Receiver {
    async fn run(self, mut c: Client, mut stop: watch::Receiver<bool>) -> Result<Out> {
        let sh = &self.shared;
        let mut out = Out::new(self.senders);
        let mut recv_body = br#"{"QueueUrl":"#.to_vec();
        push_str(&mut recv_body, &sh.queue_url);
        let _ = write!(
            VecWriter(&mut recv_body),
            r#","MaxNumberOfMessages":{},"WaitTimeSeconds":{}}}"#,
            self.batch,
            self.wait
        );
        let wait = Duration::from_secs(self.wait);
        let mut body = Vec::with_capacity(4096);
        while !*stop.borrow() {
            let start = clock::now_ns();
            let got: RecvOut = tokio::select! {
                biased;
                _ = stop.changed() => break,
                r = tokio::time::timeout(OP_TIMEOUT + wait, c.call("ReceiveMessage", recv_body.clone())) => {
                    r.map_err(|_| anyhow!("ReceiveMessage: no reply within {:?}", OP_TIMEOUT + wait))??
                }
            };
            out.timed(RECEIVE, start);
            if got.messages.is_empty() {
                out.empty += 1;
                continue;
            }
            let now = clock::now_ns();
            for m in &got.messages {
                self.check(&mut out, &m.body, now);
            }
            let n = got.messages.len() as u64;
            if self.kind.batched() {
                body.clear();
                body.extend_from_slice(br#"{"QueueUrl":"#);
                push_str(&mut body, &sh.queue_url);
                body.extend_from_slice(br#","Entries":["#);
                for (i, m) in got.messages.iter().enumerate() {
                    if i > 0 {
                        body.push(b',');
                    }
                    let _ = write!(VecWriter(&mut body), r#"{{"Id":"d{i}","ReceiptHandle":"#);
                    push_str(&mut body, &m.handle);
                    body.push(b'}');
                }
                body.extend_from_slice(b"]}");
                let start = clock::now_ns();
                let r: BatchOut = tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    r = timed(c.call("DeleteMessageBatch", body.clone())) => r?,
                };
                out.timed(DELETE_BATCH, start);
                r.check("DeleteMessageBatch", got.messages.len())?;
            } else {
                for m in &got.messages {
                    body.clear();
                    body.extend_from_slice(br#"{"QueueUrl":"#);
                    push_str(&mut body, &sh.queue_url);
                    body.extend_from_slice(br#","ReceiptHandle":"#);
                    push_str(&mut body, &m.handle);
                    body.push(b'}');
                    let start = clock::now_ns();
                    let _: Ignore = tokio::select! {
                        biased;
                        _ = stop.changed() => {
                            out.connects = c.connects;
                            return Ok(out);
                        },
                        r = timed(c.call("DeleteMessage", body.clone())) => r?,
                    };
                    out.timed(DELETE, start);
                }
            }
            sh.deleted.fetch_add(n, Ordering::Relaxed);
            sh.last_delete_ns
                .fetch_max(clock::now_ns(), Ordering::Relaxed);
            sh.progress.notify_waiters();
        }
        out.connects = c.connects;
        Ok(out)
    }

    /// Latency, loss/duplicate bitmap and (FIFO) order of one received body.
    fn check(&self, out: &mut Out, body: &str, now: u64) {
        let hex = |s: Option<&str>| s.and_then(|s| u64::from_str_radix(s, 16).ok());
        let (Some(stamp), Some(id)) = (hex(body.get(..16)), hex(body.get(16..32))) else {
            out.foreign += 1;
            return;
        };
        let (p, s) = (id >> ID_SEQ_BITS, id & ((1 << ID_SEQ_BITS) - 1));
        if p as usize >= self.senders {
            out.foreign += 1;
            return;
        }
        out.received += 1;
        out.e2e
            .saturating_record((now.saturating_sub(stamp) / 1000).max(1));
        let first = mark(&mut out.seen[p as usize], s);
        if self.kind == Kind::Fifo && first {
            let g = (p + s) % self.groups.max(1);
            let mut last = self
                .shared
                .fifo_last
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let prev = last.entry((p, g)).or_insert(s);
            if s < *prev {
                self.shared.out_of_order.fetch_add(1, Ordering::Relaxed);
            }
            *prev = (*prev).max(s);
        }
    }
}

/// The one human-readable line for an SQS scenario.
pub fn human_line(r: &ScenarioResult, x: &SqsExtra) -> String {
    let mut s = String::new();
    if let Some(l) = &r.label {
        let _ = write!(s, "[{l}] ");
    }
    let mut flags = vec![format!("{}B", r.size)];
    if x.batch > 1 {
        flags.push(format!("batch={}", x.batch));
    }
    if let Some(g) = x.groups {
        flags.push(format!("groups={g}"));
    }
    if let Some(l) = x.max_in_flight {
        flags.push(format!("in-flight<={l}"));
    }
    if let Some(rate) = r.rate_limit {
        flags.push(format!("rate={}/s", fmt_rate(rate)));
    }
    let _ = write!(s, "{:<20} {:<32}", r.scenario, flags.join(" "));
    let _ = write!(
        s,
        " {:>9} msg/s  {:>7} req/s",
        fmt_rate(x.msgs_per_sec(r)),
        fmt_rate(x.req_per_sec())
    );
    for (op, l) in &x.ops {
        let _ = write!(
            s,
            "  {op} p50 {} p99 {} p999 {} ms",
            fmt_ms(l.p50_us),
            fmt_ms(l.p99_us),
            fmt_ms(l.p999_us)
        );
    }
    if x.e2e.samples > 0 {
        let _ = write!(
            s,
            "  end-to-end p50 {} p99 {} ms",
            fmt_ms(x.e2e.p50_us),
            fmt_ms(x.e2e.p99_us)
        );
    }
    let _ = write!(
        s,
        "  (sent {}, deleted {}, requests {}, connections {}, empty receives {}",
        r.published, r.consumed, x.requests, x.connections, x.empty_receives
    );
    if r.missing > 0 {
        let _ = write!(s, ", MISSING {}", r.missing);
    }
    if r.unexpected > 0 {
        let _ = write!(s, ", DUPLICATE {}", r.unexpected);
    }
    if let Some(o) = x.out_of_order.filter(|&o| o > 0) {
        let _ = write!(s, ", OUT OF ORDER {o}");
    }
    if let Some(kb) = r.broker_rss_max_kb {
        let _ = write!(s, ", broker rss max {} MiB", kb / 1024);
    }
    if let (Some(c), Some(p)) = (r.broker_cpu_secs, x.pct(r.broker_cpu_secs)) {
        let _ = write!(s, ", broker cpu {c:.1} s = {p:.0}%");
    }
    if let (Some(c), Some(p)) = (r.client_cpu_secs, x.pct(r.client_cpu_secs)) {
        let _ = write!(s, ", client cpu {c:.1} s = {p:.0}%");
    }
    if let Some(c) = r.other_cpu_secs.filter(|c| *c >= 0.1) {
        let _ = write!(s, ", other processes cpu {c:.1} s");
    }
    let _ = write!(s, " in {:.1} s)", x.wall_secs);
    s
}

/// One JSON line of a results file: the common fields and, for SQS, `sqs`.
#[derive(Deserialize)]
struct Line {
    #[serde(flatten)]
    r: ScenarioResult,
    #[serde(default)]
    sqs: Option<SqsExtra>,
}

/// True if the results file holds SQS results (then [`compare_table`] reads it).
pub fn is_sqs_results(path: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| {
        t.lines()
            .any(|l| l.starts_with('{') && l.contains(r#""protocol":"sqs""#))
    })
}

/// The issue's targets: Switchboard ≥ 50× moto's messages per second, and p99 of a
/// single SendMessage under 5 ms (checked on `sqs-send-latency` and on `sqs-single`
/// at a `--rate`; the other cases are checked for the ratio).
const TARGET_RATIO: f64 = 50.0;
const TARGET_P99_US: u64 = 5_000;

/// Per case a row for `baseline` and `subject` and their ratio, then the targets.
pub fn compare_table(path: &str, baseline: &str, subject: &str) -> Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let lines: Vec<Line> = text
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| serde_json::from_str(l).with_context(|| format!("parsing {l}")))
        .collect::<Result<_>>()?;
    let case_of = |l: &Line| l.r.case.clone().unwrap_or_else(|| l.r.scenario.clone());
    let mut cases: Vec<String> = Vec::new();
    for l in &lines {
        let c = case_of(l);
        if !cases.contains(&c) {
            cases.push(c);
        }
    }
    let find = |case: &str, label: &str| {
        lines
            .iter()
            .rev()
            .find(|l| case_of(l) == case && l.r.label.as_deref() == Some(label))
    };
    let w = cases.iter().map(|c| c.len()).max().unwrap_or(4).max(4);
    let ratio_label = format!("{subject}/{baseline}");
    let lw = ratio_label.len().max(baseline.len()).max(subject.len());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<w$}  {:<lw$}  {:>9}  {:>7}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}  {:>7}  {:>7}  {:>7}  {:>7}  {:>6}",
        "case",
        "system",
        "msgs/s",
        "req/s",
        "send p50",
        "send p99",
        "send p999",
        "recv p99",
        "del p99",
        "cpu %",
        "us/msg",
        "rss MiB",
        "client%",
        "lost"
    );
    let op = |x: &SqsExtra, name: &str, f: fn(&Latency) -> u64| {
        x.ops.get(name).map_or("-".into(), |l| fmt_ms(f(l)))
    };
    let recv_op = |x: &SqsExtra| -> String { op(x, "ReceiveMessage", |l| l.p99_us) };
    let del_op = |x: &SqsExtra| {
        let name = if x.ops.contains_key("DeleteMessageBatch") {
            "DeleteMessageBatch"
        } else {
            "DeleteMessage"
        };
        op(x, name, |l| l.p99_us)
    };
    let us_per_msg = |r: &ScenarioResult, x: &SqsExtra| {
        let n = x.msgs(r);
        r.broker_cpu_secs
            .filter(|_| n > 0)
            .map(|c| c * 1e6 / n as f64)
    };
    let opt = |v: Option<f64>, prec: usize| v.map_or("-".into(), |v| format!("{v:.prec$}"));
    for case in &cases {
        let mut got: Vec<Option<(&ScenarioResult, &SqsExtra)>> = Vec::new();
        for label in [baseline, subject] {
            let l = find(case, label);
            let c = if got.is_empty() { case.as_str() } else { "" };
            match l {
                None => {
                    let _ = writeln!(out, "{c:<w$}  {label:<lw$}  n/a (no result)");
                    got.push(None);
                }
                Some(l) if l.r.error.is_some() => {
                    let _ = writeln!(
                        out,
                        "{c:<w$}  {label:<lw$}  ERROR: {}",
                        l.r.error.as_deref().unwrap_or("")
                    );
                    got.push(None);
                }
                Some(Line { sqs: None, .. }) => {
                    let _ = writeln!(out, "{c:<w$}  {label:<lw$}  (not an SQS result)");
                    got.push(None);
                }
                Some(Line { r, sqs: Some(x) }) => {
                    let send = x.send_op();
                    let lost = if r.unexpected > 0 {
                        format!("{} +{}", r.missing, r.unexpected)
                    } else {
                        r.missing.to_string()
                    };
                    let _ = writeln!(
                        out,
                        "{c:<w$}  {label:<lw$}  {:>9}  {:>7}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}  {:>7}  {:>7}  {:>7}  {:>7}  {:>6}",
                        fmt_rate(x.msgs_per_sec(r)),
                        fmt_rate(x.req_per_sec()),
                        op(x, send, |l| l.p50_us),
                        op(x, send, |l| l.p99_us),
                        op(x, send, |l| l.p999_us),
                        recv_op(x),
                        del_op(x),
                        opt(x.pct(r.broker_cpu_secs), 0),
                        opt(us_per_msg(r, x), 1),
                        opt(r.broker_rss_max_kb.map(|k| k as f64 / 1024.0), 0),
                        opt(x.pct(r.client_cpu_secs), 0),
                        lost,
                    );
                    got.push(Some((r, x)));
                }
            }
        }
        if let [Some((a, ax)), Some((b, bx))] = got[..] {
            // Small ratios (latency, CPU per message) as 1/N: "0.00" would hide them.
            let ratio = |a: f64, b: f64| match b / a {
                _ if a <= 0.0 || b <= 0.0 => "-".to_string(),
                r if !r.is_finite() => "-".to_string(),
                r if r < 0.095 => format!("1/{:.0}", 1.0 / r),
                r => format!("{r:.2}"),
            };
            let lat = |x: &SqsExtra, f: fn(&Latency) -> u64| {
                x.ops.get(x.send_op()).map_or(0.0, |l| f(l) as f64)
            };
            let lat_of =
                |x: &SqsExtra, name: &str| x.ops.get(name).map_or(0.0, |l| l.p99_us as f64);
            let del =
                |x: &SqsExtra| lat_of(x, "DeleteMessageBatch").max(lat_of(x, "DeleteMessage"));
            let _ = writeln!(
                out,
                "{:<w$}  {ratio_label:<lw$}  {:>9}  {:>7}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}  {:>7}  {:>7}  {:>7}  {:>7}",
                "",
                ratio(ax.msgs_per_sec(a), bx.msgs_per_sec(b)),
                ratio(ax.req_per_sec(), bx.req_per_sec()),
                ratio(lat(ax, |l| l.p50_us), lat(bx, |l| l.p50_us)),
                ratio(lat(ax, |l| l.p99_us), lat(bx, |l| l.p99_us)),
                ratio(lat(ax, |l| l.p999_us), lat(bx, |l| l.p999_us)),
                ratio(lat_of(ax, "ReceiveMessage"), lat_of(bx, "ReceiveMessage")),
                ratio(del(ax), del(bx)),
                ratio(
                    ax.pct(a.broker_cpu_secs).unwrap_or(0.0),
                    bx.pct(b.broker_cpu_secs).unwrap_or(0.0)
                ),
                ratio(
                    us_per_msg(a, ax).unwrap_or(0.0),
                    us_per_msg(b, bx).unwrap_or(0.0)
                ),
                ratio(
                    a.broker_rss_max_kb.unwrap_or(0) as f64,
                    b.broker_rss_max_kb.unwrap_or(0) as f64
                ),
                ratio(
                    ax.pct(a.client_cpu_secs).unwrap_or(0.0),
                    bx.pct(b.client_cpu_secs).unwrap_or(0.0)
                ),
            );
        }
    }
    let mut targets = String::new();
    for case in &cases {
        let (Some(a), Some(b)) = (find(case, baseline), find(case, subject)) else {
            continue;
        };
        let (Some(ax), Some(bx)) = (&a.sqs, &b.sqs) else {
            continue;
        };
        if a.r.error.is_some() || b.r.error.is_some() {
            continue;
        }
        // Latency cases: SendMessage alone, or one at a time at a fixed rate.
        if bx.kind == "send-latency" || (bx.kind == "single" && b.r.rate_limit.is_some()) {
            if let Some(l) = bx.ops.get("SendMessage") {
                let _ = writeln!(
                    targets,
                    "  {case}: {subject} SendMessage p99 {} ms (target < {} ms: {}; {baseline}: {} ms)",
                    fmt_ms(l.p99_us),
                    fmt_ms(TARGET_P99_US),
                    if l.p99_us < TARGET_P99_US {
                        "met".to_string()
                    } else {
                        format!("MISSED by {} ms", fmt_ms(l.p99_us - TARGET_P99_US))
                    },
                    ax.ops
                        .get("SendMessage")
                        .map_or("-".into(), |l| fmt_ms(l.p99_us)),
                );
            }
        } else {
            let (ra, rb) = (ax.msgs_per_sec(&a.r), bx.msgs_per_sec(&b.r));
            if ra > 0.0 {
                let k = rb / ra;
                let _ = writeln!(
                    targets,
                    "  {case}: {subject} {} msgs/s = {k:.1}x {baseline}'s {} (target >= {TARGET_RATIO:.0}x: {})",
                    fmt_rate(rb),
                    fmt_rate(ra),
                    if k >= TARGET_RATIO {
                        "met".to_string()
                    } else {
                        format!("MISSED, {:.0}% of the target", 100.0 * k / TARGET_RATIO)
                    },
                );
            }
        }
    }
    if !targets.is_empty() {
        let _ = writeln!(out, "targets:\n{targets}");
    }
    for l in &lines {
        if let Some(c) = l.r.other_cpu_secs.filter(|c| *c >= 0.5) {
            let _ = writeln!(
                out,
                "note: other processes used {c:.1} s of CPU during {} ({}): noisy figures",
                case_of(l),
                l.r.label.as_deref().unwrap_or("?"),
            );
        }
    }
    let _ = writeln!(
        out,
        "(msgs/s: messages deleted per second, end to end (sqs-send-latency: sent per second);\n \
         req/s: all requests of the workers. Latencies in ms, per request, client side: send =\n \
         SendMessageBatch (batch, fifo) or SendMessage; recv = ReceiveMessage (long poll: an empty\n \
         queue makes it wait); del = DeleteMessageBatch or DeleteMessage. cpu %: broker CPU over the\n \
         case's wall time (100 = one core); us/msg: broker CPU per message; client%: this tool's CPU.\n \
         lost: accepted but never received (+N: received more than once). ratio = {subject} / {baseline}:\n \
         above 1 is more for rates, cpu, rss; below 1 is better for latency.)"
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(Kind::of("sqs-batch-4"), Some(Kind::Batch));
        assert_eq!(Kind::of("sqs-send-latency-1"), Some(Kind::SendLatency));
        assert_eq!(Kind::of("sqs-fifo-2"), Some(Kind::Fifo));
        assert_eq!(Kind::of("sqs-single-8"), Some(Kind::Single));
        assert_eq!(Kind::of("q1-1"), None);
    }

    #[test]
    fn table_from_lines() {
        let mk = |label: &str, rate: f64, p99: u64| {
            let r = ScenarioResult {
                label: Some(label.into()),
                case: Some("sqs-batch".into()),
                protocol: "sqs".into(),
                scenario: "sqs-batch-4".into(),
                consume_rate: rate,
                consumed: 1000,
                broker_cpu_secs: Some(1.0),
                ..Default::default()
            };
            let mut ops = BTreeMap::new();
            ops.insert(
                "SendMessageBatch".to_string(),
                Latency {
                    p50_us: p99 / 2,
                    p99_us: p99,
                    ..Default::default()
                },
            );
            let x = SqsExtra {
                kind: "batch".into(),
                senders: 4,
                receivers: 4,
                batch: 10,
                wall_secs: 5.0,
                ops,
                ..Default::default()
            };
            let mut v = serde_json::to_value(&r).unwrap();
            v["sqs"] = serde_json::to_value(&x).unwrap();
            v.to_string()
        };
        let path = std::env::temp_dir().join(format!("sb-bench-sqs-test-{}", std::process::id()));
        std::fs::write(
            &path,
            format!(
                "{}\n{}\n",
                mk("moto", 100.0, 8000),
                mk("switchboard", 6000.0, 2000)
            ),
        )
        .unwrap();
        let p = path.to_str().unwrap();
        assert!(is_sqs_results(p));
        let t = compare_table(p, "moto", "switchboard").unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(t.contains("switchboard/moto"), "{t}");
        assert!(t.contains("60.00"), "{t}");
        assert!(t.contains("60.0x") && t.contains("met"), "{t}");
    }
}
