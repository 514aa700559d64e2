//! `/api/permissions` and `/api/topic-permissions`: RabbitMQ's shapes, an
//! administrator's to read and change. Changes are durable before the answer.

use crate::auth::Auth;
use crate::error::ApiError;
use crate::list::{ListQuery, respond};
use crate::state::{AppState, check_vhost, durable};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Map, Value as Json_, json};
use switchboard_api::admin::{PermissionInfo, TopicPermissionInfo};

pub fn permission_json(p: &PermissionInfo) -> Json_ {
    json!({"user": p.user, "vhost": p.vhost, "configure": p.configure,
           "write": p.write, "read": p.read})
}

pub fn topic_json(p: &TopicPermissionInfo) -> Json_ {
    json!({"user": p.user, "vhost": p.vhost, "exchange": p.exchange,
           "write": p.write, "read": p.read})
}

fn pattern(o: &Map<String, Json_>, k: &str) -> Result<String, ApiError> {
    match o.get(k) {
        Some(Json_::String(s)) => Ok(s.clone()),
        None => Err(ApiError::bad_request(format!("missing field {k}"))),
        Some(_) => Err(ApiError::bad_request(format!("{k} must be a string"))),
    }
}

/// A permission from RabbitMQ's JSON (API body or definitions entry).
pub fn permission_of(
    o: &Map<String, Json_>,
    user: &str,
    vhost: &str,
) -> Result<PermissionInfo, ApiError> {
    Ok(PermissionInfo {
        user: user.to_string(),
        vhost: vhost.to_string(),
        configure: pattern(o, "configure")?,
        write: pattern(o, "write")?,
        read: pattern(o, "read")?,
    })
}

pub fn topic_of(
    o: &Map<String, Json_>,
    user: &str,
    vhost: &str,
) -> Result<TopicPermissionInfo, ApiError> {
    Ok(TopicPermissionInfo {
        user: user.to_string(),
        vhost: vhost.to_string(),
        exchange: pattern(o, "exchange")?,
        write: pattern(o, "write")?,
        read: pattern(o, "read")?,
    })
}

/// The permissions `keep` selects, as a (paged) list.
fn listed(
    st: &AppState,
    q: &ListQuery,
    keep: impl Fn(&PermissionInfo) -> bool,
) -> Result<Json<Json_>, ApiError> {
    let items = st.admin.permissions();
    respond(
        items
            .iter()
            .filter(|p| keep(p))
            .map(permission_json)
            .collect(),
        q,
    )
}

/// `/api/permissions`.
pub async fn list(
    State(st): State<AppState>,
    a: Auth,
    Query(q): Query<ListQuery>,
) -> Result<Json<Json_>, ApiError> {
    a.administrator()?;
    listed(&st, &q, |_| true)
}

/// `/api/vhosts/{vhost}/permissions`.
pub async fn of_vhost(
    State(st): State<AppState>,
    a: Auth,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Json_>, ApiError> {
    a.administrator()?;
    check_vhost(&st, &vhost)?;
    listed(&st, &q, |p| p.vhost == vhost)
}

/// `/api/users/{user}/permissions`.
pub async fn of_user(
    State(st): State<AppState>,
    a: Auth,
    Path(user): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Json_>, ApiError> {
    a.administrator()?;
    if !st.admin.users().iter().any(|u| u.name == user) {
        return Err(ApiError::not_found());
    }
    listed(&st, &q, |p| p.user == user)
}

pub async fn show(
    State(st): State<AppState>,
    a: Auth,
    Path((vhost, user)): Path<(String, String)>,
) -> Result<Json<Json_>, ApiError> {
    a.administrator()?;
    st.admin
        .permissions()
        .iter()
        .find(|p| p.vhost == vhost && p.user == user)
        .map(|p| Json(permission_json(p)))
        .ok_or_else(ApiError::not_found)
}

pub async fn put(
    State(st): State<AppState>,
    a: Auth,
    Path((vhost, user)): Path<(String, String)>,
    raw: bytes::Bytes,
) -> Result<StatusCode, ApiError> {
    a.administrator()?;
    check_vhost(&st, &vhost)?;
    let o = crate::queues::body(&raw)?;
    let p = permission_of(&o, &user, &vhost)?;
    let existed = st
        .admin
        .permissions()
        .iter()
        .any(|x| x.vhost == vhost && x.user == user);
    let lsn = st.admin.set_permission(&p, false)?;
    durable(&st, lsn).await;
    Ok(if existed {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::CREATED
    })
}

pub async fn remove(
    State(st): State<AppState>,
    a: Auth,
    Path((vhost, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    a.administrator()?;
    let found = st
        .admin
        .permissions()
        .into_iter()
        .find(|p| p.vhost == vhost && p.user == user)
        .ok_or_else(ApiError::not_found)?;
    let lsn = st.admin.set_permission(&found, true)?;
    durable(&st, lsn).await;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn topic_list(
    State(st): State<AppState>,
    a: Auth,
    Query(q): Query<ListQuery>,
) -> Result<Json<Json_>, ApiError> {
    a.administrator()?;
    respond(
        st.admin
            .topic_permissions()
            .iter()
            .map(topic_json)
            .collect(),
        &q,
    )
}

pub async fn topic_show(
    State(st): State<AppState>,
    a: Auth,
    Path((vhost, user)): Path<(String, String)>,
) -> Result<Json<Json_>, ApiError> {
    a.administrator()?;
    let items: Vec<Json_> = st
        .admin
        .topic_permissions()
        .iter()
        .filter(|p| p.vhost == vhost && p.user == user)
        .map(topic_json)
        .collect();
    if items.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(Json(Json_::Array(items)))
}

pub async fn topic_put(
    State(st): State<AppState>,
    a: Auth,
    Path((vhost, user)): Path<(String, String)>,
    raw: bytes::Bytes,
) -> Result<StatusCode, ApiError> {
    a.administrator()?;
    check_vhost(&st, &vhost)?;
    let o = crate::queues::body(&raw)?;
    let p = topic_of(&o, &user, &vhost)?;
    let lsn = st.admin.set_topic_permission(&p, false)?;
    durable(&st, lsn).await;
    Ok(StatusCode::CREATED)
}

/// Removes every topic permission of the user in the vhost (RabbitMQ's DELETE).
pub async fn topic_remove(
    State(st): State<AppState>,
    a: Auth,
    Path((vhost, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    a.administrator()?;
    let mine: Vec<TopicPermissionInfo> = st
        .admin
        .topic_permissions()
        .into_iter()
        .filter(|p| p.vhost == vhost && p.user == user)
        .collect();
    if mine.is_empty() {
        return Err(ApiError::not_found());
    }
    let mut lsn = 0;
    for p in &mine {
        lsn = lsn.max(st.admin.set_topic_permission(p, true)?);
    }
    durable(&st, lsn).await;
    Ok(StatusCode::NO_CONTENT)
}
