//! STOMP 1.2 with the bench's client: persistent SENDs to a durable queue, each with
//! a RECEIPT named after the message id, and a consumer with client-individual acks
//! that ACKs each MESSAGE after recording it.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use switchboard_bench::stomp_client::{Conn, Target};
use switchboard_stomp::frame::{Command, Frame};
use tokio_util::sync::CancellationToken;

use crate::ledger::Msg;
use crate::{Ctx, supervise};

const OP_TIMEOUT: Duration = Duration::from_secs(2);
const STALL: Duration = Duration::from_secs(3);
const WINDOW: usize = 100;
const IDLE: Duration = Duration::from_secs(3);
const SWEEP_IDLE: Duration = Duration::from_millis(1500);

fn destination(ctx: &Ctx) -> String {
    format!("/queue/{}", ctx.queue)
}

async fn connect(addr: &str) -> Result<Conn> {
    let t = Target {
        addr: addr.to_string(),
        login: "guest".into(),
        passcode: "guest".into(),
        vhost: "/".into(),
    };
    match tokio::time::timeout(OP_TIMEOUT, Conn::connect(&t)).await {
        Ok(r) => r,
        Err(_) => bail!("no CONNECTED from {addr} within {OP_TIMEOUT:?}"),
    }
}

/// Writes what was encoded, within the operation timeout (a frozen peer stops reading).
async fn flush(c: &mut Conn) -> Result<()> {
    match tokio::time::timeout(OP_TIMEOUT, c.flush()).await {
        Ok(r) => r,
        Err(_) => bail!("write blocked for {OP_TIMEOUT:?}"),
    }
}

fn subscribe_frame(ctx: &Ctx) -> Frame {
    Frame::new(Command::Subscribe)
        .with_header("id", "0")
        .with_header("destination", destination(ctx))
        .with_header("ack", "client-individual")
        .with_header("prefetch-count", "200")
}

/// Subscribes once (with a RECEIPT), which declares the durable queue.
pub async fn setup(ctx: &Ctx, node: usize) -> Result<()> {
    let mut c = connect(&ctx.addrs[node]).await?;
    c.request(subscribe_frame(ctx), "setup", OP_TIMEOUT).await?;
    c.close().await;
    Ok(())
}

pub async fn publisher(ctx: &Ctx, first: usize, stop: &CancellationToken) {
    supervise(ctx, true, first, stop, |addr| publish(ctx, addr, stop)).await
}

async fn publish(ctx: &Ctx, addr: String, stop: &CancellationToken) -> Result<()> {
    let mut c = connect(&addr).await?;
    let dest = destination(ctx);
    let mut tick = ctx.ticker();
    // Sent and unreceipted, by id (the first is the oldest).
    let mut pending: BTreeMap<u64, (Msg, Instant)> = BTreeMap::new();
    let mut stopping: Option<Instant> = None;
    loop {
        if let Some(at) = stopping
            && (pending.is_empty() || at.elapsed() > STALL)
        {
            c.close().await;
            return Ok(());
        }
        if let Some((_, (_, t))) = pending.first_key_value()
            && t.elapsed() > STALL
        {
            bail!("{} SENDs without RECEIPT for {STALL:?}", pending.len());
        }
        tokio::select! {
            _ = stop.cancelled(), if stopping.is_none() => stopping = Some(Instant::now()),
            _ = tick.tick(), if stopping.is_none() && pending.len() < WINDOW => {
                let m = ctx.ledger.next_message();
                let f = Frame::new(Command::Send)
                    .with_header("destination", dest.as_str())
                    .with_header("persistent", "true")
                    .with_header("content-type", "text/plain")
                    .with_header("receipt", m.id.to_string())
                    .with_body(m.body.clone());
                c.encode(&f);
                pending.insert(m.id, (m, Instant::now()));
                flush(&mut c).await?;
            }
            // Reading is cancel safe (tokio's read_buf): nothing read is lost.
            r = c.read() => {
                r?;
                while let Some(f) = c.next()? {
                    let id = f.header("receipt-id").and_then(|r| r.parse::<u64>().ok());
                    if f.command != Command::Receipt {
                        continue;
                    }
                    if let Some((m, _)) = id.and_then(|id| pending.remove(&id)) {
                        ctx.ledger.confirmed(&m);
                    }
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

pub async fn consumer(ctx: &Ctx, first: usize, stop: &CancellationToken) {
    supervise(ctx, false, first, stop, |addr| {
        consume(ctx, addr, stop, IDLE, true)
    })
    .await
}

/// One connection of a consumer. `idle_is_error`: a quiet connection is a stuck one
/// (the consumer tries the other node); for the sweep it means the queue is empty.
async fn consume(
    ctx: &Ctx,
    addr: String,
    stop: &CancellationToken,
    idle: Duration,
    idle_is_error: bool,
) -> Result<()> {
    let mut c = connect(&addr).await?;
    c.encode(&subscribe_frame(ctx));
    flush(&mut c).await?;
    loop {
        let r = tokio::select! {
            _ = stop.cancelled() => break,
            r = tokio::time::timeout(idle, c.read()) => r,
        };
        match r {
            Err(_) if idle_is_error => bail!("no message for {idle:?}"),
            Err(_) => break,
            Ok(r) => r?,
        }
        while let Some(f) = c.next()? {
            if f.command != Command::Message {
                continue;
            }
            ctx.ledger.received(&f.body);
            let ack = f.header("ack").context("MESSAGE without an ack header")?;
            c.encode(&Frame::new(Command::Ack).with_header("id", ack));
        }
        flush(&mut c).await?;
    }
    c.close().await;
    Ok(())
}

/// Takes what is left in the queue on node `node`.
pub async fn sweep(ctx: &Ctx, node: usize) -> Result<()> {
    let never = CancellationToken::new();
    consume(ctx, ctx.addrs[node].clone(), &never, SWEEP_IDLE, false).await
}
