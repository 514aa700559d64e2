//! The HTTP side: which protocol a request speaks, who sent it, and how the answer
//! is written back. Everything SQS-specific happens in [`crate::sqs`], everything
//! SNS-specific in [`crate::sns`].

use crate::metrics::{Label, RequestStats};
use crate::sigv4;
use crate::sns::{self, Sns, SnsError};
use crate::sqs::{Ctx, Input, Output, Sqs, SqsError, query};
use crate::sts;
use crate::{Auth, Config};
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;
use switchboard_api::Broker;

/// The router, and the services as the admin API lists them.
pub fn router(
    broker: Arc<dyn Broker>,
    cfg: Config,
    stats: Arc<RequestStats>,
) -> (Router, Vec<Arc<dyn switchboard_api::admin::Catalog>>) {
    let sqs = Sqs::new(broker, cfg);
    let sns = Sns::new(sqs.clone());
    let catalogs: Vec<Arc<dyn switchboard_api::admin::Catalog>> = vec![sqs.clone(), sns.clone()];
    let router = Router::new().fallback(handle).with_state(Apis {
        sqs,
        sns,
        stats,
        keys: Arc::new(sigv4::KeyCache::new()),
    });
    (router, catalogs)
}

#[derive(Clone)]
struct Apis {
    sqs: Arc<Sqs>,
    sns: Arc<Sns>,
    stats: Arc<RequestStats>,
    /// Signing keys derived for earlier requests.
    keys: Arc<sigv4::KeyCache>,
}

enum Protocol {
    /// AWS JSON 1.0, with the action from `X-Amz-Target`.
    Json(String),
    /// AWS Query (form parameters, XML replies).
    Query,
    /// SNS, which speaks Query only.
    Sns,
    /// STS's GetCallerIdentity (Query).
    Sts,
}

/// Whether a Query request is for SNS: the service its signature is scoped to, or,
/// unsigned (`auth = "none"`), SNS's API version or one of its action names.
fn is_sns(parts: &axum::http::request::Parts, body: &Bytes) -> bool {
    is_service(parts, body, "sns", sns::VERSION, sns::ACTIONS)
}

/// The same for STS (GetCallerIdentity only).
fn is_sts(parts: &axum::http::request::Parts, body: &Bytes) -> bool {
    is_service(parts, body, "sts", sts::VERSION, &["GetCallerIdentity"])
}

fn is_service(
    parts: &axum::http::request::Parts,
    body: &Bytes,
    service: &str,
    version: &str,
    actions: &[&str],
) -> bool {
    if let Some(auth) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| sigv4::parse_authorization(v).ok())
    {
        return auth.service == service;
    }
    let mut pairs =
        query::decode_form(parts.uri.query().unwrap_or("").as_bytes()).unwrap_or_default();
    pairs.extend(query::decode_form(body).unwrap_or_default());
    match pairs.iter().find(|(k, _)| k == "Version") {
        Some((_, v)) => v == version,
        None => pairs
            .iter()
            .any(|(k, v)| k == "Action" && actions.contains(&v.as_str())),
    }
}

/// Serves one request and counts it under the action it turned out to be.
async fn handle(
    State(apis): State<Apis>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let started = std::time::Instant::now();
    let mut label = Label::default();
    let r = serve(&apis, peer, req, &mut label).await;
    let failed = r.status().is_client_error() || r.status().is_server_error();
    apis.stats.record(label, failed, started.elapsed());
    r
}

