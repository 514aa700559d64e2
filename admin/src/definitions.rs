//! RabbitMQ's definitions JSON: export (`GET /api/definitions[/{vhost}]`,
//! `rabbitmqadmin export`) and import (`POST`, `rabbitmqadmin import`, and
//! `--definitions FILE` at start through [`import`]).
//!
//! Import goes through the same calls as the rest of the API: users (with
//! RabbitMQ's SHA-256 hashes), vhosts, exchanges, queues, bindings. A RabbitMQ
//! policy becomes the matching `x-` arguments of the queues in the file it names by
//! its pattern, where Switchboard has the feature (arguments a queue sets itself
//! win, as in RabbitMQ); other policy keys, permissions and parameters are warnings.

use crate::auth::Auth;
use crate::error::ApiError;
use crate::json::{arguments, json_to_value, table_to_json};
use crate::overview::{password_of, tags_of};
use crate::state::{AppState, check_vhost, durable};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json_, json};
use switchboard_api::admin::DestinationKind;
use switchboard_api::{Admin, Broker, ConnectionId, ExchangeDecl, QueueDecl, Table};

/// Policy keys and the queue arguments they become.
const POLICY_ARGS: &[(&str, &str)] = &[
    ("message-ttl", "x-message-ttl"),
    ("expires", "x-expires"),
    ("max-length", "x-max-length"),
    ("max-length-bytes", "x-max-length-bytes"),
    ("overflow", "x-overflow"),
    ("dead-letter-exchange", "x-dead-letter-exchange"),
    ("dead-letter-routing-key", "x-dead-letter-routing-key"),
    ("delivery-limit", "x-delivery-limit"),
    ("single-active-consumer", "x-single-active-consumer"),
];

fn builtin_exchange(name: &str) -> bool {
    name.is_empty() || name.starts_with("amq.")
}

/// The definitions of every vhost (`None`) or of one, as RabbitMQ writes them.
pub fn export(st: &AppState, only: Option<&str>) -> Result<Json_, ApiError> {
    let vhosts: Vec<String> = match only {
        Some(v) => {
            check_vhost(st, v)?;
            vec![v.to_string()]
        }
        None => st.admin.vhost_names(),
    };
    let with_vhost = |mut o: Json_, v: &str| {
        if only.is_none() {
            o["vhost"] = json!(v);
        }
        o
    };
    let (mut queues, mut exchanges, mut bindings) = (vec![], vec![], vec![]);
    for v in &vhosts {
        for q in st.admin.queues(v)? {
            // Exclusive queues die with their connection; RabbitMQ leaves them out.
            if q.exclusive {
                continue;
            }
            queues.push(with_vhost(
                json!({"name": q.name, "durable": q.durable, "auto_delete": q.auto_delete,
                       "arguments": table_to_json(&q.arguments)}),
                v,
            ));
        }
        for x in st.admin.exchanges(v)? {
            if builtin_exchange(&x.name) {
                continue;
            }
            exchanges.push(with_vhost(
                json!({"name": x.name, "type": x.kind, "durable": x.durable,
                       "auto_delete": x.auto_delete, "internal": x.internal,
                       "arguments": table_to_json(&x.arguments)}),
                v,
            ));
        }
        for b in st.admin.bindings(v)? {
            if b.source.is_empty() {
                continue;
            }
            bindings.push(with_vhost(
                json!({"source": b.source, "destination": b.destination,
                       "destination_type": b.destination_kind.as_str(),
                       "routing_key": b.routing_key,
                       "arguments": table_to_json(&b.arguments)}),
                v,
            ));
        }
    }
    let mut out = json!({
        "rabbit_version": crate::overview::COMPAT_VERSION,
        "rabbitmq_version": crate::overview::COMPAT_VERSION,
        "product_name": "Switchboard",
        "product_version": env!("CARGO_PKG_VERSION"),
        "policies": [],
        "parameters": [],
        "queues": queues,
        "exchanges": exchanges,
        "bindings": bindings,
    });
    if only.is_none() {
        let users: Vec<Json_> = st
            .admin
            .users()
            .iter()
            .map(|u| {
                json!({"name": u.name, "password_hash": u.password_hash,
                       "hashing_algorithm": if u.password_hash.starts_with("$argon2") {
                           crate::overview::ARGON2_HASHING
                       } else {
                           "rabbit_password_hashing_sha256"
                       },
                       "tags": u.tags, "limits": {}})
            })
            .collect();
        let permissions: Vec<Json_> = st
            .admin
            .permissions()
            .iter()
            .map(crate::permissions::permission_json)
            .collect();
        let topic_permissions: Vec<Json_> = st
            .admin
            .topic_permissions()
            .iter()
            .map(crate::permissions::topic_json)
            .collect();
        out["users"] = json!(users);
        out["vhosts"] = json!(
            vhosts
                .iter()
                .map(|v| json!({"name": v, "limits": [], "metadata": {"description": "", "tags": []}}))
                .collect::<Vec<_>>()
        );
        out["permissions"] = json!(permissions);
        out["topic_permissions"] = json!(topic_permissions);
        out["global_parameters"] = json!([]);
    }
    Ok(out)
}

