//! AMQP 0-9-1 with lapin: a publisher with publisher confirms (persistent
//! messages to a durable queue through the default exchange) and a consumer that
//! acknowledges each delivery after recording it.

use anyhow::{Context, Result, bail};
use futures_util::stream::{FuturesUnordered, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::{Ctx, supervise};

/// A frozen node accepts TCP connections and then says nothing.
const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// A confirm outstanding this long means the connection's node is gone or frozen.
const STALL: Duration = Duration::from_secs(3);
/// Unconfirmed publishes per publisher.
const WINDOW: usize = 100;
/// No delivery for this long while publishers run: try the other node.
const IDLE: Duration = Duration::from_secs(3);

async fn timed<T, E>(what: &str, f: impl Future<Output = Result<T, E>>) -> Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout(OP_TIMEOUT, f).await {
        Ok(r) => r.with_context(|| what.to_string()),
        Err(_) => bail!("{what}: no answer within {OP_TIMEOUT:?}"),
    }
}

/// A connection and channel with the durable queue declared.
async fn open(ctx: &Ctx, addr: &str) -> Result<(Connection, Channel)> {
    let url = format!("amqp://guest:guest@{addr}/%2f");
    let conn = timed(
        "connect",
        Connection::connect(&url, ConnectionProperties::default()),
    )
    .await?;
    let ch = timed("channel.open", conn.create_channel()).await?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    timed(
        "queue.declare",
        ch.queue_declare(ctx.queue.as_str().into(), durable, FieldTable::default()),
    )
    .await?;
    Ok((conn, ch))
}

/// Best effort: a killed node's connection is gone already, a frozen one never answers.
async fn close(conn: Connection) {
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.close(200, "OK".into())).await;
}

pub async fn setup(ctx: &Ctx, node: usize) -> Result<()> {
    let (conn, _) = open(ctx, &ctx.addrs[node]).await?;
    close(conn).await;
    Ok(())
}

pub async fn publisher(ctx: &Ctx, first: usize, stop: &CancellationToken) {
    supervise(ctx, true, first, stop, |addr| publish(ctx, addr, stop)).await
}

async fn publish(ctx: &Ctx, addr: String, stop: &CancellationToken) -> Result<()> {
    let (conn, ch) = open(ctx, &addr).await?;
    let r = publish_on(ctx, &ch, stop).await;
    close(conn).await;
    r
}

async fn publish_on(ctx: &Ctx, ch: &Channel, stop: &CancellationToken) -> Result<()> {
    timed(
        "confirm.select",
        ch.confirm_select(ConfirmSelectOptions::default()),
    )
    .await?;
    let props = BasicProperties::default().with_delivery_mode(2);
    let mut tick = ctx.ticker();
    let mut confirms = FuturesUnordered::new();
    // Sent and unconfirmed, by id (ids grow with time: the first is the oldest).
    let mut pending: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut stopping: Option<Instant> = None;
    loop {
        if let Some(at) = stopping
            && (pending.is_empty() || at.elapsed() > STALL)
        {
            return Ok(());
        }
        if let Some((_, t)) = pending.first_key_value()
            && t.elapsed() > STALL
        {
            bail!("{} publishes unconfirmed for {STALL:?}", pending.len());
        }
        tokio::select! {
            _ = stop.cancelled(), if stopping.is_none() => stopping = Some(Instant::now()),
            _ = tick.tick(), if stopping.is_none() && pending.len() < WINDOW => {
                let m = ctx.ledger.next_message();
                let publish = ch.basic_publish(
                    "".into(),
                    ctx.queue.as_str().into(),
                    BasicPublishOptions::default(),
                    &m.body,
                    props.clone(),
                );
                let confirm = timed("basic.publish", publish).await?;
                pending.insert(m.id, Instant::now());
                confirms.push(async move { (m, confirm.await) });
            }
            Some((m, r)) = confirms.next() => {
                pending.remove(&m.id);
                match r.context("waiting for the confirm")? {
                    Confirmation::Ack(_) => ctx.ledger.confirmed(&m),
                    // Not confirmed: the id is given up (the next message has a new one).
                    Confirmation::Nack(_) | Confirmation::NotRequested => {}
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

pub async fn consumer(ctx: &Ctx, first: usize, stop: &CancellationToken) {
    supervise(ctx, false, first, stop, |addr| consume(ctx, addr, stop)).await
}

async fn consume(ctx: &Ctx, addr: String, stop: &CancellationToken) -> Result<()> {
    let (conn, ch) = open(ctx, &addr).await?;
    let r: Result<()> = async {
        timed("basic.qos", ch.basic_qos(200, BasicQosOptions::default())).await?;
        let mut deliveries = timed(
            "basic.consume",
            ch.basic_consume(
                ctx.queue.as_str().into(),
                "drill".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                n = tokio::time::timeout(IDLE, deliveries.next()) => n,
            };
            let d = match next {
                Err(_) => bail!("no delivery for {IDLE:?}"),
                Ok(None) => bail!("the consumer was cancelled"),
                Ok(Some(d)) => d.context("delivery")?,
            };
            ctx.ledger.received(&d.data);
            timed("basic.ack", d.acker.ack(BasicAckOptions::default())).await?;
        }
    }
    .await;
    close(conn).await;
    r
}

/// Takes every message left in the queue on node `node` (basic.get until empty).
pub async fn sweep(ctx: &Ctx, node: usize) -> Result<()> {
    let (conn, ch) = open(ctx, &ctx.addrs[node]).await?;
    let r: Result<()> = async {
        loop {
            let got = timed(
                "basic.get",
                ch.basic_get(ctx.queue.as_str().into(), BasicGetOptions::default()),
            )
            .await?;
            let Some(m) = got else { return Ok(()) };
            ctx.ledger.received(&m.delivery.data);
            timed(
                "basic.ack",
                m.delivery.acker.ack(BasicAckOptions::default()),
            )
            .await?;
        }
    }
    .await;
    close(conn).await;
    r
}

/// The failover as a client of the stable endpoint sees it: from `since` (the
/// kill) until a persistent publish through `addr` (the surviving node's address,
/// forwarded to the old active before the take-over and served after it) is
/// confirmed. Tries every 50 ms, each try bounded by a second.
pub async fn probe(ctx: &Ctx, addr: &str, since: Instant) -> Duration {
    let queue = format!("{}-probe", ctx.queue);
    loop {
        let attempt = async {
            let url = format!("amqp://guest:guest@{addr}/%2f");
            let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
            let ch = conn.create_channel().await?;
            let mut args = FieldTable::default();
            // One message at most: the probe's queue never grows.
            args.insert("x-max-length".into(), lapin::types::AMQPValue::LongInt(1));
            let durable = QueueDeclareOptions {
                durable: true,
                ..Default::default()
            };
            ch.queue_declare(queue.as_str().into(), durable, args)
                .await?;
            ch.confirm_select(ConfirmSelectOptions::default()).await?;
            let confirm = ch
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    b"probe",
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await?
                .await?;
            let _ = conn.close(200, "OK".into()).await;
            Ok::<bool, lapin::Error>(matches!(confirm, Confirmation::Ack(_)))
        };
        if let Ok(Ok(true)) = tokio::time::timeout(Duration::from_secs(1), attempt).await {
            return since.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