async fn serve(apis: &Apis, peer: SocketAddr, req: Request, label: &mut Label) -> Response {
    let (sqs, sns) = (apis.sqs.clone(), apis.sns.clone());
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = req.into_parts();
    // SNS's signing certificate, for anyone verifying a message (no signature:
    // receivers fetch it as AWS's from SigningCertURL).
    if parts.method == axum::http::Method::GET
        && let Some(pem) = sns.certificate(parts.uri.path())
    {
        let mut r = (StatusCode::OK, Body::from(pem)).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-pem-file"),
        );
        return r;
    }
    let proto = match parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
    {
        Some(t) => match t.strip_prefix("AmazonSQS.") {
            Some(action) => Protocol::Json(action.to_string()),
            None => {
                let e = SqsError::unknown_operation(format!("unknown target {t}"));
                return json_error(&e, &request_id);
            }
        },
        None => Protocol::Query,
    };
    let body = match axum::body::to_bytes(body, sqs.config().max_body).await {
        Ok(b) => b,
        Err(_) => {
            let e = SqsError::invalid_parameter_value("the request body is too large");
            return render_error(&proto, &e, &request_id);
        }
    };
    let proto = match proto {
        Protocol::Query if is_sns(&parts, &body) => Protocol::Sns,
        Protocol::Query if is_sts(&parts, &body) => Protocol::Sts,
        other => other,
    };
    let signed = parts.headers.contains_key(header::AUTHORIZATION);
    // The SubscribeURL and UnsubscribeURL in what SNS sends are fetched unsigned:
    // the token (or, for Unsubscribe, SNS's own check) stands in for a signature.
    let by_url = !signed
        && matches!(proto, Protocol::Sns)
        && query_params(&parts, &body)
            .is_ok_and(|(_, a)| a == "ConfirmSubscription" || a == "Unsubscribe");
    let user = if by_url {
        Ok(None)
    } else {
        authenticate(&sqs, &apis.keys, &parts, &body, peer)
    };
    if let Err(e) = &user
        && matches!(e.code, "InvalidClientTokenId" | "SignatureDoesNotMatch")
    {
        // A wrong key or secret is answered late: guessing secrets is slow.
        let key = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| sigv4::parse_authorization(v).ok())
            .map(|a| a.access_key)
            .unwrap_or_default();
        tokio::time::sleep(sqs.broker().login_refused(peer, &key, "SQS/SNS")).await;
    }
    let ctx = match user.and_then(|user| {
        Ok(Ctx {
            base_url: base_url(sqs.config(), &parts),
            user,
            path: parts.uri.path().to_string(),
            region: signed_region(&parts)?,
            signed,
        })
    }) {
        Ok(ctx) => ctx,
        Err(e) => return render_error(&proto, &e, &request_id),
    };
    describe_connection(&sqs, &parts, peer, ctx.user.as_ref());
    match proto {
        Protocol::Json(action) => {
            *label = Label {
                service: "sqs",
                action: action.clone(),
            };
            let input = match Input::from_json(&action, &body) {
                Ok(i) => i,
                Err(e) => return json_error(&e, &request_id),
            };
            match sqs.call(&action, input, &ctx).await {
                Ok(out) => json_ok(&out, &request_id),
                Err(e) => json_error(&e, &request_id),
            }
        }
        Protocol::Sts => match labelled(query_params(&parts, &body), "sts", label) {
            Ok((_, action)) if action == "GetCallerIdentity" => xml_ok(
                sts::caller_identity(ctx.user.as_ref(), &sqs.config().account_id, &request_id),
                &request_id,
            ),
            Ok((_, action)) => sns_error(
                &SnsError::invalid_action(format!(
                    "The action {action} is not valid for this endpoint."
                )),
                &request_id,
            ),
            Err(e) => sns_error(&e.into(), &request_id),
        },
        Protocol::Sns => {
            let (pairs, action) = match labelled(query_params(&parts, &body), "sns", label) {
                Ok(x) => x,
                Err(e) => return sns_error(&e.into(), &request_id),
            };
            let params = sns::Params::new(pairs);
            match sns.call(&action, &params, &ctx).await {
                Ok(out) => xml_ok(sns::xml::response(&action, out, &request_id), &request_id),
                Err(e) => sns_error(&e, &request_id),
            }
        }
        Protocol::Query => {
            let (pairs, action) = match labelled(query_params(&parts, &body), "sqs", label) {
                Ok(x) => x,
                Err(e) => return xml_error(&e, &request_id),
            };
            let input = match query::params_to_json(&action, &pairs) {
                Ok(v) => v,
                Err(e) => return xml_error(&e, &request_id),
            };
            match sqs.call(&action, Input::Tree(input), &ctx).await {
                Ok(out) => xml_ok(
                    query::response_xml(&action, &out.into_tree(), &request_id),
                    &request_id,
                ),
                Err(e) => xml_error(&e, &request_id),
            }
        }
    }
}

