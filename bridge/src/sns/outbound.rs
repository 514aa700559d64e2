//! What SNS sends to an HTTP endpoint: the POST itself (hyper's client, bounded in
//! concurrency, time and response size) and the three message documents —
//! SubscriptionConfirmation, Notification, UnsubscribeConfirmation — with the
//! headers AWS sends along.
//!
//! `https://` goes through rustls (`tls.rs`): certificates are verified against
//! Mozilla's roots and `sns.https_ca_file`, unless `sns.https_insecure`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Map, Value as Json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// How long one POST may take, connection included (AWS gives endpoints 15 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// POSTs in flight at once, all subscriptions together.
const MAX_IN_FLIGHT: usize = 64;
/// What is read of an endpoint's reply (it is only drained, so the connection can
/// be reused); more is cut off.
const MAX_REPLY: usize = 64 << 10;

pub const USER_AGENT: &str = "Amazon Simple Notification Service Agent";

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("endpoint URL {0:?} is not an http:// or https:// URL")]
    BadUrl(String),
    /// The TLS settings could not be made (a bad `sns.https_ca_file`): every https
    /// delivery fails with the reason until the configuration is fixed.
    #[error("no TLS client: {0}")]
    Tls(String),
    #[error(transparent)]
    Mail(#[from] super::smtp::SmtpError),
    #[error("request failed: {0}")]
    Request(String),
    #[error("no answer within {}s", REQUEST_TIMEOUT.as_secs())]
    Timeout,
    #[error("endpoint answered HTTP {0}")]
    Status(u16),
}

/// The shared HTTP client of every delivery, http and https.
#[derive(Clone)]
pub struct HttpClient {
    plain: Client<HttpConnector, Full<Bytes>>,
    /// `Err`: why https cannot be used (the TLS settings were refused at start);
    /// every https delivery fails with it until the configuration is fixed.
    tls: Result<Client<HttpsConnector<HttpConnector>, Full<Bytes>>, String>,
    slots: Arc<Semaphore>,
}

