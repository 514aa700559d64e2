//! SQS errors: one value carries what both wire protocols need (the JSON protocol's
//! `__type` and the Query protocol's legacy code, which the JSON protocol also sends in
//! `x-amzn-query-error` because SDKs and Terraform read it).

use std::borrow::Cow;

/// An SQS error as AWS reports it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SqsError {
    /// The JSON protocol's error shape name (`QueueDoesNotExist`); the `__type` is
    /// `com.amazonaws.sqs#<code>`.
    pub code: &'static str,
    /// The Query protocol's code (`AWS.SimpleQueueService.NonExistentQueue`), also
    /// sent as `x-amzn-query-error: <query_code>;Sender` by the JSON protocol.
    pub query_code: &'static str,
    /// `Sender` (the client's fault) or `Receiver`.
    pub sender: bool,
    pub status: u16,
    pub message: Cow<'static, str>,
}

macro_rules! errors {
    ($($fn:ident => $code:literal, $query:literal, $status:literal;)*) => {
        impl SqsError {
            $(
                pub fn $fn(message: impl Into<Cow<'static, str>>) -> SqsError {
                    SqsError {
                        code: $code,
                        query_code: $query,
                        sender: $status < 500,
                        status: $status,
                        message: message.into(),
                    }
                }
            )*
        }
    };
}

errors! {
    queue_does_not_exist => "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", 400;
    queue_already_exists => "QueueNameExists", "QueueAlreadyExists", 400;
    queue_deleted_recently => "QueueDeletedRecently", "AWS.SimpleQueueService.QueueDeletedRecently", 400;
    invalid_parameter_value => "InvalidParameterValue", "InvalidParameterValue", 400;
    invalid_attribute_name => "InvalidAttributeName", "InvalidAttributeName", 400;
    invalid_attribute_value => "InvalidAttributeValue", "InvalidAttributeValue", 400;
    missing_parameter => "MissingParameter", "MissingParameter", 400;
    invalid_action => "InvalidAction", "InvalidAction", 400;
    missing_action => "MissingAction", "MissingAction", 400;
    unknown_operation => "UnknownOperationException", "UnknownOperationException", 400;
    unsupported_protocol => "UnsupportedProtocol", "UnsupportedProtocol", 400;
    unsupported_operation => "UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation", 400;
    invalid_message_contents => "InvalidMessageContents", "InvalidMessageContents", 400;
    invalid_batch_entry_id => "InvalidBatchEntryId", "AWS.SimpleQueueService.InvalidBatchEntryId", 400;
    too_many_entries => "TooManyEntriesInBatchRequest", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest", 400;
    empty_batch => "EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest", 400;
    batch_entry_ids_not_distinct => "BatchEntryIdsNotDistinct", "AWS.SimpleQueueService.BatchEntryIdsNotDistinct", 400;
    batch_request_too_long => "BatchRequestTooLong", "AWS.SimpleQueueService.BatchRequestTooLong", 400;
    receipt_handle_is_invalid => "ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid", 400;
    message_not_inflight => "MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight", 400;
    purge_in_progress => "PurgeQueueInProgress", "AWS.SimpleQueueService.PurgeQueueInProgress", 403;
    over_limit => "OverLimit", "OverLimit", 403;
    resource_not_found => "ResourceNotFoundException", "ResourceNotFoundException", 404;
    invalid_address => "InvalidAddress", "InvalidAddress", 404;
    invalid_security => "InvalidSecurity", "InvalidSecurity", 403;
    request_throttled => "RequestThrottled", "RequestThrottled", 403;
    invalid_client_token_id => "InvalidClientTokenId", "InvalidClientTokenId", 403;
    signature_does_not_match => "SignatureDoesNotMatch", "SignatureDoesNotMatch", 403;
    incomplete_signature => "IncompleteSignature", "IncompleteSignature", 403;
    missing_authentication_token => "MissingAuthenticationToken", "MissingAuthenticationToken", 403;
    request_expired => "RequestExpired", "RequestExpired", 400;
    access_denied => "AccessDeniedException", "AccessDenied", 403;
    invalid_id_format => "InvalidIdFormat", "InvalidIdFormat", 400;
    serialization => "SerializationException", "SerializationException", 400;
    kms_disabled => "KmsDisabled", "KMS.DisabledException", 400;
    internal => "InternalError", "InternalError", 500;
    service_unavailable => "ServiceUnavailable", "ServiceUnavailable", 503;
}

impl SqsError {
    /// The `__type` of a JSON protocol error body.
    pub fn json_type(&self) -> String {
        format!("com.amazonaws.sqs#{}", self.code)
    }

    /// The value of the `x-amzn-query-error` header.
    pub fn query_error_header(&self) -> String {
        let who = if self.sender { "Sender" } else { "Receiver" };
        format!("{};{who}", self.query_code)
    }
}
