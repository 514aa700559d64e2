//! The connection class: the handshake (start, start-ok, tune-ok, open), close in
//! both directions, update-secret and blocked/unblocked. Its methods run on channel
//! 0, before the connection is open too, so `Session::dispatch` calls them directly
//! rather than through `Session::method`.

use crate::codec;
use crate::convert::short;
use crate::error::*;
use crate::session::{Phase, Session};
use amq_protocol::protocol::{AMQPClass, connection};
use amq_protocol::types::{AMQPValue, FieldTable};

impl Session {
    /// Sends connection.start after a valid protocol header.
    pub fn start(&mut self) {
        let mut caps = FieldTable::default();
        for c in [
            "publisher_confirms",
            "exchange_exchange_bindings",
            "basic.nack",
            "consumer_cancel_notify",
            "connection.blocked",
            "consumer_priorities",
            "authentication_failure_close",
            "per_consumer_qos",
            "direct_reply_to",
        ] {
            caps.insert(c.into(), AMQPValue::Boolean(true));
        }
        let mut props = FieldTable::default();
        props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
        props.insert(
            "product".into(),
            AMQPValue::LongString("Switchboard".into()),
        );
        props.insert(
            "version".into(),
            AMQPValue::LongString(env!("CARGO_PKG_VERSION").into()),
        );
        props.insert("platform".into(), AMQPValue::LongString("Rust".into()));
        // EXTERNAL only where a verified client certificate can back it (RabbitMQ's
        // rabbitmq_auth_mechanism_ssl): offered first, so clients that pick the
        // server's first choice they support use the certificate.
        let mechanisms = if self.cert_user.is_some() {
            "EXTERNAL PLAIN AMQPLAIN"
        } else {
            "PLAIN AMQPLAIN"
        };
        props.insert(
            "copyright".into(),
            AMQPValue::LongString("Switchboard contributors".into()),
        );
        props.insert(
            "cluster_name".into(),
            AMQPValue::LongString("switchboard".into()),
        );
        props.insert(
            "information".into(),
            AMQPValue::LongString(
                "Switchboard message broker: AMQP 0-9-1, MQTT, STOMP, SQS/SNS".into(),
            ),
        );
        self.send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
                version_major: 0,
                version_minor: 9,
                server_properties: props,
                mechanisms: mechanisms.into(),
                locales: "en_US".into(),
            })),
        );
    }

    /// Sends connection.close and drops every channel.
    pub fn close_connection(&mut self, r: Reply) {
        if matches!(self.phase, Phase::Closing | Phase::Closed) {
            return;
        }
        tracing::debug!(conn = self.conn_id, code = r.code, text = %r.text, "closing connection");
        self.release_all();
        self.send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: r.code,
                reply_text: short(&r.text),
                class_id: r.class_id,
                method_id: r.method_id,
            })),
        );
        self.phase = Phase::Closing;
    }

    /// A resource alarm went on (`Some`) or off: tell clients that asked to know.
    pub fn on_alarm(&mut self, reason: Option<&str>) {
        if self.phase != Phase::Open || !self.blocked_notify {
            return;
        }
        let m = match reason {
            Some(r) => connection::AMQPMethod::Blocked(connection::Blocked { reason: short(r) }),
            None => connection::AMQPMethod::Unblocked(connection::Unblocked {}),
        };
        self.send(0, AMQPClass::Connection(m));
    }

    /// While our connection.close waits for close-ok, only the peer's close or
    /// close-ok counts; everything else is dropped, as the spec asks.
    pub(crate) fn closing_method(&mut self, m: AMQPClass) {
        match m {
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => self.phase = Phase::Closed,
            AMQPClass::Connection(connection::AMQPMethod::Close(_)) => {
                self.send(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
                );
                self.phase = Phase::Closed;
            }
            _ => {}
        }
    }

    pub(crate) fn connection_method(
        &mut self,
        m: connection::AMQPMethod,
        id: (u16, u16),
    ) -> Result<()> {
        use connection::AMQPMethod as M;
        match (self.phase, m) {
            (Phase::AwaitStartOk, M::StartOk(s)) => self.start_ok(s),
            (Phase::AwaitTuneOk, M::TuneOk(t)) => {
                if t.frame_max != 0 && t.frame_max < codec::FRAME_MIN_SIZE {
                    return Err(AmqpError::connection(
                        NOT_ALLOWED,
                        format!(
                            "NOT_ALLOWED - frame_max {} below the minimum {}",
                            t.frame_max,
                            codec::FRAME_MIN_SIZE
                        ),
                        id,
                    ));
                }
                if t.frame_max != 0 {
                    self.frame_max = t.frame_max.min(self.cfg.frame_max);
                }
                if t.channel_max != 0 {
                    self.channel_max = t.channel_max.min(self.cfg.channel_max);
                }
                self.heartbeat = t.heartbeat;
                self.phase = Phase::AwaitOpen;
                Ok(())
            }
            (Phase::AwaitOpen, M::Open(o)) => {
                let vhost = o.virtual_host.as_str().to_string();
                let user = self.user.clone().ok_or_else(|| {
                    AmqpError::connection(ACCESS_REFUSED, "ACCESS_REFUSED - not authenticated", id)
                })?;
                match self.broker.open_vhost(&user, &vhost) {
                    // Every channel acts as the user from now on: each broker call
                    // is checked against its permissions.
                    Ok(scoped) => self.broker = scoped,
                    Err(e) => {
                        tracing::info!(peer = %self.peer, user = %user.name, "AMQP connection refused: {e}");
                        return Err(AmqpError::connection(
                            NOT_ALLOWED,
                            reply_text(NOT_ALLOWED, &e),
                            id,
                        ));
                    }
                }
                let admitted = self.broker.connection_describe(
                    self.conn_id,
                    switchboard_api::admin::ConnectionMeta {
                        protocol: "AMQP 0-9-1".into(),
                        peer: self.peer,
                        user: user.name.clone(),
                        vhost: vhost.clone(),
                        client_properties: self.client_properties.clone(),
                        channels: self.channel_count.clone(),
                        limited: true,
                    },
                );
                if let Err(e) = admitted {
                    tracing::info!(peer = %self.peer, user = %user.name, "AMQP connection refused: {e}");
                    return Err(AmqpError::connection(
                        NOT_ALLOWED,
                        reply_text(NOT_ALLOWED, &e),
                        id,
                    ));
                }
                self.vhost = vhost;
                self.phase = Phase::Open;
                self.send(0, AMQPClass::Connection(M::OpenOk(connection::OpenOk {})));
                Ok(())
            }
            (_, M::Close(_)) => {
                self.release_all();
                self.send(0, AMQPClass::Connection(M::CloseOk(connection::CloseOk {})));
                self.phase = Phase::Closed;
                Ok(())
            }
            (Phase::Open, M::UpdateSecret(_)) => {
                self.send(
                    0,
                    AMQPClass::Connection(M::UpdateSecretOk(connection::UpdateSecretOk {})),
                );
                Ok(())
            }
            // Blocked/Unblocked from a client are informational; ignore them.
            (Phase::Open, M::Blocked(_) | M::Unblocked(_)) => Ok(()),
            (_, _) => Err(AmqpError::connection(
                COMMAND_INVALID,
                format!(
                    "COMMAND_INVALID - unexpected method connection.{} in this state",
                    method_name(id.1)
                ),
                id,
            )),
        }
    }

    fn start_ok(&mut self, s: connection::StartOk) -> Result<()> {
        let id = (10, 11);
        self.client_properties = crate::convert::table_from_amqp(&s.client_properties);
        if let Some(AMQPValue::FieldTable(caps)) = s.client_properties.inner().get("capabilities") {
            let has = |c: &str| matches!(caps.inner().get(c), Some(AMQPValue::Boolean(true)));
            self.cancel_notify = has("consumer_cancel_notify");
            self.blocked_notify = has("connection.blocked");
        }
        if s.mechanism.as_str() == "EXTERNAL" {
            // The response (an optional authorisation identity) is ignored, as
            // RabbitMQ does: the certificate alone names the user.
            return match self.cert_user.clone() {
                Some(name) => {
                    let r = self.broker.authenticate_external(&name, self.peer);
                    self.logged_in(r, &name, id)
                }
                None => Err(AmqpError::connection(
                    ACCESS_REFUSED,
                    "ACCESS_REFUSED - EXTERNAL needs a verified client certificate",
                    id,
                )),
            };
        }
        let (user, pass) = match s.mechanism.as_str() {
            "PLAIN" => parse_plain(s.response.as_bytes()),
            "AMQPLAIN" => parse_amqplain(s.response.as_bytes()),
            other => {
                return Err(AmqpError::connection(
                    ACCESS_REFUSED,
                    format!("ACCESS_REFUSED - unsupported authentication mechanism '{other}'"),
                    id,
                ));
            }
        }
        .ok_or_else(|| {
            AmqpError::connection(
                ACCESS_REFUSED,
                "ACCESS_REFUSED - malformed authentication response",
                id,
            )
        })?;
        let r = self.broker.authenticate(&user, &pass, self.peer);
        self.logged_in(r, &user, id)
    }

    /// Tunes the connection of a user logged in, or refuses it.
    fn logged_in(
        &mut self,
        r: std::result::Result<switchboard_api::User, switchboard_api::BrokerError>,
        name: &str,
        id: (u16, u16),
    ) -> Result<()> {
        match r {
            Ok(u) => {
                self.user = Some(u);
                self.phase = Phase::AwaitTuneOk;
                self.send(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::Tune(connection::Tune {
                        channel_max: self.cfg.channel_max,
                        frame_max: self.cfg.frame_max,
                        heartbeat: self.cfg.heartbeat,
                    })),
                );
                Ok(())
            }
            Err(e) => {
                // The refusal goes out after this delay (the connection's task sleeps).
                self.refusal_delay = Some(self.broker.login_refused(self.peer, name, "AMQP 0-9-1"));
                Err(AmqpError::connection(
                    ACCESS_REFUSED,
                    reply_text(ACCESS_REFUSED, &e),
                    id,
                ))
            }
        }
    }
}

