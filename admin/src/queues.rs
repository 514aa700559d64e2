//! `/api/queues`: list, show, declare (PUT), delete, purge (`/contents`) and get.

use crate::auth::Auth;
use crate::error::ApiError;
use crate::json::{arguments, properties_to_json, table_to_json};
use crate::list::{ListQuery, respond_with};
use crate::state::{AppState, check_vhost, scope};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value as Json_, json};
use switchboard_api::admin::QueueSummary;
use switchboard_api::{Access, Entity, QueueDecl, Settle};

pub fn queue_json(st: &AppState, vhost: &str, q: &QueueSummary) -> Json_ {
    let s = q.stats;
    let kind = q
        .arguments
        .get("x-queue-type")
        .and_then(|v| v.as_str())
        .unwrap_or("classic")
        .to_string();
    json!({
        "name": q.name,
        "vhost": vhost,
        "durable": q.durable,
        "auto_delete": q.auto_delete,
        "exclusive": q.exclusive,
        "arguments": table_to_json(&q.arguments),
        "node": st.node.node,
        "state": "running",
        "type": kind,
        "consumers": s.consumers,
        "messages": u64::from(s.ready) + u64::from(s.in_flight),
        "messages_ready": s.ready,
        "messages_unacknowledged": s.in_flight,
        "messages_delayed": s.delayed,
        "message_bytes_ready": s.ready_bytes,
        "message_bytes_paged_out": s.paged_bytes,
        "message_stats": st.rates.queue(vhost, &q.name, s.counts),
    })
}

/// Every queue of the vhosts, as (vhost, summary): cheap; the JSON is made for
/// the ones answered only.
fn summaries(st: &AppState, vhosts: Vec<String>) -> Result<Vec<(String, QueueSummary)>, ApiError> {
    let mut out = Vec::new();
    for v in vhosts {
        out.extend(st.admin.queues(&v)?.into_iter().map(|q| (v.clone(), q)));
    }
    Ok(out)
}

fn answer(
    st: &AppState,
    all: Vec<(String, QueueSummary)>,
    q: &ListQuery,
) -> Result<Json<Json_>, ApiError> {
    respond_with(
        all,
        q,
        |(_, s)| s.name.as_str(),
        |(v, s)| queue_json(st, v, s),
    )
}

