//! AMQP reply codes and the two kinds of protocol error: a channel error closes one
//! channel, a connection error closes the connection.

use switchboard_api::{BrokerError, ErrorKind};

pub const CONNECTION_FORCED: u16 = 320;
pub const NO_ROUTE: u16 = 312;
pub const ACCESS_REFUSED: u16 = 403;
pub const NOT_FOUND: u16 = 404;
pub const RESOURCE_LOCKED: u16 = 405;
pub const PRECONDITION_FAILED: u16 = 406;
pub const FRAME_ERROR: u16 = 501;
pub const COMMAND_INVALID: u16 = 503;
pub const CHANNEL_ERROR: u16 = 504;
pub const UNEXPECTED_FRAME: u16 = 505;
pub const RESOURCE_ERROR: u16 = 506;
pub const NOT_ALLOWED: u16 = 530;
pub const NOT_IMPLEMENTED: u16 = 540;
pub const INTERNAL_ERROR: u16 = 541;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
    pub class_id: u16,
    pub method_id: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmqpError {
    Channel(Reply),
    Connection(Reply),
}

impl AmqpError {
    pub fn channel(code: u16, text: impl Into<String>, ids: (u16, u16)) -> Self {
        AmqpError::Channel(Reply {
            code,
            text: text.into(),
            class_id: ids.0,
            method_id: ids.1,
        })
    }
    pub fn connection(code: u16, text: impl Into<String>, ids: (u16, u16)) -> Self {
        AmqpError::Connection(Reply {
            code,
            text: text.into(),
            class_id: ids.0,
            method_id: ids.1,
        })
    }

    /// Maps a core error raised by method `ids` the way RabbitMQ does: 403/404/405/406
    /// close the channel; 503/530/541 close the connection.
    pub fn from_broker(e: BrokerError, ids: (u16, u16)) -> Self {
        let (code, conn) = match e.kind() {
            ErrorKind::NotFound => (NOT_FOUND, false),
            ErrorKind::PreconditionFailed => (PRECONDITION_FAILED, false),
            ErrorKind::AccessRefused => (ACCESS_REFUSED, false),
            ErrorKind::ResourceLocked => (RESOURCE_LOCKED, false),
            ErrorKind::ResourceError => (RESOURCE_ERROR, false),
            ErrorKind::NotAllowed => (NOT_ALLOWED, true),
            ErrorKind::InvalidArgument => (COMMAND_INVALID, true),
            ErrorKind::Internal => (INTERNAL_ERROR, true),
        };
        let text = reply_text(code, &e);
        if conn {
            Self::connection(code, text, ids)
        } else {
            Self::channel(code, text, ids)
        }
    }
}

/// RabbitMQ's reply text for a core error closing with `code`: the code's name, then
/// the facts (`NOT_FOUND - no queue 'q' in vhost '/'`), so clients and tests written
/// against RabbitMQ read the same words.
pub fn reply_text(code: u16, e: &BrokerError) -> String {
    if let BrokerError::LoginRefused = e {
        // RabbitMQ never says whether the user or the password was wrong.
        return "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. \
                For details see the broker logfile."
            .to_string();
    }
    format!("{} - {e}", reply_name(code))
}

fn reply_name(code: u16) -> &'static str {
    match code {
        CONNECTION_FORCED => "CONNECTION_FORCED",
        NO_ROUTE => "NO_ROUTE",
        ACCESS_REFUSED => "ACCESS_REFUSED",
        NOT_FOUND => "NOT_FOUND",
        RESOURCE_LOCKED => "RESOURCE_LOCKED",
        PRECONDITION_FAILED => "PRECONDITION_FAILED",
        FRAME_ERROR => "FRAME_ERROR",
        COMMAND_INVALID => "COMMAND_INVALID",
        CHANNEL_ERROR => "CHANNEL_ERROR",
        UNEXPECTED_FRAME => "UNEXPECTED_FRAME",
        RESOURCE_ERROR => "RESOURCE_ERROR",
        NOT_ALLOWED => "NOT_ALLOWED",
        NOT_IMPLEMENTED => "NOT_IMPLEMENTED",
        _ => "INTERNAL_ERROR",
    }
}

pub type Result<T, E = AmqpError> = std::result::Result<T, E>;