impl HttpClient {
    pub fn new(cfg: &crate::SnsConfig) -> HttpClient {
        let connector = || {
            let mut c = HttpConnector::new();
            c.set_connect_timeout(Some(REQUEST_TIMEOUT));
            c.set_nodelay(true);
            c
        };
        let client = || {
            let mut b = Client::builder(TokioExecutor::new());
            b.pool_idle_timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(8);
            b
        };
        if cfg.https_insecure {
            tracing::warn!("sns.https_insecure: https endpoints' certificates are not checked");
        }
        let tls = super::tls::client_config(cfg.https_ca_file.as_deref(), cfg.https_insecure)
            .map(|tls| {
                let mut inner = connector();
                // The TLS connector hands it https URLs.
                inner.enforce_http(false);
                let c = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_only()
                    .enable_http1()
                    .wrap_connector(inner);
                client().build(c)
            })
            .map_err(|e| {
                tracing::error!("SNS https deliveries disabled: {e}");
                e.to_string()
            });
        HttpClient {
            plain: client().build(connector()),
            tls,
            slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }
}

/// One message for one endpoint.
pub struct Post {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl HttpClient {
    /// POSTs; `Ok` on a 2xx answer, which is what AWS counts as delivered.
    pub async fn post(&self, post: &Post) -> Result<(), DeliveryError> {
        let uri: hyper::Uri = post
            .url
            .parse()
            .map_err(|_| DeliveryError::BadUrl(post.url.clone()))?;
        let https = match uri.scheme_str() {
            _ if uri.host().is_none_or(str::is_empty) => None,
            Some("http") => Some(false),
            Some("https") => Some(true),
            _ => None,
        }
        .ok_or_else(|| DeliveryError::BadUrl(post.url.clone()))?;
        if https && let Err(e) = &self.tls {
            return Err(DeliveryError::Tls(e.clone()));
        }
        let mut req = hyper::Request::post(uri);
        for (k, v) in &post.headers {
            req = req.header(*k, v.as_str());
        }
        let req = req
            .body(Full::new(post.body.clone()))
            .map_err(|e| DeliveryError::Request(e.to_string()))?;
        // Closed only when the client is dropped, which never happens while it runs.
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|e| DeliveryError::Request(e.to_string()))?;
        let exchange = async {
            let resp = match &self.tls {
                Ok(tls) if https => tls.request(req).await,
                _ => self.plain.request(req).await,
            }
            .map_err(|e| DeliveryError::Request(causes(&e)))?;
            let status = resp.status().as_u16();
            // Drained (up to a limit) so the connection goes back to the pool.
            let _ = Limited::new(resp.into_body(), MAX_REPLY).collect().await;
            Ok::<u16, DeliveryError>(status)
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Err(_) => Err(DeliveryError::Timeout),
            Ok(Err(e)) => Err(e),
            Ok(Ok(s)) if (200..300).contains(&s) => Ok(()),
            Ok(Ok(s)) => Err(DeliveryError::Status(s)),
        }
    }
}

/// An error and its sources: hyper's own text is only "client error (Connect)",
/// the reason (refused, certificate not trusted, ...) is further down.
fn causes(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(c) = next {
        s.push_str(": ");
        s.push_str(&c.to_string());
        next = c.source();
    }
    s
}

/// Whether `url` is one SNS can deliver to with `scheme` (the subscription's
/// protocol, `http` or `https`): `scheme://host[:port][/path]`.
pub fn valid_url(url: &str, scheme: &str) -> bool {
    url.parse::<hyper::Uri>()
        .is_ok_and(|u| u.scheme_str() == Some(scheme) && u.host().is_some_and(|h| !h.is_empty()))
}

/// The headers AWS sends with every message to an HTTP endpoint.
pub fn headers(
    doc_type: &str,
    message_id: &str,
    topic_arn: &str,
    sub_arn: Option<&str>,
    content_type: &str,
    raw: bool,
) -> Vec<(&'static str, String)> {
    let mut h = vec![
        ("x-amz-sns-message-type", doc_type.to_string()),
        ("x-amz-sns-message-id", message_id.to_string()),
        ("x-amz-sns-topic-arn", topic_arn.to_string()),
        ("content-type", content_type.to_string()),
        ("user-agent", USER_AGENT.to_string()),
    ];
    if let Some(s) = sub_arn {
        h.push(("x-amz-sns-subscription-arn", s.to_string()));
    }
    if raw {
        h.push(("x-amz-sns-rawdelivery", "true".into()));
    }
    h
}

/// A SubscriptionConfirmation or UnsubscribeConfirmation document, unsigned.
pub fn confirmation(
    doc_type: &str,
    message_id: &str,
    topic_arn: &str,
    token: &str,
    subscribe_url: &str,
    sub_arn: &str,
    timestamp: &str,
) -> Map<String, Json> {
    let message = if doc_type == "SubscriptionConfirmation" {
        format!(
            "You have chosen to subscribe to the topic {topic_arn}.\nTo confirm the subscription, visit the SubscribeURL included in this message."
        )
    } else {
        format!(
            "You have chosen to deactivate subscription {sub_arn}.\nTo cancel this operation and restore the subscription, visit the SubscribeURL included in this message."
        )
    };
    let mut doc = Map::new();
    doc.insert("Type".into(), doc_type.into());
    doc.insert("MessageId".into(), message_id.into());
    doc.insert("Token".into(), token.into());
    doc.insert("TopicArn".into(), topic_arn.into());
    doc.insert("Message".into(), message.into());
    doc.insert("SubscribeURL".into(), subscribe_url.into());
    doc.insert("Timestamp".into(), timestamp.into());
    doc
}

/// The SubscribeURL of a confirmation: a GET on the broker's own HTTP port.
pub fn subscribe_url(base_url: &str, topic_arn: &str, token: &str) -> String {
    format!(
        "{base_url}/?Action=ConfirmSubscription&TopicArn={}&Token={}",
        crate::percent::encode(topic_arn),
        crate::percent::encode(token)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_builds_with_and_without_tls_settings() {
        let c = HttpClient::new(&crate::SnsConfig::default());
        assert!(c.tls.is_ok());
        let bad = crate::SnsConfig {
            https_ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let c = HttpClient::new(&bad);
        assert!(
            c.tls
                .as_ref()
                .is_err_and(|e| e.contains("/nonexistent/ca.pem"))
        );
    }

    #[test]
    fn urls_must_match_the_protocol() {
        assert!(valid_url("http://127.0.0.1:8080/hook?x=1", "http"));
        assert!(valid_url("http://example.com", "http"));
        assert!(valid_url("https://example.com/", "https"));
        assert!(!valid_url("https://example.com/", "http"));
        assert!(!valid_url("http://example.com/", "https"));
        assert!(!valid_url("ftp://example.com/", "http"));
        assert!(!valid_url("http://", "http"));
        assert!(!valid_url("not a url", "http"));
    }

    #[test]
    fn confirmation_carries_what_aws_sends() {
        let d = confirmation(
            "SubscriptionConfirmation",
            "m",
            "arn:aws:sns:us-east-1:0:t",
            "tok",
            "http://b/?Action=ConfirmSubscription",
            "arn:aws:sns:us-east-1:0:t:s",
            "2026-01-01T00:00:00.000Z",
        );
        for k in [
            "Type",
            "MessageId",
            "Token",
            "TopicArn",
            "Message",
            "SubscribeURL",
            "Timestamp",
        ] {
            assert!(d.contains_key(k), "{k}");
        }
        assert!(
            d["Message"]
                .as_str()
                .is_some_and(|m| m.contains("arn:aws:sns:us-east-1:0:t"))
        );
        let h = headers("Notification", "m", "t", Some("s"), "text/plain", true);
        assert!(h.contains(&("x-amz-sns-subscription-arn", "s".into())));
        assert!(h.contains(&("user-agent", USER_AGENT.into())));
        assert!(h.contains(&("x-amz-sns-rawdelivery", "true".into())));
    }
}
