//! The `switchboard` binary: parse flags and config, start the server, wait for a signal.

mod ctl;

use anyhow::Context;
use clap::Parser;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use switchboard::config::Config;
use switchboard::server::Server;

/// Switchboard: AMQP 0-9-1, MQTT, STOMP and SQS/SNS on one broker core.
#[derive(Parser, Debug, Serialize)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Log lines as text, or as one JSON object per line (for log shippers).
    #[arg(
        long,
        env = "SWITCHBOARD_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    #[serde(skip)]
    log_format: LogFormat,
    /// Directory for durable state.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
    /// Address every listener binds to.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    bind: Option<String>,
    /// AMQP 0-9-1 port (0 = any free port).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    amqp_port: Option<u16>,
    /// MQTT port (0 = any free port).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    mqtt_port: Option<u16>,
    /// MQTT over WebSocket port (0 = any free port).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    mqtt_ws_port: Option<u16>,
    /// STOMP port (0 = any free port).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    stomp_port: Option<u16>,
    /// STOMP over WebSocket port (0 = any free port).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    stomp_ws_port: Option<u16>,
    /// SQS/SNS HTTP port (0 = any free port).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    http_port: Option<u16>,
    /// Admin HTTP API port (0 = any free port).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    admin_port: Option<u16>,
    /// AMQPS (AMQP over TLS) port; default 5671 (0 = any free port; needs --tls-cert).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    amqps_port: Option<u16>,
    /// MQTT over TLS port; default 8883 (0 = any free port; needs --tls-cert).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    mqtts_port: Option<u16>,
    /// MQTT over secure WebSocket port; default 15676 (0 = any free port; needs --tls-cert).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    mqtt_wss_port: Option<u16>,
    /// STOMP over TLS port; default 61614 (0 = any free port; needs --tls-cert).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    stomps_port: Option<u16>,
    /// STOMP over secure WebSocket port; default 15673 (0 = any free port; needs --tls-cert).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    stomp_wss_port: Option<u16>,
    /// SQS/SNS HTTPS port; default 9325 (0 = any free port; needs --tls-cert).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    https_port: Option<u16>,
    /// Admin HTTPS API and console port; default 15671 (0 = any free port; needs --tls-cert).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    admin_tls_port: Option<u16>,
    /// A RabbitMQ definitions file (JSON) to load at start.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    definitions: Option<PathBuf>,
    #[command(flatten)]
    #[serde(skip_serializing_if = "TlsFlags::is_empty")]
    tls: TlsFlags,
    #[command(flatten)]
    #[serde(skip_serializing_if = "ReplicationFlags::is_empty")]
    replication: ReplicationFlags,
    #[command(subcommand)]
    #[serde(skip)]
    command: Option<Command>,
}

/// Running a node of an active/standby pair (docs/REPLICATION.md).
#[derive(clap::Args, Debug, Serialize, Default)]
struct ReplicationFlags {
    /// Port the two nodes of a pair talk on (0 = any free port; default 5680).
    #[arg(long = "replication-port")]
    #[serde(rename = "port", skip_serializing_if = "Option::is_none")]
    replication_port: Option<u16>,
    /// The other node's replication address, HOST:PORT. Without it the node runs alone.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    peer: Option<String>,
    /// Who is active: file:PATH, etcd:URL[,URL...], static:active or static:standby.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    lock: Option<String>,
    /// Mutual TLS on the replication link (and for `ctl status|promote`): needs
    /// --tls-cert and --tls-key (this node's certificate) and --tls-ca (the CA
    /// that signed the peer's).
    #[arg(long = "replication-tls")]
    #[serde(rename = "tls", skip_serializing_if = "is_false")]
    replication_tls: bool,
}

impl ReplicationFlags {
    fn is_empty(&self) -> bool {
        self.replication_port.is_none()
            && self.peer.is_none()
            && self.lock.is_none()
            && !self.replication_tls
    }
}

