//! STOMP 1.2 driver (`stomp_client`, on the project's own codec).
//!
//! Topology onto destinations: queue `i` is `/queue/<prefix>-q<i>` (q1-1, qN-N
//! lanes, fanin-N), `shared-N` is N publishers and N competing consumers on
//! `/queue/<prefix>-q0`, `fanout-K` is `/topic/<prefix>.fanout` with K subscribers
//! (each its own queue, `ack:auto`). `/queue/` destinations are durable (both
//! brokers' default; RabbitMQ makes a non-durable one exclusive to the declaring
//! connection) and carry `auto-delete:true` on SUBSCRIBE and SEND alike (both brokers
//! declare on each and want them equal), so a run leaves nothing behind once its
//! consumers disconnect. Every client has its own connection; consumers
//! have the RECEIPT of their SUBSCRIBE before the first SEND.
//!
//! Back-pressure: a publisher asks for a RECEIPT on every `receipt_every`-th SEND
//! (`--receipt-every`, default window/4; `--confirm`: every SEND) and on its last,
//! and keeps at most `window` (`--confirm-window`) SENDs not yet covered by a
//! receipt. A receipt for the n-th SEND counts the n first as confirmed. With
//! `--persistent` SENDs carry `persistent:true`. pub msg/s = confirmed SENDs / time
//! to the last receipt. Frames are encoded into one buffer and written together:
//! a batch of SENDs, or every ACK for what one read brought.
//!
//! Consumers: `--ack-mode client-individual` (queues' default: one ACK per MESSAGE),
//! `client` (cumulative, every `--ack-every`) or `auto` (topics' default, and with
//! `--auto-ack`); unless auto, `prefetch-count` and `activemq.prefetchSize` are
//! `--prefetch`. Bodies carry the send stamp and an id (publisher << 40 | sequence);
//! each consumer keeps a bitmap per publisher, merged per queue at the end: lost =
//! confirmed but never delivered within the drain, +N = deliveries beyond the
//! distinct messages.

use crate::clock;
use crate::interrupted;
use crate::mqtt_client::mark;
use crate::report::{Latency, ScenarioResult};
use crate::scenario::{Routing, RunSpec};
use crate::stomp_client::{Conn, Target};
use anyhow::{Result, anyhow, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use switchboard_stomp::frame::{Command, Frame};
use tokio::sync::watch;
use tokio::time::Instant;

/// Stamp and id.
const BODY_MIN: usize = 16;
const ID_SEQ_BITS: u32 = 40;
/// A publisher that gets no receipt for this long with its window full fails.
const STALL: Duration = Duration::from_secs(30);
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// SENDs encoded before one write.
const BATCH: u64 = 64;
/// After the publishers finish, stop waiting once nothing arrived for this long.
const IDLE_CUTOFF: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ack {
    Auto,
    Client,
    Individual,
}

impl Ack {
    fn name(self) -> &'static str {
        match self {
            Ack::Auto => "auto",
            Ack::Client => "client",
            Ack::Individual => "client-individual",
        }
    }
}

pub async fn run(url: &str, spec: &RunSpec) -> Result<ScenarioResult> {
    let target = Target::parse(url)?;
    let topo = &spec.topology;
    if topo.routing == Routing::Idle {
        bail!("{} is an MQTT scenario (use an mqtt:// URL)", topo.name);
    }
    if spec.size < BODY_MIN {
        bail!("--size must be at least {BODY_MIN} for STOMP (timestamp and message id)");
    }
    let ack = match (spec.auto_ack, spec.stomp_ack.as_deref()) {
        (true, _) | (_, Some("auto")) => Ack::Auto,
        (_, Some("client")) => Ack::Client,
        (_, Some("client-individual")) => Ack::Individual,
        (_, None) if topo.routing == Routing::Fanout => Ack::Auto,
        (_, None) => Ack::Individual,
        (_, Some(m)) => bail!("--ack-mode must be auto, client or client-individual, not {m:?}"),
    };
    let window = spec.confirm_window.max(1) as u64;
    let every = match spec.receipt_every {
        _ if spec.confirm => 1,
        Some(n) => n.max(1),
        None => (window / 4).max(1),
    };
    let dest = |q: usize| match topo.routing {
        Routing::Fanout => format!("/topic/{}.fanout", spec.prefix),
        _ => format!("/queue/{}-q{q}", spec.prefix),
    };
    let queue_headers = |f: Frame| match topo.routing {
        Routing::Fanout => f,
        _ => f.with_header("auto-delete", "true"),
    };

    let mut subs = Vec::new();
    for c in 0..topo.consumers() {
        let mut conn = Conn::connect(&target).await?;
        let mut f = Frame::new(Command::Subscribe)
            .with_header("id", "s0")
            .with_header("destination", dest(topo.queue_of(c)))
            .with_header("ack", ack.name());
        if ack != Ack::Auto {
            // RabbitMQ's name and ActiveMQ's (Switchboard reads either).
            f = f
                .with_header("prefetch-count", spec.prefetch.to_string())
                .with_header("activemq.prefetchSize", spec.prefetch.to_string());
        }
        conn.request(queue_headers(f), "sub", OP_TIMEOUT).await?;
        subs.push(conn);
    }
    let mut pubs = Vec::new();
    for p in 0..topo.publishers {
        let conn = Conn::connect(&target).await?;
        let mut f = queue_headers(
            Frame::new(Command::Send).with_header("destination", dest(topo.targets_of(p)[0])),
        );
        if spec.persistent {
            f = f.with_header("persistent", "true");
        }
        pubs.push((conn, f));
    }
    let mut r = measure(spec, subs, pubs, ack, window, every).await?;
    r.window = Some(window);
    r.receipt_every = Some(every);
    r.ack_mode = Some(ack.name().into());
    Ok(r)
}

