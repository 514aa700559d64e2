//! Listeners, wiring and shutdown. The only place that names the frontends.

mod accept;

use crate::broker::{Core, Users};
use crate::config::Config;
use crate::store::{OpenError, Store};
use crate::tls::{Acceptor, TlsError};
use accept::{HTTP_TLS_HANDSHAKE, Spawner};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switchboard_api::Broker;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A running server: its bound addresses and the means to stop it.
pub struct Server {
    pub amqp_addr: SocketAddr,
    pub mqtt_addr: SocketAddr,
    pub mqtt_ws_addr: SocketAddr,
    pub stomp_addr: SocketAddr,
    pub stomp_ws_addr: SocketAddr,
    /// SQS and SNS over HTTP.
    pub http_addr: SocketAddr,
    /// The admin HTTP API and /metrics.
    pub admin_addr: SocketAddr,
    /// The TLS listeners by their `listening` line name (empty: TLS is off).
    pub tls_addrs: Vec<(&'static str, SocketAddr)>,
    tls: Option<Arc<Acceptor>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    store: Arc<Store>,
    limits: tokio::sync::watch::Sender<crate::alarms::Limits>,
    core: Core,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] OpenError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("definitions file {path}: {reason}")]
    Definitions { path: String, reason: String },
}

/// The client listeners, bound before anything else so that a standby can forward
/// on the same addresses it later serves on.
pub struct Listeners {
    pub amqp: Arc<TcpListener>,
    pub mqtt: Arc<TcpListener>,
    pub mqtt_ws: Arc<TcpListener>,
    pub stomp: Arc<TcpListener>,
    pub stomp_ws: Arc<TcpListener>,
    pub http: Arc<TcpListener>,
    pub admin: Arc<TcpListener>,
    /// With `--tls-cert` and `--tls-key`: the TLS listeners and their acceptor
    /// (the PEM files are read here, so a bad file stops the start at once).
    pub tls: Option<(Arc<Acceptor>, TlsListeners)>,
}

/// The TLS twin of each plain listener, on its own port.
pub struct TlsListeners {
    pub amqps: Arc<TcpListener>,
    pub mqtts: Arc<TcpListener>,
    pub mqtt_wss: Arc<TcpListener>,
    pub stomps: Arc<TcpListener>,
    pub stomp_wss: Arc<TcpListener>,
    pub https: Arc<TcpListener>,
    pub admin_tls: Arc<TcpListener>,
}

impl Listeners {
    pub async fn bind(cfg: &Config) -> Result<Listeners, StartError> {
        let h = &cfg.bind;
        let tls = match cfg.tls.settings()? {
            None => None,
            Some(settings) => Some((
                Arc::new(Acceptor::new(&settings)?),
                TlsListeners {
                    amqps: bind("AMQPS", h, cfg.amqps_port).await?,
                    mqtts: bind("MQTTS", h, cfg.mqtts_port).await?,
                    mqtt_wss: bind("MQTT-WebSocket-TLS", h, cfg.mqtt_wss_port).await?,
                    stomps: bind("STOMP-TLS", h, cfg.stomps_port).await?,
                    stomp_wss: bind("STOMP-WebSocket-TLS", h, cfg.stomp_wss_port).await?,
                    https: bind("HTTPS (SQS)", h, cfg.https_port).await?,
                    admin_tls: bind("HTTPS (admin)", h, cfg.admin_tls_port).await?,
                },
            )),
        };
        Ok(Listeners {
            amqp: bind("AMQP", h, cfg.amqp_port).await?,
            mqtt: bind("MQTT", h, cfg.mqtt_port).await?,
            mqtt_ws: bind("MQTT-WebSocket", h, cfg.mqtt_ws_port).await?,
            stomp: bind("STOMP", h, cfg.stomp_port).await?,
            stomp_ws: bind("STOMP-WebSocket", h, cfg.stomp_ws_port).await?,
            http: bind("HTTP (SQS)", h, cfg.http_port).await?,
            admin: bind("HTTP (admin)", h, cfg.admin_port).await?,
            tls,
        })
    }

