//! `/api/bindings`, and the bindings of one queue or exchange. A binding is named
//! in paths by its `properties_key`, as in RabbitMQ: `~` for an empty key without
//! arguments, the key (percent-encoded) without arguments, else the key, `~` and a
//! digest of the arguments.

use crate::auth::Auth;
use crate::error::ApiError;
use crate::json::{arguments, table_to_json};
use crate::list::{ListQuery, respond};
use crate::queues::body;
use crate::state::{AppState, check_vhost, exchange_name, scope};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value as Json_, json};
use switchboard_api::Table;
use switchboard_api::admin::{BindingInfo, DestinationKind};

/// Percent-encodes all but RFC 3986's unreserved characters (so `~` too).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// FNV-1a over the arguments' JSON text: stable across runs and builds.
fn digest(args: &Table) -> String {
    let text = table_to_json(args).to_string();
    let h = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{h:016x}")
}

pub fn properties_key(key: &str, args: &Table) -> String {
    match (key.is_empty(), args.is_empty()) {
        (true, true) => "~".into(),
        (false, true) => encode(key),
        _ => format!("{}~{}", encode(key), digest(args)),
    }
}

fn binding_json(vhost: &str, b: &BindingInfo) -> Json_ {
    json!({
        "source": b.source,
        "vhost": vhost,
        "destination": b.destination,
        "destination_type": b.destination_kind.as_str(),
        "routing_key": b.routing_key,
        "arguments": table_to_json(&b.arguments),
        "properties_key": properties_key(&b.routing_key, &b.arguments),
    })
}

fn of(
    st: &AppState,
    vhost: &str,
    keep: impl Fn(&BindingInfo) -> bool,
) -> Result<Vec<Json_>, ApiError> {
    check_vhost(st, vhost)?;
    Ok(st
        .admin
        .bindings(vhost)?
        .iter()
        .filter(|b| keep(b))
        .map(|b| binding_json(vhost, b))
        .collect())
}