/// TLS on every listener (docs/SECURITY.md); the files are read again on SIGHUP.
#[derive(clap::Args, Debug, Serialize, Default)]
struct TlsFlags {
    /// Server certificate chain, PEM. With --tls-key, opens the TLS listeners.
    #[arg(long = "tls-cert")]
    #[serde(rename = "cert", skip_serializing_if = "Option::is_none")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key, PEM.
    #[arg(long = "tls-key")]
    #[serde(rename = "key", skip_serializing_if = "Option::is_none")]
    tls_key: Option<PathBuf>,
    /// CA certificates (PEM) to verify client certificates with; a verified
    /// certificate's CN logs its user in (AMQP EXTERNAL, MQTT/STOMP without password).
    #[arg(long = "tls-ca")]
    #[serde(rename = "ca", skip_serializing_if = "Option::is_none")]
    tls_ca: Option<PathBuf>,
    /// Refuse TLS clients without a certificate signed by --tls-ca
    /// (RabbitMQ's fail_if_no_peer_cert).
    #[arg(long = "tls-verify-peer")]
    #[serde(rename = "fail_if_no_peer_cert", skip_serializing_if = "is_false")]
    tls_verify_peer: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl TlsFlags {
    fn is_empty(&self) -> bool {
        self.tls_cert.is_none()
            && self.tls_key.is_none()
            && self.tls_ca.is_none()
            && !self.tls_verify_peer
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Control a running node: its admin API (queues, connections, users,
    /// definitions), or a pair's node through its replication port (status, promote).
    Ctl {
        #[command(flatten)]
        target: ctl::Target,
        #[command(subcommand)]
        action: CtlAction,
    },
    /// Failover drill: start a pair on loopback, load every protocol, kill the
    /// active each round, and count what was confirmed, lost and duplicated.
    /// Exits non-zero when a confirmed message was lost.
    Drill(switchboard_drill::Options),
    /// Prints the hash of a password for `password_hash` in the config file or the
    /// admin API: RabbitMQ's salted SHA-256 (as `rabbitmqctl hash_password`), or
    /// Argon2id with `--argon2`.
    HashPassword {
        password: String,
        #[arg(long)]
        argon2: bool,
    },
}

#[derive(clap::Subcommand, Debug)]
enum CtlAction {
    /// The admin API's commands (queues, connections, users, definitions).
    #[command(flatten)]
    Admin(ctl::AdminAction),
    /// Show a node's role, epoch, last LSN and whether its pair is in sync.
    Status {
        /// The node's replication address, HOST:PORT.
        node: String,
    },
    /// Make a standby with a static lock the active (a planned failover drill).
    Promote {
        /// The standby's replication address, HOST:PORT.
        node: String,
    },
}

fn load(cli: &Cli) -> anyhow::Result<Config> {
    let mut fig = Figment::from(Serialized::defaults(Config::default()));
    if let Some(path) = &cli.config {
        anyhow::ensure!(
            path.exists(),
            "config file {} does not exist",
            path.display()
        );
        fig = fig.merge(Toml::file(path));
    }
    fig = fig
        .merge(
            Env::prefixed("SWITCHBOARD_")
                .ignore(&["config"])
                .split("__"),
        )
        .merge(Serialized::defaults(cli));
    let cfg: Config = fig.extract().context("invalid configuration")?;
    cfg.check()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    Ok(cfg)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The drill reports on stdout and its progress on stderr; client libraries'
    // logs of every broken connection during a failover would bury both.
    let default_log = match cli.command {
        Some(Command::Drill(_)) => "error,lapin=off",
        _ => "info",
    };
    // Colour only for a person at a terminal: log files and journald get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SWITCHBOARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match &cli.command {
        Some(Command::Ctl { target, action }) => return rt.block_on(ctl(&cli, target, action)),
        Some(Command::Drill(opts)) => return rt.block_on(drill(opts.clone())),
        Some(Command::HashPassword { password, argon2 }) => {
            let hash = if *argon2 {
                switchboard::broker::argon2_hash(password).map_err(|e| anyhow::anyhow!(e))?
            } else {
                let salt: [u8; 4] = rand_salt();
                switchboard::broker::rabbit_hash(salt, password)
            };
            println!("{hash}");
            return Ok(());
        }
        None => {}
    }
    let cfg = load(&cli)?;
    if cfg.replication.peer.is_some() {
        return rt.block_on(run_pair_node(cli, cfg));
    }
    rt.block_on(async move {
        let server = Server::start(&cfg).await?;
        let line = server.listening_line();
        tracing::info!("{line}");
        // Scripts and tests read this line from stdout to learn the ports.
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
        drop(out);
        wait_for_signal(|| match load(&cli) {
            Ok(cfg) => server.reload(&cfg),
            Err(e) => tracing::error!("configuration not reloaded: {e:#}"),
        })
        .await;
        tracing::info!("shutting down");
        server.shutdown(Duration::from_secs(5)).await;
        anyhow::Ok(())
    })
}

/// Prints the `listening` line to stdout, where scripts and tests read it.
fn announce(line: &str) {
    tracing::info!("{line}");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn run_pair_node(cli: Cli, cfg: switchboard::config::Config) -> anyhow::Result<()> {
    let stop = tokio_util::sync::CancellationToken::new();
    let (reloads, reloaded) = tokio::sync::watch::channel(cfg.clone());
    let mut node = tokio::spawn(switchboard::replication::run(
        cfg,
        announce,
        stop.clone(),
        reloaded,
    ));
    tokio::select! {
        r = &mut node => return Ok(r??),
        () = wait_for_signal(|| match load(&cli) {
            // Only the TLS files so far: the rest of a pair node's settings need a restart.
            Ok(cfg) => {
                reloads.send_replace(cfg);
            }
            Err(e) => tracing::error!("configuration not reloaded: {e:#}"),
        }) => {}
    }
    tracing::info!("shutting down");
    stop.cancel();
    Ok(node.await??)
}

/// The replication port of a node is reached as its peer reaches it: the same
/// config file, `SWITCHBOARD_*` variables and flags (`--replication-tls` with the
/// node's `--tls-cert`, `--tls-key` and `--tls-ca`) give `ctl` the link's TLS.
fn ctl_link(cli: &Cli) -> anyhow::Result<switchboard::replication::Link> {
    let cfg = load(cli)?;
    switchboard::replication::Link::new(&cfg).map_err(|e| anyhow::anyhow!(e))
}

async fn ctl(cli: &Cli, target: &ctl::Target, action: &CtlAction) -> anyhow::Result<()> {
    use switchboard::replication::wire::Msg;
    match action {
        CtlAction::Admin(a) => ctl::run(target, a).await?,
        CtlAction::Status { node } => {
            let s = switchboard::replication::status(&ctl_link(cli)?, node).await?;
            println!(
                "node={} role={} epoch={} last_lsn={} in_sync={}",
                s.node,
                if s.active { "active" } else { "standby" },
                s.epoch,
                s.last_lsn,
                s.in_sync
            );
        }
        CtlAction::Promote { node } => {
            match switchboard::replication::promote(&ctl_link(cli)?, node).await? {
                Msg::StatusReply(_) => println!("{node}: promoting"),
                Msg::Refused { reason, .. } => anyhow::bail!("{node} refused: {reason}"),
                other => anyhow::bail!("{node}: unexpected answer {other:?}"),
            }
        }
    }
    Ok(())
}

/// Runs the drill with this binary as the pair's nodes; prints its report.
async fn drill(opts: switchboard_drill::Options) -> anyhow::Result<()> {
    let bin = std::env::current_exe().context("cannot find the switchboard binary")?;
    let report = switchboard_drill::run(opts, bin).await?;
    print!("{report}");
    std::io::stdout().flush()?;
    if report.lost() > 0 {
        anyhow::bail!("{} confirmed messages were lost", report.lost());
    }
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM; calls `reload` on every SIGHUP meanwhile.
async fn wait_for_signal(reload: impl Fn()) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = term.recv() => return,
            _ = hup.recv() => reload(),
        }
    }
}

/// Four random bytes for a RabbitMQ password hash's salt.
fn rand_salt() -> [u8; 4] {
    let mut b = [0u8; 4];
    // The OS's randomness; a time-derived salt only if it is unavailable.
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        b = t.to_le_bytes();
    }
    b
}
