//! STOMP 1.0, 1.1 and 1.2 frontend: [`frame`] is the frame model, [`codec`] turns a
//! byte stream into frames and back (framing, header escaping by version, limits),
//! [`inbound`] is the frame as the broker reads it (headers as spans of the bytes
//! received), [`destination`] maps both dialects' destinations (RabbitMQ's and
//! ActiveMQ's) onto the core, [`convert`] headers onto message properties;
//! `encode.rs` writes frames (`message.rs` a MESSAGE straight from the core
//! message), `session.rs` and `send.rs` are the protocol state, `connection.rs` the
//! tokio loop. `version.rs` and `error.rs` hold what `frame` and `codec` both name;
//! `codec` re-exports them.

pub mod codec;
mod connect;
mod connection;
pub mod convert;
pub mod destination;
mod encode;
mod error;
pub mod frame;
pub mod inbound;
mod message;
mod send;
mod session;
mod version;
mod wire;

pub use connection::serve;

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Config {
    /// Vhost for clients that send no `host` header (or a host name, not a vhost).
    pub default_vhost: String,
    /// A connection that has not sent CONNECT within this is closed.
    pub connect_timeout: Duration,
    /// User a client that sends no login is taken to be, from loopback only.
    pub anonymous_user: Option<(String, String)>,
    /// Unacknowledged messages per `client`/`client-individual` subscription when
    /// the client names no `prefetch-count` / `activemq.prefetchSize`.
    pub default_prefetch: u32,
    /// Messages of an `ack:auto` subscription on their way to the socket.
    pub auto_ack_window: u32,
    /// Shortest heart-beat interval we agree to, either way.
    pub heartbeat_floor: Duration,
    pub limits: codec::Limits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            default_vhost: "/".into(),
            connect_timeout: Duration::from_secs(10),
            anonymous_user: Some(("guest".into(), "guest".into())),
            default_prefetch: 1000,
            auto_ack_window: 2000,
            heartbeat_floor: Duration::from_millis(100),
            limits: codec::Limits::default(),
        }
    }
}
