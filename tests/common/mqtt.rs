//! MQTT helpers for the end-to-end tests (tests/mqtt_*.rs).
//!
//! [`V4`] and [`V5`] are rumqttc clients (3.1.1 and 5.0) whose event loop runs in a
//! task of its own and hands every event to the test, so a test can wait for the
//! packet it expects (with [`WAIT`](super::WAIT) as the bound), see the connection end, or drop
//! the TCP connection without DISCONNECT. The event loop is polled until its first
//! error and never reconnects by itself. [`RawV5`] is rumqttc's 5.0 packet codec
//! over a bare `TcpStream`, for tests that must stop a client between two packets
//! of the QoS 2 handshake.
//!
//! `SWITCHBOARD_MQTT_ADDR=host:port` runs the tests that do not need our own binary
//! against another MQTT broker (e.g. mosquitto), to check that the tests themselves
//! assert what the specification says.

use super::{Server, unique};
use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::v5 as p5;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;

mod events;
mod raw;

pub use events::Events;
#[allow(unused_imports)] // not every test binary drives raw packets
pub use raw::RawV5;
pub use rumqttc::QoS;
/// 5.0 QoS (rumqttc has one type per version).
pub use rumqttc::v5::mqttbytes::QoS as QoS5;

/// How long a test waits to be sure something does *not* arrive.
pub const QUIET: Duration = Duration::from_millis(500);

/// The MQTT broker a test talks to.
pub struct Broker {
    /// Our own binary (None for `SWITCHBOARD_MQTT_ADDR`).
    pub server: Option<Server>,
    /// `host:port` of its MQTT listener.
    pub addr: String,
}

impl Broker {
    /// `SWITCHBOARD_MQTT_ADDR` if set, else a fresh Switchboard. None (skip the test)
    /// when only an external AMQP broker was named.
    pub fn start() -> Option<Broker> {
        if let Ok(addr) = std::env::var("SWITCHBOARD_MQTT_ADDR")
            && !addr.trim().is_empty()
        {
            return Some(Broker {
                server: None,
                addr: addr.trim().to_string(),
            });
        }
        Self::own()
    }

    /// Only our own binary (restarts, crashes, AMQP on the side); None to skip.
    pub fn own() -> Option<Broker> {
        if Server::external() || std::env::var("SWITCHBOARD_MQTT_ADDR").is_ok_and(|a| !a.is_empty())
        {
            return None;
        }
        Some(Broker::of(Server::start()))
    }

    pub fn of(server: Server) -> Broker {
        let addr = server
            .mqtt_addr()
            .expect("no mqtt= in the listening line")
            .to_string();
        Broker {
            server: Some(server),
            addr,
        }
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("our own broker")
    }
}

/// A data directory that outlives restarts of the server and is removed at the end.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let d = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&d).expect("temp dir");
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A topic prefix of its own, so that tests sharing an external broker (and its
/// retained messages) do not see each other.
pub fn root(name: &str) -> String {
    unique(name)
}

fn host_port(addr: &str) -> (String, u16) {
    let (h, p) = addr.rsplit_once(':').expect("host:port");
    (h.to_string(), p.parse().expect("port"))
}

/// 3.1.1 options for `addr`: clean session, keep-alive 30 s.
pub fn opts4(addr: &str, id: &str) -> rumqttc::MqttOptions {
    let (h, p) = host_port(addr);
    let mut o = rumqttc::MqttOptions::new(id, h, p);
    o.set_keep_alive(Duration::from_secs(30));
    o
}

/// 5.0 options for `addr`: clean start, no session expiry, keep-alive 30 s.
pub fn opts5(addr: &str, id: &str) -> rumqttc::v5::MqttOptions {
    let (h, p) = host_port(addr);
    let mut o = rumqttc::v5::MqttOptions::new(id, h, p);
    o.set_keep_alive(Duration::from_secs(30));
    o
}

/// Polls a rumqttc event loop in a task until its first error, handing every
/// event to an [`Events`].
macro_rules! event_loop {
    ($el:ident) => {{
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let r = $el.poll().await;
                let end = r.is_err();
                if tx.send(r).is_err() || end {
                    break;
                }
            }
        });
        Events {
            rx,
            buf: VecDeque::new(),
            task: Some(task),
            ended: None,
        }
    }};
}

/// A 3.1.1 client; `ev` holds what its event loop reported.
pub struct V4 {
    pub client: rumqttc::AsyncClient,
    pub connack: rumqttc::ConnAck,
    pub ev: Events<rumqttc::Event, rumqttc::ConnectionError>,
}

/// A 5.0 client; `ev` holds what its event loop reported.
pub struct V5 {
    pub client: rumqttc::v5::AsyncClient,
    pub connack: p5::ConnAck,
    pub ev: Events<rumqttc::v5::Event, rumqttc::v5::ConnectionError>,
}

