//! Fills a durable queue with persistent messages, with publisher confirms, and
//! exits: the set-up for measuring start-up recovery and memory with a large
//! journal (bench/recovery.sh).
//!
//!   switchboard-fill --url amqp://guest:guest@127.0.0.1:5672/%2f --queue backlog --count 1000000 --size 1024

use anyhow::{Context, Result};
use clap::Parser;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};
use std::collections::VecDeque;
use std::time::Instant;

#[derive(Parser)]
struct Cli {
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    url: String,
    #[arg(long, default_value = "backlog")]
    queue: String,
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Publishes in flight awaiting their confirm.
    #[arg(long, default_value_t = 1024)]
    window: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let conn = Connection::connect(&cli.url, ConnectionProperties::default())
        .await
        .context("connect")?;
    let ch = conn.create_channel().await?;
    let opts = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(cli.queue.as_str().into(), opts, FieldTable::default())
        .await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let body = vec![b'x'; cli.size];
    let props = BasicProperties::default().with_delivery_mode(2);
    let start = Instant::now();
    let mut window = VecDeque::new();
    let mut nacked = 0u64;
    for _ in 0..cli.count {
        let c = ch
            .basic_publish(
                "".into(),
                cli.queue.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                props.clone(),
            )
            .await?;
        window.push_back(c);
        if window.len() >= cli.window
            && let Some(c) = window.pop_front()
            && !matches!(c.await?, Confirmation::Ack(_))
        {
            nacked += 1;
        }
    }
    for c in window {
        if !matches!(c.await?, Confirmation::Ack(_)) {
            nacked += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "filled {} with {} x {} B persistent messages in {:.1} s ({:.0} msg/s), {} nacked",
        cli.queue,
        cli.count,
        cli.size,
        secs,
        cli.count as f64 / secs,
        nacked
    );
    conn.close(200, "done".into()).await?;
    Ok(())
}
