//! `sns-http`: an HTTP endpoint in this process (hyper's HTTP/1.1 server on
//! 127.0.0.1, an ephemeral port) subscribed to the topic. A SubscriptionConfirmation
//! POST hands its SubscribeURL to the scenario, which fetches it (unsigned GET, as
//! a real endpoint does); a server that confirms at once (moto) sends none. Then N
//! publishers publish as fast as they can (or at `--rate`) for `--duration`, and
//! the endpoint records each Notification (or, with `--raw-delivery`, the raw
//! message): deliveries/s and latency from the send stamp to the POST's arrival.
//!
//! The endpoint answers 200 at once, so what is measured is the broker's delivery
//! path; it shares this process's one thread with the publishers.

use crate::clock;
use crate::interrupted;
use crate::report::Latency;
use crate::scenario::RunSpec;
use crate::sns_load::{Form, Progress, Seen, join_publishers, sns_el, start_publishers};
use crate::sns_model::{IDLE_CUTOFF, SnsExtra, result};
use crate::sqs_client::{Client, Target, xml_text};
use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long the SubscriptionConfirmation may take to arrive.
const CONFIRM_WAIT: Duration = Duration::from_secs(15);

struct Endpoint {
    seen: Mutex<Seen>,
    /// POSTs received (all kinds).
    posts: AtomicU64,
    /// Notifications (and raw messages) received.
    delivered: AtomicU64,
    confirm: mpsc::UnboundedSender<String>,
}

/// The parts of an SNS document the endpoint reads.
#[derive(Deserialize)]
struct Doc {
    #[serde(rename = "Type", default)]
    kind: String,
    #[serde(rename = "Message", default)]
    message: String,
    #[serde(rename = "SubscribeURL", default)]
    subscribe_url: String,
}

impl Endpoint {
    fn take(&self, body: &[u8]) {
        let now = clock::now_ns();
        self.posts.fetch_add(1, Ordering::Relaxed);
        let text = String::from_utf8_lossy(body);
        let message = if text.starts_with('{') {
            match serde_json::from_str::<Doc>(&text) {
                Ok(d) if d.kind == "SubscriptionConfirmation" => {
                    let _ = self.confirm.send(d.subscribe_url);
                    return;
                }
                Ok(d) if d.kind == "Notification" => d.message,
                _ => {
                    self.lock().unexpected += 1;
                    return;
                }
            }
        } else {
            text.into_owned()
        };
        self.lock().record(&message, now, false);
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Serves the endpoint until the returned task is aborted.
async fn serve(ep: Arc<Endpoint>) -> Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let ep = ep.clone();
            conns.spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let ep = ep.clone();
                    async move {
                        let body = req.into_body().collect().await?.to_bytes();
                        ep.take(&body);
                        Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::new())))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
            while conns.try_join_next().is_some() {}
        }
    });
    Ok((format!("http://{addr}/sns"), task))
}

