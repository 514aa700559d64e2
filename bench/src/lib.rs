//! The benchmark's protocol clients as a library, for other tools that drive a
//! broker over the wire (the failover drill, `switchboard drill`): MQTT on rumqttc
//! (`mqtt_client`), STOMP 1.2 on the project's codec (`stomp_client`) and SQS over
//! SigV4-signed HTTP/1.1 (`sqs_client`). AMQP needs no wrapper: lapin is used as is.

pub mod mqtt_client;
pub mod sqs_client;
pub mod stomp_client;
