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
    /// Argument invalid (AMQP 406 in RabbitMQ for bad x-arguments, 503 for bad commands).
    InvalidArgument,
    /// Bug or unexpected state inside the broker (AMQP 541).
    Internal,
}

/// A broker operation's failure: a kind and a human-readable text that protocols pass
/// to the client (RabbitMQ-style texts such as `NOT_FOUND - no queue 'q' in vhost '/'`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BrokerError {
    pub kind: ErrorKind,
    pub message: String,
}

impl BrokerError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        BrokerError {
            kind,
            message: message.into(),
        }
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, m)
    }
    pub fn precondition(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::PreconditionFailed, m)
    }
    pub fn access_refused(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::AccessRefused, m)
    }
    pub fn locked(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResourceLocked, m)
    }
    pub fn invalid(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, m)
    }
    pub fn not_allowed(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotAllowed, m)
    }
}
