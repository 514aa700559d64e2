//! `idle-<n>` (default 10,000): n MQTT 3.1.1 connections held open with no
//! traffic, and what they cost the broker in memory.
//!
//! No MQTT library here: a task per connection (rumqttc's model) would make
//! the client heavier than the broker. Each connection is a bare TcpStream:
//! CONNECT (clean session, keepalive 60 s, client id `sbb-<run>-i<k>`), CONNACK
//! checked, SUBSCRIBE to its own topic `<prefix>/idle/<k>` at QoS 0, SUBACK
//! checked (one after the other: MQTT lets a client send SUBSCRIBE before the
//! CONNACK, but measuring memory is not the place to insist on that), then
//! the socket is kept without reading. After the hold (`--duration`, default 10 s; a PINGREQ
//! round every 45 s if longer, inside the keepalive) the broker's RSS is
//! sampled (`--watch-pid`), every connection is pinged once to count those
//! still alive, and all are closed with DISCONNECT.
//!
//! Needs n + a few file descriptors in this process and in the broker: the
//! soft RLIMIT_NOFILE is raised to what is needed if the hard limit allows.

use crate::interrupted;
use crate::mqtt_client::{HANDSHAKE_TIMEOUT, Target, client_id};
use crate::procstat;
use crate::report::ScenarioResult;
use crate::scenario::RunSpec;
use anyhow::{Context, Result, anyhow, bail};
use futures_util::stream::{self, StreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

const KEEP_ALIVE_SECS: u16 = 60;
/// Handshakes in progress at once (brokers' listen backlogs are often ~100).
const CONCURRENCY: usize = 64;
const PING_EVERY: Duration = Duration::from_secs(45);
/// Let the broker settle after the last SUBACK before the hold starts.
const SETTLE: Duration = Duration::from_secs(1);

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u16).to_be_bytes());
    b.extend_from_slice(s.as_bytes());
}

/// Fixed header (type and flags in `h`, remaining length) and `body`.
fn packet(out: &mut Vec<u8>, h: u8, body: &[u8]) {
    out.push(h);
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
}

/// CONNECT (3.1.1, clean session) and SUBSCRIBE (packet id 1, QoS 0).
pub fn handshake(id: &str, topic: &str, cred: Option<&(String, String)>) -> (Vec<u8>, Vec<u8>) {
    let mut c = Vec::new();
    put_str(&mut c, "MQTT");
    c.push(4); // protocol level: 3.1.1
    c.push(0x02 | if cred.is_some() { 0xC0 } else { 0 });
    c.extend_from_slice(&KEEP_ALIVE_SECS.to_be_bytes());
    put_str(&mut c, id);
    if let Some((u, p)) = cred {
        put_str(&mut c, u);
        put_str(&mut c, p);
    }
    let mut s = vec![0, 1];
    put_str(&mut s, topic);
    s.push(0);
    let (mut connect, mut subscribe) = (Vec::new(), Vec::new());
    packet(&mut connect, 0x10, &c);
    packet(&mut subscribe, 0x82, &s);
    (connect, subscribe)
}

async fn open(addr: SocketAddr, (connect, subscribe): (Vec<u8>, Vec<u8>)) -> Result<TcpStream> {
    let mut s = TcpStream::connect(addr).await.context("TCP connect")?;
    s.write_all(&connect).await.context("writing CONNECT")?;
    let mut connack = [0u8; 4];
    s.read_exact(&mut connack)
        .await
        .context("reading CONNACK")?;
    if connack[..2] != [0x20, 0x02] {
        bail!("expected CONNACK, got {connack:02x?}");
    }
    if connack[3] != 0 {
        bail!(
            "CONNACK refused the connection (return code {})",
            connack[3]
        );
    }
    s.write_all(&subscribe).await.context("writing SUBSCRIBE")?;
    let mut suback = [0u8; 5];
    s.read_exact(&mut suback).await.context("reading SUBACK")?;
    if suback[..4] != [0x90, 0x03, 0, 1] || suback[4] > 2 {
        bail!("expected a successful SUBACK, got {suback:02x?}");
    }
    Ok(s)
}

/// PINGREQ on every connection; how many answered PINGRESP in time.
async fn ping_all(conns: &mut [TcpStream]) -> usize {
    stream::iter(conns.iter_mut())
        .map(|s| async move {
            let r = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
                s.write_all(&[0xC0, 0]).await?;
                let mut b = [0u8; 2];
                s.read_exact(&mut b).await?;
                Ok::<_, std::io::Error>(b == [0xD0, 0])
            })
            .await;
            matches!(r, Ok(Ok(true)))
        })
        .buffer_unordered(512)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await
}

