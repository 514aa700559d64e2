//! What every handler shares: the broker handles and what the API knows of its
//! node, and the checks every path makes.

use crate::error::ApiError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use switchboard_api::{Admin, Broker, ConnectionId};

/// What the overview and nodes endpoints tell about this node.
#[derive(Clone, Default)]
pub struct NodeInfo {
    /// RabbitMQ names nodes `rabbit@host`; ours is `switchboard@host`.
    pub node: String,
    /// (protocol as RabbitMQ names it, address) of every listener.
    pub listeners: Vec<(String, SocketAddr)>,
    /// The pair's state, for a node of an active/standby pair.
    pub replication: Option<switchboard_api::admin::ReplicationProbe>,
    /// Other parts' figures, appended to `/metrics`.
    pub metrics: Vec<Arc<dyn switchboard_api::admin::MetricsSource>>,
    /// Other parts' lists, at `/api/<family>/<list>` (MQTT sessions, SQS queues …).
    pub catalogs: Vec<Arc<dyn switchboard_api::admin::Catalog>>,
}

#[derive(Clone)]
pub struct AppState {
    pub broker: Arc<dyn Broker>,
    pub admin: Arc<dyn Admin>,
    pub node: Arc<NodeInfo>,
    pub started: Instant,
    /// The API's own connection id: owner of what it declares (never exclusive).
    pub conn: ConnectionId,
    pub rates: Arc<crate::rates::Rates>,
}

/// The vhost a path names must exist (404 otherwise, as RabbitMQ).
pub fn check_vhost(st: &AppState, vhost: &str) -> Result<(), ApiError> {
    if st.admin.vhost_names().iter().any(|v| v == vhost) {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

/// The vhosts a list covers: the one its path names (404 unless it exists), or
/// every vhost for the path without one.
pub fn scope(st: &AppState, vhost: Option<String>) -> Result<Vec<String>, ApiError> {
    match vhost {
        Some(v) => {
            check_vhost(st, &v)?;
            Ok(vec![v])
        }
        None => Ok(st.admin.vhost_names()),
    }
}

/// Waits until the journal holds `lsn`: a change is answered once it is durable,
/// as every protocol's "accepted" is.
pub async fn durable(st: &AppState, lsn: u64) {
    if lsn == 0 {
        return;
    }
    if let Some(mut w) = st.broker.durable_watch() {
        let _ = w.wait_for(|d| *d >= lsn).await;
    }
}

/// RabbitMQ names the default exchange `amq.default` in paths.
pub fn exchange_name(path_name: &str) -> &str {
    if path_name == "amq.default" {
        ""
    } else {
        path_name
    }
}
