//! AMQP 0-9-1 driver (lapin).
//!
//! Layout of a run: one admin connection declares the scenario's queues (and
//! the fanout exchange) under a unique prefix and deletes them at the end,
//! whatever happened. Each consumer and each publisher has its own connection
//! (so broker flow control on publishers never holds back consumer acks) and
//! one channel. Consumers are subscribed before the first publish.

use crate::clock;
use crate::interrupted;
use crate::report::{Latency, ScenarioResult};
use crate::scenario::{Routing, RunSpec};
use anyhow::{Context, Result, anyhow, bail};
use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use hdrhistogram::Histogram;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{
    Acker, BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer,
    ExchangeKind, PublisherConfirm,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// A publisher that can neither write nor get a confirm for this long fails.
const STALL: Duration = Duration::from_secs(30);

/// `amqp://user:pass@host` → `amqp://user:***@host`, for printing.
pub fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((cred, host)) = rest.split_once('@')
        && let Some((user, _)) = cred.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_string()
}

async fn timed<T, E>(what: &str, f: impl Future<Output = Result<T, E>>) -> Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout(OP_TIMEOUT, f).await {
        Ok(r) => r.with_context(|| what.to_string()),
        Err(_) => bail!("{what}: no reply within {OP_TIMEOUT:?}"),
    }
}

async fn connect(url: &str, name: &str) -> Result<Connection> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    match tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(url, props)).await {
        Ok(r) => r.with_context(|| format!("connecting to {}", redact(url))),
        Err(_) => bail!(
            "connecting to {}: no answer within {CONNECT_TIMEOUT:?}",
            redact(url)
        ),
    }
}

async fn close(conn: &Connection) {
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.close(200, "OK".into())).await;
}

/// What the run declared, so that cleanup deletes exactly that.
#[derive(Default)]
struct Declared {
    queues: Vec<String>,
    exchange: Option<String>,
}

pub async fn run(url: &str, spec: &RunSpec) -> Result<ScenarioResult> {
    if spec.topology.routing == Routing::Idle {
        bail!(
            "{} is an MQTT scenario (use an mqtt:// URL)",
            spec.topology.name
        );
    }
    if spec.topology.routing == Routing::Shared {
        bail!(
            "{} is a STOMP scenario for now (use a stomp:// URL)",
            spec.topology.name
        );
    }
    let admin = connect(url, "switchboard-bench admin").await?;
    let mut declared = Declared::default();
    let result = run_declared(url, spec, &admin, &mut declared).await;
    let cleaned = cleanup(&admin, &declared).await;
    close(&admin).await;
    let r = result?;
    cleaned.context("deleting the run's queues/exchange")?;
    Ok(r)
}

async fn cleanup(admin: &Connection, d: &Declared) -> Result<()> {
    if d.queues.is_empty() && d.exchange.is_none() {
        return Ok(());
    }
    // A fresh channel: the one used for declaring may have been closed by an error.
    let ch = timed("opening a channel for cleanup", admin.create_channel()).await?;
    let mut first_err = None;
    for q in &d.queues {
        if let Err(e) = timed(
            &format!("queue.delete {q}"),
            ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()),
        )
        .await
        {
            first_err.get_or_insert(e);
        }
    }
    if let Some(x) = &d.exchange
        && let Err(e) = timed(
            &format!("exchange.delete {x}"),
            ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default()),
        )
        .await
    {
        first_err.get_or_insert(e);
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), ch.close(200, "OK".into())).await;
    first_err.map_or(Ok(()), Err)
}

#[derive(Default)]
struct ConsumerCounters {
    /// Set when the consumer fails, so that its publishers stop early.
    failed: std::sync::atomic::AtomicBool,
    received: AtomicU64,
    /// clock::now_ns() of the latest delivery.
    last_ns: AtomicU64,
}

#[derive(Debug, Default, Clone, Copy)]
struct PubStats {
    published: u64,
    confirmed: u64,
    nacked: u64,
    end_ns: u64,
}