/// Names the request after its action, for the request metrics.
fn labelled<E>(
    r: Result<(Vec<(String, String)>, String), E>,
    service: &'static str,
    label: &mut Label,
) -> Result<(Vec<(String, String)>, String), E> {
    if let Ok((_, action)) = &r {
        *label = Label {
            service,
            action: action.clone(),
        };
    }
    r
}

/// A Query request's parameters and action: old SDKs put the parameters in the URL
/// (GET) or the body (POST).
fn query_params(
    parts: &axum::http::request::Parts,
    body: &Bytes,
) -> Result<(Vec<(String, String)>, String), SqsError> {
    let mut p = query::decode_form(parts.uri.query().unwrap_or("").as_bytes())?;
    p.extend(query::decode_form(body)?);
    let action = query::action_of(&p)?.to_string();
    Ok((p, action))
}

/// The region of the credential scope, when the request is signed (with `auth =
/// "none"` too: SDKs sign anyway, and their region still picks the queues).
fn signed_region(parts: &axum::http::request::Parts) -> Result<Option<String>, SqsError> {
    let Some(auth) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| sigv4::parse_authorization(v).ok())
    else {
        return Ok(None);
    };
    if !crate::sqs::valid_region(&auth.region) {
        // AWS's words for a scope naming no region it has.
        return Err(SqsError::signature_does_not_match(
            "Credential should be scoped to a valid region.",
        ));
    }
    Ok(Some(auth.region))
}

/// The user the request acts as (`None` with `auth = "none"`).
fn authenticate(
    sqs: &Sqs,
    keys: &sigv4::KeyCache,
    parts: &axum::http::request::Parts,
    body: &Bytes,
    peer: SocketAddr,
) -> Result<Option<switchboard_api::User>, SqsError> {
    if sqs.config().auth == Auth::None {
        return Ok(None);
    }
    let Some(value) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(SqsError::missing_authentication_token(
            "Request is missing Authentication Token",
        ));
    };
    let auth = sigv4::parse_authorization(value).map_err(sig_error)?;
    let invalid_key = || {
        SqsError::invalid_client_token_id("The security token included in the request is invalid.")
    };
    let (user, secrets) = sqs
        .broker()
        .signing_secrets(&auth.access_key, peer)
        .map_err(|_| invalid_key())?;
    let headers: Vec<(&str, &[u8])> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_bytes()))
        .collect();
    let req = sigv4::Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &headers,
        body,
    };
    let now = SystemTime::now();
    let mut last = None;
    for secret in &secrets {
        match keys.verify(&req, &auth, secret, now, sigv4::MAX_SKEW) {
            Ok(()) => return Ok(Some(user)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(invalid_key, sig_error))
}

fn sig_error(e: sigv4::SigV4Error) -> SqsError {
    use sigv4::SigV4Error as E;
    match e {
        E::Incomplete(m) => SqsError::incomplete_signature(m),
        E::Mismatch(_) => SqsError::signature_does_not_match(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        ),
        E::Expired(m) => SqsError::signature_does_not_match(m),
        E::MissingDate => SqsError::incomplete_signature(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ),
    }
}

fn base_url(cfg: &Config, parts: &axum::http::request::Parts) -> String {
    if let Some(b) = &cfg.base_url {
        return b.trim_end_matches('/').to_string();
    }
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost:9324");
    let https = parts.extensions.get::<crate::Https>().is_some_and(|h| h.0);
    format!("{}://{host}", if https { "https" } else { "http" })
}

fn render_error(proto: &Protocol, e: &SqsError, request_id: &str) -> Response {
    match proto {
        Protocol::Json(_) => json_error(e, request_id),
        Protocol::Query => xml_error(e, request_id),
        Protocol::Sns | Protocol::Sts => sns_error(&e.clone().into(), request_id),
    }
}

fn with_headers(mut r: Response, content_type: &'static str, request_id: &str) -> Response {
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
    r
}

fn json_ok(out: &Output, request_id: &str) -> Response {
    let body = out.to_json();
    with_headers(
        (StatusCode::OK, Body::from(body)).into_response(),
        "application/x-amz-json-1.0",
        request_id,
    )
}

fn json_error(e: &SqsError, request_id: &str) -> Response {
    let body = serde_json::json!({ "__type": e.json_type(), "message": e.message });
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut r = with_headers(
        (status, Body::from(body.to_string())).into_response(),
        "application/x-amz-json-1.0",
        request_id,
    );
    if let Ok(v) = HeaderValue::from_str(&e.query_error_header()) {
        r.headers_mut().insert("x-amzn-query-error", v);
    }
    r
}

fn xml_ok(xml: String, request_id: &str) -> Response {
    with_headers(
        (StatusCode::OK, Body::from(xml)).into_response(),
        "text/xml",
        request_id,
    )
}

fn sns_error(e: &SnsError, request_id: &str) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    with_headers(
        (status, Body::from(sns::xml::error(e, request_id))).into_response(),
        "text/xml",
        request_id,
    )
}