pub async fn get_all(State(st): State<AppState>, a: Auth) -> Result<Json<Json_>, ApiError> {
    a.administrator()?;
    export(&st, None).map(Json)
}

pub async fn get_vhost(
    State(st): State<AppState>,
    a: Auth,
    Path(vhost): Path<String>,
) -> Result<Json<Json_>, ApiError> {
    a.may_change()?;
    export(&st, Some(&vhost)).map(Json)
}

fn answer(warnings: Vec<String>) -> Response {
    for w in &warnings {
        tracing::warn!("definitions import: {w}");
    }
    if warnings.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (StatusCode::OK, Json(json!({"warnings": warnings}))).into_response()
    }
}

pub async fn post_all(
    State(st): State<AppState>,
    a: Auth,
    raw: bytes::Bytes,
) -> Result<Response, ApiError> {
    a.administrator()?;
    let defs = crate::queues::body(&raw)?;
    let (lsn, warnings) = import(&*st.broker, &*st.admin, st.conn, &defs, None)?;
    durable(&st, lsn).await;
    Ok(answer(warnings))
}

pub async fn post_vhost(
    State(st): State<AppState>,
    a: Auth,
    Path(vhost): Path<String>,
    raw: bytes::Bytes,
) -> Result<Response, ApiError> {
    a.may_change()?;
    check_vhost(&st, &vhost)?;
    let defs = crate::queues::body(&raw)?;
    let (lsn, warnings) = import(&*st.broker, &*st.admin, st.conn, &defs, Some(&vhost))?;
    durable(&st, lsn).await;
    Ok(answer(warnings))
}

fn list<'a>(defs: &'a Map<String, Json_>, key: &str) -> Result<&'a [Json_], ApiError> {
    match defs.get(key) {
        None | Some(Json_::Null) => Ok(&[]),
        Some(Json_::Array(a)) => Ok(a),
        Some(_) => Err(ApiError::bad_request(format!("{key} must be a list"))),
    }
}

fn text<'a>(o: &'a Json_, key: &str, what: &str) -> Result<&'a str, ApiError> {
    o.get(key)
        .and_then(Json_::as_str)
        .ok_or_else(|| ApiError::bad_request(format!("{what}: {key} is required")))
}

fn flag(o: &Json_, key: &str, default: bool) -> bool {
    o.get(key).and_then(Json_::as_bool).unwrap_or(default)
}

/// The queue arguments the file's policies give queue `name` of `vhost`: the
/// highest-priority policy whose pattern matches and that applies to queues.
fn policy_args(policies: &[Json_], vhost: &str, name: &str, warnings: &mut Vec<String>) -> Table {
    let mut best: Option<(i64, &Json_)> = None;
    for p in policies {
        if p.get("vhost").and_then(Json_::as_str).unwrap_or(vhost) != vhost {
            continue;
        }
        let applies = p.get("apply-to").and_then(Json_::as_str).unwrap_or("all");
        if applies == "exchanges" {
            continue;
        }
        let Some(pattern) = p.get("pattern").and_then(Json_::as_str) else {
            continue;
        };
        match regex::Regex::new(pattern) {
            Ok(re) if re.is_match(name) => {}
            Ok(_) => continue,
            Err(e) => {
                warnings.push(format!("policy pattern {pattern:?} is not a regex: {e}"));
                continue;
            }
        }
        let prio = p.get("priority").and_then(Json_::as_i64).unwrap_or(0);
        if best.is_none_or(|(b, _)| prio > b) {
            best = Some((prio, p));
        }
    }
    let mut args = Table::new();
    if let Some((_, p)) = best
        && let Some(def) = p.get("definition").and_then(Json_::as_object)
    {
        for (k, v) in def {
            match POLICY_ARGS.iter().find(|(key, _)| key == k) {
                Some((_, arg)) => {
                    args.insert((*arg).to_string(), json_to_value(v));
                }
                None => warnings.push(format!(
                    "policy {:?}: {k} has no equivalent here; queue {name:?} is declared without it",
                    p.get("name").and_then(Json_::as_str).unwrap_or("?")
                )),
            }
        }
    }
    args
}

