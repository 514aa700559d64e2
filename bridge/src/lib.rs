//! The AWS-compatible HTTP APIs on the shared core: SQS now (SNS is issue 7).
//!
//! One HTTP listener serves both of SQS's wire protocols: AWS JSON 1.0 (an
//! `X-Amz-Target: AmazonSQS.<Action>` header and a JSON body, what current SDKs send)
//! and AWS Query (form parameters, XML replies, what older SDKs send). Both are
//! translated to the JSON protocol's shapes, so each action is written once
//! (`sqs::Sqs::call`).

mod http;
pub mod sigv4;
pub mod sqs;

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
    /// Region in ARNs.
    pub region: String,
    pub auth: Auth,
    /// Scheme, host and port for queue URLs (`http://sqs.local:9324`); `None`: from
    /// the request's `Host` header.
    pub base_url: Option<String>,
    /// Largest request body accepted (a batch of ten 1 MiB messages plus slack).
    pub max_body: usize,
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
        }
    }
}

/// Serves the HTTP APIs on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    broker: Arc<dyn Broker>,
    cfg: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = http::router(broker, cfg);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
