//! Overview, nodes, whoami, vhosts, users, permissions and the health checks.

use crate::auth::Auth;
use crate::error::ApiError;
use crate::list::{ListQuery, respond};
use crate::state::{AppState, check_vhost};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value as Json_, json};
use switchboard_api::admin::Password;
use switchboard_api::{Message, MessageCounts, PublishOptions, QueueDecl};

/// The RabbitMQ version rabbitmqadmin and dashboards are told: the management API
/// whose shapes this one follows.
pub const COMPAT_VERSION: &str = "3.10.8";

/// What the overview adds up over every queue.
#[derive(Default)]
struct Totals {
    ready: u64,
    unacked: u64,
    consumers: u64,
    queues: usize,
    exchanges: usize,
    /// Deliveries, gets, redeliveries and acks of every queue; publishes counted
    /// once per message (not once per queue it reached), as RabbitMQ's overview.
    counts: MessageCounts,
}

fn totals(st: &AppState) -> Totals {
    let mut t = Totals::default();
    for v in st.admin.vhost_names() {
        if let Ok(qs) = st.admin.queues(&v) {
            t.queues += qs.len();
            for q in qs {
                let s = q.stats;
                t.ready += u64::from(s.ready);
                t.unacked += u64::from(s.in_flight);
                t.consumers += u64::from(s.consumers);
                t.counts.deliver += s.counts.deliver;
                t.counts.get += s.counts.get;
                t.counts.redeliver += s.counts.redeliver;
                t.counts.ack += s.counts.ack;
            }
        }
        t.exchanges += st.admin.exchanges(&v).map_or(0, |x| x.len());
    }
    t.counts.publish = st.admin.published();
    t
}

pub async fn overview(State(st): State<AppState>, _a: Auth) -> Json<Json_> {
    let Totals {
        ready,
        unacked,
        consumers,
        queues,
        exchanges,
        counts,
    } = totals(&st);
    let messages = ready + unacked;
    let conns = st.admin.connections();
    let channels: u64 = conns
        .iter()
        .map(|c| u64::from(c.meta.channels.load(std::sync::atomic::Ordering::Relaxed)))
        .sum();
    let listeners: Vec<Json_> = st
        .node
        .listeners
        .iter()
        .map(|(p, a)| {
            json!({"node": st.node.node, "protocol": p, "ip_address": a.ip().to_string(),
                   "port": a.port()})
        })
        .collect();
    Json(json!({
        "management_version": COMPAT_VERSION,
        "rabbitmq_version": COMPAT_VERSION,
        "product_name": "Switchboard",
        "product_version": env!("CARGO_PKG_VERSION"),
        "cluster_name": st.node.node,
        "node": st.node.node,
        "erlang_version": "none",
        "queue_totals": {"messages": messages, "messages_ready": ready,
                         "messages_unacknowledged": unacked},
        "object_totals": {"queues": queues, "exchanges": exchanges, "consumers": consumers,
                          "connections": conns.len(), "channels": channels},
        "message_stats": st.rates.node(counts),
        "listeners": listeners,
        "contexts": [],
        "alarm": st.broker.alarm_watch().and_then(|w| w.borrow().clone()),
        "replication": replication_json(&st),
    }))
}

/// The pair's state (null for a node that runs alone): this node's role and
/// epoch, whether the standby holds everything confirmed, and how far behind it is.
fn replication_json(st: &AppState) -> Json_ {
    let Some(probe) = &st.node.replication else {
        return Json_::Null;
    };
    let r = probe();
    json!({"role": if r.active { "active" } else { "standby" }, "epoch": r.epoch,
           "peer": r.peer, "standby_in_sync": r.in_sync, "last_lsn": r.last_lsn,
           "acked_lsn": r.acked_lsn, "lag_lsn": r.last_lsn.saturating_sub(r.acked_lsn)})
}

