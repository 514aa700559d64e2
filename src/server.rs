//! Listeners, wiring and shutdown. The only place that names the frontends.

use crate::broker::{Core, Users};
use crate::config::Config;
use crate::store::{OpenError, Store};
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
    shutdown: CancellationToken,
    tracker: TaskTracker,
    store: Arc<Store>,
    limits: tokio::sync::watch::Sender<crate::alarms::Limits>,
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
}

impl Listeners {
    pub async fn bind(cfg: &Config) -> Result<Listeners, StartError> {
        let h = &cfg.bind;
        Ok(Listeners {
            amqp: bind("AMQP", h, cfg.amqp_port).await?,
            mqtt: bind("MQTT", h, cfg.mqtt_port).await?,
            mqtt_ws: bind("MQTT-WebSocket", h, cfg.mqtt_ws_port).await?,
            stomp: bind("STOMP", h, cfg.stomp_port).await?,
            stomp_ws: bind("STOMP-WebSocket", h, cfg.stomp_ws_port).await?,
            http: bind("HTTP (SQS)", h, cfg.http_port).await?,
            admin: bind("HTTP (admin)", h, cfg.admin_port).await?,
        })
    }

    /// Each listener with the name the `listening` line gives it.
    pub fn named(&self) -> [(&'static str, &Arc<TcpListener>); 7] {
        [
            ("amqp", &self.amqp),
            ("mqtt", &self.mqtt),
            ("mqtt-ws", &self.mqtt_ws),
            ("stomp", &self.stomp),
            ("stomp-ws", &self.stomp_ws),
            ("http", &self.http),
            ("admin", &self.admin),
        ]
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
        let shutdown = CancellationToken::new();
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
        let (amqp, amqp_addr) = (listeners.amqp.clone(), addr(&listeners.amqp)?);
        let (mqtt, mqtt_addr) = (listeners.mqtt.clone(), addr(&listeners.mqtt)?);
        let (mqtt_ws, mqtt_ws_addr) = (listeners.mqtt_ws.clone(), addr(&listeners.mqtt_ws)?);
        let (stomp, stomp_addr) = (listeners.stomp.clone(), addr(&listeners.stomp)?);
        let (stomp_ws, stomp_ws_addr) = (listeners.stomp_ws.clone(), addr(&listeners.stomp_ws)?);
        let (http, http_addr) = (listeners.http.clone(), addr(&listeners.http)?);
        let (admin_l, admin_addr) = (listeners.admin.clone(), addr(&listeners.admin)?);

        let amqp_cfg = Arc::new(switchboard_amqp::Config::from(&cfg.amqp));
        let b = broker.clone();
        tracker.spawn(accept_loop(
            amqp,
            shutdown.clone(),
            tracker.clone(),
            core.clone(),
            move |s, peer, sd| switchboard_amqp::serve(s, peer, b.clone(), amqp_cfg.clone(), sd),
        ));

        let mqtt_cfg = Arc::new(switchboard_mqtt::Config::from(&cfg.mqtt));
        let registry = switchboard_mqtt::Registry::default();
        let (b, c, r) = (broker.clone(), mqtt_cfg.clone(), registry.clone());
        tracker.spawn(accept_loop(
            mqtt,
            shutdown.clone(),
            tracker.clone(),
            core.clone(),
            move |s, peer, sd| {
                switchboard_mqtt::serve(s, peer, b.clone(), c.clone(), r.clone(), sd)
            },
        ));
        let (b, c, r) = (broker.clone(), mqtt_cfg, registry);
        let ws = crate::ws::Options {
            subprotocols: &["mqtt", "mqttv3.1"],
            text: false,
            paths: &[],
            handshake_timeout: c.connect_timeout,
        };
        tracker.spawn(accept_loop(
            mqtt_ws,
            shutdown.clone(),
            tracker.clone(),
            core.clone(),
            move |s, peer, sd| {
                let (b, c, r) = (b.clone(), c.clone(), r.clone());
                crate::ws::serve(s, ws, move |pipe| {
                    switchboard_mqtt::serve(pipe, peer, b, c, r, sd)
                })
            },
        ));

        let stomp_cfg = Arc::new(switchboard_stomp::Config::from(&cfg.stomp));
        let (b, c) = (broker.clone(), stomp_cfg.clone());
        tracker.spawn(accept_loop(
            stomp,
            shutdown.clone(),
            tracker.clone(),
            core.clone(),
            move |s, peer, sd| switchboard_stomp::serve(s, peer, b.clone(), c.clone(), sd),
        ));
        let (b, c) = (broker.clone(), stomp_cfg);
        let ws = crate::ws::Options {
            subprotocols: &["v12.stomp", "v11.stomp", "v10.stomp", "stomp"],
            text: true,
            // RabbitMQ web-stomp's path, and the one many examples use.
            paths: &["/ws", "/stomp"],
            handshake_timeout: c.connect_timeout,
        };
        tracker.spawn(accept_loop(
            stomp_ws,
            shutdown.clone(),
            tracker.clone(),
            core.clone(),
            move |s, peer, sd| {
                let (b, c) = (b.clone(), c.clone());
                crate::ws::serve(s, ws, move |pipe| {
                    switchboard_stomp::serve(pipe, peer, b, c, sd)
                })
            },
        ));

        let aws =
            switchboard_bridge::Service::new(broker.clone(), switchboard_bridge::Config::from(cfg));
        let aws_metrics = aws.metrics();
        tracker.spawn(accept_loop(
            http,
            shutdown.clone(),
            tracker.clone(),
            core.clone(),
            move |s, peer, sd| {
                let aws = aws.clone();
                async move { aws.serve_connection(s, peer, sd.cancelled_owned()).await }
            },
        ));

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
            ],
            replication,
            metrics: vec![aws_metrics],
        };
        if let Some(path) = &cfg.definitions {
            load_definitions(path, &broker, &admin)?;
        }
        let api = switchboard_admin::Service::new(broker.clone(), admin, node);
        tracker.spawn(accept_loop(
            admin_l,
            shutdown.clone(),
            tracker.clone(),
            core.clone(),
            move |s, peer, sd| {
                let api = api.clone();
                async move { api.serve_connection(s, peer, sd.cancelled_owned()).await }
            },
        ));

