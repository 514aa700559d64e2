//! The failover drill behind `switchboard drill`: load on every protocol at once
//! against an active/standby pair this crate starts on loopback, a kill of the
//! active each round, the old active rejoining as standby, and at the end a count
//! per protocol of what was confirmed, received, lost and duplicated, with the
//! failover times.
//!
//! A message counts as confirmed only when its protocol's acknowledgement arrived
//! (AMQP publisher confirm, MQTT PUBACK, STOMP RECEIPT, SQS 200 with a MessageId);
//! lost = confirmed and never delivered. Every client knows both nodes' addresses
//! (a standby forwards clients to the active) and switches to the other on any
//! error or stall, so no client ever needs to know which node is active.
//!
//! Modules: `pair` runs the two processes (and etcd), `ledger` records every id,
//! one module per protocol drives its clients, `report` prints the tables.

mod amqp;
mod ledger;
mod mqtt;
mod netns;
mod pair;
mod report;
mod sqs;
mod stomp;

use anyhow::Context;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub use ledger::{Counts, Proto};
pub use pair::PairError;
pub use report::{ProtocolReport, Report, Row};

use ledger::{Ledger, Phases};
use pair::{Pair, Role};

/// How the two nodes agree on who is active.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LockKind {
    /// An flock on a file in the drill's temporary directory.
    File,
    /// A private etcd (/usr/bin/etcd, or $ETCD) on free ports.
    Etcd,
    /// Fixed roles; the drill runs `switchboard ctl promote` on the standby.
    Static,
}

/// What happens to the active.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KillMode {
    /// SIGKILL, then restart it: it comes back as the standby.
    Sigkill,
    /// SIGSTOP; once the standby took over, SIGCONT: it must be fenced (exit) or
    /// rejoin as standby (restarted if it exited).
    Freeze,
    /// A network partition: each node runs in a network namespace of its own and
    /// the active's link goes down (root only); once the standby took over the
    /// link comes back, and the old active must have fenced itself.
    Partition,
}

/// `switchboard drill` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct Options {
    /// Failovers to go through.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Who decides which node is active.
    #[arg(long, value_enum, default_value_t = LockKind::File)]
    pub lock: LockKind,
    /// How the active is taken down.
    #[arg(long, value_enum, default_value_t = KillMode::Sigkill)]
    pub kill: KillMode,
    /// Seconds of load before each kill.
    #[arg(long, default_value_t = 3.0)]
    pub round_secs: f64,
    /// Messages per second of each publisher (one per protocol).
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Keep the temporary directory (data directories, node logs) afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Print every client error and reconnection on stderr.
    #[arg(long, short)]
    pub verbose: bool,
}

/// Flags that cannot make a drill.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionsError {
    #[error(
        "--kill freeze needs --lock etcd or --lock static: a frozen process keeps its flock, so with --lock file the standby could never take over"
    )]
    FreezeWithFileLock,
    #[error(
        "--kill partition needs --lock etcd: a cut-off active keeps a file lock, and static roles cannot tell a partition from a death"
    )]
    PartitionNeedsEtcd,
    #[error("--rounds must be at least 1")]
    NoRounds,
    #[error("--rate and --round-secs must be positive numbers")]
    NotPositive,
}

impl Options {
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.kill == KillMode::Freeze && self.lock == LockKind::File {
            return Err(OptionsError::FreezeWithFileLock);
        }
        if self.kill == KillMode::Partition && self.lock != LockKind::Etcd {
            return Err(OptionsError::PartitionNeedsEtcd);
        }
        if self.rounds == 0 {
            return Err(OptionsError::NoRounds);
        }
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !positive(self.rate) || !positive(self.round_secs) {
            return Err(OptionsError::NotPositive);
        }
        Ok(())
    }
}

/// How long each step may take before the drill gives up on the pair.
const ROLE_LIMIT: Duration = Duration::from_secs(30);
/// A kill after which some protocol confirms nothing for this long is a failure.
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);
/// Draining stops when nothing new arrives for this long.
const DRAIN_IDLE: Duration = Duration::from_secs(10);

static VERBOSE: AtomicBool = AtomicBool::new(false);

/// A client error, on stderr with --verbose (reconnecting is the normal answer).
pub(crate) fn debug(what: std::fmt::Arguments<'_>) {
    if VERBOSE.load(Ordering::Relaxed) {
        eprintln!("drill: {what}");
    }
}

/// Progress, on stderr (stdout is the report).
fn say(what: std::fmt::Arguments<'_>) {
    eprintln!("drill: {what}");
}

