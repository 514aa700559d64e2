//! MQTT 3.1.1 with the bench's rumqttc wrapper: a QoS 1 publisher whose PUBACKs are
//! matched to messages by packet id, and a consumer on a persistent session
//! (clean_session=false) subscribed once before any load, so what is published
//! while it is away waits in its session queue across failovers.

use anyhow::{Context, Result, bail};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_bench::mqtt_client::{self, Client, Ev, Loop, Opts, Target};
use tokio_util::sync::CancellationToken;

use crate::ledger::{BODY_LEN, Ledger, Msg};
use crate::{Ctx, supervise};

const OP_TIMEOUT: Duration = Duration::from_secs(2);
const STALL: Duration = Duration::from_secs(3);
const WINDOW: usize = 100;
const IDLE: Duration = Duration::from_secs(3);
/// The sweep stops when nothing arrives for this long.
const SWEEP_IDLE: Duration = Duration::from_millis(1500);

fn topic(ctx: &Ctx) -> String {
    format!("drill/{}", ctx.queue)
}

/// The consumer's client id: the same on every connection, so it resumes its session.
fn consumer_id(ctx: &Ctx) -> String {
    format!("{}-c", ctx.queue)
}

async fn connect(addr: &str, client_id: String, clean_session: bool) -> Result<(Client, Loop)> {
    let (host, port) = addr
        .rsplit_once(':')
        .with_context(|| format!("no port in {addr}"))?;
    let target = Target {
        host: host.to_string(),
        port: port
            .parse()
            .with_context(|| format!("bad port in {addr}"))?,
        credentials: Some(("guest".into(), "guest".into())),
    };
    let opts = Opts {
        client_id,
        v5: false,
        keep_alive: Duration::from_secs(5),
        inflight: WINDOW as u16,
        channel: WINDOW + 10,
        max_packet: 64 * 1024,
        clean_session,
    };
    match tokio::time::timeout(OP_TIMEOUT, mqtt_client::connect(&target, &opts)).await {
        Ok(r) => r.map(|(c, l, _)| (c, l)),
        Err(_) => bail!("no CONNACK from {addr} within {OP_TIMEOUT:?}"),
    }
}

/// Creates the consumer's persistent session with its subscription.
pub async fn setup(ctx: &Ctx, node: usize) -> Result<()> {
    let (c, mut lp) = connect(&ctx.addrs[node], consumer_id(ctx), false).await?;
    mqtt_client::subscribe(&c, &mut lp, &topic(ctx), 1).await?;
    c.disconnect();
    lp.finish(Duration::from_secs(1)).await;
    Ok(())
}

/// Publishes waiting to be written (in order), then written and awaiting PUBACK.
#[derive(Default)]
struct Outstanding {
    queued: VecDeque<(Msg, Instant)>,
    inflight: HashMap<u16, (Msg, Instant)>,
}

impl Outstanding {
    fn len(&self) -> usize {
        self.queued.len() + self.inflight.len()
    }

    fn oldest(&self) -> Option<Instant> {
        let q = self.queued.iter().map(|(_, t)| *t);
        q.chain(self.inflight.values().map(|(_, t)| *t)).min()
    }
}

type Shared = Arc<Mutex<Outstanding>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Outstanding> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

pub async fn publisher(ctx: &Ctx, first: usize, stop: &CancellationToken) {
    supervise(ctx, true, first, stop, |addr| publish(ctx, addr, stop)).await
}

async fn publish(ctx: &Ctx, addr: String, stop: &CancellationToken) -> Result<()> {
    let (client, lp) = connect(&addr, format!("{}-p", ctx.queue), true).await?;
    let out = Shared::default();
    let mut driver = tokio::spawn(drive(lp, out.clone(), ctx.ledger.clone()));
    let topic = topic(ctx);
    let mut tick = ctx.ticker();
    let mut stopping: Option<Instant> = None;
    let r = loop {
        let (n, oldest) = {
            let g = lock(&out);
            (g.len(), g.oldest())
        };
        if let Some(at) = stopping
            && (n == 0 || at.elapsed() > STALL)
        {
            break Ok(());
        }
        if oldest.is_some_and(|t| t.elapsed() > STALL) {
            break Err(anyhow::anyhow!(
                "{n} publishes unacknowledged for {STALL:?}"
            ));
        }
        tokio::select! {
            _ = stop.cancelled(), if stopping.is_none() => stopping = Some(Instant::now()),
            _ = tick.tick(), if stopping.is_none() && n < WINDOW => {
                let m = ctx.ledger.next_message();
                let body = m.body.clone();
                lock(&out).queued.push_back((m, Instant::now()));
                if let Err(e) = client.publish(&topic, 1, body).await {
                    break Err(e);
                }
            }
            r = &mut driver => break match r {
                Ok(Err(e)) => Err(e),
                Ok(Ok(())) => Err(anyhow::anyhow!("the connection ended")),
                Err(e) => Err(anyhow::anyhow!("event loop task: {e}")),
            },
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    };
    client.disconnect();
    if !driver.is_finished() {
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut driver).await;
    }
    driver.abort();
    r
}

/// Polls the publisher's event loop: a written PUBLISH gets its packet id, a PUBACK
/// confirms the message with that id.
async fn drive(mut lp: Loop, out: Shared, ledger: Arc<Ledger>) -> Result<()> {
    loop {
        match lp.next().await? {
            Ev::Sent { pkid } => {
                let mut g = lock(&out);
                if let Some(m) = g.queued.pop_front() {
                    g.inflight.insert(pkid, m);
                }
            }
            Ev::PubAck { ok, pkid } => {
                let m = lock(&out).inflight.remove(&pkid);
                if let (true, Some((m, _))) = (ok, m) {
                    ledger.confirmed(&m);
                }
            }
            Ev::Disconnected => return Ok(()),
            _ => {}
        }
    }
}

pub async fn consumer(ctx: &Ctx, first: usize, stop: &CancellationToken) {
    supervise(ctx, false, first, stop, |addr| consume(ctx, addr, stop)).await
}

/// One connection of the consumer: no SUBSCRIBE, the session has it.
async fn consume(ctx: &Ctx, addr: String, stop: &CancellationToken) -> Result<()> {
    let (client, mut lp) = connect(&addr, consumer_id(ctx), false).await?;
    loop {
        let ev = tokio::select! {
            _ = stop.cancelled() => break,
            ev = tokio::time::timeout(IDLE, lp.next()) => ev,
        };
        match ev {
            Err(_) => bail!("no message for {IDLE:?}"),
            Ok(ev) => record(ctx, ev?),
        }
    }
    // A clean DISCONNECT after the PUBACKs of everything recorded.
    client.disconnect();
    lp.finish(Duration::from_secs(1)).await;
    Ok(())
}

fn record(ctx: &Ctx, ev: Ev) {
    if let Ev::Publish { head, len } = ev {
        // rumqttc acknowledges a QoS 1 PUBLISH itself, on the next poll: after this.
        ctx.ledger
            .received(if len == BODY_LEN { &head[..] } else { &[] });
    }
}

/// Takes what is left in the consumer's session on node `node`.
pub async fn sweep(ctx: &Ctx, node: usize) -> Result<()> {
    let (client, mut lp) = connect(&ctx.addrs[node], consumer_id(ctx), false).await?;
    while let Ok(ev) = tokio::time::timeout(SWEEP_IDLE, lp.next()).await {
        record(ctx, ev?);
    }
    client.disconnect();
    lp.finish(Duration::from_secs(1)).await;
    Ok(())
}
