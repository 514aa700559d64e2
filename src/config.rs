//! Configuration: defaults, then a TOML file, then `SWITCHBOARD_*` environment
//! variables, then command-line flags (later wins). Every field has a default.

use crate::alarms::Limits;
use crate::broker::UserConfig;
use crate::store::Fsync;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct Config {
    /// Where durable state lives.
    pub data_dir: PathBuf,
    /// Address every listener binds to.
    pub bind: String,
    /// Listener ports; 0 picks a free port (printed on the `listening` line).
    pub amqp_port: u16,
    pub mqtt_port: u16,
    /// MQTT over WebSocket (path any, subprotocol `mqtt`).
    pub mqtt_ws_port: u16,
    pub stomp_port: u16,
    /// STOMP over WebSocket (subprotocols `v10.stomp`, `v11.stomp`, `v12.stomp`).
    pub stomp_ws_port: u16,
    pub http_port: u16,
    pub admin_port: u16,
    /// TLS listeners, opened only when `tls.cert` and `tls.key` are set: AMQPS,
    /// MQTTS, MQTT over WSS, STOMP over TLS, STOMP over WSS, HTTPS for SQS/SNS,
    /// HTTPS for the admin API (RabbitMQ's and mosquitto's TLS ports).
    pub amqps_port: u16,
    pub mqtts_port: u16,
    pub mqtt_wss_port: u16,
    pub stomps_port: u16,
    pub stomp_wss_port: u16,
    pub https_port: u16,
    pub admin_tls_port: u16,
    /// Certificate, key and client CA for the TLS listeners (reloaded on SIGHUP).
    pub tls: TlsConfig,
    pub amqp: AmqpConfig,
    pub mqtt: MqttConfig,
    pub stomp: StompConfig,
    /// The SQS API on `http_port`.
    pub sqs: SqsConfig,
    /// SNS deliveries to mail (through an SMTP relay) and https endpoints.
    pub sns: SnsConfig,
    /// Users for every protocol. Default: `guest`/`guest`, loopback only.
    pub users: Vec<UserConfig>,
    /// Virtual hosts created at start; `/` always exists.
    pub vhosts: Vec<String>,
    /// When the journal is fsynced: `batch` (before confirming; loses nothing),
    /// `interval` (every 10 ms), `never`.
    pub fsync: Fsync,
    /// Resource alarms (reloaded on SIGHUP).
    pub limits: Limits,
    /// Limits per tenant: connections per user and vhost, per source address and
    /// second, queues per vhost; 0 = none (reloaded on SIGHUP).
    pub quotas: crate::broker::quotas::Quotas,
    /// Bytes of ready messages a queue keeps in memory; newer ones are paged out
    /// to a scratch file under the data directory until they near the head.
    pub queue_memory_bytes: u64,
    /// A RabbitMQ definitions file loaded at every start (users, vhosts, exchanges,
    /// queues, bindings, policies as queue arguments); what it declares exists
    /// already on later starts, so loading it again changes nothing.
    pub definitions: Option<PathBuf>,
    /// Active/standby pair (docs/REPLICATION.md); off without `peer`.
    pub replication: ReplicationConfig,
}

/// Whether confirmations wait for the standby.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReplicationMode {
    /// Nothing is confirmed until both stores hold it (RPO 0).
    #[default]
    Sync,
    /// Confirm from the active's disk alone; a failover may lose the last records.
    Async,
}

