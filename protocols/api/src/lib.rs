//! The vocabulary shared by the core and every protocol frontend.
//!
//! The frontends (AMQP, MQTT, STOMP) and the AWS bridge depend on this crate only;
//! the root package implements [`Broker`]. Nothing here knows a wire format: AMQP
//! field tables, MQTT user properties, STOMP headers and SQS message attributes all
//! become a [`Table`] of [`Value`]s, and the core's failures are facts
//! ([`BrokerError`]) each frontend words in its own protocol.
//! [`conn`] holds the parts every frontend's connection loop is built from.

pub mod admin;
mod broker;
mod clock;
pub mod conn;
mod error;
mod message;
mod transport;
mod value;

pub use admin::Admin;
pub use broker::*;
pub use clock::{wall_ms, wall_secs};
pub use conn::{Inbox, ReadRoom, changed};
pub use error::{Access, BrokerError, Entity, ErrorKind, Mismatch};
pub use message::{ATTRIBUTE_TYPES_HEADER, BRIDGE_HEADER_PREFIX, Message, Properties};
pub use transport::Transport;
pub use value::{Table, Value};
