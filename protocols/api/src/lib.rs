//! The vocabulary shared by the core and every protocol frontend.
//!
//! Frontends (`switchboard-amqp`, later MQTT, STOMP and the SQS/SNS bridge) depend on
//! this crate only; the root package implements [`Broker`]. Nothing here knows a wire
//! format: AMQP field tables, MQTT user properties, STOMP headers and SQS message
//! attributes all become a [`Table`] of [`Value`]s. [`conn`] holds the parts every
//! frontend's connection loop is built from.

mod broker;
mod clock;
pub mod conn;
mod error;
mod message;
mod value;

pub use broker::*;
pub use clock::{wall_ms, wall_secs};
pub use conn::{Inbox, ReadRoom, changed};
pub use error::{BrokerError, ErrorKind};
pub use message::{Message, Properties};
pub use value::{Table, Value};
