//! The core's failures as facts (which queue, which argument), not as any
//! protocol's words: each frontend renders them its own way — AMQP with RabbitMQ's
//! reply codes and texts, STOMP as an ERROR frame, MQTT as reason codes, the AWS
//! bridge with AWS's error codes and messages.

use std::fmt;

/// What went wrong, in categories every protocol can map to its own codes
/// (AMQP reply codes, MQTT reason codes, STOMP ERROR, AWS error codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Entity does not exist (AMQP 404).
    NotFound,
    /// Entity exists with other settings, or a precondition failed (AMQP 406).
    PreconditionFailed,
    /// Credentials or permissions refused (AMQP 403).
    AccessRefused,
    /// Exclusive entity owned by another connection (AMQP 405).
    ResourceLocked,
    /// A limit was reached (AMQP 506 resource-error).
    ResourceError,
    /// Request not allowed in this state (AMQP 530 not-allowed).
    NotAllowed,
    /// Argument invalid (AMQP 503 command-invalid for an unknown exchange type).
    InvalidArgument,
    /// Bug or unexpected state inside the broker (AMQP 541).
    Internal,
}

impl ErrorKind {
    /// A stable lower-case name, for logs and for protocols that put a word for the
    /// category on the wire (STOMP's `message` header).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::PreconditionFailed => "precondition_failed",
            ErrorKind::AccessRefused => "access_refused",
            ErrorKind::ResourceLocked => "resource_locked",
            ErrorKind::ResourceError => "resource_error",
            ErrorKind::NotAllowed => "not_allowed",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::Internal => "internal_error",
        }
    }
}

/// The kind of entity an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entity {
    Queue,
    Exchange,
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Entity::Queue => "queue",
            Entity::Exchange => "exchange",
        })
    }
}

/// RabbitMQ's three permissions on a resource: `configure` creates, deletes or
/// changes it, `write` puts messages in, `read` takes them out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Configure,
    Write,
    Read,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Configure => "configure",
            Access::Write => "write",
            Access::Read => "read",
        })
    }
}

/// A broker operation's failure. `Display` is a plain sentence of the facts (no
/// protocol's code in it); [`BrokerError::kind`] is the category protocols map to
/// their codes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    #[error("no {entity} '{name}' in vhost '{vhost}'")]
    NotFound {
        entity: Entity,
        name: String,
        vhost: String,
    },
    #[error("vhost {vhost} not found")]
    NoVhost { vhost: String },
    #[error("no user '{name}'")]
    NoUser { name: String },
    /// A password hash that is not RabbitMQ's salted SHA-256 (base64 of 36 bytes).
    #[error("password_hash is not a rabbit_password_hashing_sha256 hash")]
    BadPasswordHash,
    /// A permission pattern that is not a regular expression.
    #[error("invalid permission pattern '{pattern}': {reason}")]
    BadPattern { pattern: String, reason: String },
    /// A redeclaration asked for other settings than the entity has (boxed: the
    /// facts are many, and every `Result` of the core carries this enum).
    #[error("{0}")]
    Inequivalent(Box<Mismatch>),
    #[error("invalid arg '{argument}' for queue '{queue}' in vhost '{vhost}': {reason}")]
    InvalidArgument {
        queue: String,
        vhost: String,
        argument: String,
        reason: String,
    },
    /// A binding's SNS filter policy (`x-filter-policy`) that AWS would refuse;
    /// `reason` is AWS's validation text, which the SNS bridge quotes after
    /// `Invalid parameter: FilterPolicy: `.
    #[error("{reason}")]
    InvalidFilterPolicy { reason: String },
    #[error("the ordering of queue '{queue}' in vhost '{vhost}' cannot change")]
    OrderingFixed { queue: String, vhost: String },
    /// An exclusive queue declared by another connection.
    #[error(
        "cannot obtain exclusive access to locked queue '{queue}' in vhost '{vhost}'. \
         It could be originally declared on another connection or the exclusive property \
         value does not match that of the original declaration."
    )]
    Locked { queue: String, vhost: String },
    /// A consumer asked for exclusivity, or another consumer already has it.
    #[error("queue '{queue}' in vhost '{vhost}' in exclusive use")]
    ExclusiveUse { queue: String, vhost: String },
    #[error("{entity} name '{name}' contains reserved prefix 'amq.*'")]
    ReservedName { entity: Entity, name: String },
    #[error("unknown exchange type '{kind}'")]
    UnknownExchangeType { kind: String },
    /// Deleting, or binding from, the default exchange or a built-in one. `name` is
    /// `None` when the default exchange was named as a binding source.
    #[error("operation not permitted on the default exchange{}", built_in(name))]
    BuiltInExchange { name: Option<String> },
    #[error("{entity} '{name}' in vhost '{vhost}' in use")]
    InUse {
        entity: Entity,
        name: String,
        vhost: String,
    },
    #[error("queue '{queue}' in vhost '{vhost}' is not empty")]
    NotEmpty { queue: String, vhost: String },
    #[error("cannot publish to internal exchange '{exchange}' in vhost '{vhost}'")]
    InternalExchange { exchange: String, vhost: String },
    /// A connection over its user's or vhost's connection limit (RabbitMQ's words).
    #[error("{}", connection_limit(user, vhost, *per_vhost, *limit))]
    ConnectionLimit {
        user: String,
        vhost: String,
        /// The vhost's limit (else the user's).
        per_vhost: bool,
        limit: u32,
    },
    /// A new queue over its vhost's queue limit.
    #[error("cannot declare queue '{queue}': queue limit in vhost '{vhost}' ({limit}) is reached")]
    QueueLimit {
        queue: String,
        vhost: String,
        limit: u32,
    },
    /// The user has no permissions in the vhost.
    #[error("access to vhost '{vhost}' refused for user '{user}'")]
    VhostRefused { vhost: String, user: String },
    /// A permission check failed: says what was asked, never whether it exists.
    #[error("{access} access to {entity} '{name}' in vhost '{vhost}' refused for user '{user}'")]
    Denied {
        access: Access,
        entity: Entity,
        name: String,
        vhost: String,
        user: String,
    },
    /// A topic permission (on the routing key of a topic exchange) failed.
    #[error(
        "{access} access to topic '{key}' in exchange '{exchange}' in vhost '{vhost}' \
         refused for user '{user}'"
    )]
    TopicDenied {
        access: Access,
        key: String,
        exchange: String,
        vhost: String,
        user: String,
    },
    /// Unknown user or wrong password: deliberately says neither, nor who.
    #[error("login refused")]
    LoginRefused,
    #[error("user '{user}' can only connect via localhost")]
    LoopbackOnly { user: String },
    #[error("unknown access key '{key}'")]
    UnknownAccessKey { key: String },
    /// Settling or re-leasing a message that is not handed out (any more).
    #[error("message is not in flight")]
    NotInFlight,
    #[error("delivery is not leased")]
    NotLeased,
    /// The message was handed out again since the handle in hand was issued.
    #[error("message was delivered again since")]
    DeliveredAgain,
    /// A delivery of a queue that no longer exists.
    #[error("queue deleted")]
    QueueDeleted,
    /// The broker could not write its own state (definitions, keyed records).
    #[error("{reason}")]
    Store { reason: String },
}

