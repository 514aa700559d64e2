//! The vocabulary shared by the core and every protocol frontend.
//!
//! Frontends (`switchboard-amqp`, later MQTT, STOMP and the SQS/SNS bridge) depend on
//! this crate only; the root package implements [`Broker`]. Nothing here knows a wire
//! format: AMQP field tables, MQTT user properties, STOMP headers and SQS message
//! attributes all become a [`Table`] of [`Value`]s.

mod broker;
mod clock;
mod error;
mod message;
mod value;

pub use broker::*;
pub use clock::{wall_ms, wall_secs};
pub use error::{BrokerError, Entity, ErrorKind, Mismatch};
pub use message::{Message, Properties};
pub use value::{Table, Value};
