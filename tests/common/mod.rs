//! Shared harness for the end-to-end tests.
//!
//! `Server::start()` either uses an already running broker (env
//! `SWITCHBOARD_AMQP_URL`, e.g. `amqp://guest:guest@127.0.0.1:5672/%2F` to run
//! the same tests against RabbitMQ), or spawns the real `switchboard` binary on
//! ephemeral ports with a fresh data directory and kills it (SIGKILL) on drop.
//!
//! The helpers below only wrap lapin calls; every assertion stays in the tests.
#![allow(dead_code)]

pub mod mqtt;
pub mod stomp;

use std::{
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use futures_lite::StreamExt;
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, Consumer, Queue,
    message::{BasicGetMessage, Delivery},
    options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
};

/// How long the spawned binary may take to print its `listening ...` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Default wait for something the broker is expected to do "soon".
pub const WAIT: Duration = Duration::from_secs(5);

/// A broker under test.
pub struct Server {
    child: Option<Child>,
    data_dir: Option<PathBuf>,
    amqp_url: String,
    /// `key -> host:port` from the `listening` line (empty for an external broker).
    listeners: Vec<(String, String)>,
}

impl Server {
    /// True when the tests target an external broker (`SWITCHBOARD_AMQP_URL`), without
    /// starting anything: for tests that only make sense against our own binary.
    pub fn external() -> bool {
        std::env::var("SWITCHBOARD_AMQP_URL").is_ok_and(|u| !u.trim().is_empty())
    }

    /// Use `SWITCHBOARD_AMQP_URL` if set, otherwise spawn the real binary.
    pub fn start() -> Server {
        if let Ok(url) = std::env::var("SWITCHBOARD_AMQP_URL")
            && !url.trim().is_empty()
        {
            return Server {
                child: None,
                data_dir: None,
                amqp_url: url.trim().to_string(),
                listeners: Vec::new(),
            };
        }
        let data_dir = std::env::temp_dir().join(unique("switchboard-test"));
        Self::spawn(env!("CARGO_BIN_EXE_switchboard"), data_dir, true, &[])
    }

    /// Spawns the real binary on `dir`, which outlives the server (for restarts).
    pub fn start_in(dir: &std::path::Path) -> Server {
        Self::spawn(
            env!("CARGO_BIN_EXE_switchboard"),
            dir.to_path_buf(),
            false,
            &[],
        )
    }

    /// Spawns the real binary with extra `SWITCHBOARD_*` settings.
    pub fn start_with_env(env: &[(&str, &str)]) -> Server {
        let data_dir = std::env::temp_dir().join(unique("switchboard-test"));
        Self::spawn(env!("CARGO_BIN_EXE_switchboard"), data_dir, true, env)
    }

    /// The broker's process id (None for an external broker).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGKILL: the crash a durable broker must survive.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn spawn(bin: &str, data_dir: PathBuf, owned: bool, env: &[(&str, &str)]) -> Server {
        std::fs::create_dir_all(&data_dir).expect("create temp data dir");