pub async fn nodes(State(st): State<AppState>, _a: Auth) -> Json<Json_> {
    Json(json!([{
        "name": st.node.node,
        "type": "disc",
        "running": true,
        "uptime": st.started.elapsed().as_millis() as u64,
        "mem_used": rss_bytes(),
        "mem_alarm": st.broker.alarm_watch().is_some_and(|w| w.borrow().is_some()),
        "replication": replication_json(&st),
    }]))
}

/// Resident memory of this process, from /proc (0 where there is none).
fn rss_bytes() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

pub async fn whoami(a: Auth) -> Json<Json_> {
    Json(json!({"name": a.0.name, "tags": a.0.tags}))
}

fn vhost_json(st: &AppState, name: &str) -> Json_ {
    let (mut ready, mut unacked) = (0u64, 0u64);
    for q in st.admin.queues(name).unwrap_or_default() {
        ready += u64::from(q.stats.ready);
        unacked += u64::from(q.stats.in_flight);
    }
    json!({"name": name, "description": "", "tags": [], "tracing": false,
           "messages": ready + unacked, "messages_ready": ready,
           "messages_unacknowledged": unacked})
}

pub async fn vhosts(
    State(st): State<AppState>,
    _a: Auth,
    Query(q): Query<ListQuery>,
) -> Result<Json<Json_>, ApiError> {
    let items = st
        .admin
        .vhost_names()
        .iter()
        .map(|v| vhost_json(&st, v))
        .collect();
    respond(items, &q)
}

pub async fn vhost(
    State(st): State<AppState>,
    _a: Auth,
    Path(vhost): Path<String>,
) -> Result<Json<Json_>, ApiError> {
    check_vhost(&st, &vhost)?;
    Ok(Json(vhost_json(&st, &vhost)))
}

pub async fn put_vhost(
    State(st): State<AppState>,
    a: Auth,
    Path(vhost): Path<String>,
) -> Result<StatusCode, ApiError> {
    a.administrator()?;
    if vhost.is_empty() {
        return Err(ApiError::bad_request("vhost name must not be empty"));
    }
    if check_vhost(&st, &vhost).is_ok() {
        return Ok(StatusCode::NO_CONTENT);
    }
    st.admin.add_vhost(&vhost)?;
    Ok(StatusCode::CREATED)
}

const SHA256_HASHING: &str = "rabbit_password_hashing_sha256";
fn hashing_of(hash: &str) -> &'static str {
    if hash.starts_with("$argon2") {
        ARGON2_HASHING
    } else {
        SHA256_HASHING
    }
}

/// Switchboard's own: an Argon2 PHC string (`$argon2id$…`) as the hash.
pub const ARGON2_HASHING: &str = "argon2id";

fn user_json(u: &switchboard_api::admin::UserInfo) -> Json_ {
    json!({"name": u.name, "tags": u.tags, "limits": {},
           "hashing_algorithm": hashing_of(&u.password_hash), "password_hash": u.password_hash})
}

/// Tags as RabbitMQ takes them: a comma-separated string or a list.
pub fn tags_of(v: Option<&Json_>) -> Result<Vec<String>, ApiError> {
    match v {
        None | Some(Json_::Null) => Ok(Vec::new()),
        Some(Json_::String(s)) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()),
        Some(Json_::Array(a)) => a
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::bad_request("tags must be strings"))
            })
            .collect(),
        Some(_) => Err(ApiError::bad_request("tags must be a string or a list")),
    }
}

/// The password of a user object: `password`, or `password_hash` with RabbitMQ's
/// SHA-256 hashing (the only one this broker checks).
pub fn password_of(o: &serde_json::Map<String, Json_>) -> Result<Password, ApiError> {
    if let Some(p) = o.get("password").and_then(Json_::as_str) {
        return Ok(Password::Plain(p.to_string()));
    }
    let hash = o
        .get("password_hash")
        .and_then(Json_::as_str)
        .ok_or_else(|| ApiError::bad_request("password or password_hash is required"))?;
    // The variant says "a hash, checked by the core": RabbitMQ's, or an Argon2
    // PHC string (which names its own algorithm).
    match o.get("hashing_algorithm").and_then(Json_::as_str) {
        None | Some(SHA256_HASHING) => Ok(Password::Hashed(hash.to_string())),
        Some(ARGON2_HASHING) if hash.starts_with("$argon2") => {
            Ok(Password::Hashed(hash.to_string()))
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "hashing_algorithm {other} is not supported; use {SHA256_HASHING} or {ARGON2_HASHING}"
        ))),
    }
}