/// What one protocol's clients share.
pub(crate) struct Ctx {
    /// The queue, topic or destination name, unique to this run.
    pub queue: String,
    /// `host:port` of this protocol on node a and node b.
    pub addrs: [String; 2],
    pub ledger: Arc<Ledger>,
    /// Messages per second of the publisher.
    pub rate: f64,
}

impl Ctx {
    /// A ticker at the publisher's rate.
    pub fn ticker(&self) -> tokio::time::Interval {
        Self::ticker_at(self.rate)
    }

    /// A rate ticker that skips missed ticks, so a reconnect is not followed by a burst.
    pub fn ticker_at(rate: f64) -> tokio::time::Interval {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        t
    }
}

/// Runs `session` against one node's address after the other, starting at
/// `first`, until `stop`: a session returns Ok only once stopped; an Err (broken
/// connection, refusal, stall) moves the client to the other node — except that a
/// session which had been running for a while first tries its own address once
/// more: a standby closes the connections it forwarded when it takes over, and
/// its address is then the one that works (the stable endpoint).
pub(crate) async fn supervise<F, Fut>(
    ctx: &Ctx,
    publisher: bool,
    first: usize,
    stop: &CancellationToken,
    mut session: F,
) where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut i = first;
    let mut retried = false;
    while !stop.is_cancelled() {
        let began = Instant::now();
        match session(ctx.addrs[i].clone()).await {
            Ok(()) => return,
            Err(e) => {
                let established = began.elapsed() > Duration::from_secs(1);
                ctx.ledger.reconnected(publisher);
                let who = if publisher { "publisher" } else { "consumer" };
                debug(format_args!(
                    "{} {who} via {}: {e:#}",
                    ctx.ledger.proto.name(),
                    ctx.addrs[i]
                ));
                // Only if the address still takes connections (a cut-off node's
                // connect would hang), and once in a row (a frozen node accepts and
                // then stalls every session) unless the retried session ran long.
                if established
                    && (!retried || began.elapsed() > Duration::from_secs(10))
                    && reachable(&ctx.addrs[i]).await
                {
                    retried = true;
                    continue;
                }
            }
        }
        retried = false;
        i = 1 - i;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// Resolves at Ctrl-C or SIGTERM.
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// A TCP connection to `addr` succeeds quickly.
async fn reachable(addr: &str) -> bool {
    let connect = tokio::net::TcpStream::connect(addr);
    matches!(
        tokio::time::timeout(Duration::from_millis(300), connect).await,
        Ok(Ok(_))
    )
}

/// Runs the drill; `switchboard_bin` is the binary the nodes (and `ctl`) run.
pub async fn run(opts: Options, switchboard_bin: PathBuf) -> anyhow::Result<Report> {
    opts.validate()?;
    VERBOSE.store(opts.verbose, Ordering::Relaxed);
    let partition = opts.kill == KillMode::Partition;
    // Starting a pair is not what a drill measures: a start that fails (a port
    // another process took between our probe and the node's bind, an etcd slow to
    // come up on a loaded machine) is said, and tried once more on fresh ports.
    let mut pair = match Pair::start(switchboard_bin.clone(), opts.lock, partition).await {
        Ok(p) => p,
        Err(e) => {
            say(format_args!(
                "starting the pair failed ({e}); trying once more"
            ));
            Pair::start(switchboard_bin, opts.lock, partition)
                .await
                .context("starting the pair")?
        }
    };
    say(format_args!(
        "pair up in {} (lock {:?}): node a active, node b standby",
        pair.root().display(),
        opts.lock
    ));
    // Ctrl-C or SIGTERM still stops the nodes, etcd and the namespaces (a process
    // killed by a signal runs no destructors, and the nodes would live on).
    let result = tokio::select! {
        r = drill(&opts, &mut pair) => r,
        () = interrupted() => Err(anyhow::anyhow!("interrupted")),
    };
    pair.shutdown().await;
    if opts.keep {
        pair.keep();
        say(format_args!("kept {}", pair.root().display()));
    }
    result
}

async fn drill(opts: &Options, pair: &mut Pair) -> anyhow::Result<Report> {
    let phases = Arc::new(Phases::default());
    let run = format!(
        "{:06x}",
        std::process::id() ^ (now_nanos() as u32 & 0xff_ffff)
    );
    let addr = |port: fn(&pair::Ports) -> u16| {
        pair.nodes
            .each_ref()
            .map(|n| format!("{}:{}", n.host, port(&n.ports)))
    };
    let ctx = |proto: Proto, addrs: [String; 2]| {
        Arc::new(Ctx {
            queue: format!("drill-{run}-{}", proto.name().to_lowercase()),
            addrs,
            ledger: Arc::new(Ledger::new(proto, phases.clone())),
            rate: opts.rate,
        })
    };
    let ctxs = [
        ctx(Proto::Amqp, addr(|p| p.amqp)),
        ctx(Proto::Mqtt, addr(|p| p.mqtt)),
        ctx(Proto::Stomp, addr(|p| p.stomp)),
        ctx(Proto::Sqs, addr(|p| p.http)),
    ];
    pair.wait_in_sync(0, ROLE_LIMIT).await?;
    // Queues, the MQTT session's subscription and the SQS queue exist before any
    // load, on the active (node a).
    amqp::setup(&ctxs[0], 0).await.context("AMQP setup")?;
    mqtt::setup(&ctxs[1], 0).await.context("MQTT setup")?;
    stomp::setup(&ctxs[2], 0).await.context("STOMP setup")?;
    sqs::setup(&ctxs[3], 0).await.context("SQS setup")?;

    let pub_stop = CancellationToken::new();
    let sub_stop = CancellationToken::new();
    let mut tasks = Vec::new();
    // Publishers start on one node and consumers on the other, mixed across
    // protocols, so both the forwarded and the direct path carry load.
    for (k, c) in ctxs.iter().enumerate() {
        let (p, s, first) = (pub_stop.clone(), sub_stop.clone(), k % 2);
        let (c1, c2) = (c.clone(), c.clone());
        macro_rules! clients {
            ($m:ident) => {{
                tasks.push(tokio::spawn(
                    async move { $m::publisher(&c1, first, &p).await },
                ));
                tasks.push(tokio::spawn(async move {
                    $m::consumer(&c2, 1 - first, &s).await
                }));
            }};
        }
        match c.ledger.proto {
            Proto::Amqp => clients!(amqp),
            Proto::Mqtt => clients!(mqtt),
            Proto::Stomp => clients!(stomp),
            Proto::Sqs => clients!(sqs),
        }
    }

    let mut active = 0;
    let mut failovers = Vec::new();
    let mut notes = Vec::new();
    let result = rounds(
        opts,
        pair,
        &ctxs,
        &phases,
        &mut active,
        &mut failovers,
        &mut notes,
    )
    .await;
    if let Err(e) = result {
        pub_stop.cancel();
        sub_stop.cancel();
        for t in tasks {
            t.abort();
        }
        return Err(e);
    }

    pub_stop.cancel();
    // Publishers wait for what they have in flight before they return.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t0 = Instant::now();
    let (mut last, mut idle_since) = (0, Instant::now());
    loop {
        let missing: u64 = ctxs.iter().map(|c| c.ledger.missing()).sum();
        let delivered: u64 = ctxs.iter().map(|c| c.ledger.delivered()).sum();
        if delivered != last {
            (last, idle_since) = (delivered, Instant::now());
        }
        if missing == 0 || idle_since.elapsed() > DRAIN_IDLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sub_stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
    say(format_args!(
        "consumers caught up in {:.1} s; draining every queue from node {}",
        t0.elapsed().as_secs_f64(),
        pair.nodes[active].name
    ));
    // Whatever the consumers left (unacknowledged at their stop, or never
    // confirmed) is taken from the final active, so the queues end empty.
    amqp::sweep(&ctxs[0], active).await.context("AMQP drain")?;
    mqtt::sweep(&ctxs[1], active).await.context("MQTT drain")?;
    stomp::sweep(&ctxs[2], active)
        .await
        .context("STOMP drain")?;
    sqs::sweep(&ctxs[3], active).await.context("SQS drain")?;
    Ok(Report::new(
        opts.rounds,
        ctxs.iter().map(|c| c.ledger.clone()).collect(),
        failovers,
        notes,
    ))
}

/// The rounds: load, in sync, kill the active, measure the failover, bring the old
/// active back as standby.
async fn rounds(
    opts: &Options,
    pair: &mut Pair,
    ctxs: &[Arc<Ctx>],
    phases: &Phases,
    active: &mut usize,
    failovers: &mut Vec<Duration>,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    for round in 1..=opts.rounds {
        tokio::time::sleep(Duration::from_secs_f64(opts.round_secs)).await;
        pair.wait_in_sync(*active, ROLE_LIMIT).await?;
        let (old, new) = (*active, 1 - *active);
        let killed_at = match opts.kill {
            KillMode::Sigkill => {
                let at = phases.kill();
                pair.kill(old).await;
                at
            }
            KillMode::Freeze => {
                let at = phases.kill();
                pair.signal(old, true);
                at
            }
            KillMode::Partition => {
                // Marked once the link is down: a publish the old active confirmed
                // while `ip` was still starting is not a failover.
                pair.link(old, false)?;
                phases.kill()
            }
        };
        // The stable endpoint: a client of the surviving node's address.
        let probe = {
            let (c, addr) = (ctxs[0].clone(), ctxs[0].addrs[new].clone());
            tokio::spawn(async move { amqp::probe(&c, &addr, killed_at).await })
        };
        if opts.lock == LockKind::Static {
            pair.promote(new).await?;
        }
        pair.wait_role(new, Role::Active, ROLE_LIMIT).await?;
        let took_over = killed_at.elapsed();
        *active = new;
        // Failover ends at the first confirmed publish after the kill; each
        // protocol must get there (its clients find the new active by themselves).
        let mut first = None;
        for c in ctxs {
            let f = wait_failover(&c.ledger, round).await?;
            first = Some(first.map_or(f, |x: Duration| x.min(f)));
        }
        let first = first.unwrap_or_default();
        let through_endpoint = match tokio::time::timeout(RECOVERY_LIMIT, probe).await {
            Ok(Ok(d)) => d,
            _ => anyhow::bail!(
                "round {round}: no publish through node {}'s address was confirmed within {} s",
                pair.nodes[new].name,
                RECOVERY_LIMIT.as_secs()
            ),
        };
        failovers.push(through_endpoint);
        let how = match opts.kill {
            KillMode::Sigkill => "killed",
            KillMode::Freeze => "froze",
            KillMode::Partition => "cut off",
        };
        let mut note = format!(
            "round {round}: {how} node {} (active); node {} announced active after {:.2} s, a publish through its address was confirmed after {:.2} s, the load's first after {:.2} s",
            pair.nodes[old].name,
            pair.nodes[new].name,
            took_over.as_secs_f64(),
            through_endpoint.as_secs_f64(),
            first.as_secs_f64()
        );
        match opts.kill {
            KillMode::Freeze => {
                pair.signal(old, false);
                note += &rejoin_after_freeze(pair, old).await?;
            }
            KillMode::Partition => {
                pair.link(old, true)?;
                note += &rejoin_after_freeze(pair, old).await?;
            }
            KillMode::Sigkill => pair.spawn(old, false)?,
        }
        pair.wait_role(old, Role::Standby, ROLE_LIMIT).await?;
        // From the kill until the rejoined node is in sync the new active runs
        // without a standby (standby_down = continue): what it confirms then is on
        // one disk only. Say for how long.
        pair.wait_in_sync(new, ROLE_LIMIT).await?;
        note += &format!(
            "; node {} rejoined as standby, in sync {:.2} s after the kill (the pair ran without a standby until then)",
            pair.nodes[old].name,
            killed_at.elapsed().as_secs_f64()
        );
        say(format_args!("{note}"));
        notes.push(note);
    }
    // Load on the last active for a moment more, then it must hold its standby in
    // sync once again before the publishers stop.
    tokio::time::sleep(Duration::from_secs(1)).await;
    pair.wait_in_sync(*active, ROLE_LIMIT).await?;
    Ok(())
}

/// A thawed old active must stop serving: exit (fenced; then it is restarted) or
/// announce standby. What happened, for the round's note.
async fn rejoin_after_freeze(pair: &mut Pair, old: usize) -> anyhow::Result<String> {
    let t0 = Instant::now();
    while t0.elapsed() < ROLE_LIMIT {
        if pair.role(old) == Role::Standby {
            return Ok(format!(
                "; back, it announced standby after {:.2} s",
                t0.elapsed().as_secs_f64()
            ));
        }
        if let Some(status) = pair.wait_exit(old, Duration::from_millis(100)).await {
            let note = format!(
                "; back, it had fenced itself and exited ({status}) after {:.2} s",
                t0.elapsed().as_secs_f64()
            );
            pair.spawn(old, false)?;
            return Ok(note);
        }
    }
    anyhow::bail!(
        "node {} was thawed after the failover but neither exited nor became standby within {} s; its log ends:\n{}",
        pair.nodes[old].name,
        ROLE_LIMIT.as_secs(),
        pair.nodes[old].log_tail()
    )
}

async fn wait_failover(ledger: &Ledger, round: usize) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    loop {
        if let Some(f) = ledger.failover(round) {
            return Ok(f);
        }
        if t0.elapsed() > RECOVERY_LIMIT {
            anyhow::bail!(
                "round {round}: no {} publish was confirmed within {} s of the failover",
                ledger.proto.name(),
                RECOVERY_LIMIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