        let mut child = Command::new(bin)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--bind", "127.0.0.1"])
            .args(["--amqp-port", "0"])
            .args(["--mqtt-port", "0"])
            .args(["--mqtt-ws-port", "0"])
            .args(["--stomp-port", "0"])
            .args(["--stomp-ws-port", "0"])
            .args(["--http-port", "0"])
            .args(["--admin-port", "0"])
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("failed to spawn {bin}: {e}"));

        // Forward the child's output to the test's (captured) stderr, and hand
        // stdout lines to this thread until the `listening` line shows up. The
        // forwarders keep draining afterwards so the child never blocks on a
        // full pipe.
        let stdout = child.stdout.take().expect("child stdout");
        let stderr = child.stderr.take().expect("child stderr");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || forward_lines(stdout, "stdout", Some(tx)));
        std::thread::spawn(move || forward_lines(stderr, "stderr", None));

        let mut server = Server {
            child: Some(child),
            data_dir: owned.then_some(data_dir),
            amqp_url: String::new(),
            listeners: Vec::new(),
        };

        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(listeners) = parse_listening_line(&line) {
                        server.listeners = listeners;
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("switchboard printed no `listening ...` line within {STARTUP_TIMEOUT:?}")
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stdout closed: the process is exiting; give it a moment to be reaped.
                    let mut status = None;
                    for _ in 0..50 {
                        status = server
                            .child
                            .as_mut()
                            .and_then(|c| c.try_wait().ok().flatten());
                        if status.is_some() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    panic!(
                        "switchboard closed stdout before printing `listening ...` (exit status: {status:?})"
                    )
                }
            }
        }

        let amqp = server
            .listener("amqp")
            .unwrap_or_else(|| panic!("no amqp= in listening line: {:?}", server.listeners))
            .to_string();
        server.amqp_url = format!("amqp://guest:guest@{amqp}/%2F");
        server
    }

    /// The AMQP URL of this broker (`amqp://guest:guest@host:port/%2F`).
    pub fn amqp_url(&self) -> &str {
        &self.amqp_url
    }

    /// `host:port` of another listener from the `listening` line (`mqtt`, `stomp`, ...).
    pub fn listener(&self, key: &str) -> Option<&str> {
        self.listeners
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `host:port` of the MQTT listener (None for an external broker).
    pub fn mqtt_addr(&self) -> Option<&str> {
        self.listener("mqtt")
    }

    /// `host:port` of the MQTT-over-WebSocket listener (None for an external broker).
    pub fn mqtt_ws_addr(&self) -> Option<&str> {
        self.listener("mqtt-ws")
    }

    /// `host:port` of the STOMP listener (None for an external broker).
    pub fn stomp_addr(&self) -> Option<&str> {
        self.listener("stomp")
    }

    /// `host:port` of the STOMP-over-WebSocket listener (None for an external broker).
    pub fn stomp_ws_addr(&self) -> Option<&str> {
        self.listener("stomp-ws")
    }

    /// Sends SIGTERM and waits (up to 15 s) for the process to exit. `None` when the
    /// broker is external or did not exit in time.
    #[allow(dead_code)]
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        None
    }

    /// True when the tests run against an external broker (`SWITCHBOARD_AMQP_URL`).
    pub fn is_external(&self) -> bool {
        self.child.is_none()
    }

    /// Open a new AMQP connection to this broker.
    pub async fn connect(&self) -> Connection {
        tokio::time::timeout(
            WAIT,
            Connection::connect(&self.amqp_url, ConnectionProperties::default()),
        )
        .await
        .unwrap_or_else(|_| panic!("timed out connecting to {}", self.amqp_url))
        .unwrap_or_else(|e| panic!("failed to connect to {}: {e}", self.amqp_url))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
        if let Some(dir) = self.data_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn forward_lines(pipe: impl Read, name: &str, tx: Option<mpsc::Sender<String>>) {
    let mut tx = tx;
    for line in BufReader::new(pipe).lines() {
        let Ok(line) = line else { break };
        eprintln!("[switchboard {name}] {line}");
        if let Some(sender) = &tx
            && sender.send(line).is_err()
        {
            tx = None;
        }
    }
}

/// Parse `... listening amqp=127.0.0.1:40123 mqtt=127.0.0.1:40124 ...` into
/// `[("amqp", "127.0.0.1:40123"), ...]`. Tolerates a log prefix before
/// `listening` and ANSI colour codes.
fn parse_listening_line(line: &str) -> Option<Vec<(String, String)>> {
    let line = strip_ansi(line);
    let mut words = line.split_whitespace();
    words
        .by_ref()
        .find(|w| *w == "listening" || w.ends_with(":listening"))?;
    let pairs: Vec<(String, String)> = words
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.trim_matches(|c| c == '"' || c == ',').to_string(),
            )
        })
        .collect();
    pairs.iter().any(|(k, _)| k == "amqp").then_some(pairs)
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A name nobody else uses: safe against a shared broker and parallel tests.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Declare a transient (non-durable, non-exclusive) queue.
pub async fn declare_queue(ch: &Channel, name: &str, args: FieldTable) -> Queue {
    ch.queue_declare(name.into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap_or_else(|e| panic!("queue.declare {name}: {e}"))
}

/// Publish a UTF-8 body without waiting for anything.
pub async fn publish(ch: &Channel, exchange: &str, key: &str, body: &str) {
    publish_with(ch, exchange, key, body, BasicProperties::default()).await
}

pub async fn publish_with(
    ch: &Channel,
    exchange: &str,
    key: &str,
    body: &str,
    props: BasicProperties,
) {
    // Without confirm mode the returned future resolves to NotRequested at once.
    ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions::default(),
        body.as_bytes(),
        props,
    )
    .await
    .unwrap_or_else(|e| panic!("basic.publish to {exchange:?}/{key:?}: {e}"));
}