async fn run_declared(
    url: &str,
    spec: &RunSpec,
    admin: &Connection,
    declared: &mut Declared,
) -> Result<ScenarioResult> {
    let topo = &spec.topology;
    let durable = spec.persistent;
    let ach = timed("opening the admin channel", admin.create_channel()).await?;

    // --- topology
    fn queue_args(spec: &RunSpec) -> FieldTable {
        let mut t = FieldTable::default();
        if let Some(kind) = &spec.queue_type {
            t.insert(
                "x-queue-type".into(),
                lapin::types::AMQPValue::LongString(kind.as_str().into()),
            );
        }
        t
    }
    let queues: Vec<String> = (0..topo.queues)
        .map(|i| format!("{}-q{i}", spec.prefix))
        .collect();
    for q in &queues {
        timed(
            &format!("queue.declare {q}"),
            ach.queue_declare(
                q.as_str().into(),
                QueueDeclareOptions {
                    durable: durable || spec.queue_type.is_some(),
                    ..Default::default()
                },
                queue_args(spec),
            ),
        )
        .await?;
        declared.queues.push(q.clone());
    }
    // (exchange, routing key) per publisher
    let routes: Vec<(String, String)> = match topo.routing {
        Routing::Direct => (0..topo.publishers)
            .map(|p| (String::new(), queues[topo.targets_of(p)[0]].clone()))
            .collect(),
        Routing::Fanout => {
            let x = format!("{}-fanout", spec.prefix);
            timed(
                &format!("exchange.declare {x}"),
                ach.exchange_declare(
                    x.as_str().into(),
                    ExchangeKind::Fanout,
                    ExchangeDeclareOptions {
                        durable,
                        ..Default::default()
                    },
                    FieldTable::default(),
                ),
            )
            .await?;
            declared.exchange = Some(x.clone());
            for q in &queues {
                timed(
                    &format!("queue.bind {q} {x}"),
                    ach.queue_bind(
                        q.as_str().into(),
                        x.as_str().into(),
                        "".into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    ),
                )
                .await?;
            }
            (0..topo.publishers)
                .map(|_| (x.clone(), String::new()))
                .collect()
        }
        Routing::Idle | Routing::Shared => unreachable!("rejected in run"),
    };

    // --- connections (kept in vectors so that they are closed at the end)
    let mut conns: Vec<Connection> = Vec::new();
    let result = async {
        let mut consumers: Vec<(Channel, Consumer, String)> = Vec::new();
        for (i, q) in queues.iter().enumerate() {
            let conn = connect(url, &format!("switchboard-bench consumer {i}")).await?;
            let ch = timed("channel.open", conn.create_channel()).await?;
            conns.push(conn);
            if !spec.auto_ack && spec.prefetch > 0 {
                timed(
                    "basic.qos",
                    ch.basic_qos(spec.prefetch, BasicQosOptions::default()),
                )
                .await?;
            }
            let tag = format!("{}-c{i}", spec.prefix);
            let consumer = timed(
                &format!("basic.consume {q}"),
                ch.basic_consume(
                    q.as_str().into(),
                    tag.as_str().into(),
                    BasicConsumeOptions {
                        no_ack: spec.auto_ack,
                        ..Default::default()
                    },
                    FieldTable::default(),
                ),
            )
            .await?;
            consumers.push((ch, consumer, tag));
        }
        let mut publishers: Vec<Channel> = Vec::new();
        for p in 0..topo.publishers {
            let conn = connect(url, &format!("switchboard-bench publisher {p}")).await?;
            let ch = timed("channel.open", conn.create_channel()).await?;
            conns.push(conn);
            if spec.confirm {
                timed(
                    "confirm.select",
                    ch.confirm_select(ConfirmSelectOptions::default()),
                )
                .await?;
            }
            publishers.push(ch);
        }
        measure(spec, consumers, publishers, routes).await
    }
    .await;
    for c in &conns {
        close(c).await;
    }
    let mut result = result;
    if let Ok(r) = &mut result
        && r.consumed < r.expected
    {
        // Not all delivered before the drain timeout: what is still queued
        // (now that the consumers' unacked deliveries are requeued) is backlog;
        // only the rest is lost.
        let short = r.expected - r.consumed;
        let mut queued = 0;
        for attempt in 0..10 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            queued = 0;
            for q in &queues {
                let opts = QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                };
                let decl = ach.queue_declare(q.as_str().into(), opts, FieldTable::default());
                queued += u64::from(
                    timed(&format!("queue.declare passive {q}"), decl)
                        .await?
                        .message_count(),
                );
            }
            if queued >= short {
                break;
            }
        }
        r.backlog = queued.min(short);
        r.missing = short - r.backlog;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), ach.close(200, "OK".into())).await;
    result
}