/// Applies a definitions document; `vhost` for a per-vhost document (its objects
/// name no vhost). Returns the LSN to wait for and the warnings.
pub fn import(
    broker: &dyn Broker,
    admin: &dyn Admin,
    conn: ConnectionId,
    defs: &Map<String, Json_>,
    vhost: Option<&str>,
) -> Result<(u64, Vec<String>), ApiError> {
    let mut warnings = Vec::new();
    let mut lsn = 0;
    let vhost_of = |o: &Json_| -> Result<String, ApiError> {
        match vhost {
            Some(v) => Ok(v.to_string()),
            None => Ok(text(o, "vhost", "an object").unwrap_or("/").to_string()),
        }
    };
    if vhost.is_none() {
        for u in list(defs, "users")? {
            let name = text(u, "name", "a user")?;
            let o = u
                .as_object()
                .ok_or_else(|| ApiError::bad_request("a user must be an object"))?;
            lsn = lsn.max(admin.put_user(name, password_of(o)?, tags_of(o.get("tags"))?)?);
        }
        for v in list(defs, "vhosts")? {
            admin.add_vhost(text(v, "name", "a vhost")?)?;
        }
        for (key, topic) in [("permissions", false), ("topic_permissions", true)] {
            for p in list(defs, key)? {
                let o = p
                    .as_object()
                    .ok_or_else(|| ApiError::bad_request("a permission must be an object"))?;
                let user = text(p, "user", "a permission")?;
                let vhost = text(p, "vhost", "a permission")?;
                lsn = lsn.max(if topic {
                    admin.set_topic_permission(
                        &crate::permissions::topic_of(o, user, vhost)?,
                        false,
                    )?
                } else {
                    admin.set_permission(
                        &crate::permissions::permission_of(o, user, vhost)?,
                        false,
                    )?
                });
            }
        }
    }
    for key in ["parameters", "global_parameters"] {
        if !list(defs, key)?.is_empty() {
            warnings.push(format!("{key} are not supported and were skipped"));
        }
    }
    let policies = list(defs, "policies")?;
    for x in list(defs, "exchanges")? {
        let name = text(x, "name", "an exchange")?;
        if builtin_exchange(name) {
            continue;
        }
        let decl = ExchangeDecl {
            name: name.to_string(),
            kind: text(x, "type", "an exchange")?.to_string(),
            durable: flag(x, "durable", true),
            auto_delete: flag(x, "auto_delete", false),
            internal: flag(x, "internal", false),
            passive: false,
            arguments: arguments(x.get("arguments")).map_err(ApiError::bad_request)?,
        };
        broker.declare_exchange(&vhost_of(x)?, &decl)?;
    }
    for q in list(defs, "queues")? {
        let name = text(q, "name", "a queue")?;
        let v = vhost_of(q)?;
        let mut args = policy_args(policies, &v, name, &mut warnings);
        args.extend(arguments(q.get("arguments")).map_err(ApiError::bad_request)?);
        let decl = QueueDecl {
            name: name.to_string(),
            durable: flag(q, "durable", true),
            auto_delete: flag(q, "auto_delete", false),
            exclusive: false,
            passive: false,
            arguments: args,
        };
        broker.declare_queue(&v, &decl, conn)?;
    }
    for b in list(defs, "bindings")? {
        let v = vhost_of(b)?;
        let source = text(b, "source", "a binding")?;
        if source.is_empty() {
            continue;
        }
        let dest = text(b, "destination", "a binding")?;
        let key = b.get("routing_key").and_then(Json_::as_str).unwrap_or("");
        let args = arguments(b.get("arguments")).map_err(ApiError::bad_request)?;
        let kind = match b.get("destination_type").and_then(Json_::as_str) {
            Some("exchange") => DestinationKind::Exchange,
            _ => DestinationKind::Queue,
        };
        match kind {
            DestinationKind::Queue => broker.bind_queue(&v, dest, source, key, &args, conn)?,
            DestinationKind::Exchange => broker.bind_exchange(&v, dest, source, key, &args)?,
        }
    }
    Ok((lsn, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_priority_matching_policy_gives_arguments() {
        let policies = vec![
            json!({"vhost": "/", "name": "low", "pattern": "^orders", "apply-to": "queues",
                   "priority": 0, "definition": {"max-length": 10}}),
            json!({"vhost": "/", "name": "high", "pattern": "^orders\\.", "apply-to": "all",
                   "priority": 5, "definition": {"message-ttl": 60000, "ha-mode": "all"}}),
            json!({"vhost": "/", "name": "x", "pattern": ".*", "apply-to": "exchanges",
                   "priority": 9, "definition": {"alternate-exchange": "ae"}}),
        ];
        let mut w = Vec::new();
        let args = policy_args(&policies, "/", "orders.eu", &mut w);
        assert_eq!(
            args.get("x-message-ttl"),
            Some(&switchboard_api::Value::I64(60000))
        );
        assert!(!args.contains_key("x-max-length"));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("ha-mode"));
        let args = policy_args(&policies, "/", "orders", &mut w);
        assert_eq!(
            args.get("x-max-length"),
            Some(&switchboard_api::Value::I64(10))
        );
        assert!(policy_args(&policies, "other", "orders", &mut w).is_empty());
    }
}
