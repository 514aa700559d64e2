//! AMQP 0-9-1 frontend: RabbitMQ's clients talk to the Switchboard core.
//!
//! `codec` turns bytes into frames (with `amq-protocol` for method payloads),
//! `session` is one connection's state machine, `channel` the state it keeps per
//! channel, `methods` holds the per-class handlers, `connection` is the tokio loop
//! around a socket.

mod channel;
pub mod codec;
mod connection;
mod convert;
mod error;
mod methods;
mod session;

pub use connection::serve;
pub use error::{AmqpError, Reply};

use std::time::Duration;

/// Limits and timeouts for AMQP connections.
#[derive(Clone, Debug)]
pub struct Config {
    /// Largest frame we accept and offer in connection.tune.
    pub frame_max: u32,
    pub channel_max: u16,
    /// Heartbeat we propose, in seconds; the client's choice wins.
    pub heartbeat: u16,
    /// Largest message body accepted.
    pub max_message_size: u64,
    /// Declared bytes of the messages a connection may have in progress at once
    /// across its channels (without it a client could hold channel_max × the
    /// largest message half-sent).
    pub max_partial_bytes: u64,
    /// Time a client has to complete the handshake (RabbitMQ: 10 s).
    pub handshake_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            frame_max: 131_072,
            channel_max: 2047,
            heartbeat: 60,
            max_message_size: 16 * 1024 * 1024,
            max_partial_bytes: 64 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}
