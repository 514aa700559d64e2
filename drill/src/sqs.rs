//! SQS (AWS JSON 1.0 over HTTP, SigV4 as guest/guest, the default broker user) with
//! the bench's client: SendMessage from a few connections, one request in flight
//! each (confirmed by a 200 with a MessageId), and a consumer that receives with a short visibility timeout and
//! deletes what it recorded, so a receive cut off by a failover comes back soon.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use switchboard_bench::sqs_client::{Client, Target};
use tokio_util::sync::CancellationToken;

use crate::{Ctx, supervise};

const OP_TIMEOUT: Duration = Duration::from_secs(3);
/// ReceiveMessage long-polls this long, so its timeout is longer.
const WAIT_SECS: u64 = 1;
/// Seconds a received message stays invisible before it is handed out again.
const VISIBILITY: u64 = 5;
/// The sweep gives up when the queue is still not empty after this long.
const SWEEP_LIMIT: Duration = Duration::from_secs(30);

/// Only the queue name in a QueueUrl counts, so one URL serves both nodes.
fn queue_url(ctx: &Ctx, addr: &str) -> String {
    format!("http://{addr}/000000000000/{}", ctx.queue)
}

async fn connect(addr: &str) -> Result<Client> {
    let t = Target {
        host: addr.to_string(),
        access_key: "guest".into(),
        secret: "guest".into(),
        region: "us-east-1".into(),
    };
    match tokio::time::timeout(OP_TIMEOUT, Client::connect(&t)).await {
        Ok(r) => r,
        Err(_) => bail!("no connection to {addr} within {OP_TIMEOUT:?}"),
    }
}

async fn call(c: &mut Client, action: &'static str, body: Value, limit: Duration) -> Result<Value> {
    let body = serde_json::to_vec(&body)?;
    match tokio::time::timeout(limit, c.call::<Value>(action, body)).await {
        Ok(r) => r,
        Err(_) => bail!("{action}: no answer within {limit:?}"),
    }
}

pub async fn setup(ctx: &Ctx, node: usize) -> Result<()> {
    let mut c = connect(&ctx.addrs[node]).await?;
    call(
        &mut c,
        "CreateQueue",
        json!({ "QueueName": ctx.queue }),
        OP_TIMEOUT,
    )
    .await?;
    Ok(())
}

/// SendMessage has one request in flight per connection, and each waits for both
/// nodes' fsync: the publisher's rate is split over this many connections.
const SENDERS: usize = 4;

pub async fn publisher(ctx: &Ctx, first: usize, stop: &CancellationToken) {
    let senders = (0..SENDERS).map(|i| {
        supervise(ctx, true, (first + i) % 2, stop, |addr| {
            publish(ctx, addr, stop)
        })
    });
    futures_util::future::join_all(senders).await;
}

async fn publish(ctx: &Ctx, addr: String, stop: &CancellationToken) -> Result<()> {
    let mut c = connect(&addr).await?;
    let url = queue_url(ctx, &addr);
    let mut tick = Ctx::ticker_at(ctx.rate / SENDERS as f64);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let m = ctx.ledger.next_message();
        let body = String::from_utf8_lossy(&m.body).into_owned();
        let reply = call(
            &mut c,
            "SendMessage",
            json!({ "QueueUrl": url, "MessageBody": body }),
            OP_TIMEOUT,
        )
        .await?;
        if reply
            .get("MessageId")
            .and_then(Value::as_str)
            .is_some_and(|id| !id.is_empty())
        {
            ctx.ledger.confirmed(&m);
        }
    }
}

pub async fn consumer(ctx: &Ctx, first: usize, stop: &CancellationToken) {
    supervise(ctx, false, first, stop, |addr| consume(ctx, addr, stop)).await
}

async fn consume(ctx: &Ctx, addr: String, stop: &CancellationToken) -> Result<()> {
    let mut c = connect(&addr).await?;
    let url = queue_url(ctx, &addr);
    while !stop.is_cancelled() {
        receive_batch(ctx, &mut c, &url).await?;
    }
    Ok(())
}

/// One ReceiveMessage, each body recorded, then one DeleteMessageBatch; how many
/// messages came.
async fn receive_batch(ctx: &Ctx, c: &mut Client, url: &str) -> Result<usize> {
    let reply = call(
        c,
        "ReceiveMessage",
        json!({
            "QueueUrl": url,
            "MaxNumberOfMessages": 10,
            "WaitTimeSeconds": WAIT_SECS,
            "VisibilityTimeout": VISIBILITY,
        }),
        OP_TIMEOUT + Duration::from_secs(WAIT_SECS),
    )
    .await?;
    let messages = reply
        .get("Messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut entries = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let body = m.get("Body").and_then(Value::as_str).unwrap_or_default();
        ctx.ledger.received(body.as_bytes());
        let handle = m
            .get("ReceiptHandle")
            .and_then(Value::as_str)
            .context("a message without ReceiptHandle")?;
        entries.push(json!({ "Id": i.to_string(), "ReceiptHandle": handle }));
    }
    if !entries.is_empty() {
        call(
            c,
            "DeleteMessageBatch",
            json!({ "QueueUrl": url, "Entries": entries }),
            OP_TIMEOUT,
        )
        .await?;
    }
    Ok(messages.len())
}

/// Receives until the queue on node `node` holds nothing, visible or in flight
/// (messages a stopped consumer received but did not delete come back after
/// their visibility timeout).
pub async fn sweep(ctx: &Ctx, node: usize) -> Result<()> {
    let addr = &ctx.addrs[node];
    let mut c = connect(addr).await?;
    let url = queue_url(ctx, addr);
    let t0 = Instant::now();
    while t0.elapsed() < SWEEP_LIMIT {
        if receive_batch(ctx, &mut c, &url).await? > 0 {
            continue;
        }
        let attrs = call(
            &mut c,
            "GetQueueAttributes",
            json!({
                "QueueUrl": url,
                "AttributeNames": [
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            }),
            OP_TIMEOUT,
        )
        .await?;
        let count = |name: &str| {
            attrs
                .get("Attributes")
                .and_then(|a| a.get(name))
                .and_then(Value::as_str)
                .and_then(|v| v.parse::<u64>().ok())
        };
        if count("ApproximateNumberOfMessages") == Some(0)
            && count("ApproximateNumberOfMessagesNotVisible") == Some(0)
        {
            return Ok(());
        }
    }
    bail!(
        "the SQS queue {} was not empty after {} s",
        ctx.queue,
        SWEEP_LIMIT.as_secs()
    )
}
