//! The `switchboard` binary: parse flags and config, start the server, wait for a signal.

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
    fig.extract().context("invalid configuration")
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SWITCHBOARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let cfg = load(&cli)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
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