/// basic.get with auto-ack.
pub async fn get(ch: &Channel, queue: &str) -> Option<BasicGetMessage> {
    ch.basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap_or_else(|e| panic!("basic.get {queue}: {e}"))
}

/// basic.get (auto-ack) until the queue is empty; returns the bodies in order.
pub async fn drain(ch: &Channel, queue: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(msg) = get(ch, queue).await {
        out.push(body(&msg.delivery));
    }
    out
}

/// Poll basic.get (manual ack) until a message shows up, for things the broker
/// does asynchronously (dead-lettering).
pub async fn get_eventually(ch: &Channel, queue: &str, no_ack: bool) -> BasicGetMessage {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(msg) = ch
            .basic_get(queue.into(), BasicGetOptions { no_ack })
            .await
            .unwrap_or_else(|e| panic!("basic.get {queue}: {e}"))
        {
            return msg;
        }
        assert!(
            Instant::now() < deadline,
            "no message arrived in {queue} within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Next delivery from a consumer; panics on timeout, error or end of stream.
pub async fn next_delivery(consumer: &mut Consumer) -> Delivery {
    match tokio::time::timeout(WAIT, consumer.next()).await {
        Err(_) => panic!("no delivery within {WAIT:?}"),
        Ok(None) => panic!("consumer stream ended (cancelled) while waiting for a delivery"),
        Ok(Some(Err(e))) => panic!("consumer error: {e}"),
        Ok(Some(Ok(d))) => d,
    }
}

/// Assert that nothing is delivered to `consumer` for `quiet`.
pub async fn assert_no_delivery(consumer: &mut Consumer, quiet: Duration) {
    if let Ok(item) = tokio::time::timeout(quiet, consumer.next()).await {
        match item {
            Some(Ok(d)) => panic!("unexpected delivery: {:?}", body(&d)),
            Some(Err(e)) => panic!("unexpected consumer error: {e}"),
            None => panic!("consumer stream ended unexpectedly"),
        }
    }
}

pub fn body(d: &Delivery) -> String {
    String::from_utf8_lossy(&d.data).into_owned()
}

pub fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

pub fn long_str(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

/// Any AMQP integer as i64.
pub fn as_i64(v: &AMQPValue) -> Option<i64> {
    Some(match v {
        AMQPValue::ShortShortInt(x) => *x as i64,
        AMQPValue::ShortShortUInt(x) => *x as i64,
        AMQPValue::ShortInt(x) => *x as i64,
        AMQPValue::ShortUInt(x) => *x as i64,
        AMQPValue::LongInt(x) => *x as i64,
        AMQPValue::LongUInt(x) => *x as i64,
        AMQPValue::LongLongInt(x) => *x,
        AMQPValue::Timestamp(x) => *x as i64,
        _ => return None,
    })
}

/// A long or short string as String.
pub fn as_string(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod harness_tests {
    use super::*;

    #[test]
    fn parses_listening_line() {
        let l = parse_listening_line(
            "listening amqp=127.0.0.1:40123 mqtt=127.0.0.1:40124 stomp=127.0.0.1:1 http=127.0.0.1:2 admin=127.0.0.1:3",
        )
        .unwrap();
        assert_eq!(l[0], ("amqp".to_string(), "127.0.0.1:40123".to_string()));
        assert_eq!(l.len(), 5);
        let l = parse_listening_line(
            "2025-01-01T00:00:00Z  INFO switchboard: \u{1b}[3mlistening\u{1b}[0m amqp=127.0.0.1:5 mqtt=127.0.0.1:6",
        )
        .unwrap();
        assert_eq!(l[0].1, "127.0.0.1:5");
        assert!(parse_listening_line("starting amqp=1").is_none());
        assert!(parse_listening_line("listening mqtt=127.0.0.1:1").is_none());
    }
}
