//! HTTP basic auth with the broker's users; the user's tags decide what it may do,
//! as RabbitMQ's management plugin does: `administrator` everything, `management`
//! and `policymaker` manage objects, `monitoring` only reads; a user without a
//! management tag cannot use the API at all.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::{Method, header, request::Parts};
use base64::Engine;
use std::net::SocketAddr;
use switchboard_api::User;

/// The authenticated user of a request.
pub struct Auth(pub User);

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Level {
    /// No management tag.
    None,
    Monitoring,
    Management,
    Administrator,
}

pub fn level(user: &User) -> Level {
    let has = |t: &str| user.tags.iter().any(|x| x == t);
    if has("administrator") {
        Level::Administrator
    } else if has("management") || has("policymaker") {
        Level::Management
    } else if has("monitoring") {
        Level::Monitoring
    } else {
        Level::None
    }
}

impl Auth {
    /// Changes need `management` (or more).
    pub fn may_change(&self) -> Result<(), ApiError> {
        if level(&self.0) >= Level::Management {
            Ok(())
        } else {
            Err(ApiError::not_allowed("Not management user"))
        }
    }

    /// Users, permissions and vhosts are the administrator's.
    /// The broker as this user may use it in `vhost` (its permissions apply to what
    /// it changes through the API, as in RabbitMQ); 401 without access to the vhost.
    pub fn broker(
        &self,
        st: &crate::state::AppState,
        vhost: &str,
    ) -> Result<std::sync::Arc<dyn switchboard_api::Broker>, ApiError> {
        match st.broker.open_vhost(&self.0, vhost) {
            Ok(b) => Ok(b),
            Err(e @ switchboard_api::BrokerError::VhostRefused { .. }) => {
                Err(ApiError::not_allowed(e.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn administrator(&self) -> Result<(), ApiError> {
        if level(&self.0) == Level::Administrator {
            Ok(())
        } else {
            Err(ApiError::not_allowed("Not administrator user"))
        }
    }
}

/// `user:password` from an `Authorization: Basic …` header.
pub fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, b64) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Auth, ApiError> {
        let script = parts.headers.contains_key("x-requested-with");
        authenticate(parts, st).await.map_err(|mut e| {
            e.challenge = !script;
            e
        })
    }
}

async fn authenticate(parts: &mut Parts, st: &AppState) -> Result<Auth, ApiError> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let (name, password) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(basic_credentials)
        .ok_or_else(|| ApiError::unauthorized("Login failed"))?;
    let user = match st.broker.authenticate(&name, &password, peer) {
        Ok(u) => u,
        Err(e) => {
            tracing::debug!(user = %name, %peer, "admin API login refused: {e}");
            // Answered late: guessing passwords through the API is slow too.
            tokio::time::sleep(st.broker.login_refused(peer, &name, "HTTP admin")).await;
            return Err(ApiError::unauthorized("Login failed"));
        }
    };
    if level(&user) == Level::None {
        return Err(ApiError::unauthorized("Not management user"));
    }
    // State changes come as PUT/POST/DELETE only; a cookie-less API with basic
    // auth still refuses a browser's cross-site form post whose Origin is not us.
    if parts.method != Method::GET && parts.method != Method::HEAD {
        check_origin(parts)?;
    }
    Ok(Auth(user))
}

/// A request a browser sent from another site carries an `Origin` that is not this
/// host: refuse it (CSRF). Tools such as rabbitmqadmin and curl send no Origin.
fn check_origin(parts: &Parts) -> Result<(), ApiError> {
    let Some(origin) = parts.headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://").map(|(_, h)| h));
    match (origin_host, host) {
        (Some(o), Some(h)) if o == h => Ok(()),
        _ => Err(ApiError::not_allowed("cross-origin request refused")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_parse() {
        // "guest:guest"
        assert_eq!(
            basic_credentials("Basic Z3Vlc3Q6Z3Vlc3Q="),
            Some(("guest".into(), "guest".into()))
        );
        assert_eq!(basic_credentials("Bearer x"), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
    }

    #[test]
    fn tags_rank() {
        let u = |t: &[&str]| User {
            name: "u".into(),
            tags: t.iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(level(&u(&["monitoring"])), Level::Monitoring);
        assert_eq!(
            level(&u(&["monitoring", "administrator"])),
            Level::Administrator
        );
        assert_eq!(level(&u(&[])), Level::None);
    }
}