/// `/api/queues` and `/api/queues/{vhost}`.
pub async fn list(
    State(st): State<AppState>,
    _a: Auth,
    vhost: Option<Path<String>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Json_>, ApiError> {
    let all = summaries(&st, scope(&st, vhost.map(|p| p.0))?)?;
    answer(&st, all, &q)
}

fn find(st: &AppState, vhost: &str, name: &str) -> Result<QueueSummary, ApiError> {
    check_vhost(st, vhost)?;
    st.admin
        .queues(vhost)?
        .into_iter()
        .find(|q| q.name == name)
        .ok_or_else(ApiError::not_found)
}

pub async fn show(
    State(st): State<AppState>,
    _a: Auth,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Json<Json_>, ApiError> {
    let q = find(&st, &vhost, &name)?;
    Ok(Json(queue_json(&st, &vhost, &q)))
}

/// A JSON body, refused with 400 when it does not parse (axum's own rejection
/// would be a plain-text 422).
pub fn body(bytes: &[u8]) -> Result<serde_json::Map<String, Json_>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<Json_>(bytes) {
        Ok(Json_::Object(o)) => Ok(o),
        Ok(_) => Err(ApiError::bad_request("body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!("malformed JSON: {e}"))),
    }
}

/// `true`/`false` as JSON booleans or as the strings rabbitmqadmin sends.
pub fn flag(o: &serde_json::Map<String, Json_>, k: &str, default: bool) -> Result<bool, ApiError> {
    match o.get(k) {
        None | Some(Json_::Null) => Ok(default),
        Some(Json_::Bool(b)) => Ok(*b),
        Some(Json_::String(s)) if s == "true" => Ok(true),
        Some(Json_::String(s)) if s == "false" => Ok(false),
        Some(_) => Err(ApiError::bad_request(format!("{k} must be true or false"))),
    }
}

pub async fn declare(
    State(st): State<AppState>,
    a: Auth,
    Path((vhost, name)): Path<(String, String)>,
    raw: bytes::Bytes,
) -> Result<StatusCode, ApiError> {
    a.may_change()?;
    check_vhost(&st, &vhost)?;
    let o = body(&raw)?;
    if flag(&o, "exclusive", false)? {
        return Err(ApiError::bad_request(
            "exclusive queues belong to a connection; declare them over AMQP",
        ));
    }
    let existed = st.broker.queue_exists(&vhost, &name);
    let decl = QueueDecl {
        name: name.clone(),
        durable: flag(&o, "durable", true)?,
        auto_delete: flag(&o, "auto_delete", false)?,
        exclusive: false,
        passive: false,
        arguments: arguments(o.get("arguments")).map_err(ApiError::bad_request)?,
    };
    if name.is_empty() {
        return Err(ApiError::bad_request("queue name must not be empty"));
    }
    a.broker(&st, &vhost)?
        .declare_queue(&vhost, &decl, st.conn)?;
    Ok(if existed {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::CREATED
    })
}

#[derive(Deserialize, Default)]
pub struct DeleteQuery {
    #[serde(rename = "if-empty")]
    if_empty: Option<bool>,
    #[serde(rename = "if-unused")]
    if_unused: Option<bool>,
}

pub async fn remove(
    State(st): State<AppState>,
    a: Auth,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Query<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    a.may_change()?;
    // Permission before existence: a refusal never tells whether the queue exists.
    let b = a.broker(&st, &vhost)?;
    b.check(&vhost, Access::Configure, Entity::Queue, &name)?;
    find(&st, &vhost, &name)?;
    b.delete_queue(
        &vhost,
        &name,
        q.if_unused.unwrap_or(false),
        q.if_empty.unwrap_or(false),
        st.conn,
    )?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn purge(
    State(st): State<AppState>,
    a: Auth,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    a.may_change()?;
    let b = a.broker(&st, &vhost)?;
    b.check(&vhost, Access::Read, Entity::Queue, &name)?;
    find(&st, &vhost, &name)?;
    b.purge_queue(&vhost, &name, st.conn)?;
    Ok(StatusCode::NO_CONTENT)
}

/// A count as a number or the string rabbitmqadmin sends.
fn count(o: &serde_json::Map<String, Json_>) -> Result<usize, ApiError> {
    let n = match o.get("count") {
        None => Some(1),
        Some(Json_::Number(n)) => n.as_u64(),
        Some(Json_::String(s)) => s.parse().ok(),
        Some(_) => None,
    };
    n.and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::bad_request("count must be a positive integer"))
}

/// Takes up to `count` messages and settles each as `ackmode` says:
/// `ack_requeue_true`/`reject_requeue_true` put them back (redelivered), the
/// `_false` modes remove (ack) or dead-letter (reject) them, as RabbitMQ does.
pub async fn get_messages(
    State(st): State<AppState>,
    a: Auth,
    Path((vhost, name)): Path<(String, String)>,
    raw: bytes::Bytes,
) -> Result<Json<Json_>, ApiError> {
    a.may_change()?;
    find(&st, &vhost, &name)?;
    let o = body(&raw)?;
    let n = count(&o)?;
    let settle = match o.get("ackmode").and_then(Json_::as_str) {
        Some("ack_requeue_true") | Some("reject_requeue_true") => Settle::Requeue,
        Some("ack_requeue_false") => Settle::Ack,
        Some("reject_requeue_false") => Settle::Reject,
        _ => {
            return Err(ApiError::bad_request(
                "ackmode must be ack_requeue_true, ack_requeue_false, reject_requeue_true or reject_requeue_false",
            ));
        }
    };
    let base64_only = o.get("encoding").and_then(Json_::as_str) == Some("base64");
    let truncate = o
        .get("truncate")
        .and_then(|t| {
            t.as_u64()
                .or_else(|| t.as_str().and_then(|s| s.parse().ok()))
        })
        .and_then(|t| usize::try_from(t).ok());
    let mut out = Vec::new();
    let mut held = Vec::new();
    for _ in 0..n {
        let Some((d, left)) = a.broker(&st, &vhost)?.get(&vhost, &name, st.conn, false)? else {
            break;
        };
        let body = &d.message.body;
        let shown = &body[..truncate.map_or(body.len(), |t| t.min(body.len()))];
        let (payload, encoding) = match std::str::from_utf8(shown) {
            Ok(s) if !base64_only => (s.to_string(), "string"),
            _ => (
                base64::engine::general_purpose::STANDARD.encode(shown),
                "base64",
            ),
        };
        out.push(json!({
            "payload_bytes": body.len(),
            "redelivered": d.redelivered,
            "exchange": d.message.exchange,
            "routing_key": d.message.routing_key,
            "message_count": left,
            "properties": properties_to_json(&d.message.properties),
            "payload": payload,
            "payload_encoding": encoding,
        }));
        held.push(d);
    }
    // Settled after all are taken, so a requeue does not hand the same message out
    // twice in one get.
    for d in held {
        d.queue.settle(&[d.seq], settle);
    }
    Ok(Json(Json_::Array(out)))
}
