//! Switchboard: one broker core behind AMQP 0-9-1, MQTT, STOMP and the SQS HTTP API.

pub mod alarms;
pub mod broker;
pub mod config;
pub mod replication;
pub mod server;
pub mod store;
pub mod tls;
pub mod trim;
pub mod ws;