    /// Each listener with the name the `listening` line gives it; the TLS ones
    /// (when on) after the plain ones, so the line's existing keys keep their place.
    pub fn named(&self) -> Vec<(&'static str, &Arc<TcpListener>)> {
        let mut all = vec![
            ("amqp", &self.amqp),
            ("mqtt", &self.mqtt),
            ("mqtt-ws", &self.mqtt_ws),
            ("stomp", &self.stomp),
            ("stomp-ws", &self.stomp_ws),
            ("http", &self.http),
            ("admin", &self.admin),
        ];
        if let Some((_, t)) = &self.tls {
            all.extend([
                ("amqps", &t.amqps),
                ("mqtts", &t.mqtts),
                ("mqtt-wss", &t.mqtt_wss),
                ("stomps", &t.stomps),
                ("stomp-wss", &t.stomp_wss),
                ("https", &t.https),
                ("admin-tls", &t.admin_tls),
            ]);
        }
        all
    }

    /// `amqp=127.0.0.1:5672 mqtt=… http=…`
    pub fn describe(&self) -> String {
        self.named()
            .iter()
            .map(|(name, l)| match l.local_addr() {
                Ok(a) => format!("{name}={a}"),
                Err(_) => format!("{name}=?"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Server {
    /// Binds every listener and starts serving. Must run inside a tokio runtime.
    pub async fn start(cfg: &Config) -> Result<Server, StartError> {
        // The data directory first: a second process on it is told so, whatever
        // its ports.
        let opened = Store::open(&cfg.data_dir, cfg.fsync)?;
        let listeners = Listeners::bind(cfg).await?;
        Server::serve(cfg, &listeners, opened, None).await
    }

    /// Opens the store and serves on listeners bound earlier.
    /// `epoch`: the journal's epoch from the first record on (replication).
    /// `replication`: what the admin API shows of the pair.
    pub async fn start_on(
        cfg: &Config,
        listeners: &Listeners,
        epoch: u64,
        replication: Option<switchboard_api::admin::ReplicationProbe>,
    ) -> Result<Server, StartError> {
        let opened = Store::open_at(&cfg.data_dir, cfg.fsync, epoch)?;
        Server::serve(cfg, listeners, opened, replication).await
    }

    async fn serve(
        cfg: &Config,
        listeners: &Listeners,
        (store, recovery): (Store, crate::store::Recovery),
        replication: Option<switchboard_api::admin::ReplicationProbe>,
    ) -> Result<Server, StartError> {
        let store = Arc::new(store);
        let paging = (cfg.data_dir.join("spill"), cfg.queue_memory_bytes as usize);
        let core = Core::with_store(
            Users::new(cfg.users.clone()),
            Some((store.clone(), recovery)),
            Some(paging),
        );
        for v in &cfg.vhosts {
            core.add_vhost(v);
        }
        core.set_quotas(cfg.quotas);
        let shutdown = CancellationToken::new();
        crate::trim::spawn_trimmer(shutdown.clone());
        let limits = tokio::sync::watch::Sender::new(cfg.limits);
        crate::alarms::spawn_monitor(
            cfg.data_dir.clone(),
            limits.subscribe(),
            core.clone(),
            shutdown.clone(),
        );
        let admin: Arc<dyn switchboard_api::Admin> = Arc::new(core.clone());
        let broker: Arc<dyn Broker> = Arc::new(core.clone());
        let tracker = TaskTracker::new();

        let addr = |l: &Arc<TcpListener>| {
            l.local_addr().map_err(|source| StartError::Bind {
                what: "a listener",
                addr: cfg.bind.clone(),
                source,
            })
        };
        let amqp_addr = addr(&listeners.amqp)?;
        let mqtt_addr = addr(&listeners.mqtt)?;
        let mqtt_ws_addr = addr(&listeners.mqtt_ws)?;
        let stomp_addr = addr(&listeners.stomp)?;
        let stomp_ws_addr = addr(&listeners.stomp_ws)?;
        let http_addr = addr(&listeners.http)?;
        let admin_addr = addr(&listeners.admin)?;
        let mut tls_addrs = Vec::new();
        for (name, l) in listeners.named().into_iter().skip(7) {
            tls_addrs.push((name, addr(l)?));
        }
        let (tls, secure) = match &listeners.tls {
            Some((acceptor, l)) => (Some(acceptor.clone()), Some(l)),
            None => (None, None),
        };
        let spawn = Spawner {
            shutdown: &shutdown,
            tracker: &tracker,
            core: &core,
            tls: tls.as_ref(),
        };

        let amqp_cfg = Arc::new(switchboard_amqp::Config::from(&cfg.amqp));
        let within = amqp_cfg.handshake_timeout;
        let b = broker.clone();
        spawn.both(
            &listeners.amqp,
            secure.map(|l| &l.amqps),
            within,
            move |s, peer, t, sd| {
                switchboard_amqp::serve(s, peer, t, b.clone(), amqp_cfg.clone(), sd)
            },
        );

        let mqtt_cfg = Arc::new(switchboard_mqtt::Config::from(&cfg.mqtt));
        let within = mqtt_cfg.connect_timeout;
        let registry = switchboard_mqtt::Registry::default();
        let (b, c, r) = (broker.clone(), mqtt_cfg.clone(), registry.clone());
        spawn.both(
            &listeners.mqtt,
            secure.map(|l| &l.mqtts),
            within,
            move |s, peer, t, sd| {
                switchboard_mqtt::serve(s, peer, t, b.clone(), c.clone(), r.clone(), sd)
            },
        );
        let (b, c, r) = (broker.clone(), mqtt_cfg, registry);
        let ws = crate::ws::Options {
            subprotocols: &["mqtt", "mqttv3.1"],
            text: false,
            paths: &[],
            handshake_timeout: c.connect_timeout,
        };
        spawn.both(
            &listeners.mqtt_ws,
            secure.map(|l| &l.mqtt_wss),
            within,
            move |s, peer, t, sd| {
                let (b, c, r) = (b.clone(), c.clone(), r.clone());
                let t = switchboard_api::Transport {
                    websocket: true,
                    ..t
                };
                crate::ws::serve(s, ws, move |pipe| {
                    switchboard_mqtt::serve(pipe, peer, t, b, c, r, sd)
                })
            },
        );

        let stomp_cfg = Arc::new(switchboard_stomp::Config::from(&cfg.stomp));
        let within = stomp_cfg.connect_timeout;
        let (b, c) = (broker.clone(), stomp_cfg.clone());
        spawn.both(
            &listeners.stomp,
            secure.map(|l| &l.stomps),
            within,
            move |s, peer, t, sd| switchboard_stomp::serve(s, peer, t, b.clone(), c.clone(), sd),
        );
        let (b, c) = (broker.clone(), stomp_cfg);
        let ws = crate::ws::Options {
            subprotocols: &["v12.stomp", "v11.stomp", "v10.stomp", "stomp"],
            text: true,
            // RabbitMQ web-stomp's path, and the one many examples use.
            paths: &["/ws", "/stomp"],
            handshake_timeout: c.connect_timeout,
        };
        spawn.both(
            &listeners.stomp_ws,
            secure.map(|l| &l.stomp_wss),
            within,
            move |s, peer, t, sd| {
                let (b, c) = (b.clone(), c.clone());
                let t = switchboard_api::Transport {
                    websocket: true,
                    ..t
                };
                crate::ws::serve(s, ws, move |pipe| {
                    switchboard_stomp::serve(pipe, peer, t, b, c, sd)
                })
            },
        );

        let aws =
            switchboard_bridge::Service::new(broker.clone(), switchboard_bridge::Config::from(cfg));
        let aws_metrics = aws.metrics();
        let mut catalogs = aws.catalogs();
        catalogs.push(Arc::new(switchboard_mqtt::MqttCatalog {
            broker: broker.clone(),
            vhost: cfg.mqtt.vhost.clone(),
        }));
        // Queue URLs on the HTTPS listener say https://.
        let https = (
            secure.map(|l| &l.https),
            Some(HTTP_TLS_HANDSHAKE),
            aws.https(),
        );
        for (l, handshake, aws) in [(Some(&listeners.http), None, aws.clone()), https] {
            spawn.one(l, handshake, move |s, peer, _, sd| {
                let aws = aws.clone();
                async move { aws.serve_connection(s, peer, sd.cancelled_owned()).await }
            });
        }

        let node = switchboard_admin::NodeInfo {
            node: format!("switchboard@{}", hostname()),
            listeners: vec![
                ("amqp".into(), amqp_addr),
                ("mqtt".into(), mqtt_addr),
                ("http/web-mqtt".into(), mqtt_ws_addr),
                ("stomp".into(), stomp_addr),
                ("http/web-stomp".into(), stomp_ws_addr),
                ("http/sqs-sns".into(), http_addr),
                ("http".into(), admin_addr),
            ]
            .into_iter()
            .chain(
                tls_addrs
                    .iter()
                    .map(|(name, a)| (rabbit_name(name).into(), *a)),
            )
            .collect(),
            replication,
            metrics: vec![aws_metrics],
            catalogs,
        };
        if let Some(path) = &cfg.definitions {
            load_definitions(path, &broker, &admin)?;
        }
        let api = switchboard_admin::Service::new(broker.clone(), admin, node);
        spawn.both(
            &listeners.admin,
            secure.map(|l| &l.admin_tls),
            HTTP_TLS_HANDSHAKE,
            move |s, peer, _, sd| {
                let api = api.clone();
                async move { api.serve_connection(s, peer, sd.cancelled_owned()).await }
            },
        );

        Ok(Server {
            http_addr,
            admin_addr,
            amqp_addr,
            mqtt_addr,
            mqtt_ws_addr,
            stomp_addr,
            stomp_ws_addr,
            tls_addrs,
            tls,
            shutdown,
            tracker,
            store,
            limits,
            core,
        })
    }

    /// The line scripts read to find the ports: `listening amqp=127.0.0.1:5672 ...`.
    /// TLS listeners follow, when on: `amqps=… mqtts=… … admin-tls=…`.
    pub fn listening_line(&self) -> String {
        let mut line = format!(
            "listening amqp={} mqtt={} mqtt-ws={} stomp={} stomp-ws={} http={} admin={}",
            self.amqp_addr,
            self.mqtt_addr,
            self.mqtt_ws_addr,
            self.stomp_addr,
            self.stomp_ws_addr,
            self.http_addr,
            self.admin_addr
        );
        for (name, a) in &self.tls_addrs {
            line.push_str(&format!(" {name}={a}"));
        }
        line
    }

    /// The store this server writes to (replication ships its journal).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Applies what can change at run time (SIGHUP): the resource-alarm limits.
    /// And the TLS certificate, key and CA, read again even when their paths are
    /// the same (a renewed certificate replaces the file).
    pub fn reload(&self, cfg: &Config) {
        self.limits.send_replace(cfg.limits);
        self.core.set_quotas(cfg.quotas);
        tracing::info!(?cfg.limits, "configuration reloaded");
        if let Some(tls) = &self.tls {
            reload_tls(tls, cfg);
        } else if cfg.tls.cert.is_some() {
            tracing::warn!("TLS was off at start: its listeners open only at a restart");
        }
    }

    /// Stops accepting, closes connections politely and waits for them (bounded).
    pub async fn shutdown(self, grace: Duration) {
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close within {grace:?}");
        }
        // Connections are gone and their deliveries requeued: flush and mark clean.
        let store = self.store;
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
    }
}

pub async fn bind(
    what: &'static str,
    host: &str,
    port: u16,
) -> Result<Arc<TcpListener>, StartError> {
    let addr = format!("{host}:{port}");
    let l = TcpListener::bind(&addr)
        .await
        .map_err(|source| StartError::Bind {
            what,
            addr: addr.clone(),
            source,
        })?;
    Ok(Arc::new(l))
}

/// Reads the TLS files again; on an error the certificate in use stays.
pub fn reload_tls(tls: &Acceptor, cfg: &Config) {
    let settings = match cfg.tls.settings() {
        Ok(Some(s)) => s,
        Ok(None) => {
            tracing::warn!("TLS settings removed: the TLS listeners close only at a restart");
            return;
        }
        Err(e) => {
            tracing::error!("TLS not reloaded: {e}");
            return;
        }
    };
    match tls.reload(&settings) {
        Ok(()) => tracing::info!(cert = %settings.cert.display(), "TLS certificate reloaded"),
        Err(e) => tracing::error!("TLS not reloaded, the old certificate stays: {e}"),
    }
}

/// RabbitMQ's names for its TLS listeners, for the admin API's node listing.
fn rabbit_name(name: &str) -> &'static str {
    match name {
        "amqps" => "amqp/ssl",
        "mqtts" => "mqtt/ssl",
        "mqtt-wss" => "https/web-mqtt",
        "stomps" => "stomp/ssl",
        "stomp-wss" => "https/web-stomp",
        "https" => "https/sqs-sns",
        _ => "https",
    }
}

/// The host name for the node's name (`switchboard@host`), as RabbitMQ names nodes.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// `--definitions FILE`: a RabbitMQ definitions document, applied before clients
/// are served; its warnings (policy keys without an equivalent …) are logged.
fn load_definitions(
    path: &std::path::Path,
    broker: &Arc<dyn Broker>,
    admin: &Arc<dyn switchboard_api::Admin>,
) -> Result<(), StartError> {
    let err = |reason: String| StartError::Definitions {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let defs: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&text).map_err(|e| err(e.to_string()))?;
    let conn = broker.connection_opened();
    let (_, warnings) =
        switchboard_admin::import_definitions(&**broker, &**admin, conn, &defs, None)
            .map_err(|e| err(e.reason))?;
    for w in warnings {
        tracing::warn!("definitions {}: {w}", path.display());
    }
    tracing::info!("definitions loaded from {}", path.display());
    Ok(())
}
