//! MQTT 3.1.1 / 5.0 driver (rumqttc, through `mqtt_client`).
//!
//! Topology onto topics: lane/queue `i` is topic `<prefix>/t<i>` with one
//! subscriber; `fanout-K` is one topic `<prefix>/fanout` with K subscribers;
//! `fanin-N` is N publishers on `<prefix>/t0` with one subscriber. Every
//! client has its own connection (clean session, keepalive 60 s) and client id;
//! subscribers have their SUBACK before the first publish. Publishes and
//! subscriptions use `--qos` (0 or 1). `idle-<n>` is in `mqtt_idle`.
//!
//! Back-pressure: each publisher has `window` permits (QoS 1: `--confirm-window`,
//! lowered to the broker's v5 Receive Maximum; QoS 0: `--pipeline`). A permit is
//! taken before a message is stamped and handed to rumqttc, and given back when
//! the event loop reports it written (QoS 0) or acknowledged (QoS 1). rumqttc's
//! own in-flight limit is set to the same window and its request channel is a
//! little larger, so a stamped message never waits in rumqttc for a slot: the
//! latency is the broker's (plus one hop through rumqttc's channel and task).
//!
//! Every body carries the 8-byte send stamp and then an 8-byte id (publisher
//! index << 40 | sequence number); subscribers keep a bitmap per publisher, so
//! the result counts lost (acknowledged, or for QoS 0 written, but never
//! delivered) and duplicated deliveries exactly.

use crate::clock;
use crate::interrupted;
use crate::mqtt_client::{self, Client, Ev, Loop, Opts, Target, client_id, mark};
use crate::mqtt_idle;
use crate::report::{Latency, ScenarioResult};
use crate::scenario::{Routing, RunSpec};
use anyhow::{Result, anyhow, bail};
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

/// Stamp and id.
pub const BODY_MIN: usize = 16;
const ID_SEQ_BITS: u32 = 40;
/// A publisher that can hand over nothing (window full, no acks) this long fails.
const STALL: Duration = Duration::from_secs(30);
const KEEP_ALIVE: Duration = Duration::from_secs(60);
/// After the publishers finish, stop waiting once nothing arrived for this long
/// (QoS 0 may drop; QoS 1 should not, but a stuck broker should not take the
/// whole drain timeout either).
const IDLE_CUTOFF_QOS0: Duration = Duration::from_secs(2);
const IDLE_CUTOFF_QOS1: Duration = Duration::from_secs(5);

pub fn version_name(v5: bool) -> &'static str {
    if v5 { "5.0" } else { "3.1.1" }
}

pub async fn run(url: &str, spec: &RunSpec) -> Result<ScenarioResult> {
    let target = Target::parse(url)?;
    if spec.topology.routing == Routing::Idle {
        return mqtt_idle::run(&target, spec).await;
    }
    if spec.topology.routing == Routing::Shared {
        bail!(
            "{}: competing consumers on one queue are a STOMP scenario (use a stomp:// URL)",
            spec.topology.name
        );
    }
    if spec.size < BODY_MIN {
        bail!("--size must be at least {BODY_MIN} for MQTT (timestamp and message id)");
    }
    if spec.qos > 1 {
        bail!("--qos must be 0 or 1");
    }
    let topo = &spec.topology;
    let topic = |q: usize| match topo.routing {
        Routing::Fanout => format!("{}/fanout", spec.prefix),
        _ => format!("{}/t{q}", spec.prefix),
    };
    let window = if spec.qos == 1 {
        spec.confirm_window.clamp(1, u16::MAX as usize)
    } else {
        spec.pipeline.max(1)
    };
    let opts = |id: String| Opts {
        client_id: id,
        v5: spec.mqtt_v5,
        keep_alive: KEEP_ALIVE,
        inflight: window.min(u16::MAX as usize) as u16,
        channel: window + 4,
        max_packet: (spec.size + 1024).max(10 * 1024),
        clean_session: true,
    };

    // --- subscribers first, each with its SUBACK.
    let mut subs = Vec::new();
    for q in 0..topo.consumers() {
        let (c, mut lp, _) =
            mqtt_client::connect(&target, &opts(client_id(&spec.prefix, 's', q))).await?;
        mqtt_client::subscribe(&c, &mut lp, &topic(q), spec.qos).await?;
        subs.push((c, lp));
    }
    // --- publishers; a v5 broker's Receive Maximum bounds the QoS 1 window.
    let mut pubs = Vec::new();
    let mut eff_window = window;
    for p in 0..topo.publishers {
        let (c, lp, recv_max) =
            mqtt_client::connect(&target, &opts(client_id(&spec.prefix, 'p', p))).await?;
        let w = match recv_max {
            Some(m) if spec.qos == 1 => window.min(m.max(1) as usize),
            _ => window,
        };
        eff_window = eff_window.min(w);
        pubs.push((c, lp, w, topic(topo.targets_of(p)[0])));
    }
    let mut r = measure(spec, subs, pubs).await?;
    r.window = Some(eff_window as u64);
    Ok(r)
}

