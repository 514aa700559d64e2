//! One publisher with confirms into a fresh durable queue, persistent messages, with
//! or without a consumer keeping up: a growing backlog's fill rate against the rate
//! when nothing accumulates, the same publisher and window in both (issue 16).
//! The queue is deleted at the end unless --keep.
//!
//!   switchboard-backlog --url amqp://guest:guest@127.0.0.1:5672/%2f --count 300000 --size 1024 [--consume]

use anyhow::{Context, Result};
use clap::Parser;
use futures_util::stream::{FuturesUnordered, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties, PublisherConfirm};

const PIPELINE: usize = 64;
type SendFuture = std::pin::Pin<Box<dyn Future<Output = lapin::Result<PublisherConfirm>> + Send>>;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Cli {
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    url: String,
    #[arg(long, default_value_t = 300_000)]
    count: u64,
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Publishes in flight awaiting their confirm.
    #[arg(long, default_value_t = 1024)]
    window: usize,
    /// A consumer (own connection, prefetch 1000, multiple-ack every 100) takes
    /// everything as it comes; without it the backlog grows to --count.
    #[arg(long)]
    consume: bool,
    /// Queue name [default: sb-backlog-<pid>].
    #[arg(long)]
    queue: Option<String>,
    /// Leave the queue and its messages in place (bench/recovery.sh restarts the
    /// broker on them).
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let queue = cli
        .queue
        .clone()
        .unwrap_or_else(|| format!("sb-backlog-{}", std::process::id()));
    let conn = Connection::connect(&cli.url, ConnectionProperties::default())
        .await
        .context("connect")?;
    let ch = conn.create_channel().await?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(queue.as_str().into(), durable, FieldTable::default())
        .await?;
    let consumer = if cli.consume {
        Some(tokio::spawn(consume(
            cli.url.clone(),
            queue.clone(),
            cli.count,
        )))
    } else {
        None
    };
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let body = vec![b'x'; cli.size];
    let props = BasicProperties::default().with_delivery_mode(2);
    let start = Instant::now();
    // As switchboard-bench does: up to PIPELINE publishes handed to lapin before
    // waiting for one to be written, so the client is not what sets the rate.
    let mut sends: FuturesUnordered<SendFuture> = FuturesUnordered::new();
    let mut confirms: FuturesUnordered<PublisherConfirm> = FuturesUnordered::new();
    let mut nacked = 0u64;
    let mut issued = 0u64;
    let mut confirmed = 0u64;
    while confirmed < cli.count {
        while issued < cli.count
            && sends.len() < PIPELINE
            && sends.len() + confirms.len() < cli.window
        {
            let (ch, q, b, p) = (ch.clone(), queue.clone(), body.clone(), props.clone());
            sends.push(Box::pin(async move {
                ch.basic_publish(
                    "".into(),
                    q.as_str().into(),
                    BasicPublishOptions::default(),
                    &b,
                    p,
                )
                .await
            }));
            issued += 1;
        }
        tokio::select! {
            Some(r) = sends.next(), if !sends.is_empty() => confirms.push(r?),
            Some(r) = confirms.next(), if !confirms.is_empty() => {
                confirmed += 1;
                if !matches!(r?, Confirmation::Ack(_)) {
                    nacked += 1;
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let consumed = match consumer {
        Some(h) => Some(h.await??),
        None => None,
    };
    let mode = if cli.consume { "consumed" } else { "fill" };
    print!(
        "{mode}: {} x {} B persistent, window {}: confirmed in {:.2} s = {:.0} msg/s, {} nacked",
        cli.count,
        cli.size,
        cli.window,
        secs,
        cli.count as f64 / secs,
        nacked
    );
    match consumed {
        Some((n, s)) => println!("; consumed {n} in {s:.2} s = {:.0} msg/s", n as f64 / s),
        None => println!(),
    }
    if !cli.keep {
        ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await?;
    }
    conn.close(200, "done".into()).await?;
    Ok(())
}

/// Consumes `count` messages; returns how many came and the seconds until the last.
async fn consume(url: String, queue: String, count: u64) -> Result<(u64, f64)> {
    let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    ch.basic_qos(1000, BasicQosOptions::default()).await?;
    let mut deliveries = ch
        .basic_consume(
            queue.as_str().into(),
            "backlog".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let start = Instant::now();
    let mut n = 0u64;
    while n < count {
        let d = match tokio::time::timeout(Duration::from_secs(30), deliveries.next()).await {
            Ok(Some(d)) => d?,
            _ => break,
        };
        n += 1;
        if n.is_multiple_of(100) || n == count {
            d.acker.ack(BasicAckOptions { multiple: true }).await?;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    conn.close(200, "done".into()).await?;
    Ok((n, secs))
}
