//! `/api/exchanges`: list, show, declare (PUT), delete, and publish.

use crate::auth::Auth;
use crate::error::ApiError;
use crate::json::{arguments, json_to_properties, table_to_json};
use crate::list::{ListQuery, respond};
use crate::queues::{body, flag};
use crate::state::{AppState, check_vhost, durable, exchange_name, scope};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value as Json_, json};
use switchboard_api::admin::ExchangeInfo;
use switchboard_api::{ExchangeDecl, Message, PublishOptions};

fn exchange_json(vhost: &str, x: &ExchangeInfo) -> Json_ {
    json!({
        "name": x.name,
        "vhost": vhost,
        "type": x.kind,
        "durable": x.durable,
        "auto_delete": x.auto_delete,
        "internal": x.internal,
        "arguments": table_to_json(&x.arguments),
        "user_who_performed_action": "",
    })
}

/// `/api/exchanges` and `/api/exchanges/{vhost}`.
pub async fn list(
    State(st): State<AppState>,
    _a: Auth,
    vhost: Option<Path<String>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Json_>, ApiError> {
    let mut items = Vec::new();
    for v in scope(&st, vhost.map(|p| p.0))? {
        items.extend(st.admin.exchanges(&v)?.iter().map(|x| exchange_json(&v, x)));
    }
    respond(items, &q)
}

fn find(st: &AppState, vhost: &str, name: &str) -> Result<ExchangeInfo, ApiError> {
    check_vhost(st, vhost)?;
    st.admin
        .exchanges(vhost)?
        .into_iter()
        .find(|x| x.name == name)
        .ok_or_else(ApiError::not_found)
}

pub async fn show(
    State(st): State<AppState>,
    _a: Auth,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Json<Json_>, ApiError> {
    let x = find(&st, &vhost, exchange_name(&name))?;
    Ok(Json(exchange_json(&vhost, &x)))
}

pub async fn declare(
    State(st): State<AppState>,
    a: Auth,
    Path((vhost, name)): Path<(String, String)>,
    raw: bytes::Bytes,
) -> Result<StatusCode, ApiError> {
    a.may_change()?;
    check_vhost(&st, &vhost)?;
    let name = exchange_name(&name);
    if name.is_empty() || name.starts_with("amq.") {
        return Err(ApiError::bad_request(format!(
            "access to exchange '{name}' in vhost '{vhost}' refused: the amq. prefix is reserved"
        )));
    }
    let o = body(&raw)?;
    let kind = o
        .get("type")
        .and_then(Json_::as_str)
        .ok_or_else(|| ApiError::bad_request("type is required"))?;
    let existed = find(&st, &vhost, name).is_ok();
    let decl = ExchangeDecl {
        name: name.to_string(),
        kind: kind.to_string(),
        durable: flag(&o, "durable", true)?,
        auto_delete: flag(&o, "auto_delete", false)?,
        internal: flag(&o, "internal", false)?,
        passive: false,
        arguments: arguments(o.get("arguments")).map_err(ApiError::bad_request)?,
    };
    a.broker(&st, &vhost)?.declare_exchange(&vhost, &decl)?;
    Ok(if existed {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::CREATED
    })
}

#[derive(Deserialize, Default)]
pub struct DeleteQuery {
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
    let name = exchange_name(&name);
    find(&st, &vhost, name)?;
    if name.is_empty() || name.starts_with("amq.") {
        return Err(ApiError::bad_request(format!(
            "exchange '{name}' is built in and cannot be deleted"
        )));
    }
    a.broker(&st, &vhost)?
        .delete_exchange(&vhost, name, q.if_unused.unwrap_or(false))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Publishes one message; answers `{"routed": bool}` once it is durable (for a
/// persistent message in durable queues), as a confirm would.
pub async fn publish(
    State(st): State<AppState>,
    a: Auth,
    Path((vhost, name)): Path<(String, String)>,
    raw: bytes::Bytes,
) -> Result<Json<Json_>, ApiError> {
    a.may_change()?;
    let name = exchange_name(&name);
    find(&st, &vhost, name)?;
    let o = body(&raw)?;
    let key = o
        .get("routing_key")
        .and_then(Json_::as_str)
        .ok_or_else(|| ApiError::bad_request("routing_key is required"))?;
    let payload = o.get("payload").and_then(Json_::as_str).unwrap_or("");
    let payload = match o.get("payload_encoding").and_then(Json_::as_str) {
        None | Some("string") => bytes::Bytes::from(payload.to_string()),
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(payload)
            .map(bytes::Bytes::from)
            .map_err(|_| ApiError::bad_request("payload is not valid base64"))?,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "payload_encoding {other}: must be string or base64"
            )));
        }
    };
    let props = match o.get("properties") {
        None | Some(Json_::Null) => Default::default(),
        Some(Json_::Object(p)) => json_to_properties(p).map_err(ApiError::bad_request)?,
        Some(_) => return Err(ApiError::bad_request("properties must be an object")),
    };
    let mut m = Message::new(name, key, payload);
    m.properties = props;
    let outcome = a
        .broker(&st, &vhost)?
        .publish(&vhost, m, PublishOptions::default())?;
    durable(&st, outcome.lsn).await;
    Ok(Json(json!({"routed": outcome.queues > 0})))
}
