//! Queue attributes: AWS's defaults and rules, Get/SetQueueAttributes, and the core
//! queue arguments they become.

use super::meta::QueueMeta;
use super::{Ctx, Sqs, SqsError, input};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use switchboard_api::{Table, Value as HeaderValue};

/// Every attribute GetQueueAttributes knows, in AWS's order.
pub const ALL: &[&str] = &[
    "Policy",
    "VisibilityTimeout",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "QueueArn",
    "ApproximateNumberOfMessagesDelayed",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
    "RedrivePolicy",
    "FifoQueue",
    "ContentBasedDeduplication",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "RedriveAllowPolicy",
    "SqsManagedSseEnabled",
];

const FIFO_ONLY: &[&str] = &[
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
];

fn invalid(name: &str) -> SqsError {
    SqsError::invalid_attribute_value(format!("Invalid value for the parameter {name}."))
}

/// The dead-letter target and receive limit of a RedrivePolicy value.
pub struct Redrive {
    pub target_arn: String,
    pub max_receive_count: i64,
}

pub fn parse_redrive(v: &str) -> Option<Redrive> {
    let j: Value = serde_json::from_str(v).ok()?;
    let target_arn = j.get("deadLetterTargetArn")?.as_str()?.to_string();
    let max_receive_count = match j.get("maxReceiveCount")? {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    Some(Redrive {
        target_arn,
        max_receive_count,
    })
}

impl Sqs {
    /// Checks one attribute for CreateQueue or SetQueueAttributes and returns the
    /// value to store (`None`: remove it, as an empty RedrivePolicy or Policy does).
    pub(super) fn check_attribute(
        &self,
        queue: &str,
        fifo: bool,
        name: &str,
        value: &str,
        creating: bool,
    ) -> Result<Option<String>, SqsError> {
        let int = |lo: i64, hi: i64| -> Result<Option<String>, SqsError> {
            match value.trim().parse::<i64>() {
                Ok(n) if (lo..=hi).contains(&n) => Ok(Some(n.to_string())),
                _ => Err(invalid(name)),
            }
        };
        let boolean = || match value.to_ascii_lowercase().as_str() {
            "true" => Ok(Some("true".to_string())),
            "false" => Ok(Some("false".to_string())),
            _ => Err(invalid(name)),
        };
        if FIFO_ONLY.contains(&name) && !fifo {
            return Err(SqsError::invalid_attribute_name(format!(
                "Unknown Attribute {name}."
            )));
        }
        match name {
            "DelaySeconds" => int(0, 900),
            "MaximumMessageSize" => int(1024, 1_048_576),
            "MessageRetentionPeriod" => int(60, 1_209_600),
            "ReceiveMessageWaitTimeSeconds" => int(0, 20),
            "VisibilityTimeout" => int(0, 43_200),
            "KmsDataKeyReusePeriodSeconds" => int(60, 86_400),
            "KmsMasterKeyId" => Ok((!value.is_empty()).then(|| value.to_string())),
            "SqsManagedSseEnabled" | "ContentBasedDeduplication" => boolean(),
            "FifoQueue" => match (creating, fifo) {
                (true, true) => boolean(),
                // AWS knows FifoQueue only on FIFO queues, even as "false".
                (true, false) => boolean().and_then(|_| {
                    Err(SqsError::invalid_attribute_name(
                        "Unknown Attribute FifoQueue.",
                    ))
                }),
                (false, true) => Err(SqsError::invalid_attribute_value(
                    "Invalid value for the parameter FifoQueue. Reason: Modifying queue type is not supported.",
                )),
                (false, false) => Err(SqsError::invalid_attribute_name(
                    "Unknown Attribute FifoQueue.",
                )),
            },
            "DeduplicationScope" => match value {
                "messageGroup" | "queue" => Ok(Some(value.to_string())),
                _ => Err(invalid(name)),
            },
            "FifoThroughputLimit" => match value {
                "perQueue" | "perMessageGroupId" => Ok(Some(value.to_string())),
                _ => Err(invalid(name)),
            },
            "Policy" => {
                if value.is_empty() {
                    return Ok(None);
                }
                match serde_json::from_str::<Value>(value) {
                    Ok(Value::Object(_)) => Ok(Some(value.to_string())),
                    _ => Err(invalid(name)),
                }
            }
            "RedrivePolicy" => {
                if value.is_empty() {
                    return Ok(None);
                }
                self.check_redrive(queue, fifo, value).map(Some)
            }
            "RedriveAllowPolicy" => {
                if value.is_empty() {
                    return Ok(None);
                }
                let j: Value = serde_json::from_str(value).map_err(|_| invalid(name))?;
                let perm = j.get("redrivePermission").and_then(Value::as_str);
                let sources = j.get("sourceQueueArns").and_then(Value::as_array);
                match (perm, sources) {
                    (Some("allowAll" | "denyAll"), None) => Ok(Some(value.to_string())),
                    (Some("byQueue"), Some(s)) if !s.is_empty() && s.len() <= 10 => {
                        Ok(Some(value.to_string()))
                    }
                    _ => Err(invalid(name)),
                }
            }
            _ => Err(SqsError::invalid_attribute_name(format!(
                "Unknown Attribute {name}."
            ))),
        }
    }

    fn check_redrive(&self, queue: &str, fifo: bool, value: &str) -> Result<String, SqsError> {
        let bad = |why: &str| {
            SqsError::invalid_parameter_value(format!(
                "Value {value} for parameter RedrivePolicy is invalid. Reason: {why}"
            ))
        };
        let r = parse_redrive(value).ok_or_else(|| {
            bad("Redrive policy is not a valid JSON map with deadLetterTargetArn and maxReceiveCount.")
        })?;
        if !(1..=1000).contains(&r.max_receive_count) {
            return Err(bad(
                "Invalid value for maxReceiveCount: must be between 1 and 1000.",
            ));
        }
        let target = self
            .name_from_arn(&r.target_arn)
            .filter(|t| self.broker.queue_exists(&self.cfg.vhost, t))
            .ok_or_else(|| bad("Dead-letter target does not exist."))?;
        if target.ends_with(".fifo") != fifo {
            return Err(bad(
                "Dead-letter queue and source queue must both be FIFO or both be standard.",
            ));
        }
        let dlq = self.meta(&target);
        if let Some(allow) = dlq.attr("RedriveAllowPolicy")
            && let Ok(j) = serde_json::from_str::<Value>(allow)
        {
            let me = self.queue_arn(queue);
            let allowed = match j.get("redrivePermission").and_then(Value::as_str) {
                Some("denyAll") => false,
                Some("byQueue") => j
                    .get("sourceQueueArns")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(me.as_str()))),
                _ => true,
            };
            if !allowed {
                return Err(bad(&format!(
                    "Queue {} does not allow this queue to use it as a dead-letter queue.",
                    r.target_arn
                )));
            }
        }
        Ok(
            json!({"deadLetterTargetArn": r.target_arn, "maxReceiveCount": r.max_receive_count})
                .to_string(),
        )
    }

    /// The core queue arguments the attributes call for.
    pub(super) fn core_args(&self, meta: &QueueMeta) -> Table {
        let mut t = Table::new();
        let delay = meta.int("DelaySeconds");
        if delay > 0 {
            t.insert("x-delivery-delay".into(), HeaderValue::I64(delay * 1000));
        }
        t.insert(
            "x-message-ttl".into(),
            HeaderValue::I64(meta.int("MessageRetentionPeriod") * 1000),
        );
        if meta.fifo() {
            t.insert("x-ordering".into(), HeaderValue::string("grouped"));
            t.insert("x-dedup-window".into(), HeaderValue::I64(300_000));
        }
        if let Some(r) = meta.attr("RedrivePolicy").and_then(parse_redrive)
            && let Some(target) = self.name_from_arn(&r.target_arn)
        {
            t.insert("x-dead-letter-exchange".into(), HeaderValue::string(""));
            t.insert(
                "x-dead-letter-routing-key".into(),
                HeaderValue::string(target),
            );
            // The core dead-letters once a message's delivery count exceeds the
            // limit; SQS allows maxReceiveCount receives.
            t.insert(
                "x-delivery-limit".into(),
                HeaderValue::I64(r.max_receive_count - 1),
            );
        }
        t
    }

    /// Every attribute's current value.
    pub(super) fn attribute_values(
        &self,
        name: &str,
        meta: &QueueMeta,
    ) -> BTreeMap<&'static str, String> {
        let stats = self
            .broker
            .queue_handle(&self.cfg.vhost, name)
            .map(|q| q.stats())
            .unwrap_or_default();
        let mut out = BTreeMap::new();
        for &a in ALL {
            let v = match a {
                "ApproximateNumberOfMessages" => Some(stats.ready.to_string()),
                "ApproximateNumberOfMessagesNotVisible" => Some(stats.in_flight.to_string()),
                "ApproximateNumberOfMessagesDelayed" => Some(stats.delayed.to_string()),
                "CreatedTimestamp" => Some(meta.created.to_string()),
                "LastModifiedTimestamp" => Some(meta.modified.to_string()),
                "QueueArn" => Some(self.queue_arn(name)),
                "VisibilityTimeout"
                | "MaximumMessageSize"
                | "MessageRetentionPeriod"
                | "DelaySeconds"
                | "ReceiveMessageWaitTimeSeconds" => Some(meta.int(a).to_string()),
                "SqsManagedSseEnabled" => Some(
                    meta.attr(a)
                        .map_or(meta.attr("KmsMasterKeyId").is_none(), |v| v == "true")
                        .to_string(),
                ),
                "KmsDataKeyReusePeriodSeconds" => {
                    meta.attr("KmsMasterKeyId").map(|_| meta.int(a).to_string())
                }
                "FifoQueue" => meta.fifo().then(|| "true".to_string()),
                "ContentBasedDeduplication" => meta.fifo().then(|| meta.flag(a).to_string()),
                "DeduplicationScope" => meta
                    .fifo()
                    .then(|| meta.attr(a).unwrap_or("queue").to_string()),
                "FifoThroughputLimit" => meta
                    .fifo()
                    .then(|| meta.attr(a).unwrap_or("perQueue").to_string()),
                "Policy" => meta
                    .attr(a)
                    .map(str::to_string)
                    .or_else(|| self.policy(name, meta)),
                _ => meta.attr(a).map(str::to_string),
            };
            if let Some(v) = v {
                out.insert(a, v);
            }
        }
        out
    }

    pub(super) fn get_queue_attributes(&self, i: &Value, ctx: &Ctx) -> Result<Value, SqsError> {
        let name = self.queue_name(i, ctx)?;
        let meta = self.meta(&name);
        let wanted = input::strs(i, "AttributeNames")?;
        for w in &wanted {
            if w != "All" && !ALL.contains(&w.as_str()) {
                return Err(SqsError::invalid_attribute_name(format!(
                    "Unknown Attribute {w}."
                )));
            }
        }
        let all = wanted.iter().any(|w| w == "All");
        let values = self.attribute_values(&name, &meta);
        let attrs: serde_json::Map<String, Value> = values
            .into_iter()
            .filter(|(k, _)| all || wanted.iter().any(|w| w == k))
            .map(|(k, v)| (k.to_string(), Value::String(v)))
            .collect();
        if attrs.is_empty() {
            return Ok(json!({}));
        }
        Ok(json!({ "Attributes": attrs }))
    }

    pub(super) async fn set_queue_attributes(
        &self,
        i: &Value,
        ctx: &Ctx,
    ) -> Result<Value, SqsError> {
        let name = self.queue_name(i, ctx)?;
        let mut meta = (*self.meta(&name)).clone();
        let attrs = input::str_map(i, "Attributes")?;
        if attrs.is_empty() {
            return Err(input::missing("Attribute.1.Name"));
        }
        for (k, v) in &attrs {
            match self.check_attribute(&name, meta.fifo(), k, v, false)? {
                Some(v) => meta.attributes.insert(k.clone(), v),
                None => meta.attributes.remove(k),
            };
        }
        check_fifo_combination(&meta)?;
        meta.modified = switchboard_api::wall_secs();
        if meta.created == 0 {
            meta.created = meta.modified;
        }
        let args = self.core_args(&meta);
        self.broker
            .set_queue_arguments(&self.cfg.vhost, &name, &args)
            .map_err(super::core_error)?;
        self.put_meta(&name, meta).await?;
        Ok(json!({}))
    }
}

/// AWS's rule for high-throughput FIFO: per-group throughput needs per-group dedup.
pub fn check_fifo_combination(meta: &QueueMeta) -> Result<(), SqsError> {
    if meta.attr("FifoThroughputLimit") == Some("perMessageGroupId")
        && meta.attr("DeduplicationScope") == Some("queue")
    {
        return Err(SqsError::invalid_attribute_value(
            "Invalid value for the parameter FifoThroughputLimit. Reason: perMessageGroupId is only available when DeduplicationScope is messageGroup.",
        ));
    }
    Ok(())
}
