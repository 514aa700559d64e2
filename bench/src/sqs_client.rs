//! A lean SQS client for the benchmark: one keep-alive HTTP/1.1 connection (hyper's
//! connection-level client, no pool), AWS JSON 1.0 requests (`POST /`,
//! `X-Amz-Target: AmazonSQS.<Action>`) signed with the bridge's SigV4 steps, so the
//! client signs exactly as the server verifies (the signing key is derived once per
//! day).
//!
//! Requests are signed for every server, including those that do not check
//! signatures (moto), so the client does the same work against each.
//!
//! The same connection also speaks SNS's AWS Query protocol ([`Client::sns`]: a
//! form body, scope `sns`, XML replies), so an SNS scenario drives both services
//! through one client.

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use std::time::Duration;
use switchboard_bridge::sigv4::{self, Authorization};
use tokio::net::TcpStream;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
const SIGNED_HEADERS: [&str; 4] = ["content-type", "host", "x-amz-date", "x-amz-target"];
/// What botocore sends with a Query request (SNS).
const FORM_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
const FORM_SIGNED_HEADERS: [&str; 3] = ["content-type", "host", "x-amz-date"];

/// `http://[access_key:secret@]host:port[/?region=R]`: access key and secret
/// default to guest/guest (a broker user), the region to us-east-1.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` to connect to, and the `Host` header.
    pub host: String,
    pub access_key: String,
    pub secret: String,
    pub region: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("expected http://host:port (SQS), got {url:?}"))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let rest = rest.trim_end_matches('/');
        let (auth, hostport) = match rest.rsplit_once('@') {
            Some((a, h)) => (Some(a), h),
            None => (None, rest),
        };
        if hostport.is_empty() || hostport.contains('/') {
            bail!("expected http://host:port (no path), got {url:?}");
        }
        let host = if hostport
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            hostport.to_string()
        } else {
            format!("{hostport}:80")
        };
        let (access_key, secret) = match auth.map(|a| a.split_once(':').unwrap_or((a, ""))) {
            Some((k, s)) => (k.to_string(), s.to_string()),
            None => ("guest".into(), "guest".into()),
        };
        let region = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("region="))
            .unwrap_or("us-east-1")
            .to_string();
        Ok(Target {
            host,
            access_key,
            secret,
            region,
        })
    }
}

/// SigV4 for `POST /`: a JSON body with the headers in [`SIGNED_HEADERS`] (SQS), or
/// a form body with [`FORM_SIGNED_HEADERS`] (Query, [`Signer::query`]).
pub struct Signer {
    /// The credential scope's service: `sqs`, or `sns` for Query.
    service: &'static str,
    /// AWS JSON 1.0 (`x-amz-target` signed) rather than Query.
    json: bool,
    access_key: String,
    secret: String,
    region: String,
    host: String,
    /// The signing key of the last day signed for, and the `Authorization` for that
    /// day, whose signature each request replaces.
    day: Option<([u8; 32], Authorization)>,
    /// (unix second, `yyyymmddThhmmssZ`) of the last request.
    stamp: Option<(u64, String)>,
}

impl Signer {
    pub fn new(t: &Target) -> Signer {
        Signer {
            service: "sqs",
            json: true,
            access_key: t.access_key.clone(),
            secret: t.secret.clone(),
            region: t.region.clone(),
            host: t.host.clone(),
            day: None,
            stamp: None,
        }
    }

    /// A signer for Query requests to `service` (a form body, no `x-amz-target`).
    pub fn query(t: &Target, service: &'static str) -> Signer {
        Signer {
            service,
            json: false,
            ..Signer::new(t)
        }
    }

