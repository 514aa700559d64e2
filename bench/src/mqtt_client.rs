//! rumqttc behind one small interface for MQTT 3.1.1 (`rumqttc::*`) and 5.0
//! (`rumqttc::v5`), so that the scenarios in `mqtt.rs` are written once.
//!
//! rumqttc splits a connection in two: an `AsyncClient` that puts requests
//! into a bounded channel, and an `EventLoop` that must be polled to take them
//! from it, write them, read the broker's packets and ack incoming QoS 1
//! publishes. `AsyncClient::publish` returns when the request is in the
//! channel, not when it is written: the driver in `mqtt.rs` counts a publish as
//! sent on the loop's `Outgoing::Publish` event and as acknowledged on its
//! `PubAck`, and bounds what sits in the channel itself.

use anyhow::{Context, Result, anyhow, bail};
use rumqttc::v5::mqttbytes::v5 as p5;
use std::time::Duration;

/// How long the CONNECT/CONNACK and SUBSCRIBE/SUBACK exchanges may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `mqtt://[user[:pass]@]host[:port][/]`.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub credentials: Option<(String, String)>,
}

impl Target {
    pub fn parse(url: &str) -> Result<Self> {
        let rest = url.strip_prefix("mqtt://").ok_or_else(|| {
            anyhow!("expected mqtt://host:port, got {url:?} (mqtts:// is not supported)")
        })?;
        let rest = rest.trim_end_matches('/');
        let (cred, hostport) = match rest.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, rest),
        };
        let credentials = cred.map(|c| match c.split_once(':') {
            Some((u, p)) => (u.to_string(), p.to_string()),
            None => (c.to_string(), String::new()),
        });
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse()
                    .with_context(|| format!("bad port {p:?} in {url:?}"))?,
            ),
            None => (hostport, 1883),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            bail!("no host in {url:?}");
        }
        Ok(Self {
            host: host.to_string(),
            port,
            credentials,
        })
    }
}

/// Connection settings common to both protocol versions.
pub struct Opts {
    pub client_id: String,
    pub v5: bool,
    pub keep_alive: Duration,
    /// Outgoing QoS 1 publishes rumqttc lets be unacknowledged (v5: the upper
    /// limit; the broker's Receive Maximum may lower it).
    pub inflight: u16,
    /// Capacity of rumqttc's request channel.
    pub channel: usize,
    /// Largest packet either way.
    pub max_packet: usize,
    /// Start a new session (true), or resume the broker's persistent session for this
    /// client id (false; v5: one that never expires).
    pub clean_session: bool,
}

pub enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