fn xml_error(e: &SqsError, request_id: &str) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    with_headers(
        (status, Body::from(query::error_xml(e, request_id))).into_response(),
        "text/xml",
        request_id,
    )
}

/// Lists the request's connection in the admin API (once per signer): protocol,
/// user, the SDK's User-Agent.
fn describe_connection(
    sqs: &Sqs,
    parts: &axum::http::request::Parts,
    peer: SocketAddr,
    user: Option<&switchboard_api::User>,
) {
    let Some(conn) = parts.extensions.get::<Arc<crate::HttpConn>>() else {
        return;
    };
    let name = user.map_or("anonymous", |u| u.name.as_str());
    {
        let mut d = conn.described.lock().unwrap_or_else(|e| e.into_inner());
        if d.as_deref() == Some(name) {
            return;
        }
        *d = Some(name.to_string());
    }
    let mut props = switchboard_api::Table::new();
    if let Some(agent) = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        props.insert("user_agent".into(), switchboard_api::Value::string(agent));
    }
    let https = parts.extensions.get::<crate::Https>().is_some_and(|h| h.0);
    let meta = switchboard_api::admin::ConnectionMeta {
        protocol: if https {
            "SQS/SNS over HTTPS"
        } else {
            "SQS/SNS over HTTP"
        }
        .into(),
        peer,
        user: name.to_string(),
        vhost: sqs.config().vhost.clone(),
        client_properties: props,
        channels: Arc::new(std::sync::atomic::AtomicU32::new(0)),
        limited: false,
    };
    // Not limited, so never refused.
    let _ = sqs.broker().connection_describe(conn.id, meta);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, auth: Option<&str>) -> axum::http::request::Parts {
        let mut b = axum::http::Request::builder().uri(uri);
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(())
            .map(|r| r.into_parts().0)
            .unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn sns_is_told_from_sqs() {
        let signed = |svc: &str| {
            format!(
                "AWS4-HMAC-SHA256 Credential=guest/20261125/us-east-1/{svc}/aws4_request, SignedHeaders=host, Signature=00"
            )
        };
        let none = Bytes::new();
        assert!(is_sns(&parts("/", Some(&signed("sns"))), &none));
        assert!(!is_sns(&parts("/", Some(&signed("sqs"))), &none));
        // Unsigned: the version decides, else the action name.
        let form = |s: &'static str| Bytes::from_static(s.as_bytes());
        assert!(is_sns(
            &parts("/", None),
            &form("Action=Publish&Version=2010-03-31")
        ));
        assert!(is_sns(&parts("/?Action=ListTopics", None), &none));
        assert!(!is_sns(
            &parts("/", None),
            &form("Action=AddPermission&Version=2012-11-05")
        ));
        assert!(!is_sns(&parts("/", None), &form("Action=SendMessage")));
    }
}