/// GET `url` (http://host:port/path?query) on a connection of its own: the reply's
/// status and body.
async fn get(url: &str) -> Result<(u16, String)> {
    let uri: hyper::Uri = url.parse().with_context(|| format!("bad URL {url:?}"))?;
    if uri.scheme_str() != Some("http") {
        bail!("SubscribeURL {url:?} is not http://");
    }
    let host = uri
        .authority()
        .ok_or_else(|| anyhow!("SubscribeURL {url:?} has no host"))?
        .to_string();
    let addr = if host.contains(':') {
        host.clone()
    } else {
        format!("{host}:80")
    };
    let stream = TcpStream::connect(&addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let conn = tokio::spawn(conn);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let req = Request::get(path)
        .header("host", host)
        .body(Full::new(Bytes::new()))?;
    let resp = send.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    conn.abort();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

pub async fn measure(
    target: &Target,
    c: &mut Client,
    spec: &RunSpec,
    topic: &str,
) -> Result<(crate::report::ScenarioResult, SnsExtra)> {
    let publishers = spec.topology.publishers;
    let (confirm_tx, mut confirm_rx) = mpsc::unbounded_channel();
    let ep = Arc::new(Endpoint {
        seen: Mutex::new(Seen::new(publishers)),
        posts: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        confirm: confirm_tx,
    });
    let (endpoint, server) = serve(ep.clone()).await?;
    let outcome = run_with(target, c, spec, topic, &ep, &endpoint, &mut confirm_rx).await;
    server.abort();
    outcome
}

async fn run_with(
    target: &Target,
    c: &mut Client,
    spec: &RunSpec,
    topic: &str,
    ep: &Arc<Endpoint>,
    endpoint: &str,
    confirm_rx: &mut mpsc::UnboundedReceiver<String>,
) -> Result<(crate::report::ScenarioResult, SnsExtra)> {
    let publishers = spec.topology.publishers;
    let mut notes = Vec::new();
    let mut f = Form::new("Subscribe");
    f.add("TopicArn", topic)
        .add("Protocol", "http")
        .add("Endpoint", endpoint);
    if spec.sns_raw {
        f.add("Attributes.entry.1.key", "RawMessageDelivery")
            .add("Attributes.entry.1.value", "true");
    }
    let sub = sns_el(c, "Subscribe", f, "SubscriptionArn")
        .await
        .context("subscribing the HTTP endpoint")?;
    if sub.starts_with("arn:") {
        notes.push("subscription confirmed at once (no SubscriptionConfirmation POST)".into());
    } else {
        let asked = Instant::now();
        let url = tokio::time::timeout(CONFIRM_WAIT, confirm_rx.recv())
            .await
            .ok()
            .flatten()
            .ok_or_else(|| anyhow!("no SubscriptionConfirmation within {CONFIRM_WAIT:?}"))?;
        let (status, body) = get(&url).await.context("fetching the SubscribeURL")?;
        if status != 200 || xml_text(&body, "SubscriptionArn").is_none() {
            bail!(
                "SubscribeURL answered HTTP {status}: {}",
                &body[..body.len().min(300)]
            );
        }
        notes.push(format!(
            "confirmed through the SubscribeURL {:.0} ms after Subscribe",
            asked.elapsed().as_secs_f64() * 1e3
        ));
    }
    let progress = Arc::new(Progress::new(publishers));
    let (pubs, t0_ns) = start_publishers(target, spec, topic, spec.rate, &progress).await?;
    let (pub_hist, first_ns, last_ns, connections) = join_publishers(pubs).await?;
    let drain_start = Instant::now();
    let expected = progress.total();
    let deadline = Instant::now() + spec.drain_timeout;
    let (mut last, mut last_change) = (u64::MAX, Instant::now());
    while !interrupted() && Instant::now() < deadline {
        let got = ep.delivered.load(Ordering::Relaxed);
        if got >= expected {
            break;
        }
        if got != last {
            (last, last_change) = (got, Instant::now());
        } else if last_change.elapsed() >= IDLE_CUTOFF {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drain_secs = drain_start.elapsed().as_secs_f64();
    if interrupted() {
        bail!("interrupted");
    }
    let seen = ep.lock();
    let summary = seen.summary("http", spec.sns_raw, expected);
    let last_delivery = seen.last_ns;
    let span = last_delivery.saturating_sub(first_ns.min(last_delivery)) as f64 / 1e9;
    let x = SnsExtra {
        kind: String::new(),
        publishers,
        target_rate: spec.rate,
        wall_secs: 0.0,
        publish: Latency::from_histogram(&pub_hist),
        delivery_rate: if span > 0.0 {
            summary.delivered as f64 / span
        } else {
            0.0
        },
        drain_secs,
        e2e: summary.e2e.clone(),
        subscribers: vec![summary],
        connections,
        notes,
    };
    let publish_secs = last_ns.saturating_sub(t0_ns) as f64 / 1e9;
    let consume_ns = last_delivery.saturating_sub(t0_ns);
    let r = result(spec, &x, expected, expected, publish_secs, consume_ns);
    Ok((r, x))
}