struct SubCounters {
    failed: AtomicBool,
    received: AtomicU64,
    last_ns: AtomicU64,
    /// Deliveries per publisher (duplicates included), for --max-lag.
    from: Vec<AtomicU64>,
}

struct PubShared {
    permits: Semaphore,
    written: AtomicU64,
    acked: AtomicU64,
    nacked: AtomicU64,
}

#[derive(Default)]
struct PubStats {
    issued: u64,
    end_ns: u64,
}

struct SubOut {
    hist: Histogram<u64>,
    /// Distinct messages seen per publisher.
    distinct: Vec<u64>,
    dups: u64,
    foreign: u64,
}

async fn measure(
    spec: &RunSpec,
    subs: Vec<(Client, Loop)>,
    pubs: Vec<(Client, Loop, usize, String)>,
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
    for ((c, lp), ctr) in subs.into_iter().zip(&counters) {
        let (stop, ctr) = (stop_rx.clone(), ctr.clone());
        sub_tasks.push(tokio::spawn(async move {
            let r = sub_loop(c, lp, ctr.clone(), stop, npubs).await;
            if r.is_err() {
                ctr.failed.store(true, Ordering::Relaxed);
            }
            r
        }));
    }
    let mut shared = Vec::new();
    let mut pub_tasks = Vec::new();
    for (p, (c, lp, w, topic)) in pubs.into_iter().enumerate() {
        let sh = Arc::new(PubShared {
            permits: Semaphore::new(w),
            written: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            nacked: AtomicU64::new(0),
        });
        shared.push(sh.clone());
        let driver = tokio::spawn(pub_driver(lp, sh.clone(), spec.qos));
        let targets: Vec<_> = topo
            .targets_of(p)
            .into_iter()
            .map(|q| counters[q].clone())
            .collect();
        let issuer = tokio::spawn(publish_loop(
            c,
            sh,
            w,
            topic,
            spec_arc.clone(),
            t0,
            p,
            targets,
        ));
        pub_tasks.push((issuer, driver));
    }

    let mut first_err: Option<anyhow::Error> = None;
    let mut stats = Vec::new();
    for (issuer, driver) in pub_tasks {
        let s = match issuer.await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                first_err.get_or_insert(e.context("publisher"));
                PubStats::default()
            }
            Err(e) => {
                first_err.get_or_insert(anyhow!("publisher task: {e}"));
                PubStats::default()
            }
        };
        stats.push(s);
        let mut driver = driver;
        match tokio::time::timeout(Duration::from_secs(5), &mut driver).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                // The driver's error is the cause; the issuer's is a consequence.
                first_err = Some(e.context("publisher connection"));
            }
            Ok(Err(e)) => {
                first_err.get_or_insert(anyhow!("publisher event loop task: {e}"));
            }
            // DISCONNECT not written in time (or never asked for, after an error).
            Err(_) => driver.abort(),
        }
    }
    let publish_end_ns = stats.iter().map(|s| s.end_ns).max().unwrap_or(t0_ns);

    // Expected deliveries per publisher: every message issued and not refused.
    let expected_from: Vec<u64> = stats
        .iter()
        .zip(&shared)
        .map(|(s, sh)| s.issued.saturating_sub(sh.nacked.load(Ordering::Relaxed)))
        .collect();
    let mut expected = vec![0u64; counters.len()];
    for (p, e) in expected_from.iter().enumerate() {
        for q in topo.targets_of(p) {
            expected[q] += e;
        }
    }

    // Drain until every subscriber has its share, nothing arrives any more, or the timeout.
    let idle_cutoff = if spec.qos == 0 {
        IDLE_CUTOFF_QOS0
    } else {
        IDLE_CUTOFF_QOS1
    };
    let deadline = Instant::now() + spec.drain_timeout;
    let total = || {
        counters
            .iter()
            .map(|c| c.received.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let (mut last_total, mut last_change) = (total(), Instant::now());
    while first_err.is_none() && !interrupted() && Instant::now() < deadline {
        if counters
            .iter()
            .zip(&expected)
            .all(|(c, e)| c.received.load(Ordering::Relaxed) >= *e)
        {
            break;
        }
        if sub_tasks.iter().any(|t| t.is_finished()) {
            break;
        }
        let now_total = total();
        if now_total != last_total {
            (last_total, last_change) = (now_total, Instant::now());
        } else if last_change.elapsed() >= idle_cutoff {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let _ = stop_tx.send(true);

    let mut hist = clock::new_histogram();
    let (mut lost, mut dups) = (0u64, 0u64);
    for (q, t) in sub_tasks.into_iter().enumerate() {
        match t.await {
            Ok(Ok(out)) => {
                hist.add(&out.hist)
                    .map_err(|e| anyhow!("merging histograms: {e}"))?;
                for (p, e) in expected_from.iter().enumerate() {
                    if topo.targets_of(p).contains(&q) {
                        lost += e.saturating_sub(out.distinct[p]);
                    }
                }
                dups += out.dups + out.foreign;
            }
            Ok(Err(e)) => {
                first_err.get_or_insert(e.context("subscriber"));
            }
            Err(e) => {
                first_err.get_or_insert(anyhow!("subscriber task: {e}"));
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    if interrupted() {
        bail!("interrupted");
    }

    let consumed = total();
    let consume_end_ns = counters
        .iter()
        .map(|c| c.last_ns.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0);
    let published: u64 = shared
        .iter()
        .map(|s| s.written.load(Ordering::Relaxed))
        .sum();
    let publish_secs = publish_end_ns.saturating_sub(t0_ns) as f64 / 1e9;
    let consume_secs = consume_end_ns.saturating_sub(t0_ns) as f64 / 1e9;
    let rate = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    Ok(ScenarioResult {
        protocol: "mqtt".into(),
        scenario: topo.name.clone(),
        size: spec.size,
        confirm: spec.qos == 1,
        rate_limit: spec.rate,
        publishers: topo.publishers,
        queues: topo.queues,
        consumers: topo.consumers(),
        published,
        confirmed: shared.iter().map(|s| s.acked.load(Ordering::Relaxed)).sum(),
        nacked: shared
            .iter()
            .map(|s| s.nacked.load(Ordering::Relaxed))
            .sum(),
        expected: expected.iter().sum(),
        consumed,
        missing: lost,
        unexpected: dups,
        publish_secs,
        consume_secs,
        publish_rate: rate(published, publish_secs),
        consume_rate: rate(consumed, consume_secs),
        latency: Latency::from_histogram(&hist),
        qos: Some(spec.qos),
        mqtt_version: Some(version_name(spec.mqtt_v5).into()),
        ..Default::default()
    })
}

/// Polls a publisher's event loop: counts writes and acks and gives permits back.
async fn pub_driver(mut lp: Loop, sh: Arc<PubShared>, qos: u8) -> Result<()> {
    let r = async {
        loop {
            match lp.next().await? {
                Ev::Sent { .. } => {
                    sh.written.fetch_add(1, Ordering::Relaxed);
                    if qos == 0 {
                        sh.permits.add_permits(1);
                    }
                }
                Ev::PubAck { ok, .. } => {
                    sh.acked.fetch_add(1, Ordering::Relaxed);
                    if !ok {
                        sh.nacked.fetch_add(1, Ordering::Relaxed);
                    }
                    sh.permits.add_permits(1);
                }
                Ev::Disconnected => return Ok(()),
                _ => {}
            }
        }
    }
    .await;
    sh.permits.close(); // wakes the issuer if it waits for a permit
    r
}

#[allow(clippy::too_many_arguments)]
async fn publish_loop(
    client: Client,
    sh: Arc<PubShared>,
    window: usize,
    topic: String,
    spec: Arc<RunSpec>,
    t0: Instant,
    index: usize,
    targets: Vec<Arc<SubCounters>>,
) -> Result<PubStats> {
    let template = clock::template(spec.size);
    let deadline = spec.stop.duration.map(|d| t0 + d);
    let max = spec.stop.count.unwrap_or(u64::MAX).min(1 << ID_SEQ_BITS);
    let interval = spec.rate.map(|r| 1.0 / r);
    let id_base = (index as u64) << ID_SEQ_BITS;
    let failed = || targets.iter().any(|c| c.failed.load(Ordering::Relaxed));
    let closed = || anyhow!("the connection failed (see the publisher connection's error)");
    let mut issued = 0u64;
    while issued < max && !interrupted() && !failed() {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        if let Some(lag) = spec.max_lag {
            // Wait while this publisher is `lag` messages ahead of its slowest subscriber.
            loop {
                let seen = targets
                    .iter()
                    .map(|c| c.from[index].load(Ordering::Relaxed))
                    .min()
                    .unwrap_or(u64::MAX);
                if issued.saturating_sub(seen) < lag || interrupted() || failed() {
                    break;
                }
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
        }
        if let Some(iv) = interval {
            let due = t0 + Duration::from_secs_f64(iv * issued as f64);
            if due > now {
                if deadline.is_some_and(|d| due >= d) {
                    break;
                }
                tokio::time::sleep_until(due).await;
            }
        }
        match tokio::time::timeout(STALL, sh.permits.acquire()).await {
            Ok(Ok(permit)) => permit.forget(),
            Ok(Err(_)) => return Err(closed()),
            Err(_) => bail!(
                "no progress for {STALL:?}: {window} publishes handed over and not {}",
                if spec.qos == 1 {
                    "acknowledged"
                } else {
                    "written"
                }
            ),
        }
        let mut body = template.clone();
        clock::stamp(&mut body);
        body[8..16].copy_from_slice(&(id_base | issued).to_le_bytes());
        client
            .publish(&topic, spec.qos, body)
            .await
            .map_err(|e| e.context("publish"))?;
        issued += 1;
    }
    // Everything written (QoS 0) or acknowledged (QoS 1): all permits are back.
    match tokio::time::timeout(STALL, sh.permits.acquire_many(window as u32)).await {
        Ok(Ok(p)) => p.forget(),
        Ok(Err(_)) => return Err(closed()),
        Err(_) => bail!(
            "no progress for {STALL:?}: {} of {issued} publishes not {}",
            window - sh.permits.available_permits(),
            if spec.qos == 1 {
                "acknowledged"
            } else {
                "written"
            }
        ),
    }
    let end_ns = clock::now_ns();
    client.disconnect();
    Ok(PubStats { issued, end_ns })
}

async fn sub_loop(
    client: Client,
    mut lp: Loop,
    ctr: Arc<SubCounters>,
    mut stop: watch::Receiver<bool>,
    npubs: usize,
) -> Result<SubOut> {
    let mut out = SubOut {
        hist: clock::new_histogram(),
        distinct: vec![0; npubs],
        dups: 0,
        foreign: 0,
    };
    let mut seen: Vec<Vec<u64>> = vec![Vec::new(); npubs];
    loop {
        tokio::select! {
            biased;
            ev = lp.next() => {
                if let Ev::Publish { head, len } = ev? {
                    let now = clock::now_ns();
                    let id = u64::from_le_bytes(head[8..16].try_into().unwrap());
                    let p = (id >> ID_SEQ_BITS) as usize;
                    if len < BODY_MIN || p >= npubs {
                        out.foreign += 1;
                    } else {
                        clock::record(&mut out.hist, &head, now);
                        if mark(&mut seen[p], id & ((1 << ID_SEQ_BITS) - 1)) {
                            out.distinct[p] += 1;
                        } else {
                            out.dups += 1;
                        }
                        ctr.from[p].fetch_add(1, Ordering::Relaxed);
                    }
                    ctr.received.fetch_add(1, Ordering::Relaxed);
                    ctr.last_ns.store(now, Ordering::Relaxed);
                }
                if stop.has_changed().unwrap_or(true) {
                    break;
                }
            }
            _ = stop.changed() => break,
        }
    }
    client.disconnect();
    lp.finish(Duration::from_secs(2)).await;
    Ok(out)
}