pub async fn put_user(
    State(st): State<AppState>,
    a: Auth,
    Path(name): Path<String>,
    raw: bytes::Bytes,
) -> Result<StatusCode, ApiError> {
    a.administrator()?;
    let o = crate::queues::body(&raw)?;
    if name.is_empty() {
        return Err(ApiError::bad_request("user name must not be empty"));
    }
    let existed = st.admin.users().iter().any(|u| u.name == name);
    let lsn = st
        .admin
        .put_user(&name, password_of(&o)?, tags_of(o.get("tags"))?)?;
    crate::state::durable(&st, lsn).await;
    Ok(if existed {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::CREATED
    })
}

pub async fn delete_user(
    State(st): State<AppState>,
    a: Auth,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    a.administrator()?;
    let lsn = st.admin.delete_user(&name)?;
    crate::state::durable(&st, lsn).await;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn users(
    State(st): State<AppState>,
    a: Auth,
    Query(q): Query<ListQuery>,
) -> Result<Json<Json_>, ApiError> {
    a.administrator()?;
    respond(st.admin.users().iter().map(user_json).collect(), &q)
}

pub async fn user(
    State(st): State<AppState>,
    a: Auth,
    Path(name): Path<String>,
) -> Result<Json<Json_>, ApiError> {
    a.administrator()?;
    let users = st.admin.users();
    let u = users
        .iter()
        .find(|u| u.name == name)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(user_json(u)))
}

pub async fn alarms(State(st): State<AppState>, _a: Auth) -> (StatusCode, Json<Json_>) {
    match st.broker.alarm_watch().and_then(|w| w.borrow().clone()) {
        None => (StatusCode::OK, Json(json!({"status": "ok"}))),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({"status": "failed", "reason": "resource alarm(s) in effect",
                        "alarms": [{"node": st.node.node, "resource": reason}]}),
            ),
        ),
    }
}

pub async fn virtual_hosts(_a: Auth) -> Json<Json_> {
    // Vhosts here cannot be stopped one by one: every existing one is running.
    Json(json!({"status": "ok"}))
}

/// RabbitMQ's aliveness test: declare `aliveness-test`, publish to it, get it back.
pub async fn aliveness(
    State(st): State<AppState>,
    a: Auth,
    Path(vhost): Path<String>,
) -> Result<Json<Json_>, ApiError> {
    check_vhost(&st, &vhost)?;
    let name = "aliveness-test";
    let decl = QueueDecl {
        name: name.into(),
        durable: false,
        ..Default::default()
    };
    a.broker(&st, &vhost)?
        .declare_queue(&vhost, &decl, st.conn)?;
    let m = Message::new("", name, bytes::Bytes::from_static(b"test_message"));
    a.broker(&st, &vhost)?
        .publish(&vhost, m, PublishOptions::default())?;
    match a.broker(&st, &vhost)?.get(&vhost, name, st.conn, true)? {
        Some(_) => Ok(Json(json!({"status": "ok"}))),
        None => Err(ApiError::bad_request(
            "aliveness test message did not arrive",
        )),
    }
}

/// `/api/<family>/<list>`: what the protocols keep beyond the core's objects —
/// `/api/mqtt/sessions`, `/api/mqtt/retained`, `/api/sqs/queues`,
/// `/api/sns/topics`, `/api/sns/subscriptions` — with the usual paging and columns.
pub async fn catalog(
    State(st): State<AppState>,
    _a: Auth,
    Path((family, list)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Json_>, ApiError> {
    let rows = st
        .node
        .catalogs
        .iter()
        .filter(|c| c.family() == family)
        .find_map(|c| c.rows(&list))
        .ok_or_else(ApiError::not_found)?;
    respond(rows.iter().map(crate::json::table_to_json).collect(), &q)
}
