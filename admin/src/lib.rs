//! The admin HTTP API on port 15672: RabbitMQ's management API shapes where
//! RabbitMQ has an answer (so Debian's `rabbitmqadmin` and dashboards built on the
//! management plugin work unmodified), and Prometheus metrics at `/metrics`.
//!
//! Reads come from the core's snapshots ([`switchboard_api::Admin`]); changes go
//! through [`switchboard_api::Broker`], exactly as a protocol's would, so they are
//! journaled and checked the same way. One file per object family: `overview.rs`
//! (overview, nodes, vhosts, users, permissions, health), `connections.rs`, `queues.rs`,
//! `exchanges.rs` (and publish), `bindings.rs`, `definitions.rs`, `metrics.rs`, and
//! the web console (`console.rs`, its page in `console/`).

mod auth;
mod bindings;
mod connections;
mod console;
mod definitions;
mod error;
mod exchanges;
mod json;
mod list;
mod metrics;
mod overview;
mod permissions;
mod queues;
mod rates;
mod state;

pub use definitions::import as import_definitions;
pub use error::ApiError;
pub use state::NodeInfo;

use axum::Router;
use axum::routing::{delete, get, post};
use state::AppState;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_api::{Admin, Broker};

/// A request's headers must arrive within this (slow-loris guard, as the bridge).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct Service {
    router: Router,
}

impl Service {
    pub fn new(broker: Arc<dyn Broker>, admin: Arc<dyn Admin>, node: NodeInfo) -> Service {
        let conn = broker.connection_opened();
        let st = AppState {
            broker,
            admin,
            node: Arc::new(node),
            started: Instant::now(),
            conn,
            rates: Default::default(),
        };
        Service { router: router(st) }
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
        let app = self
            .router
            .clone()
            .layer(axum::Extension(axum::extract::ConnectInfo(peer)));
        let svc = hyper_util::service::TowerToHyperService::new(app);
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, "admin HTTP connection ended: {e}");
                }
            }
            _ = shutdown => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    }
}

fn router(st: AppState) -> Router {
    Router::new()
        .route("/api/overview", get(overview::overview))
        .route("/api/nodes", get(overview::nodes))
        .route("/api/whoami", get(overview::whoami))
        .route("/api/vhosts", get(overview::vhosts))
        .route(
            "/api/vhosts/{vhost}",
            get(overview::vhost).put(overview::put_vhost),
        )
        .route("/api/users", get(overview::users))
        .route(
            "/api/users/{name}",
            get(overview::user)
                .put(overview::put_user)
                .delete(overview::delete_user),
        )
        .route("/api/permissions", get(permissions::list))
        .route(
            "/api/permissions/{vhost}/{user}",
            get(permissions::show)
                .put(permissions::put)
                .delete(permissions::remove),
        )
        .route(
            "/api/vhosts/{vhost}/permissions",
            get(permissions::of_vhost),
        )
        .route("/api/users/{user}/permissions", get(permissions::of_user))
        .route("/api/topic-permissions", get(permissions::topic_list))
        .route(
            "/api/topic-permissions/{vhost}/{user}",
            get(permissions::topic_show)
                .put(permissions::topic_put)
                .delete(permissions::topic_remove),
        )
        .route("/api/health/checks/alarms", get(overview::alarms))
        .route(
            "/api/health/checks/virtual-hosts",
            get(overview::virtual_hosts),
        )
        .route("/api/aliveness-test/{vhost}", get(overview::aliveness))
        .route("/api/connections", get(connections::list))
        .route(
            "/api/connections/{name}",
            get(connections::show).delete(connections::close),
        )
        .route("/api/vhosts/{vhost}/connections", get(connections::list))
        .route("/api/channels", get(connections::channels))
        .route("/api/consumers", get(connections::consumers))
        .route("/api/consumers/{vhost}", get(connections::consumers))
        .route("/api/exchanges", get(exchanges::list))
        .route("/api/exchanges/{vhost}", get(exchanges::list))
        .route(
            "/api/exchanges/{vhost}/{name}",
            get(exchanges::show)
                .put(exchanges::declare)
                .delete(exchanges::remove),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/publish",
            post(exchanges::publish),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/source",
            get(bindings::of_source),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/destination",
            get(bindings::of_exchange_destination),
        )
        .route("/api/queues", get(queues::list))
        .route("/api/queues/{vhost}", get(queues::list))
        .route(
            "/api/queues/{vhost}/{name}",
            get(queues::show)
                .put(queues::declare)
                .delete(queues::remove),
        )
        .route("/api/queues/{vhost}/{name}/contents", delete(queues::purge))
        .route("/api/queues/{vhost}/{name}/get", post(queues::get_messages))
        .route(
            "/api/queues/{vhost}/{name}/bindings",
            get(bindings::of_queue),
        )
        .route("/api/bindings", get(bindings::list))
        .route("/api/bindings/{vhost}", get(bindings::list))
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{dest}",
            get(bindings::between).post(bindings::create),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{dest}/{props}",
            get(bindings::show).delete(bindings::remove),
        )
        .route(
            "/api/definitions",
            get(definitions::get_all).post(definitions::post_all),
        )
        .route(
            "/api/definitions/{vhost}",
            get(definitions::get_vhost).post(definitions::post_vhost),
        )
        .route("/api/{family}/{list}", get(overview::catalog))
        .route("/metrics", get(metrics::metrics))
        .route("/metrics/per-object", get(metrics::metrics))
        .route("/metrics/detailed", get(metrics::detailed))
        .route("/", get(console::index))
        .route("/console/app.js", get(console::app))
        .route("/console/style.css", get(console::style))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(st)
}

async fn fallback() -> ApiError {
    ApiError::not_found()
}

/// A path that exists, with a method it does not take: 405 in RabbitMQ's JSON.
async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
