//! Queue lifecycle and bookkeeping actions: CreateQueue, GetQueueUrl, ListQueues,
//! DeleteQueue, PurgeQueue, tags, permissions, ListDeadLetterSourceQueues.

use super::attributes::{check_fifo_combination, parse_redrive};
use super::meta::QueueMeta;
use super::{Ctx, Sqs, SqsError, core_error, input, no_queue};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use switchboard_api::QueueDecl;

/// AWS allows one PurgeQueue per queue every 60 seconds.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);
const MAX_TAGS: usize = 50;

/// AWS's queue name rule: 1–80 of `[A-Za-z0-9_-]`, the `.fifo` suffix included.
pub fn valid_queue_name(name: &str) -> bool {
    let base = name.strip_suffix(".fifo").unwrap_or(name);
    !base.is_empty()
        && name.len() <= 80
        && base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Sqs {
    pub(super) async fn create_queue(&self, i: &Value, ctx: &Ctx) -> Result<Value, SqsError> {
        let name = input::req_str(i, "QueueName")?;
        if !valid_queue_name(name) {
            return Err(SqsError::invalid_parameter_value(
                "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length",
            ));
        }
        let attrs = input::str_map(i, "Attributes")?;
        let tags = input::str_map(i, "tags")?;
        let fifo = attrs
            .iter()
            .any(|(k, v)| k == "FifoQueue" && v.eq_ignore_ascii_case("true"));
        if fifo != name.ends_with(".fifo") {
            return Err(SqsError::invalid_parameter_value(if fifo {
                "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in length."
            } else {
                "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length"
            }));
        }
        let mut meta = QueueMeta::default();
        for (k, v) in &attrs {
            if let Some(v) = self.check_attribute(name, fifo, k, v, true)? {
                meta.attributes.insert(k.clone(), v);
            }
        }
        check_fifo_combination(&meta)?;
        if tags.len() > MAX_TAGS {
            return Err(too_many_tags());
        }
        let core = self.core_name(self.region(ctx), name);
        if self.broker.queue_exists(&self.cfg.vhost, &core) {
            // Idempotent only when every attribute given equals the queue's.
            let current = self.meta(&core);
            for (k, v) in &meta.attributes {
                let same = match current.attr(k) {
                    Some(c) => c == v,
                    None => match v.parse::<i64>() {
                        Ok(n) => n == super::meta::default_int(k),
                        Err(_) => v == "false",
                    },
                };
                if !same {
                    return Err(SqsError::queue_already_exists(format!(
                        "A queue already exists with the same name and a different value for attribute {k}"
                    )));
                }
            }
            return Ok(json!({ "QueueUrl": self.queue_url(ctx, &core) }));
        }
        meta.attributes.insert("FifoQueue".into(), fifo.to_string());
        if !fifo {
            meta.attributes.remove("FifoQueue");
        }
        meta.tags = tags.into_iter().collect();
        meta.created = switchboard_api::wall_secs();
        meta.modified = meta.created;
        let decl = QueueDecl {
            name: core.clone(),
            durable: true,
            arguments: self.core_args(&meta),
            ..Default::default()
        };
        self.broker
            .declare_queue(&self.cfg.vhost, &decl, 0)
            .map_err(core_error)?;
        self.put_meta(&core, meta).await?;
        Ok(json!({ "QueueUrl": self.queue_url(ctx, &core) }))
    }

    pub(super) fn get_queue_url(&self, i: &Value, ctx: &Ctx) -> Result<Value, SqsError> {
        let name = input::req_str(i, "QueueName")?;
        let core = self.core_name(self.region(ctx), name);
        if !valid_queue_name(name) || !self.broker.queue_exists(&self.cfg.vhost, &core) {
            return Err(no_queue());
        }
        Ok(json!({ "QueueUrl": self.queue_url(ctx, &core) }))
    }

    pub(super) fn list_queues(&self, i: &Value, ctx: &Ctx) -> Result<Value, SqsError> {
        let prefix = input::opt_str(i, "QueueNamePrefix")?.unwrap_or("");
        let max = input::int_in(i, "MaxResults", 1, 1000)?;
        let after = match input::opt_str(i, "NextToken")? {
            Some(t) => Some(decode_token(t)?),
            None => None,
        };
        let region = self.region(ctx);
        let names: Vec<String> = self
            .queues_in(region)
            .into_iter()
            .filter(|n| n.starts_with(prefix))
            .filter(|n| after.as_ref().is_none_or(|a| n > a))
            .filter(|n| self.visible(ctx, &self.core_name(region, n)))
            .collect();
        let limit = max.map_or(1000, |m| m as usize);
        let page = &names[..names.len().min(limit)];
        let mut out = serde_json::Map::new();
        if !page.is_empty() {
            let urls: Vec<Value> = page
                .iter()
                .map(|n| Value::String(self.queue_url(ctx, &self.core_name(region, n))))
                .collect();
            out.insert("QueueUrls".into(), Value::Array(urls));
        }
        if max.is_some()
            && names.len() > page.len()
            && let Some(last) = page.last()
        {
            out.insert("NextToken".into(), Value::String(encode_token(last)));
        }
        Ok(Value::Object(out))
    }

    pub(super) async fn delete_queue(&self, i: &Value, ctx: &Ctx) -> Result<Value, SqsError> {
        let name = self.queue_name(i, ctx)?;
        self.broker
            .delete_queue(&self.cfg.vhost, &name, false, false, 0)
            .map_err(core_error)?;
        self.cancel_move_tasks_of(&name);
        self.remove_meta(&name).await?;
        self.lock().purged.remove(&name);
        Ok(json!({}))
    }

    pub(super) fn purge_queue(&self, i: &Value, ctx: &Ctx) -> Result<Value, SqsError> {
        let name = self.queue_name(i, ctx)?;
        {
            let mut st = self.lock();
            let now = Instant::now();
            if let Some(at) = st.purged.get(&name)
                && now.duration_since(*at) < PURGE_INTERVAL
            {
                return Err(SqsError::purge_in_progress(format!(
                    "Only one PurgeQueue operation on {} is allowed every 60 seconds.",
                    self.split_core(&name).1
                )));
            }
            st.purged
                .retain(|_, t| now.duration_since(*t) < PURGE_INTERVAL);
            st.purged.insert(name.clone(), now);
            st.dedup.forget_queue(&name);
        }
        self.broker
            .purge_queue(&self.cfg.vhost, &name, 0)
            .map_err(core_error)?;
        if let Some(q) = self.broker.queue_handle(&self.cfg.vhost, &name) {
            q.purge_leased();
        }
        Ok(json!({}))
    }

    pub(super) async fn tag_queue(&self, i: &Value, ctx: &Ctx) -> Result<Value, SqsError> {
        let name = self.queue_name(i, ctx)?;
        let tags = input::str_map(i, "Tags")?;
        if tags.is_empty() {
            return Err(input::missing("Tags"));
        }
        let mut meta = (*self.meta(&name)).clone();
        meta.tags.extend(tags);
        if meta.tags.len() > MAX_TAGS {
            return Err(too_many_tags());
        }
        self.put_meta(&name, meta).await?;
        Ok(json!({}))
    }

    pub(super) async fn untag_queue(&self, i: &Value, ctx: &Ctx) -> Result<Value, SqsError> {
        let name = self.queue_name(i, ctx)?;
        let keys = input::strs(i, "TagKeys")?;
        if keys.is_empty() {
            return Err(input::missing("TagKeys"));
        }
        let mut meta = (*self.meta(&name)).clone();
        for k in &keys {
            meta.tags.remove(k);
        }
        self.put_meta(&name, meta).await?;
        Ok(json!({}))
    }

    pub(super) fn list_queue_tags(&self, i: &Value, ctx: &Ctx) -> Result<Value, SqsError> {
        let name = self.queue_name(i, ctx)?;
        let meta = self.meta(&name);
        if meta.tags.is_empty() {
            return Ok(json!({}));
        }
        Ok(json!({ "Tags": meta.tags }))
    }

    pub(super) async fn add_permission(&self, i: &Value, ctx: &Ctx) -> Result<Value, SqsError> {
        let name = self.queue_name(i, ctx)?;
        let label = input::req_str(i, "Label")?;
        let accounts = input::strs(i, "AWSAccountIds")?;
        let actions = input::strs(i, "Actions")?;
        if accounts.is_empty() {
            return Err(input::missing("AWSAccountIds"));
        }
        if actions.is_empty() {
            return Err(input::missing("Actions"));
        }
        if actions.len() > 7 {
            return Err(SqsError::over_limit(format!(
                "{} Actions were found, maximum allowed is 7.",
                actions.len()
            )));
        }
        // Only these may be shared; the rest (AddPermission, DeleteQueue …) stay
        // the owner's, and AWS names the first one asked for.
        const SHAREABLE: [&str; 9] = [
            "*",
            "ChangeMessageVisibility",
            "DeleteMessage",
            "GetQueueAttributes",
            "GetQueueUrl",
            "ListDeadLetterSourceQueues",
            "PurgeQueue",
            "ReceiveMessage",
            "SendMessage",
        ];
        if let Some(a) = actions.iter().find(|a| !SHAREABLE.contains(&a.as_str())) {
            return Err(SqsError::invalid_parameter_value(format!(
                "Value SQS:{a} for parameter ActionName is invalid. Reason: Only the queue owner is allowed to invoke this action."
            )));
        }
        let mut meta = (*self.meta(&name)).clone();
        if meta.permissions.contains_key(label) {
            return Err(SqsError::invalid_parameter_value(format!(
                "Value {label} for parameter Label is invalid. Reason: Already exists."
            )));
        }
        meta.permissions
            .insert(label.to_string(), (accounts, actions));
        self.put_meta(&name, meta).await?;
        Ok(json!({}))
    }

    pub(super) async fn remove_permission(&self, i: &Value, ctx: &Ctx) -> Result<Value, SqsError> {
        let name = self.queue_name(i, ctx)?;
        let label = input::req_str(i, "Label")?;
        let mut meta = (*self.meta(&name)).clone();
        if meta.permissions.remove(label).is_none() {
            return Err(SqsError::invalid_parameter_value(format!(
                "Value {label} for parameter Label is invalid. Reason: can't find label on existing policy."
            )));
        }
        self.put_meta(&name, meta).await?;
        Ok(json!({}))
    }

    /// The policy AddPermission statements make, as AWS renders it.
    pub(super) fn policy(&self, name: &str, meta: &QueueMeta) -> Option<String> {
        if meta.permissions.is_empty() {
            return None;
        }
        let arn = self.queue_arn(name);
        let statements: Vec<Value> = meta
            .permissions
            .iter()
            .map(|(label, (accounts, actions))| {
                let mut principals: Vec<Value> = accounts
                    .iter()
                    .map(|a| json!(format!("arn:aws:iam::{a}:root")))
                    .collect();
                // AWS writes a single principal as a string, several as a list.
                let principals = match principals.len() {
                    1 => principals.remove(0),
                    _ => Value::Array(principals),
                };
                let mut actions: Vec<Value> =
                    actions.iter().map(|a| json!(format!("SQS:{a}"))).collect();
                let actions = match actions.len() {
                    1 => actions.remove(0),
                    _ => Value::Array(actions),
                };
                json!({
                    "Sid": label,
                    "Effect": "Allow",
                    "Principal": {"AWS": principals},
                    "Action": actions,
                    "Resource": arn,
                })
            })
            .collect();
        Some(
            json!({
                "Version": "2012-10-17",
                "Id": format!("{arn}/SQSDefaultPolicy"),
                "Statement": statements,
            })
            .to_string(),
        )
    }

    /// Queues whose RedrivePolicy names this one.
    pub(super) fn dead_letter_sources(&self, dlq: &str) -> Vec<String> {
        let arn = self.queue_arn(dlq);
        self.broker
            .list_queues(&self.cfg.vhost)
            .into_iter()
            .filter(|n| self.is_sqs_queue(n))
            .filter(|n| {
                self.meta(n)
                    .attr("RedrivePolicy")
                    .and_then(parse_redrive)
                    .is_some_and(|r| r.target_arn == arn)
            })
            .collect()
    }

    pub(super) fn list_dead_letter_source_queues(
        &self,
        i: &Value,
        ctx: &Ctx,
    ) -> Result<Value, SqsError> {
        let name = self.queue_name(i, ctx)?;
        let max = input::int_in(i, "MaxResults", 1, 1000)?;
        let after = match input::opt_str(i, "NextToken")? {
            Some(t) => Some(decode_token(t)?),
            None => None,
        };
        let names: Vec<String> = self
            .dead_letter_sources(&name)
            .into_iter()
            .filter(|n| after.as_ref().is_none_or(|a| n > a))
            .collect();
        let limit = max.map_or(1000, |m| m as usize);
        let page = &names[..names.len().min(limit)];
        let urls: Vec<Value> = page
            .iter()
            .map(|n| Value::String(self.queue_url(ctx, n)))
            .collect();
        let mut out = json!({ "queueUrls": urls });
        if max.is_some()
            && names.len() > page.len()
            && let Some(last) = page.last()
        {
            out["NextToken"] = Value::String(encode_token(last));
        }
        Ok(out)
    }
}

fn too_many_tags() -> SqsError {
    SqsError::invalid_parameter_value(format!(
        "Too many tags added for queue. Maximum number of tags is {MAX_TAGS}."
    ))
}

fn encode_token(last: &str) -> String {
    URL_SAFE_NO_PAD.encode(last)
}

fn decode_token(t: &str) -> Result<String, SqsError> {
    URL_SAFE_NO_PAD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| SqsError::invalid_parameter_value("Invalid NextToken value."))
}