async fn measure(
    spec: &RunSpec,
    consumers: Vec<(Channel, Consumer, String)>,
    publishers: Vec<Channel>,
    routes: Vec<(String, String)>,
) -> Result<ScenarioResult> {
    let topo = &spec.topology;
    let spec_arc = Arc::new(spec.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let counters: Vec<Arc<ConsumerCounters>> = (0..consumers.len())
        .map(|_| Arc::new(ConsumerCounters::default()))
        .collect();

    let t0 = Instant::now();
    let t0_ns = clock::now_ns();
    let mut cons_tasks = Vec::new();
    for ((ch, consumer, tag), ctr) in consumers.into_iter().zip(&counters) {
        let (spec, stop, ctr) = (spec_arc.clone(), stop_rx.clone(), ctr.clone());
        cons_tasks.push(tokio::spawn(async move {
            let r = consume_loop(ch, consumer, tag, spec, stop, ctr.clone()).await;
            if r.is_err() {
                ctr.failed.store(true, Ordering::Relaxed);
            }
            r
        }));
    }
    let mut pub_tasks = Vec::new();
    for (p, (ch, (x, rk))) in publishers.into_iter().zip(routes).enumerate() {
        let targets: Vec<_> = topo
            .targets_of(p)
            .into_iter()
            .map(|q| counters[q].clone())
            .collect();
        pub_tasks.push(tokio::spawn(publish_loop(
            ch,
            x,
            rk,
            spec_arc.clone(),
            t0,
            targets,
        )));
    }

    let mut first_err: Option<anyhow::Error> = None;
    let mut pub_stats = Vec::new();
    for t in pub_tasks {
        match t.await {
            Ok(Ok(s)) => pub_stats.push(s),
            Ok(Err(e)) => {
                first_err.get_or_insert(e.context("publisher"));
                pub_stats.push(PubStats::default());
            }
            Err(e) => {
                first_err.get_or_insert(anyhow!("publisher task: {e}"));
                pub_stats.push(PubStats::default());
            }
        }
    }
    let publish_end_ns = pub_stats.iter().map(|s| s.end_ns).max().unwrap_or(t0_ns);

    // What each consumer should see.
    let mut expected = vec![0u64; topo.consumers()];
    for (p, s) in pub_stats.iter().enumerate() {
        for q in topo.targets_of(p) {
            expected[q] += s.published - s.nacked;
        }
    }

    // Drain: wait until every consumer has what it should, or the timeout.
    let deadline = Instant::now() + spec.drain_timeout;
    while first_err.is_none() && !interrupted() && Instant::now() < deadline {
        if counters
            .iter()
            .zip(&expected)
            .all(|(c, e)| c.received.load(Ordering::Relaxed) >= *e)
        {
            break;
        }
        if cons_tasks.iter().any(|t| t.is_finished()) {
            break; // a consumer stopped early: its error is collected below
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let _ = stop_tx.send(true);

    let mut hist = clock::new_histogram();
    for t in cons_tasks {
        match t.await {
            Ok(Ok(h)) => {
                hist.add(&h)
                    .map_err(|e| anyhow!("merging histograms: {e}"))?;
            }
            Ok(Err(e)) => {
                first_err.get_or_insert(e.context("consumer"));
            }
            Err(e) => {
                first_err.get_or_insert(anyhow!("consumer task: {e}"));
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    if interrupted() {
        bail!("interrupted");
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
    let expected_total: u64 = expected.iter().sum();
    let published: u64 = pub_stats.iter().map(|s| s.published).sum();
    let publish_secs = publish_end_ns.saturating_sub(t0_ns) as f64 / 1e9;
    let consume_secs = consume_end_ns.saturating_sub(t0_ns) as f64 / 1e9;
    let rate = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    Ok(ScenarioResult {
        protocol: "amqp".into(),
        scenario: topo.name.clone(),
        size: spec.size,
        confirm: spec.confirm,
        persistent: spec.persistent,
        prefetch: spec.prefetch,
        auto_ack: spec.auto_ack,
        rate_limit: spec.rate,
        publishers: topo.publishers,
        queues: topo.queues,
        consumers: topo.consumers(),
        published,
        confirmed: pub_stats.iter().map(|s| s.confirmed).sum(),
        nacked: pub_stats.iter().map(|s| s.nacked).sum(),
        expected: expected_total,
        consumed,
        missing: expected_total.saturating_sub(consumed),
        unexpected: consumed.saturating_sub(expected_total),
        publish_secs,
        consume_secs,
        publish_rate: rate(published, publish_secs),
        consume_rate: rate(consumed, consume_secs),
        latency: Latency::from_histogram(&hist),
        ..Default::default()
    })
}

type SendFuture = std::pin::Pin<Box<dyn Future<Output = lapin::Result<PublisherConfirm>> + Send>>;
type ConfirmFuture = PublisherConfirm;

async fn publish_loop(
    ch: Channel,
    exchange: String,
    rk: String,
    spec: Arc<RunSpec>,
    t0: Instant,
    targets: Vec<Arc<ConsumerCounters>>,
) -> Result<PubStats> {
    let props = if spec.persistent {
        BasicProperties::default().with_delivery_mode(2)
    } else {
        BasicProperties::default()
    };
    let template = clock::template(spec.size);
    let deadline = spec.stop.duration.map(|d| t0 + d);
    let max = spec.stop.count.unwrap_or(u64::MAX);
    let interval = spec.rate.map(|r| 1.0 / r);
    let window = spec.confirm_window.max(1);
    let pipeline = spec.pipeline.max(1);

    let mut st = PubStats::default();
    // Publishes handed to lapin and not yet written to the socket.
    let mut sends: FuturesUnordered<SendFuture> = FuturesUnordered::new();
    // Written publishes whose confirm has not arrived (only with --confirm).
    let mut confirms: FuturesUnordered<ConfirmFuture> = FuturesUnordered::new();

    let on_sent = |r: lapin::Result<PublisherConfirm>,
                   st: &mut PubStats,
                   confirms: &mut FuturesUnordered<ConfirmFuture>|
     -> Result<()> {
        let pc = r.context("basic.publish")?;
        st.published += 1;
        if spec.confirm {
            confirms.push(pc);
        }
        Ok(())
    };
    let on_confirm = |r: lapin::Result<Confirmation>, st: &mut PubStats| -> Result<()> {
        match r.context("waiting for a publisher confirm")? {
            Confirmation::Ack(_) => st.confirmed += 1,
            Confirmation::Nack(_) => {
                st.confirmed += 1;
                st.nacked += 1
            }
            Confirmation::NotRequested => {}
        }
        Ok(())
    };

    let mut issued = 0u64;
    let failed = || targets.iter().any(|c| c.failed.load(Ordering::Relaxed));
    while issued < max && !interrupted() && !failed() {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        if let Some(lag) = spec.max_lag {
            // Wait while this publisher is more than `lag` messages ahead of the
            // slowest consumer it feeds (only this publisher feeds those queues
            // in qN-N, whose lanes are 1:1, and fanout, which has 1 publisher; in
            // fanin-N the consumer's count includes the other publishers'
            // messages, so there the bound is only approximate).
            loop {
                let seen = targets
                    .iter()
                    .map(|c| c.received.load(Ordering::Relaxed))
                    .min()
                    .unwrap_or(u64::MAX);
                if issued.saturating_sub(seen) < lag || interrupted() {
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
        let mut body = template.clone();
        clock::stamp(&mut body);
        let ch2 = ch.clone();
        let x = exchange.as_str().into();
        let k = rk.as_str().into();
        let p = props.clone();
        sends.push(Box::pin(async move {
            ch2.basic_publish(x, k, BasicPublishOptions::default(), &body, p)
                .await
        }));
        issued += 1;
        // Poll what was just pushed so that lapin queues its frames now (the
        // stamp is then the hand-over time), and collect finished writes.
        while let Some(Some(r)) = sends.next().now_or_never() {
            on_sent(r, &mut st, &mut confirms)?;
        }
        if spec.confirm {
            while let Some(Some(r)) = confirms.next().now_or_never() {
                on_confirm(r, &mut st)?;
            }
        }
        // Bound what is in flight.
        loop {
            let unconfirmed = if spec.confirm {
                sends.len() + confirms.len()
            } else {
                0
            };
            if sends.len() < pipeline && unconfirmed < window {
                break;
            }
            tokio::select! {
                Some(r) = sends.next(), if !sends.is_empty() => on_sent(r, &mut st, &mut confirms)?,
                Some(r) = confirms.next(), if !confirms.is_empty() => on_confirm(r, &mut st)?,
                _ = tokio::time::sleep(STALL) => bail!(
                    "no progress for {STALL:?}: {} publishes not written, {} not confirmed \
                     (broker blocked the connection, or lost confirms?)",
                    sends.len(),
                    confirms.len()
                ),
            }
        }
    }
    loop {
        match tokio::time::timeout(STALL, sends.next()).await {
            Ok(Some(r)) => on_sent(r, &mut st, &mut confirms)?,
            Ok(None) => break,
            Err(_) => bail!(
                "no progress for {STALL:?}: {} publishes not written",
                sends.len()
            ),
        }
    }
    loop {
        match tokio::time::timeout(STALL, confirms.next()).await {
            Ok(Some(r)) => on_confirm(r, &mut st)?,
            Ok(None) => break,
            Err(_) => bail!(
                "no progress for {STALL:?}: {} publishes not confirmed",
                confirms.len()
            ),
        }
    }
    st.end_ns = clock::now_ns();
    Ok(st)
}

async fn consume_loop(
    ch: Channel,
    mut consumer: Consumer,
    tag: String,
    spec: Arc<RunSpec>,
    mut stop: watch::Receiver<bool>,
    ctr: Arc<ConsumerCounters>,
) -> Result<Histogram<u64>> {
    let mut hist = clock::new_histogram();
    let ack_every = spec.ack_every.max(1);
    let mut unacked = 0u64;
    let mut last: Option<Acker> = None;
    let multiple = BasicAckOptions { multiple: true };
    loop {
        // Deliveries first: a buffered delivery is taken without touching the
        // stop signal's waiter list; the stop is checked by version after each.
        tokio::select! {
            biased;
            d = consumer.next() => match d {
                Some(Ok(d)) => {
                    let now = clock::now_ns();
                    clock::record(&mut hist, &d.data, now);
                    ctr.received.fetch_add(1, Ordering::Relaxed);
                    ctr.last_ns.store(now, Ordering::Relaxed);
                    if !spec.auto_ack {
                        unacked += 1;
                        if unacked >= ack_every {
                            d.acker.ack(multiple).await.context("basic.ack")?;
                            unacked = 0;
                            last = None;
                        } else {
                            last = Some(d.acker);
                        }
                    }
                    if stop.has_changed().unwrap_or(true) {
                        break;
                    }
                }
                Some(Err(e)) => return Err(anyhow::Error::from(e).context("consuming")),
                None => bail!("the broker cancelled consumer {tag}"),
            },
            _ = stop.changed() => break,
        }
    }
    if let Some(a) = last {
        let _ = a.ack(multiple).await;
    }
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        ch.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()),
    )
    .await;
    Ok(hist)
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts() {
        assert_eq!(
            super::redact("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(super::redact("amqp://127.0.0.1"), "amqp://127.0.0.1");
    }
}
