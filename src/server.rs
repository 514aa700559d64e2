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
    /// SQS (and later SNS) over HTTP.
    pub http_addr: SocketAddr,
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
}

impl Server {
    /// Binds every listener and starts serving. Must run inside a tokio runtime.
    pub async fn start(cfg: &Config) -> Result<Server, StartError> {
        let (store, recovery) = Store::open(&cfg.data_dir, cfg.fsync)?;
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
        let broker: Arc<dyn Broker> = Arc::new(core);
        let tracker = TaskTracker::new();

        let (amqp, amqp_addr) = bind("AMQP", &cfg.bind, cfg.amqp_port).await?;
        let (mqtt, mqtt_addr) = bind("MQTT", &cfg.bind, cfg.mqtt_port).await?;
        let (mqtt_ws, mqtt_ws_addr) = bind("MQTT-WebSocket", &cfg.bind, cfg.mqtt_ws_port).await?;
        let (stomp, stomp_addr) = bind("STOMP", &cfg.bind, cfg.stomp_port).await?;
        let (stomp_ws, stomp_ws_addr) =
            bind("STOMP-WebSocket", &cfg.bind, cfg.stomp_ws_port).await?;
        let (http, http_addr) = bind("HTTP (SQS)", &cfg.bind, cfg.http_port).await?;

        let amqp_cfg = Arc::new(switchboard_amqp::Config::from(&cfg.amqp));
        let b = broker.clone();
        let sd = shutdown.clone();
        tracker.spawn(accept_loop(
            amqp,
            shutdown.clone(),
            tracker.clone(),
            move |s, peer| {
                switchboard_amqp::serve(s, peer, b.clone(), amqp_cfg.clone(), sd.clone())
            },
        ));

        let mqtt_cfg = Arc::new(switchboard_mqtt::Config::from(&cfg.mqtt));
        let registry = switchboard_mqtt::Registry::default();
        let (b, c, r, sd) = (
            broker.clone(),
            mqtt_cfg.clone(),
            registry.clone(),
            shutdown.clone(),
        );
        tracker.spawn(accept_loop(
            mqtt,
            shutdown.clone(),
            tracker.clone(),
            move |s, peer| {
                switchboard_mqtt::serve(s, peer, b.clone(), c.clone(), r.clone(), sd.clone())
            },
        ));
        let (b, c, r, sd) = (broker.clone(), mqtt_cfg, registry, shutdown.clone());
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
            move |s, peer| {
                let (b, c, r, sd) = (b.clone(), c.clone(), r.clone(), sd.clone());
                crate::ws::serve(s, ws, move |pipe| {
                    switchboard_mqtt::serve(pipe, peer, b, c, r, sd)
                })
            },
        ));

        let stomp_cfg = Arc::new(switchboard_stomp::Config::from(&cfg.stomp));
        let (b, c, sd) = (broker.clone(), stomp_cfg.clone(), shutdown.clone());
        tracker.spawn(accept_loop(
            stomp,
            shutdown.clone(),
            tracker.clone(),
            move |s, peer| switchboard_stomp::serve(s, peer, b.clone(), c.clone(), sd.clone()),
        ));
        let (b, c, sd) = (broker.clone(), stomp_cfg, shutdown.clone());
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
            move |s, peer| {
                let (b, c, sd) = (b.clone(), c.clone(), sd.clone());
                crate::ws::serve(s, ws, move |pipe| {
                    switchboard_stomp::serve(pipe, peer, b, c, sd)
                })
            },
        ));

        let aws = switchboard_bridge::Service::new(
            broker.clone(),
            switchboard_bridge::Config::from(&cfg.sqs),
        );
        let sd = shutdown.clone();
        tracker.spawn(accept_loop(
            http,
            shutdown.clone(),
            tracker.clone(),
            move |s, peer| {
                let (aws, sd) = (aws.clone(), sd.clone());
                async move { aws.serve_connection(s, peer, sd.cancelled_owned()).await }
            },
        ));

        Ok(Server {
            http_addr,
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
            "listening amqp={} mqtt={} mqtt-ws={} stomp={} stomp-ws={} http={}",
            self.amqp_addr,
            self.mqtt_addr,
            self.mqtt_ws_addr,
            self.stomp_addr,
            self.stomp_ws_addr,
            self.http_addr
        )
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

async fn bind(
    what: &'static str,
    host: &str,
    port: u16,
) -> Result<(TcpListener, SocketAddr), StartError> {
    let addr = format!("{host}:{port}");
    let err = |source| StartError::Bind {
        what,
        addr: addr.clone(),
        source,
    };
    let l = TcpListener::bind(&addr).await.map_err(err)?;
    let local = l.local_addr().map_err(err)?;
    Ok((l, local))
}

/// Accepts connections and runs `serve` for each on the tracker.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    serve: F,
) where
    F: Fn(tokio::net::TcpStream, SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tracker.spawn(serve(stream, peer));
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