fn outgoing_publish(e: &Outgoing) -> Option<u16> {
    match e {
        Outgoing::Publish(id) => Some(*id),
        _ => None,
    }
}

impl V4 {
    pub async fn connect(opts: rumqttc::MqttOptions) -> V4 {
        match Self::try_connect(opts).await {
            Ok(c) => c,
            Err(e) => panic!("MQTT 3.1.1 connect failed: {e:?}"),
        }
    }

    pub async fn try_connect(opts: rumqttc::MqttOptions) -> Result<V4, rumqttc::ConnectionError> {
        let (client, mut el) = rumqttc::AsyncClient::new(opts, 100);
        let mut ev = event_loop!(el);
        let connack = ev
            .first(|e| match e {
                rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(c)) => Some(c.clone()),
                _ => None,
            })
            .await?;
        Ok(V4 {
            client,
            connack,
            ev,
        })
    }

    /// Publishes and waits until it is sent (QoS 0), acknowledged (QoS 1) or
    /// completed (QoS 2).
    pub async fn publish(&mut self, topic: &str, qos: QoS, retain: bool, payload: &[u8]) {
        use rumqttc::{Event, Packet};
        self.client
            .publish(topic, qos, retain, payload.to_vec())
            .await
            .expect("publish request");
        let id = self
            .ev
            .expect("outgoing PUBLISH", |e| match e {
                Event::Outgoing(o) => outgoing_publish(o),
                _ => None,
            })
            .await;
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                self.ev
                    .expect("PUBACK", |e| match e {
                        Event::Incoming(Packet::PubAck(a)) if a.pkid == id => Some(()),
                        _ => None,
                    })
                    .await
            }
            QoS::ExactlyOnce => {
                self.ev
                    .expect("PUBCOMP", |e| match e {
                        Event::Incoming(Packet::PubComp(a)) if a.pkid == id => Some(()),
                        _ => None,
                    })
                    .await
            }
        }
    }

    /// Subscribes and returns the SUBACK's return codes.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> Vec<rumqttc::SubscribeReasonCode> {
        use rumqttc::{Event, Packet};
        self.client
            .subscribe(filter, qos)
            .await
            .expect("subscribe request");
        let id = self
            .ev
            .expect("outgoing SUBSCRIBE", |e| match e {
                Event::Outgoing(Outgoing::Subscribe(id)) => Some(*id),
                _ => None,
            })
            .await;
        self.ev
            .expect("SUBACK", |e| match e {
                Event::Incoming(Packet::SubAck(a)) if a.pkid == id => Some(a.return_codes.clone()),
                _ => None,
            })
            .await
    }

    pub async fn next_publish(&mut self) -> rumqttc::Publish {
        self.ev.expect("PUBLISH", pick4).await
    }

    /// Panics if a PUBLISH arrives within `quiet`.
    pub async fn no_publish(&mut self, quiet: Duration) {
        self.ev.absent("PUBLISH", quiet, pick4).await
    }

    /// DISCONNECT, then wait for the server to close the connection.
    pub async fn disconnect(mut self) {
        self.client.disconnect().await.expect("disconnect request");
        self.ev
            .expect("outgoing DISCONNECT", |e| match e {
                rumqttc::Event::Outgoing(Outgoing::Disconnect) => Some(()),
                _ => None,
            })
            .await;
        self.ev.closed().await;
    }
}

fn pick4(e: &rumqttc::Event) -> Option<rumqttc::Publish> {
    match e {
        rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => Some(p.clone()),
        _ => None,
    }
}

fn pick5(e: &rumqttc::v5::Event) -> Option<p5::Publish> {
    match e {
        rumqttc::v5::Event::Incoming(p5::Packet::Publish(p)) => Some(p.clone()),
        _ => None,
    }
}

impl V5 {
    pub async fn connect(opts: rumqttc::v5::MqttOptions) -> V5 {
        match Self::try_connect(opts).await {
            Ok(c) => c,
            Err(e) => panic!("MQTT 5.0 connect failed: {e:?}"),
        }
    }

    pub async fn try_connect(
        opts: rumqttc::v5::MqttOptions,
    ) -> Result<V5, rumqttc::v5::ConnectionError> {
        let (client, mut el) = rumqttc::v5::AsyncClient::new(opts, 100);
        let mut ev = event_loop!(el);
        let connack = ev
            .first(|e| match e {
                rumqttc::v5::Event::Incoming(p5::Packet::ConnAck(c)) => Some(c.clone()),
                _ => None,
            })
            .await?;
        Ok(V5 {
            client,
            connack,
            ev,
        })
    }

