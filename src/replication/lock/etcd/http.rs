//! Just enough HTTP/1.1 to speak etcd's v3 JSON gateway: one POST per connection,
//! JSON in, JSON out. A lock sends a request every ttl/2 at most (a standby polls
//! every 100 ms), so a connection pool would buy nothing worth its code.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::TcpStream;

/// etcd's answers are a few hundred bytes; anything far larger is not etcd.
const MAX_BODY: usize = 1 << 20;

/// Why a call failed.
#[derive(Debug)]
pub(super) enum CallError {
    /// No endpoint gave an answer (each one's failure, in the order tried).
    Unreachable(String),
    /// An endpoint answered, with an error: etcd's own verdict, so another endpoint
    /// would say the same.
    Rejected {
        endpoint: String,
        status: StatusCode,
        message: String,
    },
}

impl CallError {
    /// etcd no longer knows the lease (expired or revoked).
    pub(super) fn lease_not_found(&self) -> bool {
        matches!(self, CallError::Rejected { status, message, .. }
            if *status == StatusCode::NOT_FOUND && message.contains("lease not found"))
    }

    pub(super) fn describe(&self, path: &str) -> String {
        match self {
            CallError::Unreachable(why) => format!("no endpoint answered {path}: {why}"),
            CallError::Rejected {
                endpoint,
                status,
                message,
            } => format!("{endpoint}{path}: {status}: {message}"),
        }
    }
}

/// The cluster's gateways, tried in turn; the one that answered last is tried first.
pub(super) struct Gateway {
    endpoints: Vec<String>,
    preferred: AtomicUsize,
    attempt_timeout: Duration,
}

impl Gateway {
    pub(super) fn new(endpoints: Vec<String>, attempt_timeout: Duration) -> Gateway {
        Gateway {
            endpoints,
            preferred: AtomicUsize::new(0),
            attempt_timeout,
        }
    }

    /// POSTs `body` to `path` on one endpoint after another until one answers.
    /// Retrying on the next endpoint can apply a request twice (the first may have
    /// been applied before its connection broke): callers send only requests for
    /// which that is harmless or detectable.
    pub(super) async fn call(&self, path: &str, body: &Value) -> Result<Value, CallError> {
        if self.endpoints.is_empty() {
            return Err(CallError::Unreachable("no endpoints configured".into()));
        }
        let body = Bytes::from(body.to_string());
        let first = self.preferred.load(Ordering::Relaxed);
        let mut failures = Vec::new();
        for i in 0..self.endpoints.len() {
            let idx = (first + i) % self.endpoints.len();
            let endpoint = &self.endpoints[idx];
            let attempt =
                tokio::time::timeout(self.attempt_timeout, post(endpoint, path, body.clone()))
                    .await
                    .unwrap_or_else(|_| {
                        Err(format!("no answer within {:?}", self.attempt_timeout))
                    });
            match attempt {
                // 5xx: this member cannot serve now (no leader, shutting down, …);
                // another member may.
                Ok((status, text)) if status.is_server_error() => {
                    failures.push(format!("{endpoint}: {status}: {}", error_message(&text)));
                }
                Ok((status, text)) if !status.is_success() => {
                    return Err(CallError::Rejected {
                        endpoint: endpoint.clone(),
                        status,
                        message: error_message(&text),
                    });
                }
                Ok((status, text)) => match first_json(&text) {
                    Some(value) => {
                        self.preferred.store(idx, Ordering::Relaxed);
                        return Ok(value);
                    }
                    None => failures.push(format!(
                        "{endpoint}: {status} with a body that is not JSON: {:?}",
                        truncate(&text)
                    )),
                },
                Err(why) => failures.push(format!("{endpoint}: {why}")),
            }
        }
        Err(CallError::Unreachable(failures.join("; ")))
    }
}

/// One request on a fresh connection; `Err` is a transport failure.
async fn post(endpoint: &str, path: &str, body: Bytes) -> Result<(StatusCode, Bytes), String> {
    let authority = endpoint
        .strip_prefix("http://")
        .ok_or("only http:// endpoints are supported")?
        .trim_end_matches('/');
    let stream = TcpStream::connect(authority)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    // Small request/response pairs: don't let Nagle hold the request back.
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    // The connection task ends when `sender` is dropped (end of this function, or
    // a timeout dropping this future), so it cannot outlive the call.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = Request::post(path)
        .header(HOST, authority)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(|e| format!("building the request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let text = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the response: {e}"))?
        .to_bytes();
    Ok((status, text))
}

/// The first JSON value of a body: streaming endpoints (lease keepalive) answer with
/// a sequence of objects, one per request sent, and we send one.
fn first_json(text: &[u8]) -> Option<Value> {
    serde_json::Deserializer::from_slice(text)
        .into_iter::<Value>()
        .next()?
        .ok()
}

/// What etcd said in an error answer (`{"error":…,"message":…,"code":…}`), or the raw
/// body when it is not that.
fn error_message(text: &[u8]) -> String {
    let value = first_json(text);
    let said = value.as_ref().and_then(|v| {
        // Streaming endpoints wrap the error: {"error":{"message":…}}.
        let v = v.get("error").filter(|e| e.is_object()).unwrap_or(v);
        v.get("message").or_else(|| v.get("error"))?.as_str()
    });
    match said {
        Some(s) => s.to_string(),
        None => truncate(text),
    }
}

fn truncate(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}