    /// `(x-amz-date, authorization)` for a request with this target (JSON only;
    /// ignored for Query) and body, at `secs`.
    pub fn sign(&mut self, target: &str, body: &[u8], secs: u64) -> Result<(String, String)> {
        if self.stamp.as_ref().is_none_or(|(s, _)| *s != secs) {
            let unix = i64::try_from(secs).context("wall clock out of range")?;
            self.stamp = Some((secs, sigv4::format_basic(unix)));
        }
        let ts = self
            .stamp
            .as_ref()
            .map(|(_, t)| t.clone())
            .unwrap_or_default();
        let date = &ts[..8];
        let (key, auth) = match &mut self.day {
            Some((key, auth)) if auth.date == date => (key, auth),
            day => {
                let signed: &[&str] = if self.json {
                    &SIGNED_HEADERS
                } else {
                    &FORM_SIGNED_HEADERS
                };
                let auth = Authorization {
                    access_key: self.access_key.clone(),
                    date: date.to_string(),
                    region: self.region.clone(),
                    service: self.service.into(),
                    signed_headers: signed.iter().map(|h| h.to_string()).collect(),
                    signature: String::new(),
                };
                let key = sigv4::signing_key(&self.secret, date, &self.region, self.service);
                let (key, auth) = day.insert((key, auth));
                (key, auth)
            }
        };
        let content_type = if self.json { CONTENT_TYPE } else { FORM_TYPE };
        let headers: [(&str, &[u8]); 4] = [
            ("content-type", content_type.as_bytes()),
            ("host", self.host.as_bytes()),
            ("x-amz-date", ts.as_bytes()),
            ("x-amz-target", target.as_bytes()),
        ];
        let headers = if self.json {
            &headers[..]
        } else {
            &headers[..3]
        };
        let req = sigv4::Request {
            method: "POST",
            path: "/",
            query: "",
            headers,
            body,
        };
        let canonical = sigv4::canonical_request(&req, &auth.signed_headers)?;
        let to_sign = sigv4::string_to_sign(&ts, &auth.scope(), &canonical);
        auth.signature = sigv4::signature(key, &to_sign);
        Ok((ts, auth.to_string()))
    }
}

/// A refused request: HTTP status and the error's `__type` and message.
#[derive(Debug)]
pub struct CallError {
    pub action: &'static str,
    pub status: u16,
    pub kind: String,
    pub message: String,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} refused: HTTP {} {}: {}",
            self.action, self.status, self.kind, self.message
        )
    }
}

impl std::error::Error for CallError {}

/// One keep-alive connection to the SQS endpoint. A server that answers with
/// `Connection: close` (moto's development server does, every time) gets a new
/// connection for the next request; [`Client::connects`] counts them.
pub struct Client {
    sender: SendRequest<Full<Bytes>>,
    signer: Signer,
    /// For [`Client::sns`], made on its first call.
    sns_signer: Option<Signer>,
    target: Target,
    host: String,
    conn: tokio::task::JoinHandle<()>,
    /// The server said `Connection: close`, or the connection broke.
    reconnect: bool,
    /// Connections opened, the first included.
    pub connects: u64,
}

type Conn = (SendRequest<Full<Bytes>>, tokio::task::JoinHandle<()>);

async fn open(host: &str) -> Result<Conn> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(host))
        .await
        .map_err(|_| anyhow!("connecting to {host}: no answer within {CONNECT_TIMEOUT:?}"))?
        .with_context(|| format!("connecting to {host}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP/1.1 handshake")?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok((sender, conn))
}

impl Client {
    pub async fn connect(t: &Target) -> Result<Client> {
        let (sender, conn) = open(&t.host).await?;
        Ok(Client {
            sender,
            signer: Signer::new(t),
            sns_signer: None,
            target: t.clone(),
            host: t.host.clone(),
            conn,
            reconnect: false,
            connects: 1,
        })
    }

    /// Sends `AmazonSQS.<action>` with a JSON body and returns the reply's body (200),
    /// or a [`CallError`] (any other status).
    pub async fn call_raw(&mut self, action: &'static str, body: Vec<u8>) -> Result<Bytes> {
        let target = format!("AmazonSQS.{action}");
        let secs = switchboard_api::wall_secs();
        let (date, auth) = self.signer.sign(&target, &body, secs)?;
        let req = Request::post("/")
            .header("host", &self.host)
            .header("content-type", CONTENT_TYPE)
            .header("x-amz-target", target)
            .header("x-amz-date", date)
            .header("authorization", auth)
            .body(Full::new(Bytes::from(body)))?;
        let (status, bytes) = self.exchange(action, req).await?;
        if status != 200 {
            #[derive(serde::Deserialize, Default)]
            struct ErrBody {
                #[serde(rename = "__type", default)]
                kind: String,
                #[serde(default, alias = "Message")]
                message: String,
            }
            let e: ErrBody = serde_json::from_slice(&bytes).unwrap_or_else(|_| ErrBody {
                kind: String::new(),
                message: String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
            });
            return Err(CallError {
                action,
                status,
                kind: e.kind,
                message: e.message,
            }
            .into());
        }
        Ok(bytes)
    }