        Ok(Server {
            http_addr,
            admin_addr,
            amqp_addr,
            mqtt_addr,
            mqtt_ws_addr,
            stomp_addr,
            stomp_ws_addr,
            shutdown,
            tracker,
            store,
            limits,
        })
    }

    /// The line scripts read to find the ports: `listening amqp=127.0.0.1:5672 ...`.
    pub fn listening_line(&self) -> String {
        format!(
            "listening amqp={} mqtt={} mqtt-ws={} stomp={} stomp-ws={} http={} admin={}",
            self.amqp_addr,
            self.mqtt_addr,
            self.mqtt_ws_addr,
            self.stomp_addr,
            self.stomp_ws_addr,
            self.http_addr,
            self.admin_addr
        )
    }

    /// The store this server writes to (replication ships its journal).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Applies what can change at run time (SIGHUP): the resource-alarm limits.
    pub fn reload(&self, cfg: &Config) {
        self.limits.send_replace(cfg.limits);
        tracing::info!(?cfg.limits, "configuration reloaded");
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

/// Accepts connections and runs `serve` for each on the tracker.
/// Accepts and serves each connection with a token of its own: cancelled at
/// shutdown (a child of `shutdown`) or when the admin API closes the connection.
async fn accept_loop<F, Fut>(
    listener: Arc<TcpListener>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    core: Core,
    serve: F,
) where
    F: Fn(tokio::net::TcpStream, SocketAddr, CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let token = shutdown.child_token();
                    core.track_socket(peer, token.clone());
                    let served = serve(stream, peer, token);
                    let core = core.clone();
                    tracker.spawn(async move {
                        served.await;
                        core.untrack_socket(peer);
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
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
