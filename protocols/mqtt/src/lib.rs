//! MQTT 3.1, 3.1.1 and 5.0 frontend.
//!
//! One session type serves all three versions: [`codec`] turns 3.x packets into
//! their 5.0 equivalents on the way in and back on the way out. Topics route through
//! `amq.topic` (see [`topic`] for the mapping); every session owns a queue
//! `mqtt-session-<client id>` bound there, durable when the session outlives the
//! connection. Retained messages and the session's own state (subscriptions, QoS 2
//! packet ids) live in the core's durable keyed stores.

mod catalog;
pub mod codec;
mod connect;
mod connection;
pub mod convert;
mod deliver;
mod flow;
mod inbound;
pub mod registry;
mod session;
mod subs;
pub mod topic;
mod will;
mod wire;

pub use catalog::MqttCatalog;
pub use connection::serve;
pub use registry::Registry;

use std::time::Duration;
use switchboard_api::KeySpace;

/// Retained messages, keyed by topic as published.
const RETAINED: KeySpace = KeySpace::new("retained");
/// Each session's own state (subscriptions, QoS 2 packet ids), keyed by client id.
const SESSIONS: KeySpace = KeySpace::new("sessions");

#[derive(Clone, Debug)]
pub struct Config {
    /// Vhost MQTT clients use (their topics go through its `amq.topic`).
    pub vhost: String,
    /// Largest packet accepted from an authenticated client.
    pub max_packet_size: u32,
    /// Largest CONNECT accepted (before authentication, so kept small).
    pub max_connect_size: u32,
    /// A connection that has not sent CONNECT within this is closed.
    pub connect_timeout: Duration,
    /// Unacknowledged QoS 1/2 messages sent to a client at once (also bounded by
    /// the client's MQTT 5 Receive Maximum).
    pub max_inflight: u16,
    /// Topic aliases a 5.0 client may use (CONNACK Topic Alias Maximum).
    pub topic_alias_max: u16,
    /// Longest keepalive a client may ask for, in seconds (mosquitto's
    /// `max_keepalive`); 65535 = no limit. A 5.0 client asking for more (or for 0)
    /// is told this value as Server Keep Alive; a 3.1/3.1.1 client has no way to be
    /// told, so it is refused with CONNACK 0x02, as mosquitto does.
    pub max_keepalive: u16,
    /// User a client that sends no credentials is taken to be, from loopback only.
    pub anonymous_user: Option<(String, String)>,
    /// Ready messages a consumed queue may hold before the QoS 1/2 publishers
    /// feeding it have their acks held (`flow.rs`); 0: never.
    pub backlog_limit: u32,
    /// Longest an ack is held for a backlog.
    pub backlog_max_hold: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            vhost: "/".into(),
            max_packet_size: 16 * 1024 * 1024,
            max_connect_size: 64 * 1024,
            connect_timeout: Duration::from_secs(10),
            max_inflight: 128,
            topic_alias_max: 64,
            max_keepalive: u16::MAX,
            anonymous_user: Some(("guest".into(), "guest".into())),
            // mosquitto's max_queued_messages; it drops past it, this holds acks.
            backlog_limit: 1000,
            backlog_max_hold: Duration::from_secs(10),
        }
    }
}