fn method_name(id: u16) -> &'static str {
    match id {
        10 => "start",
        11 => "start-ok",
        20 => "secure",
        21 => "secure-ok",
        30 => "tune",
        31 => "tune-ok",
        40 => "open",
        41 => "open-ok",
        50 => "close",
        51 => "close-ok",
        _ => "other",
    }
}

/// SASL PLAIN: `authzid \0 authcid \0 password`.
fn parse_plain(r: &[u8]) -> Option<(String, String)> {
    let mut parts = r.split(|b| *b == 0);
    let _authz = parts.next()?;
    let user = std::str::from_utf8(parts.next()?).ok()?;
    let pass = std::str::from_utf8(parts.next()?).ok()?;
    Some((user.to_string(), pass.to_string()))
}

/// AMQPLAIN: a field table without its length prefix, with LOGIN and PASSWORD.
fn parse_amqplain(r: &[u8]) -> Option<(String, String)> {
    let mut buf = Vec::with_capacity(r.len() + 4);
    buf.extend_from_slice(&(r.len() as u32).to_be_bytes());
    buf.extend_from_slice(r);
    let (_, t) = amq_protocol::types::parsing::parse_field_table(&buf[..]).ok()?;
    let get = |k: &str| match t.inner().get(k)? {
        AMQPValue::LongString(s) => String::from_utf8(s.as_bytes().to_vec()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    };
    Some((get("LOGIN")?, get("PASSWORD")?))
}
