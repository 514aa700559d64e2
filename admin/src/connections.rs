//! `/api/connections` (every protocol's, not only AMQP's), closing one,
//! `/api/channels` (AMQP channels; one per connection for the other protocols) and
//! `/api/consumers` (each with the connection consuming).
//! A connection is named by the client's address, which also finds it to close.

use crate::auth::Auth;
use crate::error::ApiError;
use crate::json::table_to_json;
use crate::list::{ListQuery, respond};
use crate::state::{AppState, check_vhost, scope};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value as Json_, json};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use switchboard_api::admin::ConnectionInfo;

fn connection_json(node: &str, c: &ConnectionInfo) -> Json_ {
    let m = &c.meta;
    json!({
        "name": m.peer.to_string(),
        "node": node,
        "type": "network",
        "state": "running",
        "protocol": m.protocol,
        "user": m.user,
        "vhost": m.vhost,
        "peer_host": m.peer.ip().to_string(),
        "peer_port": m.peer.port(),
        "channels": m.channels.load(Ordering::Relaxed),
        "connected_at": c.connected_at_ms,
        "client_properties": table_to_json(&m.client_properties),
    })
}

/// A monitoring or management user sees everyone's connections here (RabbitMQ
/// shows a management user only its own; there are no per-user limits yet).
fn all(st: &AppState, vhost: Option<&str>) -> Vec<Json_> {
    st.admin
        .connections()
        .iter()
        .filter(|c| vhost.is_none_or(|v| c.meta.vhost == v))
        .map(|c| connection_json(&st.node.node, c))
        .collect()
}

/// `/api/connections` and `/api/vhosts/{vhost}/connections`.
pub async fn list(
    State(st): State<AppState>,
    _a: Auth,
    vhost: Option<Path<String>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Json_>, ApiError> {
    let vhost = vhost.map(|p| p.0);
    if let Some(v) = &vhost {
        check_vhost(&st, v)?;
    }
    respond(all(&st, vhost.as_deref()), &q)
}

fn find(st: &AppState, name: &str) -> Result<ConnectionInfo, ApiError> {
    // Tools may send RabbitMQ's `client -> server` form: the client part names it.
    let peer: SocketAddr = name
        .split(" -> ")
        .next()
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(ApiError::not_found)?;
    st.admin
        .connections()
        .into_iter()
        .find(|c| c.meta.peer == peer)
        .ok_or_else(ApiError::not_found)
}

pub async fn show(
    State(st): State<AppState>,
    _a: Auth,
    Path(name): Path<String>,
) -> Result<Json<Json_>, ApiError> {
    let c = find(&st, &name)?;
    Ok(Json(connection_json(&st.node.node, &c)))
}

/// Closes the connection the protocol's way, as at shutdown (AMQP connection.close
/// 320 CONNECTION_FORCED, MQTT 5 DISCONNECT, STOMP ERROR).
pub async fn close(
    State(st): State<AppState>,
    a: Auth,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    a.may_change()?;
    let c = find(&st, &name)?;
    tracing::info!(peer = %c.meta.peer, user = %a.0.name, "connection closed via the admin API");
    if st.admin.close_connection(c.meta.peer) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}

pub async fn channels(
    State(st): State<AppState>,
    _a: Auth,
    Query(q): Query<ListQuery>,
) -> Result<Json<Json_>, ApiError> {
    let mut items = Vec::new();
    for c in st.admin.connections() {
        let name = c.meta.peer.to_string();
        for n in 1..=c.meta.channels.load(Ordering::Relaxed) {
            items.push(json!({
                "name": format!("{name} ({n})"),
                "node": st.node.node,
                "user": c.meta.user,
                "vhost": c.meta.vhost,
                "number": n,
                "state": "running",
                "connection_details": {"name": name, "peer_host": c.meta.peer.ip().to_string(),
                                       "peer_port": c.meta.peer.port()},
            }));
        }
    }
    respond(items, &q)
}

fn consumers_of(st: &AppState, vhosts: &[String]) -> Result<Vec<Json_>, ApiError> {
    let conns = st.admin.connections();
    let mut items = Vec::new();
    for v in vhosts {
        for c in st.admin.consumers(v)? {
            let conn = conns.iter().find(|x| x.id == c.owner);
            let details = conn.map_or(Json_::Null, |x| {
                json!({"connection_name": x.meta.peer.to_string(),
                       "peer_host": x.meta.peer.ip().to_string(),
                       "peer_port": x.meta.peer.port(), "user": x.meta.user,
                       "protocol": x.meta.protocol})
            });
            items.push(json!({
                "queue": {"name": c.queue, "vhost": v},
                "consumer_tag": format!("consumer-{}", c.tag),
                "channel_details": details,
                "prefetch_count": c.prefetch,
                "unacknowledged": c.unacked,
                "exclusive": c.exclusive,
                "priority": c.priority,
                "ack_required": true,
                "active": true,
                "activity_status": "up",
            }));
        }
    }
    Ok(items)
}

/// `/api/consumers` and `/api/consumers/{vhost}`.
pub async fn consumers(
    State(st): State<AppState>,
    _a: Auth,
    vhost: Option<Path<String>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Json_>, ApiError> {
    respond(consumers_of(&st, &scope(&st, vhost.map(|p| p.0))?)?, &q)
}