/// `/api/bindings` and `/api/bindings/{vhost}`.
pub async fn list(
    State(st): State<AppState>,
    _a: Auth,
    vhost: Option<Path<String>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Json_>, ApiError> {
    let mut items = Vec::new();
    for v in scope(&st, vhost.map(|p| p.0))? {
        items.extend(of(&st, &v, |_| true)?);
    }
    respond(items, &q)
}

pub async fn of_queue(
    State(st): State<AppState>,
    _a: Auth,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Json<Json_>, ApiError> {
    if !st.broker.queue_exists(&vhost, &name) {
        return Err(ApiError::not_found());
    }
    let items = of(&st, &vhost, |b| {
        b.destination_kind == DestinationKind::Queue && b.destination == name
    })?;
    Ok(Json(Json_::Array(items)))
}

pub async fn of_source(
    State(st): State<AppState>,
    _a: Auth,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Json<Json_>, ApiError> {
    let name = exchange_name(&name);
    Ok(Json(Json_::Array(of(&st, &vhost, |b| b.source == name)?)))
}

pub async fn of_exchange_destination(
    State(st): State<AppState>,
    _a: Auth,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Json<Json_>, ApiError> {
    let items = of(&st, &vhost, |b| {
        b.destination_kind == DestinationKind::Exchange && b.destination == name
    })?;
    Ok(Json(Json_::Array(items)))
}

fn kind_of(k: &str) -> Result<DestinationKind, ApiError> {
    match k {
        "q" => Ok(DestinationKind::Queue),
        "e" => Ok(DestinationKind::Exchange),
        _ => Err(ApiError::not_found()),
    }
}

fn between_list(
    st: &AppState,
    vhost: &str,
    source: &str,
    kind: DestinationKind,
    dest: &str,
) -> Result<Vec<BindingInfo>, ApiError> {
    check_vhost(st, vhost)?;
    Ok(st
        .admin
        .bindings(vhost)?
        .into_iter()
        .filter(|b| b.source == source && b.destination_kind == kind && b.destination == dest)
        .collect())
}

pub async fn between(
    State(st): State<AppState>,
    _a: Auth,
    Path((vhost, source, kind, dest)): Path<(String, String, String, String)>,
) -> Result<Json<Json_>, ApiError> {
    let list = between_list(&st, &vhost, exchange_name(&source), kind_of(&kind)?, &dest)?;
    Ok(Json(Json_::Array(
        list.iter().map(|b| binding_json(&vhost, b)).collect(),
    )))
}

pub async fn create(
    State(st): State<AppState>,
    a: Auth,
    Path((vhost, source, kind, dest)): Path<(String, String, String, String)>,
    raw: bytes::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    a.may_change()?;
    check_vhost(&st, &vhost)?;
    let kind = kind_of(&kind)?;
    let source = exchange_name(&source);
    if source.is_empty() {
        return Err(ApiError::bad_request(
            "the default exchange's bindings are implicit and cannot be added",
        ));
    }
    let o = body(&raw)?;
    let key = o.get("routing_key").and_then(Json_::as_str).unwrap_or("");
    let args = arguments(o.get("arguments")).map_err(ApiError::bad_request)?;
    match kind {
        DestinationKind::Queue => a
            .broker(&st, &vhost)?
            .bind_queue(&vhost, &dest, source, key, &args, st.conn)?,
        DestinationKind::Exchange => a
            .broker(&st, &vhost)?
            .bind_exchange(&vhost, &dest, source, key, &args)?,
    }
    // RabbitMQ answers with where the new binding lives.
    let location = format!(
        "/api/bindings/{}/e/{}/{}/{}/{}",
        encode(&vhost),
        encode(source),
        if kind == DestinationKind::Queue {
            "q"
        } else {
            "e"
        },
        encode(&dest),
        properties_key(key, &args)
    );
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    Ok((StatusCode::CREATED, h))
}

fn find(
    st: &AppState,
    vhost: &str,
    source: &str,
    kind: &str,
    dest: &str,
    props: &str,
) -> Result<BindingInfo, ApiError> {
    between_list(st, vhost, source, kind_of(kind)?, dest)?
        .into_iter()
        .find(|b| {
            // The segment names the key as listed (RabbitMQ's rule: rabbitmqadmin
            // quotes `a.%23` once more); a client that sent the bare key is
            // understood too.
            let listed = properties_key(&b.routing_key, &b.arguments);
            listed == props || listed == encode_props(props)
        })
        .ok_or_else(ApiError::not_found)
}

/// The path segment was percent-decoded; the key is compared encoded, as listed.
fn encode_props(decoded: &str) -> String {
    match decoded.split_once('~') {
        None => encode(decoded),
        Some(("", "")) => "~".into(),
        Some((key, digest)) => format!("{}~{digest}", encode(key)),
    }
}

pub async fn show(
    State(st): State<AppState>,
    _a: Auth,
    Path((vhost, source, kind, dest, props)): Path<(String, String, String, String, String)>,
) -> Result<Json<Json_>, ApiError> {
    let b = find(&st, &vhost, exchange_name(&source), &kind, &dest, &props)?;
    Ok(Json(binding_json(&vhost, &b)))
}

pub async fn remove(
    State(st): State<AppState>,
    a: Auth,
    Path((vhost, source, kind, dest, props)): Path<(String, String, String, String, String)>,
) -> Result<StatusCode, ApiError> {
    a.may_change()?;
    let source = exchange_name(&source);
    let b = find(&st, &vhost, source, &kind, &dest, &props)?;
    if source.is_empty() {
        return Err(ApiError::bad_request(
            "the default exchange's bindings are implicit and cannot be removed",
        ));
    }
    match b.destination_kind {
        DestinationKind::Queue => a.broker(&st, &vhost)?.unbind_queue(
            &vhost,
            &dest,
            source,
            &b.routing_key,
            &b.arguments,
            st.conn,
        )?,
        DestinationKind::Exchange => a.broker(&st, &vhost)?.unbind_exchange(
            &vhost,
            &dest,
            source,
            &b.routing_key,
            &b.arguments,
        )?,
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_api::Value;

    #[test]
    fn properties_keys_as_rabbitmq_names_them() {
        let none = Table::new();
        assert_eq!(properties_key("", &none), "~");
        assert_eq!(properties_key("a.b#", &none), "a.b%23");
        let mut args = Table::new();
        args.insert("x".into(), Value::I64(1));
        let k = properties_key("k", &args);
        assert!(k.starts_with("k~") && k.len() == 2 + 16);
        // A path segment arrives decoded: it finds the listed key again.
        assert_eq!(encode_props("a.b#"), "a.b%23");
        assert_eq!(encode_props("~"), "~");
        assert_eq!(encode_props(&k), k);
    }
}