    /// Publishes with properties and waits until it is sent (QoS 0), acknowledged
    /// (QoS 1: the PUBACK's reason) or completed (QoS 2: the PUBREC's reason).
    pub async fn publish_with(
        &mut self,
        topic: &str,
        qos: QoS5,
        retain: bool,
        payload: &[u8],
        props: Option<p5::PublishProperties>,
    ) -> Option<String> {
        use rumqttc::v5::Event;
        let r = match props {
            Some(p) => {
                self.client
                    .publish_with_properties(topic, qos, retain, payload.to_vec(), p)
                    .await
            }
            None => {
                self.client
                    .publish(topic, qos, retain, payload.to_vec())
                    .await
            }
        };
        r.expect("publish request");
        let id = self
            .ev
            .expect("outgoing PUBLISH", |e| match e {
                Event::Outgoing(o) => outgoing_publish(o),
                _ => None,
            })
            .await;
        match qos {
            QoS5::AtMostOnce => None,
            QoS5::AtLeastOnce => Some(
                self.ev
                    .expect("PUBACK", |e| match e {
                        Event::Incoming(p5::Packet::PubAck(a)) if a.pkid == id => {
                            Some(format!("{:?}", a.reason))
                        }
                        _ => None,
                    })
                    .await,
            ),
            QoS5::ExactlyOnce => {
                let rec = self
                    .ev
                    .expect("PUBREC", |e| match e {
                        Event::Incoming(p5::Packet::PubRec(a)) if a.pkid == id => {
                            Some(format!("{:?}", a.reason))
                        }
                        _ => None,
                    })
                    .await;
                self.ev
                    .expect("PUBCOMP", |e| match e {
                        Event::Incoming(p5::Packet::PubComp(a)) if a.pkid == id => Some(()),
                        _ => None,
                    })
                    .await;
                Some(rec)
            }
        }
    }

    pub async fn publish(&mut self, topic: &str, qos: QoS5, retain: bool, payload: &[u8]) {
        self.publish_with(topic, qos, retain, payload, None).await;
    }

    /// Subscribes with options and properties; returns the SUBACK's reason codes.
    pub async fn subscribe_with(
        &mut self,
        filters: Vec<p5::Filter>,
        props: Option<p5::SubscribeProperties>,
    ) -> Vec<p5::SubscribeReasonCode> {
        use rumqttc::v5::Event;
        let r = match props {
            Some(p) => self.client.subscribe_many_with_properties(filters, p).await,
            None => self.client.subscribe_many(filters).await,
        };
        r.expect("subscribe request");
        let id = self
            .ev
            .expect("outgoing SUBSCRIBE", |e| match e {
                Event::Outgoing(Outgoing::Subscribe(id)) => Some(*id),
                _ => None,
            })
            .await;
        self.ev
            .expect("SUBACK", |e| match e {
                Event::Incoming(p5::Packet::SubAck(a)) if a.pkid == id => {
                    Some(a.return_codes.clone())
                }
                _ => None,
            })
            .await
    }

    pub async fn subscribe(&mut self, filter: &str, qos: QoS5) -> Vec<p5::SubscribeReasonCode> {
        self.subscribe_with(vec![p5::Filter::new(filter, qos)], None)
            .await
    }

    pub async fn next_publish(&mut self) -> p5::Publish {
        self.ev.expect("PUBLISH", pick5).await
    }

    pub async fn no_publish(&mut self, quiet: Duration) {
        self.ev.absent("PUBLISH", quiet, pick5).await
    }

    /// Deliveries up to and including the one whose payload is `end`.
    pub async fn until(&mut self, end: &str) -> Vec<p5::Publish> {
        let mut out = Vec::new();
        loop {
            let p = self.next_publish().await;
            let last = *p.payload == *end.as_bytes();
            out.push(p);
            if last {
                return out;
            }
        }
    }

    /// DISCONNECT (normal), then wait for the server to close the connection.
    pub async fn disconnect(mut self) {
        self.client.disconnect().await.expect("disconnect request");
        self.ev
            .expect("outgoing DISCONNECT", |e| match e {
                rumqttc::v5::Event::Outgoing(Outgoing::Disconnect) => Some(()),
                _ => None,
            })
            .await;
        self.ev.closed().await;
    }

    /// The reason code of a DISCONNECT the server sent (the connection must end).
    pub async fn server_disconnect(&mut self) -> p5::DisconnectReasonCode {
        use rumqttc::v5::{ConnectionError, StateError};
        match self.ev.closed().await {
            ConnectionError::MqttState(StateError::ServerDisconnect { reason_code, .. }) => {
                *reason_code
            }
            other => panic!("connection ended without a server DISCONNECT: {other:?}"),
        }
    }
}

/// A 5.0 session that outlives its connection by `expiry` seconds.
pub async fn session5(addr: &str, id: &str, clean_start: bool, expiry: u32) -> V5 {
    let mut o = opts5(addr, id);
    o.set_clean_start(clean_start)
        .set_session_expiry_interval(Some(expiry));
    V5::connect(o).await
}

/// The payloads, as text.
pub fn bodies5(v: &[p5::Publish]) -> Vec<String> {
    v.iter().map(|p| text(&p.payload)).collect()
}

/// Payload as text, for assertions.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
