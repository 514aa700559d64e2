//! What an action answers: the hot actions' replies as structs serialized straight
//! into the body (no `serde_json::Value` tree per request), the others' as a tree.
//! The Query protocol renders its XML from the tree, so it turns a struct into one.

use super::SqsError;
use super::convert::Attributes;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// An action's output shape.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Output {
    Tree(Value),
    Sent(Sent),
    SentBatch(Batch<Sent>),
    Settled(Batch<Settled>),
    Received(Received),
}

impl Output {
    /// `{}`: the output of the actions that have none.
    pub fn empty() -> Output {
        Output::Tree(Value::Object(serde_json::Map::new()))
    }

    /// The JSON protocol's body.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec())
    }

    /// As a tree, for the Query protocol's XML.
    pub fn into_tree(self) -> Value {
        match self {
            Output::Tree(v) => v,
            // Maps here have string keys only, so this cannot fail.
            other => serde_json::to_value(&other).unwrap_or_default(),
        }
    }
}

/// SendMessage's output, and a SendMessageBatch `Successful[]` entry (with `Id`).
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Sent {
    #[serde(rename = "Id", skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "MessageId")]
    pub message_id: String,
    #[serde(rename = "MD5OfMessageBody")]
    pub md5_of_body: String,
    #[serde(
        rename = "MD5OfMessageAttributes",
        skip_serializing_if = "Option::is_none"
    )]
    pub md5_of_attributes: Option<String>,
    #[serde(
        rename = "MD5OfMessageSystemAttributes",
        skip_serializing_if = "Option::is_none"
    )]
    pub md5_of_system_attributes: Option<String>,
    #[serde(rename = "SequenceNumber", skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<String>,
}

/// A batch action's output.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Batch<T> {
    pub successful: Vec<T>,
    pub failed: Vec<Failure>,
}

impl<T> Default for Batch<T> {
    fn default() -> Batch<T> {
        Batch {
            successful: Vec::new(),
            failed: Vec::new(),
        }
    }
}

/// A `Successful[]` entry of DeleteMessageBatch and ChangeMessageVisibilityBatch.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Settled {
    pub id: String,
}

/// A `Failed[]` entry.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Failure {
    pub id: String,
    pub sender_fault: bool,
    pub code: &'static str,
    pub message: String,
}

impl Failure {
    pub fn new(id: &str, e: &SqsError) -> Failure {
        Failure {
            id: id.to_owned(),
            sender_fault: e.sender,
            code: e.code,
            message: e.message.to_string(),
        }
    }
}

/// ReceiveMessage's output (`{}` when no message came).
#[derive(Serialize, Clone, Default)]
pub struct Received {
    #[serde(rename = "Messages", skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Message>,
}

/// One received message.
#[derive(Serialize, Clone)]
pub struct Message {
    #[serde(rename = "MessageId")]
    pub message_id: String,
    #[serde(rename = "ReceiptHandle")]
    pub receipt_handle: String,
    #[serde(rename = "MD5OfBody")]
    pub md5_of_body: String,
    #[serde(rename = "Body")]
    pub body: String,
    #[serde(rename = "Attributes", skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<&'static str, String>,
    #[serde(
        rename = "MD5OfMessageAttributes",
        skip_serializing_if = "Option::is_none"
    )]
    pub md5_of_message_attributes: Option<String>,
    #[serde(rename = "MessageAttributes", skip_serializing_if = "Option::is_none")]
    pub message_attributes: Option<Attributes>,
}
