//! Switchboard: one broker core behind AMQP 0-9-1 (and, later, MQTT, STOMP, SQS/SNS).

pub mod alarms;
pub mod broker;
pub mod config;
pub mod server;
pub mod store;