pub enum Loop {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

/// The events the scenarios care about.
#[derive(Debug)]
pub enum Ev {
    /// A publish arrived: the first 16 bytes of its payload (zero-padded) and its length.
    Publish {
        head: [u8; 16],
        len: usize,
    },
    /// A publish was written to the socket (the loop has flushed it), with its
    /// packet id (0 for QoS 0).
    Sent {
        pkid: u16,
    },
    /// A QoS 1 publish was acknowledged; `ok` is false for a v5 reason code >= 0x80.
    PubAck {
        ok: bool,
        pkid: u16,
    },
    SubAck {
        ok: bool,
    },
    /// Our DISCONNECT was written.
    Disconnected,
    Other,
}

fn head_of(payload: &[u8]) -> [u8; 16] {
    let mut head = [0u8; 16];
    let n = payload.len().min(16);
    head[..n].copy_from_slice(&payload[..n]);
    head
}

fn qos_of(q: u8) -> rumqttc::QoS {
    if q == 0 {
        rumqttc::QoS::AtMostOnce
    } else {
        rumqttc::QoS::AtLeastOnce
    }
}

fn qos5_of(q: u8) -> rumqttc::v5::mqttbytes::QoS {
    if q == 0 {
        rumqttc::v5::mqttbytes::QoS::AtMostOnce
    } else {
        rumqttc::v5::mqttbytes::QoS::AtLeastOnce
    }
}

/// Connect and wait for the CONNACK. Returns the client, its event loop and,
/// for v5, the broker's Receive Maximum.
pub async fn connect(t: &Target, o: &Opts) -> Result<(Client, Loop, Option<u16>)> {
    let mut net = rumqttc::NetworkOptions::new();
    // rumqttc leaves Nagle on by default; it writes and flushes one request at
    // a time, so with Nagle small publishes would wait for the previous ACK.
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(HANDSHAKE_TIMEOUT.as_secs());
    let (client, mut lp) = if o.v5 {
        let mut m = rumqttc::v5::MqttOptions::new(&o.client_id, &t.host, t.port);
        m.set_keep_alive(o.keep_alive)
            .set_clean_start(o.clean_session)
            .set_outgoing_inflight_upper_limit(o.inflight)
            .set_max_packet_size(Some(o.max_packet as u32))
            .set_network_options(net);
        if !o.clean_session {
            m.set_session_expiry_interval(Some(u32::MAX));
        }
        if let Some((u, p)) = &t.credentials {
            m.set_credentials(u, p);
        }
        let (c, l) = rumqttc::v5::AsyncClient::new(m, o.channel);
        (Client::V5(c), Loop::V5(Box::new(l)))
    } else {
        let mut m = rumqttc::MqttOptions::new(&o.client_id, &t.host, t.port);
        m.set_keep_alive(o.keep_alive)
            .set_clean_session(o.clean_session)
            .set_inflight(o.inflight)
            .set_max_packet_size(o.max_packet, o.max_packet);
        if let Some((u, p)) = &t.credentials {
            m.set_credentials(u, p);
        }
        let (c, mut l) = rumqttc::AsyncClient::new(m, o.channel);
        l.set_network_options(net);
        (Client::V4(c), Loop::V4(Box::new(l)))
    };
    let what = format!("connecting {} to {}:{}", o.client_id, t.host, t.port);
    let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, lp.poll_connack())
        .await
        .map_err(|_| anyhow!("{what}: no CONNACK within {HANDSHAKE_TIMEOUT:?}"))?;
    let receive_max = first.with_context(|| what.clone())?;
    Ok((client, lp, receive_max))
}

impl Loop {
    /// The first poll connects; rumqttc returns Err for a refused CONNACK.
    async fn poll_connack(&mut self) -> Result<Option<u16>> {
        match self {
            Loop::V4(l) => match l.poll().await? {
                rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)) => Ok(None),
                e => bail!("expected CONNACK, got {e:?}"),
            },
            Loop::V5(l) => match l.poll().await? {
                rumqttc::v5::Event::Incoming(p5::Packet::ConnAck(c)) => {
                    Ok(c.properties.and_then(|p| p.receive_max))
                }
                e => bail!("expected CONNACK, got {e:?}"),
            },
        }
    }

    /// The next event. An error means the connection is gone (polling again
    /// would make rumqttc reconnect, which a benchmark must not do).
    pub async fn next(&mut self) -> Result<Ev> {
        use rumqttc::Outgoing;
        Ok(match self {
            Loop::V4(l) => {
                use rumqttc::{Event, Packet};
                match l.poll().await.context("MQTT connection")? {
                    Event::Incoming(Packet::Publish(p)) => Ev::Publish {
                        head: head_of(&p.payload),
                        len: p.payload.len(),
                    },
                    Event::Incoming(Packet::PubAck(a)) => Ev::PubAck {
                        ok: true,
                        pkid: a.pkid,
                    },
                    Event::Incoming(Packet::SubAck(s)) => Ev::SubAck {
                        ok: s
                            .return_codes
                            .iter()
                            .all(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_))),
                    },
                    Event::Outgoing(Outgoing::Publish(pkid)) => Ev::Sent { pkid },
                    Event::Outgoing(Outgoing::Disconnect) => Ev::Disconnected,
                    _ => Ev::Other,
                }
            }
            Loop::V5(l) => {
                use p5::Packet;
                use rumqttc::v5::Event;
                match l.poll().await.context("MQTT connection")? {
                    Event::Incoming(Packet::Publish(p)) => Ev::Publish {
                        head: head_of(&p.payload),
                        len: p.payload.len(),
                    },
                    Event::Incoming(Packet::PubAck(a)) => Ev::PubAck {
                        pkid: a.pkid,
                        ok: matches!(
                            a.reason,
                            p5::PubAckReason::Success | p5::PubAckReason::NoMatchingSubscribers
                        ),
                    },
                    Event::Incoming(Packet::SubAck(s)) => Ev::SubAck {
                        ok: s
                            .return_codes
                            .iter()
                            .all(|c| matches!(c, p5::SubscribeReasonCode::Success(_))),
                    },
                    Event::Incoming(Packet::Disconnect(d)) => {
                        bail!("the broker sent DISCONNECT ({:?})", d.reason_code)
                    }
                    Event::Outgoing(Outgoing::Publish(pkid)) => Ev::Sent { pkid },
                    Event::Outgoing(Outgoing::Disconnect) => Ev::Disconnected,
                    _ => Ev::Other,
                }
            }
        })
    }

    /// Drive the loop until our DISCONNECT is written (or `limit` passes, or
    /// the connection fails). Whatever arrives meanwhile is ignored.
    pub async fn finish(&mut self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            while let Ok(ev) = self.next().await {
                if matches!(ev, Ev::Disconnected) {
                    break;
                }
            }
        })
        .await;
    }
}

