//! Switchboard: one broker core behind AMQP 0-9-1 and MQTT (and, later, STOMP, SQS/SNS).

pub mod alarms;
pub mod broker;
pub mod config;
pub mod server;
pub mod store;
pub mod ws;
