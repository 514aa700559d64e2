//! SNS errors as AWS reports them on the Query protocol: a code, the HTTP status and
//! a message. Failures of the parts shared with SQS (SigV4, form and attribute
//! parsing) come in as `SqsError`s and keep their codes, which SNS uses too.

use crate::sqs::SqsError;
use std::borrow::Cow;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SnsError {
    pub code: &'static str,
    pub status: u16,
    pub message: Cow<'static, str>,
}

macro_rules! errors {
    ($($fn:ident => $code:literal, $status:literal;)*) => {
        impl SnsError {
            $(
                pub fn $fn(message: impl Into<Cow<'static, str>>) -> SnsError {
                    SnsError { code: $code, status: $status, message: message.into() }
                }
            )*
        }
    };
}

errors! {
    not_found => "NotFound", 404;
    resource_not_found => "ResourceNotFound", 404;
    invalid_parameter => "InvalidParameter", 400;
    invalid_parameter_value => "InvalidParameterValue", 400;
    invalid_action => "InvalidAction", 400;
    too_many_entries => "TooManyEntriesInBatchRequest", 400;
    empty_batch => "EmptyBatchRequest", 400;
    batch_entry_ids_not_distinct => "BatchEntryIdsNotDistinct", 400;
    invalid_batch_entry_id => "InvalidBatchEntryId", 400;
    batch_request_too_long => "BatchRequestTooLong", 400;
    authorization_error => "AuthorizationError", 403;
    internal => "InternalError", 500;
}

impl SnsError {
    /// `Sender` for the client's faults, `Receiver` for the server's.
    pub fn sender(&self) -> bool {
        self.status < 500
    }

    /// AWS's wording for a bad parameter: `Invalid parameter: <what>`.
    pub fn bad(what: impl std::fmt::Display) -> SnsError {
        SnsError::invalid_parameter(format!("Invalid parameter: {what}"))
    }

    pub fn no_topic() -> SnsError {
        SnsError::not_found("Topic does not exist")
    }
}

impl From<SqsError> for SnsError {
    fn from(e: SqsError) -> SnsError {
        SnsError {
            code: e.query_code,
            status: e.status,
            message: e.message,
        }
    }
}