/// What an inequivalent redeclaration got wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "inequivalent arg '{argument}' for {entity} '{name}' in vhost '{vhost}'{}",
    values(received, current)
)]
pub struct Mismatch {
    pub entity: Entity,
    pub name: String,
    pub vhost: String,
    pub argument: String,
    /// Already worded (`the value '5'`, `'direct'`), when known.
    pub received: Option<String>,
    pub current: Option<String>,
}

fn values(received: &Option<String>, current: &Option<String>) -> String {
    match (received, current) {
        (Some(r), Some(c)) => format!(": received {r} but current is {c}"),
        _ => String::new(),
    }
}

fn built_in(name: &Option<String>) -> String {
    name.as_ref()
        .map(|n| format!(" or built-in exchange '{n}'"))
        .unwrap_or_default()
}

impl BrokerError {
    /// The category a protocol maps to its own code.
    pub fn kind(&self) -> ErrorKind {
        use BrokerError::*;
        match self {
            NotFound { .. } | NotInFlight | QueueDeleted | NoUser { .. } => ErrorKind::NotFound,
            BadPasswordHash | BadPattern { .. } => ErrorKind::InvalidArgument,
            QueueLimit { .. } => ErrorKind::PreconditionFailed,
            Inequivalent(_)
            | InvalidArgument { .. }
            | InvalidFilterPolicy { .. }
            | OrderingFixed { .. }
            | InUse { .. }
            | NotEmpty { .. } => ErrorKind::PreconditionFailed,
            ExclusiveUse { .. }
            | ReservedName { .. }
            | BuiltInExchange { .. }
            | InternalExchange { .. }
            | LoginRefused
            | Denied { .. }
            | TopicDenied { .. }
            | LoopbackOnly { .. }
            | UnknownAccessKey { .. } => ErrorKind::AccessRefused,
            Locked { .. } => ErrorKind::ResourceLocked,
            NoVhost { .. }
            | VhostRefused { .. }
            | ConnectionLimit { .. }
            | NotLeased
            | DeliveredAgain => ErrorKind::NotAllowed,
            UnknownExchangeType { .. } => ErrorKind::InvalidArgument,
            Store { .. } => ErrorKind::Internal,
        }
    }

    pub fn no_queue(name: impl Into<String>, vhost: impl Into<String>) -> Self {
        BrokerError::NotFound {
            entity: Entity::Queue,
            name: name.into(),
            vhost: vhost.into(),
        }
    }

    pub fn no_exchange(name: impl Into<String>, vhost: impl Into<String>) -> Self {
        BrokerError::NotFound {
            entity: Entity::Exchange,
            name: name.into(),
            vhost: vhost.into(),
        }
    }
}

fn connection_limit(user: &str, vhost: &str, per_vhost: bool, limit: u32) -> String {
    if per_vhost {
        format!(
            "access to vhost '{vhost}' refused for user '{user}': vhost connection limit ({limit}) is reached"
        )
    } else {
        format!("connection refused for user '{user}': user connection limit ({limit}) is reached")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_carry_the_facts() {
        let e = BrokerError::Inequivalent(Box::new(Mismatch {
            entity: Entity::Exchange,
            name: "x".into(),
            vhost: "/".into(),
            argument: "type".into(),
            received: Some("'fanout'".into()),
            current: Some("'direct'".into()),
        }));
        assert_eq!(
            e.to_string(),
            "inequivalent arg 'type' for exchange 'x' in vhost '/': received 'fanout' but current is 'direct'"
        );
        assert_eq!(e.kind(), ErrorKind::PreconditionFailed);
        let e = BrokerError::BuiltInExchange { name: None };
        assert_eq!(
            e.to_string(),
            "operation not permitted on the default exchange"
        );
        assert_eq!(
            BrokerError::no_queue("q", "/").to_string(),
            "no queue 'q' in vhost '/'"
        );
    }
}