impl Client {
    pub async fn publish(&self, topic: &str, qos: u8, payload: Vec<u8>) -> Result<()> {
        match self {
            Client::V4(c) => c.publish(topic, qos_of(qos), false, payload).await?,
            Client::V5(c) => c.publish(topic, qos5_of(qos), false, payload).await?,
        }
        Ok(())
    }

    pub async fn subscribe(&self, topic: &str, qos: u8) -> Result<()> {
        match self {
            Client::V4(c) => c.subscribe(topic, qos_of(qos)).await?,
            Client::V5(c) => c.subscribe(topic, qos5_of(qos)).await?,
        }
        Ok(())
    }

    /// Queue a DISCONNECT (the loop writes it; see [`Loop::finish`]).
    pub fn disconnect(&self) {
        let _ = match self {
            Client::V4(c) => c.try_disconnect().map_err(|_| ()),
            Client::V5(c) => c.try_disconnect().map_err(|_| ()),
        };
    }
}

/// Subscribe to `topic` and drive the loop until the SUBACK.
pub async fn subscribe(c: &Client, lp: &mut Loop, topic: &str, qos: u8) -> Result<()> {
    c.subscribe(topic, qos).await?;
    tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        loop {
            match lp.next().await? {
                Ev::SubAck { ok: true } => return Ok(()),
                Ev::SubAck { ok: false } => bail!("the broker refused SUBSCRIBE {topic}"),
                _ => {}
            }
        }
    })
    .await
    .map_err(|_| anyhow!("SUBSCRIBE {topic}: no SUBACK within {HANDSHAKE_TIMEOUT:?}"))?
}

/// A short client id (MQTT 3.1.1 servers need only accept 23 bytes) unique to
/// this run and scenario: `sbb-<hash of prefix>-<role><index>`.
pub fn client_id(prefix: &str, role: char, i: usize) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    prefix.hash(&mut h);
    format!("sbb-{:08x}-{role}{i}", h.finish() as u32)
}

/// Set bit `seq`; true if it was not set.
pub fn mark(bits: &mut Vec<u64>, seq: u64) -> bool {
    let (w, b) = ((seq / 64) as usize, seq % 64);
    if w >= bits.len() {
        bits.resize((w + 1).next_power_of_two(), 0);
    }
    let new = bits[w] & (1 << b) == 0;
    bits[w] |= 1 << b;
    new
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("mqtt://127.0.0.1:1884").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 1884));
        assert!(t.credentials.is_none());
        let t = Target::parse("mqtt://u:p@localhost/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("localhost", 1883));
        assert_eq!(t.credentials, Some(("u".into(), "p".into())));
        assert!(Target::parse("amqp://x").is_err());
        assert!(Target::parse("mqtt://:1883").is_err());
        assert_eq!(head_of(b"abc")[..4], *b"abc\0");
    }

    #[test]
    fn bitmap_and_ids() {
        let mut b = Vec::new();
        assert!(mark(&mut b, 0));
        assert!(mark(&mut b, 1000));
        assert!(!mark(&mut b, 1000));
        assert!(mark(&mut b, 999));
        let id = client_id("sb-bench-123-456-fanin-4", 'p', 1023);
        assert!(id.len() <= 23, "{id}");
        assert_ne!(id, client_id("sb-bench-123-457-fanin-4", 'p', 1023));
    }
}