/// What the active does when its standby stops acknowledging.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StandbyDown {
    /// Mark the standby out of sync (so it may not take over) and go on alone.
    #[default]
    Continue,
    /// Hold every confirmation until a standby has caught up again.
    Block,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct ReplicationConfig {
    /// Port the nodes of a pair talk on (0 = a free port).
    pub port: u16,
    /// The other node's replication address, `HOST:PORT`.
    pub peer: Option<String>,
    /// Who is active: `file:PATH`, `etcd:URL[,URL…]`, `static:active|standby`.
    pub lock: String,
    pub mode: ReplicationMode,
    pub standby_down: StandbyDown,
    /// A standby that acknowledges nothing for this long counts as down.
    pub ack_timeout_ms: u64,
    /// Lease TTL of the etcd lock; the active stops serving when it cannot renew
    /// within it.
    pub lease_ttl_ms: u64,
    /// Mutual TLS between the nodes (and for `ctl status|promote`): this node's
    /// `tls.cert`/`tls.key`, the peer's certificate verified against `tls.ca`.
    pub tls: bool,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            port: 5680,
            peer: None,
            lock: String::new(),
            mode: ReplicationMode::Sync,
            standby_down: StandbyDown::Continue,
            ack_timeout_ms: 1000,
            lease_ttl_ms: 2000,
            tls: false,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct TlsConfig {
    /// The server's certificate chain (PEM), leaf first.
    pub cert: Option<PathBuf>,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// CA certificates (PEM) client certificates are verified against; a verified
    /// certificate's CN (else first DNS name) logs its user in without a password.
    /// None: no client certificates are asked for.
    pub ca: Option<PathBuf>,
    /// With `ca`: refuse clients that present no certificate (RabbitMQ's
    /// `ssl_options.fail_if_no_peer_cert`); otherwise one is optional.
    pub fail_if_no_peer_cert: bool,
}

impl TlsConfig {
    /// `None`: TLS is off; an error when only one of `cert` and `key` is set.
    pub fn settings(&self) -> Result<Option<crate::tls::Settings>, crate::tls::TlsError> {
        match (&self.cert, &self.key) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(crate::tls::TlsError::Half("the certificate")),
            (None, Some(_)) => Err(crate::tls::TlsError::Half("the key")),
            (Some(cert), Some(key)) => Ok(Some(crate::tls::Settings {
                cert: cert.clone(),
                key: key.clone(),
                ca: self.ca.clone(),
                fail_if_no_peer_cert: self.fail_if_no_peer_cert,
            })),
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SqsAuth {
    Sigv4,
    None,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct SqsConfig {
    /// The vhost whose queues are SQS queues.
    pub vhost: String,
    /// Account id in queue URLs and ARNs (LocalStack's and ElasticMQ's default).
    pub account_id: String,
    pub region: String,
    /// `sigv4`: requests must be signed by a broker user (access key id = user
    /// name, secret = its `secret_key` or password). `none`: anything goes.
    pub auth: SqsAuth,
    /// `http://host:port` for queue URLs; empty: from each request's `Host`.
    pub base_url: String,
}

impl Default for SqsConfig {
    fn default() -> Self {
        let d = switchboard_bridge::Config::default();
        SqsConfig {
            vhost: d.vhost,
            account_id: d.account_id,
            region: d.region,
            auth: SqsAuth::Sigv4,
            base_url: String::new(),
        }
    }
}

impl From<&SqsConfig> for switchboard_bridge::Config {
    fn from(c: &SqsConfig) -> Self {
        switchboard_bridge::Config {
            vhost: c.vhost.clone(),
            account_id: c.account_id.clone(),
            region: c.region.clone(),
            auth: match c.auth {
                SqsAuth::None => switchboard_bridge::Auth::None,
                SqsAuth::Sigv4 => switchboard_bridge::Auth::SigV4,
            },
            base_url: (!c.base_url.is_empty()).then(|| c.base_url.clone()),
            ..Default::default()
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct SnsConfig {
    /// `host:port` of the SMTP relay for email/email-json subscriptions; empty:
    /// they are refused.
    pub smtp_relay: String,
    /// Sender address of SNS's mail.
    pub smtp_from: String,
    /// Extra trusted roots (PEM file) for https endpoints; empty: Mozilla's only.
    pub https_ca_file: String,
    /// Skip certificate checks for https endpoints (tests only).
    pub https_insecure: bool,
}

impl Default for SnsConfig {
    fn default() -> Self {
        let d = switchboard_bridge::SnsConfig::default();
        SnsConfig {
            smtp_relay: String::new(),
            smtp_from: d.smtp_from,
            https_ca_file: String::new(),
            https_insecure: d.https_insecure,
        }
    }
}

impl From<&SnsConfig> for switchboard_bridge::SnsConfig {
    fn from(c: &SnsConfig) -> Self {
        switchboard_bridge::SnsConfig {
            smtp_relay: (!c.smtp_relay.is_empty()).then(|| c.smtp_relay.clone()),
            smtp_from: c.smtp_from.clone(),
            https_ca_file: (!c.https_ca_file.is_empty()).then(|| PathBuf::from(&c.https_ca_file)),
            https_insecure: c.https_insecure,
        }
    }
}

/// The HTTP APIs' settings: SQS's section, and SNS's beside it.
impl From<&Config> for switchboard_bridge::Config {
    fn from(c: &Config) -> Self {
        switchboard_bridge::Config {
            sns: (&c.sns).into(),
            ..(&c.sqs).into()
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct AmqpConfig {
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat: u16,
    pub max_message_size: u64,
    pub max_partial_bytes: u64,
    pub handshake_timeout_ms: u64,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        let d = switchboard_amqp::Config::default();
        AmqpConfig {
            frame_max: d.frame_max,
            channel_max: d.channel_max,
            heartbeat: d.heartbeat,
            max_message_size: d.max_message_size,
            max_partial_bytes: d.max_partial_bytes,
            handshake_timeout_ms: d.handshake_timeout.as_millis() as u64,
        }
    }
}

impl From<&AmqpConfig> for switchboard_amqp::Config {
    fn from(c: &AmqpConfig) -> Self {
        switchboard_amqp::Config {
            frame_max: c.frame_max.max(switchboard_amqp::codec::FRAME_MIN_SIZE),
            channel_max: c.channel_max.max(1),
            heartbeat: c.heartbeat,
            max_message_size: c.max_message_size,
            max_partial_bytes: c.max_partial_bytes.max(c.max_message_size),
            handshake_timeout: std::time::Duration::from_millis(c.handshake_timeout_ms),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct MqttConfig {
    /// Vhost whose `amq.topic` MQTT topics route through.
    pub vhost: String,
    pub max_packet_size: u32,
    pub connect_timeout_ms: u64,
    /// Unacknowledged QoS 1/2 messages per client (and the Receive Maximum we announce).
    pub max_inflight: u16,
    pub topic_alias_max: u16,
    /// Longest keepalive a client may ask for, in seconds (mosquitto's
    /// `max_keepalive`); 65535 = no limit.
    pub max_keepalive: u16,
    /// Clients without credentials connect as this user, from loopback only
    /// (mosquitto 2's local-only default). Empty: credentials are always required.
    pub anonymous_user: String,
    pub anonymous_password: String,
    /// Ready messages a consumed queue may hold before the QoS 1/2 publishers
    /// feeding it have their PUBACKs held (flow control); 0 = never.
    pub backlog_limit: u32,
    /// Longest a PUBACK is held for a backlog, in milliseconds.
    pub backlog_max_hold_ms: u64,
}

impl Default for MqttConfig {
    fn default() -> Self {
        let d = switchboard_mqtt::Config::default();
        let (anonymous_user, anonymous_password) = d.anonymous_user.unwrap_or_default();
        MqttConfig {
            vhost: d.vhost,
            max_packet_size: d.max_packet_size,
            connect_timeout_ms: d.connect_timeout.as_millis() as u64,
            max_inflight: d.max_inflight,
            topic_alias_max: d.topic_alias_max,
            max_keepalive: d.max_keepalive,
            anonymous_user,
            anonymous_password,
            backlog_limit: d.backlog_limit,
            backlog_max_hold_ms: d.backlog_max_hold.as_millis() as u64,
        }
    }
}

impl From<&MqttConfig> for switchboard_mqtt::Config {
    fn from(c: &MqttConfig) -> Self {
        switchboard_mqtt::Config {
            vhost: c.vhost.clone(),
            max_packet_size: c.max_packet_size.max(1024),
            connect_timeout: std::time::Duration::from_millis(c.connect_timeout_ms),
            max_inflight: c.max_inflight.max(1),
            topic_alias_max: c.topic_alias_max,
            max_keepalive: c.max_keepalive,
            anonymous_user: (!c.anonymous_user.is_empty())
                .then(|| (c.anonymous_user.clone(), c.anonymous_password.clone())),
            backlog_limit: c.backlog_limit,
            backlog_max_hold: std::time::Duration::from_millis(c.backlog_max_hold_ms),
            ..Default::default()
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct StompConfig {
    /// Vhost when CONNECT has no `host` header (or names a host, not a vhost).
    pub default_vhost: String,
    pub connect_timeout_ms: u64,
    /// Unacknowledged messages per `client`/`client-individual` subscription
    /// without `prefetch-count` / `activemq.prefetchSize`.
    pub default_prefetch: u32,
    pub max_body: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// Clients without a login connect as this user, from loopback only; empty:
    /// a login is always required.
    pub anonymous_user: String,
    pub anonymous_password: String,
}

impl Default for StompConfig {
    fn default() -> Self {
        let d = switchboard_stomp::Config::default();
        let (anonymous_user, anonymous_password) = d.anonymous_user.unwrap_or_default();
        StompConfig {
            default_vhost: d.default_vhost,
            connect_timeout_ms: d.connect_timeout.as_millis() as u64,
            default_prefetch: d.default_prefetch,
            max_body: d.limits.max_body,
            max_header_bytes: d.limits.max_header_bytes,
            max_headers: d.limits.max_headers,
            anonymous_user,
            anonymous_password,
        }
    }
}

impl From<&StompConfig> for switchboard_stomp::Config {
    fn from(c: &StompConfig) -> Self {
        let limits = switchboard_stomp::codec::Limits {
            max_body: c.max_body,
            max_header_bytes: c.max_header_bytes.max(1024),
            max_headers: c.max_headers.max(16),
        };
        switchboard_stomp::Config {
            default_vhost: c.default_vhost.clone(),
            connect_timeout: std::time::Duration::from_millis(c.connect_timeout_ms),
            default_prefetch: c.default_prefetch,
            anonymous_user: (!c.anonymous_user.is_empty())
                .then(|| (c.anonymous_user.clone(), c.anonymous_password.clone())),
            limits,
            ..Default::default()
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            bind: "0.0.0.0".into(),
            amqp_port: 5672,
            mqtt_port: 1883,
            mqtt_ws_port: 15675,
            stomp_port: 61613,
            stomp_ws_port: 15674,
            http_port: 9324,
            admin_port: 15672,
            amqps_port: 5671,
            mqtts_port: 8883,
            mqtt_wss_port: 15676,
            stomps_port: 61614,
            stomp_wss_port: 15673,
            https_port: 9325,
            admin_tls_port: 15671,
            tls: TlsConfig::default(),
            amqp: AmqpConfig::default(),
            mqtt: MqttConfig::default(),
            stomp: StompConfig::default(),
            sqs: SqsConfig::default(),
            sns: SnsConfig::default(),
            users: vec![UserConfig {
                name: "guest".into(),
                password: "guest".into(),
                password_hash: None,
                tags: vec!["administrator".into()],
                loopback_only: true,
                secret_key: None,
                permissions: None,
            }],
            vhosts: vec!["/".into()],
            fsync: Fsync::Batch,
            limits: Limits::default(),
            quotas: Default::default(),
            queue_memory_bytes: 32 * 1024 * 1024,
            definitions: None,
            replication: ReplicationConfig::default(),
        }
    }
}

/// Reads a configuration file's text over the defaults and checks what the types
/// cannot (users' hashes and permission patterns): what `--config FILE` does
/// before the environment and flags apply, and what the fuzz target feeds garbage.
pub fn from_toml(text: &str) -> Result<Config, String> {
    use figment::Figment;
    use figment::providers::{Format, Serialized, Toml};
    let cfg: Config = Figment::from(Serialized::defaults(Config::default()))
        .merge(Toml::string(text))
        .extract()
        .map_err(|e| e.to_string())?;
    cfg.check()?;
    Ok(cfg)
}

impl Config {
    /// What deserializing cannot check.
    pub fn check(&self) -> Result<(), String> {
        crate::broker::check_users(&self.users)?;
        self.replication_tls()?;
        Ok(())
    }

    /// The replication link's TLS files when `replication.tls` is on: the node's
    /// own certificate (served to the peer and presented to it) and the CA the
    /// peer's is verified against, which the link cannot do without.
    pub fn replication_tls(&self) -> Result<Option<crate::tls::Settings>, String> {
        if !self.replication.tls {
            return Ok(None);
        }
        let missing: Vec<&str> = [
            ("tls.cert (--tls-cert)", self.tls.cert.is_none()),
            ("tls.key (--tls-key)", self.tls.key.is_none()),
            ("tls.ca (--tls-ca)", self.tls.ca.is_none()),
        ]
        .into_iter()
        .filter_map(|(name, absent)| absent.then_some(name))
        .collect();
        match (&self.tls.cert, &self.tls.key, &self.tls.ca) {
            (Some(cert), Some(key), Some(ca)) => Ok(Some(crate::tls::Settings {
                cert: cert.clone(),
                key: key.clone(),
                ca: Some(ca.clone()),
                // The peer must prove it is the other node, whatever the client
                // listeners accept.
                fail_if_no_peer_cert: true,
            })),
            _ => Err(format!(
                "replication.tls (--replication-tls) needs this node's certificate and key \
                 and the CA that signed the peer's; missing: {}",
                missing.join(", ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::Figment;
    use figment::providers::{Format, Serialized, Toml};

    #[test]
    fn sns_section_reaches_the_bridge_config() {
        let cfg: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(
                "[sqs]\nregion = \"eu-west-1\"\n[sns]\nsmtp_relay = \"127.0.0.1:2525\"\n",
            ))
            .extract()
            .unwrap();
        let b = switchboard_bridge::Config::from(&cfg);
        assert_eq!(b.region, "eu-west-1");
        assert_eq!(b.sns.smtp_relay.as_deref(), Some("127.0.0.1:2525"));
        assert_eq!(b.sns.smtp_from, "no-reply@sns.switchboard.local");
        assert!(b.sns.https_ca_file.is_none() && !b.sns.https_insecure);
        // Nothing configured: no relay, so email subscriptions are refused.
        let b = switchboard_bridge::Config::from(&Config::default());
        assert!(b.sns.smtp_relay.is_none());
    }

    #[test]
    fn replication_tls_needs_a_certificate_a_key_and_a_ca() {
        let mut cfg = Config::default();
        assert_eq!(cfg.replication_tls(), Ok(None));
        cfg.replication.tls = true;
        cfg.tls.cert = Some("node.pem".into());
        let e = cfg.check().unwrap_err();
        assert!(
            e.contains("replication.tls")
                && e.contains("missing: tls.key (--tls-key), tls.ca (--tls-ca)"),
            "{e}"
        );
        cfg.tls.key = Some("node.key".into());
        cfg.tls.ca = Some("ca.pem".into());
        let s = cfg.replication_tls().unwrap().unwrap();
        assert!(s.fail_if_no_peer_cert && s.ca.is_some());
        // From the environment's form too: `[replication] tls = true`.
        let cfg = from_toml("[replication]\ntls = true\n").unwrap_err();
        assert!(cfg.contains("missing: tls.cert"), "{cfg}");
    }

    /// The Debian package's configuration must run the broker that `switchboard`
    /// run by hand is (every protocol on its standard port), only with its state
    /// where the systemd unit may write.
    #[test]
    fn the_packaged_config_is_the_defaults_with_the_units_data_dir() {
        const PACKAGED: &str = include_str!("../packaging/switchboard.toml");
        let packaged: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(PACKAGED))
            .extract()
            .unwrap();
        assert_eq!(packaged.data_dir, PathBuf::from("/var/lib/switchboard"));
        let unit = include_str!("../packaging/switchboard.service");
        assert!(unit.contains("\nReadWritePaths=/var/lib/switchboard\n"));
        let want = Config {
            data_dir: packaged.data_dir.clone(),
            ..Config::default()
        };
        assert_eq!(
            serde_json::to_value(&packaged).unwrap(),
            serde_json::to_value(&want).unwrap()
        );
        // Unknown keys are ignored when loading, so a misspelt one would leave its
        // default in place unnoticed: every key must be a field.
        let keys: figment::value::Dict = Figment::from(Toml::string(PACKAGED)).extract().unwrap();
        let fields = serde_json::to_value(Config::default()).unwrap();
        for k in keys.keys() {
            assert!(
                fields.get(k).is_some(),
                "packaging/switchboard.toml: unknown field {k}"
            );
        }
    }
}
