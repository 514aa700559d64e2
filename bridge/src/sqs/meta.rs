//! What SQS keeps about a queue beyond the core queue itself: attributes as set,
//! tags, permissions, timestamps. Stored as JSON in the durable keyed store under
//! `queue/<name>` and cached here.

use super::{Sqs, SqsError};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use switchboard_api::{Message, Properties};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct QueueMeta {
    /// Attributes as the user set them (validated; defaults are not stored).
    pub attributes: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    /// Seconds since the epoch.
    pub created: u64,
    pub modified: u64,
    /// AddPermission statements by label: (accounts, actions).
    #[serde(default)]
    pub permissions: BTreeMap<String, (Vec<String>, Vec<String>)>,
}

impl QueueMeta {
    pub fn fifo(&self) -> bool {
        self.attributes
            .get("FifoQueue")
            .is_some_and(|v| v == "true")
    }
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }
    /// An integer attribute or its default.
    pub fn int(&self, name: &str) -> i64 {
        self.attr(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| default_int(name))
    }
    pub fn flag(&self, name: &str) -> bool {
        self.attr(name).is_some_and(|v| v == "true")
    }
}

/// AWS's default for an integer attribute the user has not set; meta holds it so
/// that `QueueMeta::int` answers without reaching up into the attribute rules.
pub fn default_int(name: &str) -> i64 {
    match name {
        "VisibilityTimeout" => 30,
        // AWS raised the default and maximum from 256 KiB to 1 MiB in 2025.
        "MaximumMessageSize" => 1_048_576,
        "MessageRetentionPeriod" => 345_600,
        "KmsDataKeyReusePeriodSeconds" => 300,
        _ => 0,
    }
}

/// A value for the keyed store: JSON, journaled (persistent).
pub fn json_record(v: &impl Serialize) -> Result<Message, SqsError> {
    let body = serde_json::to_vec(v).map_err(|e| SqsError::internal(e.to_string()))?;
    Ok(Message {
        body: Bytes::from(body),
        properties: Properties {
            delivery_mode: Some(2),
            ..Default::default()
        },
        ..Default::default()
    })
}

fn key(name: &str) -> String {
    format!("queue/{name}")
}

impl Sqs {
    /// The queue's metadata; defaults for a core queue SQS did not create (one an
    /// AMQP client declared, say), with FIFO read off the name.
    pub(super) fn meta(&self, name: &str) -> Arc<QueueMeta> {
        if let Some(m) = self.lock().meta.get(name) {
            return m.clone();
        }
        let stored = self
            .broker
            .keyed_get(&self.cfg.vhost, super::SQS_SPACE, &key(name))
            .and_then(|m| serde_json::from_slice::<QueueMeta>(&m.body).ok());
        let meta = Arc::new(stored.unwrap_or_else(|| {
            let mut m = QueueMeta::default();
            if name.ends_with(".fifo") {
                m.attributes.insert("FifoQueue".into(), "true".into());
            }
            m
        }));
        self.lock().meta.insert(name.to_string(), meta.clone());
        meta
    }

    /// Stores new metadata and waits until it is durable.
    pub(super) async fn put_meta(&self, name: &str, meta: QueueMeta) -> Result<(), SqsError> {
        let value = json_record(&meta)?;
        self.lock().meta.insert(name.to_string(), Arc::new(meta));
        let lsn = self
            .broker
            .keyed_put(&self.cfg.vhost, super::SQS_SPACE, &key(name), Some(value))
            .map_err(super::core_error)?;
        self.durable(lsn).await
    }

    pub(super) async fn remove_meta(&self, name: &str) -> Result<(), SqsError> {
        self.lock().meta.remove(name);
        let lsn = self
            .broker
            .keyed_put(&self.cfg.vhost, super::SQS_SPACE, &key(name), None)
            .map_err(super::core_error)?;
        self.durable(lsn).await
    }
}
