//! The AWS-compatible HTTP APIs on the shared core: SQS, and SNS (Query protocol) on
//! the same port, told apart by the SigV4 credential scope's service or, unsigned,
//! by the form's `Version` and action.
//!
//! One HTTP listener serves both of SQS's wire protocols: AWS JSON 1.0 (an
//! `X-Amz-Target: AmazonSQS.<Action>` header and a JSON body, what current SDKs send)
//! and AWS Query (form parameters, XML replies, what older SDKs send). Both are
//! translated to the JSON protocol's shapes, so each action is written once
//! (`sqs::Sqs::call`).

mod awsquery;
mod http;
mod metrics;
mod percent;
pub mod sigv4;
pub mod sns;
pub mod sqs;
mod sts;

use std::net::SocketAddr;
use std::sync::Arc;
use switchboard_api::Broker;

/// How requests are authenticated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Auth {
    /// SigV4 against the broker's users (access key id = user name).
    #[default]
    SigV4,
    /// Anything goes, as in the SQS emulators; requests act as `guest`.
    None,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// The vhost whose queues SQS serves.
    pub vhost: String,
    /// Account id in queue URLs and ARNs.
    pub account_id: String,
    /// The region of unsigned requests; its queues and topics keep their bare core
    /// names (a signed request acts in its credential scope's region).
    pub region: String,
    pub auth: Auth,
    /// Scheme, host and port for queue URLs (`http://sqs.local:9324`); `None`: from
    /// the request's `Host` header.
    pub base_url: Option<String>,
    /// Largest request body accepted (a batch of ten 1 MiB messages plus slack).
    pub max_body: usize,
    /// SNS deliveries to mail and https endpoints.
    pub sns: SnsConfig,
}

/// How SNS reaches `email`/`email-json` and `https` subscribers.
#[derive(Clone, Debug)]
pub struct SnsConfig {
    /// `host:port` of the SMTP relay mail goes through; `None`: email and
    /// email-json subscriptions are refused.
    pub smtp_relay: Option<String>,
    /// The sender address of every mail (envelope and From header).
    pub smtp_from: String,
    /// Extra trusted roots (PEM) for https endpoints, besides Mozilla's.
    pub https_ca_file: Option<std::path::PathBuf>,
    /// Accept any certificate from an https endpoint (tests only).
    pub https_insecure: bool,
}

impl Default for SnsConfig {
    fn default() -> Self {
        SnsConfig {
            smtp_relay: None,
            smtp_from: "no-reply@sns.switchboard.local".into(),
            https_ca_file: None,
            https_insecure: false,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            vhost: "/".into(),
            account_id: "000000000000".into(),
            region: "us-east-1".into(),
            auth: Auth::SigV4,
            base_url: None,
            max_body: 12 << 20,
            sns: SnsConfig::default(),
        }
    }
}

/// A client has this long to send a request's headers (slowloris guard); idle
/// keep-alive connections between requests count too.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The HTTP APIs, ready to serve connections: a cheap handle to clone per listener.
#[derive(Clone)]
pub struct Service {
    router: axum::Router,
    broker: Arc<dyn Broker>,
    catalogs: Vec<Arc<dyn switchboard_api::admin::Catalog>>,
    stats: Arc<metrics::RequestStats>,
    /// Connections arrive over TLS: queue URLs taken from `Host` say `https://`.
    https: bool,
}

/// The scheme of the connection a request came on (for queue URLs).
#[derive(Clone, Copy)]
pub(crate) struct Https(pub bool);

/// One HTTP connection as the admin API lists it: described on its first
/// request, again when the signer changes.
pub(crate) struct HttpConn {
    pub id: switchboard_api::ConnectionId,
    pub described: std::sync::Mutex<Option<String>>,
}

impl Service {
    pub fn new(broker: Arc<dyn Broker>, cfg: Config) -> Service {
        let stats = Arc::new(metrics::RequestStats::default());
        let (router, catalogs) = http::router(broker.clone(), cfg, stats.clone());
        Service {
            router,
            broker,
            catalogs,
            stats,
            https: false,
        }
    }

    /// The same APIs for a listener whose connections are TLS (HTTPS).
    pub fn https(&self) -> Service {
        Service {
            https: true,
            ..self.clone()
        }
    }

    /// SQS queues, SNS topics and subscriptions, for the admin API.
    pub fn catalogs(&self) -> Vec<Arc<dyn switchboard_api::admin::Catalog>> {
        self.catalogs.clone()
    }

    /// Requests by service and action, for the admin API's `/metrics`.
    pub fn metrics(&self) -> Arc<dyn switchboard_api::admin::MetricsSource> {
        self.stats.clone()
    }

    /// Serves one connection (HTTP/1.1 with keep-alive) until the client closes it
    /// or `shutdown` completes, when the request in progress is finished first.
    pub async fn serve_connection<S>(
        &self,
        stream: S,
        peer: SocketAddr,
        shutdown: impl std::future::Future<Output = ()>,
    ) where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let conn = Arc::new(HttpConn {
            id: self.broker.connection_opened(),
            described: Default::default(),
        });
        let app = self
            .router
            .clone()
            .layer(axum::Extension(axum::extract::ConnectInfo(peer)))
            .layer(axum::Extension(Https(self.https)))
            .layer(axum::Extension(conn.clone()));
        let conn_id = conn.id;
        let svc = hyper_util::service::TowerToHyperService::new(app);
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, "HTTP connection ended: {e}");
                }
            }
            _ = shutdown => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
        self.broker.connection_closed(conn_id);
    }
}
