//! Errors as RabbitMQ's management API answers them: a status and a JSON body
//! `{"error": …, "reason": …}` (rabbitmqadmin prints `reason` on a 400).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use switchboard_api::{BrokerError, ErrorKind};

#[derive(Debug, thiserror::Error)]
#[error("{status}: {reason}")]
pub struct ApiError {
    pub status: StatusCode,
    pub error: &'static str,
    pub reason: String,
    /// A 401 asks for basic credentials (`WWW-Authenticate`), except to a script
    /// that says it is one (`X-Requested-With`): a browser would pop up its own
    /// login dialog over the console's.
    pub challenge: bool,
}

impl ApiError {
    pub fn bad_request(reason: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error: "bad_request",
            reason: reason.into(),
            challenge: true,
        }
    }

    pub fn not_found() -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            error: "Object Not Found",
            reason: "Not Found".into(),
            challenge: true,
        }
    }

    pub fn unauthorized(reason: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            error: "not_authorized",
            reason: reason.into(),
            challenge: true,
        }
    }

    /// Authenticated, but the user's tags do not allow it (RabbitMQ answers 401 too).
    pub fn not_allowed(reason: impl Into<String>) -> ApiError {
        ApiError::unauthorized(reason)
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            error: "Method Not Allowed",
            reason: "Method Not Allowed".into(),
            challenge: true,
        }
    }
}

impl From<BrokerError> for ApiError {
    fn from(e: BrokerError) -> ApiError {
        match e.kind() {
            ErrorKind::NotFound => ApiError::not_found(),
            ErrorKind::PreconditionFailed
            | ErrorKind::NotAllowed
            | ErrorKind::InvalidArgument
            | ErrorKind::ResourceLocked => ApiError::bad_request(e.to_string()),
            ErrorKind::AccessRefused => ApiError::not_allowed(e.to_string()),
            ErrorKind::ResourceError | ErrorKind::Internal => ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                error: "internal_server_error",
                reason: e.to_string(),
                challenge: true,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.error, "reason": self.reason});
        let mut r = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED && self.challenge {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"RabbitMQ Management\""),
            );
        }
        r
    }
}