/// Raise the soft RLIMIT_NOFILE to `need` if it is lower (up to the hard limit).
fn raise_nofile(need: u64) -> Result<()> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 || r.rlim_cur >= need {
        return Ok(());
    }
    r.rlim_cur = need.min(r.rlim_max);
    // SAFETY: as above.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) };
    if r.rlim_cur < need {
        bail!(
            "{need} file descriptors needed but the hard limit is {} (raise it: ulimit -Hn / prlimit)",
            r.rlim_max
        );
    }
    Ok(())
}

pub async fn run(t: &Target, spec: &RunSpec) -> Result<ScenarioResult> {
    let n = spec.topology.queues;
    raise_nofile(n as u64 + 256)?;
    let addr = tokio::net::lookup_host((t.host.as_str(), t.port))
        .await
        .with_context(|| format!("resolving {}", t.host))?
        .next()
        .ok_or_else(|| anyhow!("{} resolves to nothing", t.host))?;
    let rss = || spec.broker_pid.and_then(procstat::sample).map(|s| s.rss_kb);
    let rss_before = rss();

    let t0 = Instant::now();
    let mut conns = Vec::with_capacity(n);
    let mut opening = stream::iter(0..n)
        .map(|k| {
            let bytes = handshake(
                &client_id(&spec.prefix, 'i', k),
                &format!("{}/idle/{k}", spec.prefix),
                t.credentials.as_ref(),
            );
            async move {
                tokio::time::timeout(HANDSHAKE_TIMEOUT, open(addr, bytes))
                    .await
                    .unwrap_or_else(|_| {
                        Err(anyhow!("no CONNACK/SUBACK within {HANDSHAKE_TIMEOUT:?}"))
                    })
                    .with_context(|| format!("connection {k}"))
            }
        })
        .buffer_unordered(CONCURRENCY);
    while let Some(r) = opening.next().await {
        if interrupted() {
            bail!("interrupted");
        }
        conns.push(
            r.with_context(|| format!("after {} of {n} connections were open", conns.len()))?,
        );
    }
    let connect_secs = t0.elapsed().as_secs_f64();

    // Hold, keeping the connections inside their keepalive when the hold is long.
    tokio::time::sleep(SETTLE).await;
    let hold_end = Instant::now() + spec.stop.duration.unwrap_or(Duration::from_secs(10));
    let mut next_ping = Instant::now() + PING_EVERY;
    while Instant::now() < hold_end && !interrupted() {
        tokio::time::sleep_until(hold_end.min(next_ping)).await;
        if Instant::now() >= next_ping && Instant::now() < hold_end {
            ping_all(&mut conns).await;
            next_ping += PING_EVERY;
        }
    }
    let rss_held = rss();
    let alive = ping_all(&mut conns).await;
    stream::iter(conns.iter_mut())
        .for_each_concurrent(512, |s| async move {
            let _ = tokio::time::timeout(Duration::from_secs(1), s.write_all(&[0xE0, 0])).await;
        })
        .await;
    drop(conns);
    if interrupted() {
        bail!("interrupted");
    }
    Ok(ScenarioResult {
        protocol: "mqtt".into(),
        scenario: spec.topology.name.clone(),
        queues: n,
        consumers: n,
        missing: (n - alive) as u64,
        mqtt_version: Some("3.1.1".into()),
        connections: Some(n as u64),
        connections_alive: Some(alive as u64),
        connect_secs: Some(connect_secs),
        broker_rss_before_kb: rss_before,
        broker_rss_held_kb: rss_held,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn handshake_bytes() {
        let (b, s) = super::handshake("c1", "t/1", None);
        // CONNECT: 10 bytes of variable header + 2+2 of client id.
        assert_eq!(&b[..2], &[0x10, 14]);
        assert_eq!(&b[2..10], b"\x00\x04MQTT\x04\x02");
        assert_eq!(&b[10..12], &[0, 60]);
        assert_eq!(&b[12..], b"\x00\x02c1");
        // SUBSCRIBE: packet id, topic, QoS.
        assert_eq!(&s[..], b"\x82\x08\x00\x01\x00\x03t/1\x00");
        let mut v = Vec::new();
        super::packet(&mut v, 0x30, &[0u8; 321]);
        assert_eq!(&v[..3], &[0x30, 0xC1, 0x02]);
    }
}