    /// Sends an SNS Query request (`body`: the form, `Action` and `Version`
    /// included) and returns the XML reply (200), or a [`CallError`] with the
    /// error's `Code` and `Message`.
    pub async fn sns(&mut self, action: &'static str, body: Vec<u8>) -> Result<Bytes> {
        let secs = switchboard_api::wall_secs();
        let signer = self
            .sns_signer
            .get_or_insert_with(|| Signer::query(&self.target, "sns"));
        let (date, auth) = signer.sign("", &body, secs)?;
        let req = Request::post("/")
            .header("host", &self.host)
            .header("content-type", FORM_TYPE)
            .header("x-amz-date", date)
            .header("authorization", auth)
            .body(Full::new(Bytes::from(body)))?;
        let (status, bytes) = self.exchange(action, req).await?;
        if status != 200 {
            let text = String::from_utf8_lossy(&bytes);
            let kind = xml_text(&text, "Code").unwrap_or_default().to_string();
            let message = xml_text(&text, "Message")
                .map(str::to_string)
                .unwrap_or_else(|| text.chars().take(200).collect());
            return Err(CallError {
                action,
                status,
                kind,
                message,
            }
            .into());
        }
        Ok(bytes)
    }

    /// Sends `req` on the connection (a new one if the server closed the last) and
    /// reads the whole reply.
    async fn exchange(
        &mut self,
        action: &'static str,
        req: Request<Full<Bytes>>,
    ) -> Result<(u16, Bytes)> {
        if self.reconnect || self.sender.is_closed() {
            self.conn.abort();
            (self.sender, self.conn) = open(&self.host).await?;
            self.connects += 1;
            self.reconnect = false;
        }
        self.sender
            .ready()
            .await
            .with_context(|| format!("{action}: connection closed"))?;
        let resp = match self.sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                self.reconnect = true;
                return Err(e).with_context(|| format!("{action}: request failed"));
            }
        };
        self.reconnect = resp
            .headers()
            .get(hyper::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .with_context(|| format!("{action}: reading the reply"))?
            .to_bytes();
        Ok((status, bytes))
    }

    /// [`Client::call_raw`] with the reply parsed as `T`.
    pub async fn call<T: DeserializeOwned>(
        &mut self,
        action: &'static str,
        body: Vec<u8>,
    ) -> Result<T> {
        let bytes = self.call_raw(action, body).await?;
        serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{action}: unexpected reply {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            )
        })
    }
}

/// The text of the first `<name>` element of an XML reply (not unescaped: the
/// values this is used for, ARNs, ids and error codes, have nothing to escape).
pub fn xml_text<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&format!("</{name}>"))?;
    Some(&xml[start..start + len])
}

impl Drop for Client {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("http://127.0.0.1:9324").unwrap();
        assert_eq!(
            (t.host.as_str(), t.access_key.as_str(), t.region.as_str()),
            ("127.0.0.1:9324", "guest", "us-east-1")
        );
        let t = Target::parse("http://ak:sk@localhost:1/?region=eu-west-1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.secret.as_str(), t.region.as_str()),
            ("localhost:1", "sk", "eu-west-1")
        );
        assert!(Target::parse("https://x:1").is_err());
        assert!(Target::parse("http://x:1/queue").is_err());
    }

    /// Known answer from botocore 1.x's SigV4Auth (guest/guest, us-east-1, sqs) for
    /// the same request at 2026-03-04T05:06:07Z.
    #[test]
    fn signature_matches_botocore() {
        let t = Target::parse("http://127.0.0.1:9324").unwrap();
        let mut s = Signer::new(&t);
        let body = br#"{"QueueUrl":"http://127.0.0.1:9324/000000000000/q","MessageBody":"hello"}"#;
        let (date, auth) = s
            .sign("AmazonSQS.SendMessage", body, 1_772_600_767)
            .unwrap();
        assert_eq!(date, "20260304T050607Z");
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=guest/20260304/us-east-1/sqs/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-target, \
             Signature=b801773dcfc9d2ad1ed00133dc8980ba53058d25aee88221cdfaf79e640d0b0f"
        );
    }
}