struct SubCounters {
    failed: AtomicBool,
    received: AtomicU64,
    last_ns: AtomicU64,
    /// Deliveries per publisher (duplicates included), for --max-lag.
    from: Vec<AtomicU64>,
}

#[derive(Default)]
struct PubStats {
    issued: u64,
    confirmed: u64,
    end_ns: u64,
}

struct SubOut {
    hist: Histogram<u64>,
    /// Bitmap of the sequence numbers seen, per publisher.
    seen: Vec<Vec<u64>>,
    deliveries: u64,
    foreign: u64,
}

async fn measure(
    spec: &RunSpec,
    subs: Vec<Conn>,
    pubs: Vec<(Conn, Frame)>,
    ack: Ack,
    window: u64,
    every: u64,
) -> Result<ScenarioResult> {
    let topo = &spec.topology;
    let npubs = pubs.len();
    let spec_arc = Arc::new(spec.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let counters: Vec<Arc<SubCounters>> = (0..subs.len())
        .map(|_| {
            Arc::new(SubCounters {
                failed: AtomicBool::new(false),
                received: AtomicU64::new(0),
                last_ns: AtomicU64::new(0),
                from: (0..npubs).map(|_| AtomicU64::new(0)).collect(),
            })
        })
        .collect();

    let t0 = Instant::now();
    let t0_ns = clock::now_ns();
    let mut sub_tasks = Vec::new();
    for (conn, ctr) in subs.into_iter().zip(&counters) {
        let (stop, ctr) = (stop_rx.clone(), ctr.clone());
        let ack_every = spec.ack_every;
        sub_tasks.push(tokio::spawn(async move {
            let r = consume(conn, ack, ack_every, ctr.clone(), stop, npubs).await;
            if r.is_err() {
                ctr.failed.store(true, Ordering::Relaxed);
            }
            r
        }));
    }
    let mut pub_tasks = Vec::new();
    for (p, (conn, frame)) in pubs.into_iter().enumerate() {
        // The consumers that see this publisher's messages (for --max-lag and failures).
        let targets: Vec<_> = (0..counters.len())
            .filter(|&c| topo.targets_of(p).contains(&topo.queue_of(c)))
            .map(|c| counters[c].clone())
            .collect();
        let job = Publisher {
            spec: spec_arc.clone(),
            index: p,
            window,
            every,
            t0,
            targets,
        };
        pub_tasks.push(tokio::spawn(job.run(conn, frame)));
    }

    let mut first_err: Option<anyhow::Error> = None;
    let mut stats = Vec::new();
    for t in pub_tasks {
        stats.push(joined(t, "publisher").await.unwrap_or_else(|e| {
            first_err.get_or_insert(e);
            PubStats::default()
        }));
    }
    let publish_end_ns = stats.iter().map(|s| s.end_ns).max().unwrap_or(t0_ns);

    // Expected deliveries per queue: fan-out copies every message to each queue.
    let mut expected_q = vec![0u64; topo.queues];
    for (p, s) in stats.iter().enumerate() {
        for q in topo.targets_of(p) {
            expected_q[q] += s.issued;
        }
    }
    let received_q = || {
        let mut r = vec![0u64; topo.queues];
        for (c, ctr) in counters.iter().enumerate() {
            r[topo.queue_of(c)] += ctr.received.load(Ordering::Relaxed);
        }
        r
    };
    let deadline = Instant::now() + spec.drain_timeout;
    let (mut last_total, mut last_change) = (0u64, Instant::now());
    while first_err.is_none() && !interrupted() && Instant::now() < deadline {
        let got = received_q();
        if got.iter().zip(&expected_q).all(|(g, e)| g >= e) {
            break;
        }
        if sub_tasks.iter().any(|t| t.is_finished()) {
            break;
        }
        let total: u64 = got.iter().sum();
        if total != last_total {
            (last_total, last_change) = (total, Instant::now());
        } else if last_change.elapsed() >= IDLE_CUTOFF {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let _ = stop_tx.send(true);

    let mut hist = clock::new_histogram();
    let mut merged: Vec<Vec<Vec<u64>>> = vec![vec![Vec::new(); npubs]; topo.queues];
    let (mut deliveries, mut foreign) = (0u64, 0u64);
    for (c, t) in sub_tasks.into_iter().enumerate() {
        match joined(t, "consumer").await {
            Ok(out) => {
                hist.add(&out.hist)
                    .map_err(|e| anyhow!("merging histograms: {e}"))?;
                let m = &mut merged[topo.queue_of(c)];
                for (p, bits) in out.seen.into_iter().enumerate() {
                    let len = m[p].len().max(bits.len());
                    m[p].resize(len, 0);
                    m[p].iter_mut().zip(&bits).for_each(|(a, b)| *a |= b);
                }
                deliveries += out.deliveries;
                foreign += out.foreign;
            }
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
    let ones = |bits: &Vec<u64>| bits.iter().map(|w| w.count_ones() as u64).sum::<u64>();
    let (mut lost, mut distinct) = (0u64, 0u64);
    for (q, m) in merged.iter().enumerate() {
        for (p, s) in stats.iter().enumerate() {
            if topo.targets_of(p).contains(&q) {
                let d = ones(&m[p]);
                distinct += d;
                lost += s.confirmed.saturating_sub(d);
            }
        }
    }

    let consumed: u64 = counters
        .iter()
        .map(|c| c.received.load(Ordering::Relaxed))
        .sum();
    let consume_end_ns = counters
        .iter()
        .map(|c| c.last_ns.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0);
    let published: u64 = stats.iter().map(|s| s.issued).sum();
    let confirmed: u64 = stats.iter().map(|s| s.confirmed).sum();
    let publish_secs = publish_end_ns.saturating_sub(t0_ns) as f64 / 1e9;
    let consume_secs = consume_end_ns.saturating_sub(t0_ns) as f64 / 1e9;
    let rate = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    Ok(ScenarioResult {
        protocol: "stomp".into(),
        scenario: topo.name.clone(),
        size: spec.size,
        confirm: spec.confirm,
        persistent: spec.persistent,
        prefetch: spec.prefetch,
        auto_ack: ack == Ack::Auto,
        rate_limit: spec.rate,
        publishers: topo.publishers,
        queues: topo.queues,
        consumers: topo.consumers(),
        published,
        confirmed,
        expected: expected_q.iter().sum(),
        consumed,
        missing: lost,
        unexpected: (deliveries - distinct.min(deliveries)) + foreign,
        publish_secs,
        consume_secs,
        publish_rate: rate(confirmed, publish_secs),
        consume_rate: rate(consumed, consume_secs),
        latency: Latency::from_histogram(&hist),
        ..Default::default()
    })
}

/// A task's result; its panic is an error too.
async fn joined<T>(t: tokio::task::JoinHandle<Result<T>>, what: &'static str) -> Result<T> {
    t.await
        .map_err(|e| anyhow!("{what} task: {e}"))?
        .map_err(|e| e.context(what))
}

struct Publisher {
    spec: Arc<RunSpec>,
    index: usize,
    window: u64,
    every: u64,
    t0: Instant,
    targets: Vec<Arc<SubCounters>>,
}

impl Publisher {
    async fn run(self, mut c: Conn, mut frame: Frame) -> Result<PubStats> {
        let spec = &self.spec;
        let mut body = clock::template(spec.size);
        let deadline = spec.stop.duration.map(|d| self.t0 + d);
        let max = spec.stop.count.unwrap_or(u64::MAX).min(1 << ID_SEQ_BITS);
        let interval = spec.rate.map(|r| 1.0 / r);
        let id_base = (self.index as u64) << ID_SEQ_BITS;
        let failed = || {
            self.targets
                .iter()
                .any(|t| t.failed.load(Ordering::Relaxed))
        };
        let (mut issued, mut confirmed, mut last_receipt) = (0u64, 0u64, 0u64);
        let mut send = |c: &mut Conn, issued: &mut u64, receipt: bool| {
            clock::stamp(&mut body);
            body[8..16].copy_from_slice(&(id_base | *issued).to_le_bytes());
            frame.body = Bytes::copy_from_slice(&body);
            *issued += 1;
            if receipt {
                frame.headers.push(("receipt".into(), issued.to_string()));
                c.encode(&frame);
                frame.headers.pop();
            } else {
                c.encode(&frame);
            }
        };
        loop {
            while let Some(f) = c.next()? {
                if f.command == Command::Receipt
                    && let Some(n) = f.header("receipt-id").and_then(|v| v.parse::<u64>().ok())
                {
                    confirmed = confirmed.max(n);
                }
            }
            let now = Instant::now();
            if issued >= max || deadline.is_some_and(|d| now >= d) || interrupted() || failed() {
                if issued > last_receipt {
                    // The tail had no receipt: one more SEND asks for it.
                    send(&mut c, &mut issued, true);
                    last_receipt = issued;
                    c.flush().await?;
                }
                if confirmed >= issued || interrupted() || failed() {
                    break;
                }
                self.wait(&mut c, issued - confirmed).await?;
                continue;
            }
            let inflight = issued - confirmed;
            if inflight >= self.window {
                self.wait(&mut c, inflight).await?;
                continue;
            }
            let mut n = (self.window - inflight).min(BATCH).min(max - issued);
            if let Some(lag) = spec.max_lag {
                // Hold while this publisher is `lag` messages ahead of its slowest
                // consumer (competing consumers: of all of them together).
                let from = self
                    .targets
                    .iter()
                    .map(|t| t.from[self.index].load(Ordering::Relaxed));
                let seen = match spec.topology.routing {
                    Routing::Shared => from.sum(),
                    _ => from.min().unwrap_or(u64::MAX),
                };
                let ahead = issued.saturating_sub(seen);
                if ahead >= lag {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                    continue;
                }
                n = n.min(lag - ahead);
            }
            if let Some(iv) = interval {
                let due = ((now - self.t0).as_secs_f64() / iv) as u64 + 1;
                if due <= issued {
                    let at = self.t0 + Duration::from_secs_f64(iv * issued as f64);
                    tokio::select! {
                        r = c.read() => r?,
                        _ = tokio::time::sleep_until(at) => {}
                    }
                    continue;
                }
                n = n.min(due - issued);
            }
            for _ in 0..n {
                let receipt = (issued + 1).is_multiple_of(self.every) || issued + 1 == max;
                send(&mut c, &mut issued, receipt);
                if receipt {
                    last_receipt = issued;
                }
            }
            c.flush().await?;
            c.try_read()?;
            tokio::task::yield_now().await;
        }
        let end_ns = clock::now_ns();
        c.close().await;
        Ok(PubStats {
            issued,
            confirmed: confirmed.min(issued),
            end_ns,
        })
    }

    /// Waits for a receipt (or anything) from the broker, at most STALL.
    async fn wait(&self, c: &mut Conn, unconfirmed: u64) -> Result<()> {
        match tokio::time::timeout(STALL, c.read()).await {
            Ok(r) => r,
            Err(_) => bail!("no RECEIPT for {STALL:?} with {unconfirmed} SENDs unconfirmed"),
        }
    }
}

async fn consume(
    mut c: Conn,
    ack: Ack,
    ack_every: u64,
    ctr: Arc<SubCounters>,
    mut stop: watch::Receiver<bool>,
    npubs: usize,
) -> Result<SubOut> {
    let mut out = SubOut {
        hist: clock::new_histogram(),
        seen: vec![Vec::new(); npubs],
        deliveries: 0,
        foreign: 0,
    };
    let mut ack_frame = Frame::new(Command::Ack).with_header("id", String::new());
    let mut unacked = 0u64;
    loop {
        while let Some(f) = c.next()? {
            if f.command != Command::Message {
                continue;
            }
            let now = clock::now_ns();
            let b = &f.body;
            let id = b
                .get(8..16)
                .map(|s| u64::from_le_bytes(s.try_into().unwrap()));
            match id.map(|id| (id, (id >> ID_SEQ_BITS) as usize)) {
                Some((id, p)) if p < npubs => {
                    clock::record(&mut out.hist, b, now);
                    mark(&mut out.seen[p], id & ((1 << ID_SEQ_BITS) - 1));
                    ctr.from[p].fetch_add(1, Ordering::Relaxed);
                    out.deliveries += 1;
                }
                _ => out.foreign += 1,
            }
            ctr.received.fetch_add(1, Ordering::Relaxed);
            ctr.last_ns.store(now, Ordering::Relaxed);
            unacked += 1;
            if ack == Ack::Individual || (ack == Ack::Client && unacked >= ack_every) {
                let id = f
                    .header("ack")
                    .ok_or_else(|| anyhow!("MESSAGE without an ack header"))?;
                let v = &mut ack_frame.headers[0].1;
                v.clear();
                v.push_str(id);
                c.encode(&ack_frame);
                unacked = 0;
            }
        }
        c.flush().await?;
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            r = c.read() => r?,
        }
    }
    c.close().await;
    Ok(out)
}
