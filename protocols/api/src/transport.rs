//! What the transport under a connection proved before any protocol byte: whether
//! it is encrypted, and the user a verified client certificate names (mTLS).

/// Passed to each frontend's `serve` beside the peer address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transport {
    /// The connection is TLS (AMQPS, MQTTS, STOMP over TLS, WSS).
    pub tls: bool,
    /// The user name from a client certificate the TLS layer verified against the
    /// configured CA (its CN, else its first DNS name). Frontends log this user in
    /// without a password (AMQP's EXTERNAL, MQTT and STOMP without credentials),
    /// as RabbitMQ's `rabbitmq_auth_mechanism_ssl` and `ssl_cert_login` do.
    pub cert_user: Option<String>,
    /// Carried in WebSocket messages (MQTT and STOMP over WebSocket): the admin
    /// API lists the protocol as RabbitMQ's `Web MQTT` / `Web STOMP`.
    pub websocket: bool,
}

impl Transport {
    /// A plain TCP (or plain WebSocket) connection.
    pub const PLAIN: Transport = Transport {
        tls: false,
        cert_user: None,
        websocket: false,
    };

    /// The protocol name the admin API shows: `Web MQTT 5.0` over WebSocket.
    pub fn label(&self, protocol: &str) -> String {
        if self.websocket {
            format!("Web {protocol}")
        } else {
            protocol.to_string()
        }
    }
}
