//! CreateTopic, DeleteTopic, ListTopics, Get/SetTopicAttributes and the tagging
//! actions (tags are kept on topics only: subscriptions cannot be tagged on AWS).

use super::meta::TopicMeta;
use super::xml::Out;
use super::{Params, Sns, SnsError, archive, core_error, fifo, page};
use crate::sqs::Ctx;
use std::collections::BTreeMap;
use switchboard_api::{ExchangeDecl, Table};

/// Topic attributes a client may set (the rest are read-only or not known to SNS).
const SETTABLE: &[&str] = &[
    "DisplayName",
    "Policy",
    "DeliveryPolicy",
    "KmsMasterKeyId",
    "SignatureVersion",
    "TracingConfig",
    "ContentBasedDeduplication",
    "FifoThroughputScope",
    "ArchivePolicy",
    "DataProtectionPolicy",
];

/// AWS's answer for a topic whose DeliveryPolicy is not set.
const EFFECTIVE_DELIVERY_POLICY: &str = r#"{"http":{"defaultHealthyRetryPolicy":{"minDelayTarget":20,"maxDelayTarget":20,"numRetries":3,"numMaxDelayRetries":0,"numNoDelayRetries":0,"numMinDelayRetries":0,"backoffFunction":"linear"},"disableSubscriptionOverrides":false,"defaultRequestPolicy":{"headerContentType":"text/plain; charset=UTF-8"}}}"#;

/// At most 50 tags per resource, as on AWS.
const MAX_TAGS: usize = 50;

/// Checks the values this broker acts on (the others are stored as given).
pub(super) fn check_value(name: &str, value: &str, fifo: bool) -> Result<(), SnsError> {
    fifo::check_attribute(name, value, fifo)?;
    match name {
        "DeliveryPolicy" if !value.is_empty() => {
            super::policy::check_topic(value).map_err(SnsError::bad)
        }
        "SignatureVersion" if !matches!(value, "1" | "2") => Err(SnsError::bad(
            "SignatureVersion: Invalid value. Valid values are 1 and 2",
        )),
        "Policy" if serde_json::from_str::<serde_json::Value>(value).is_err() => {
            Err(SnsError::bad("Policy Error: null"))
        }
        _ => Ok(()),
    }
}

pub(super) fn check_attribute(name: &str) -> Result<(), SnsError> {
    if SETTABLE.contains(&name) {
        Ok(())
    } else {
        Err(SnsError::bad(format!(
            "Attributes Reason: Unknown attribute {name}"
        )))
    }
}

/// Where MQTT and STOMP topics route (the core's topic exchange).
const AMQ_TOPIC: &str = "amq.topic";

impl Sns {
    pub(super) async fn create_topic(&self, p: &Params, ctx: &Ctx) -> Result<Out, SnsError> {
        let short = p.req("Name")?;
        let name = &self.sqs.core_name(self.sqs.region(ctx), short);
        let mut attributes = p.map("Attributes", "key", "value")?;
        // FifoTopic is CreateTopic's alone; AWS keeps no explicit `false`.
        let fifo = attributes
            .remove("FifoTopic")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        fifo::check_name(short, fifo)?;
        for (k, v) in &attributes {
            check_attribute(k)?;
            check_value(k, v, fifo)?;
        }
        if fifo {
            attributes.insert("FifoTopic".into(), "true".into());
        }
        let tags = p.tags("Tags")?;
        if tags.len() > MAX_TAGS {
            return Err(SnsError::bad("Tags Reason: too many tags"));
        }
        // Idempotent: an existing topic keeps what it has, and gains the tags.
        let mut meta = self.topic(name).unwrap_or_else(|| TopicMeta {
            archive_since_ms: switchboard_api::wall_ms(),
            attributes,
            tags: BTreeMap::new(),
        });
        meta.tags.extend(tags);
        let decl = ExchangeDecl {
            name: Sns::exchange(name),
            kind: "fanout".into(),
            durable: true,
            ..Default::default()
        };
        self.broker
            .declare_exchange(&self.cfg.vhost, &decl)
            .map_err(core_error)?;
        self.bind_topic_exchange(name, fifo)?;
        self.apply_archive(name, &meta)?;
        self.put_topic(name, Some(&meta)).await?;
        let mut out = Out::default();
        out.el("TopicArn", &self.topic_arn(name));
        Ok(out)
    }

    /// Every protocol sees the topic on `amq.topic` under the routing key
    /// `sns.<name>` (MQTT `sns/<name>`, STOMP `/topic/sns.<name>`): what Publish
    /// sends reaches their subscribers, and what they publish there reaches the
    /// topic's subscribers (a FIFO topic only sends: a publish from elsewhere has
    /// no message group). The exchange graph visits each exchange once, so the two
    /// bindings do not loop.
    pub(super) fn bind_topic_exchange(&self, name: &str, fifo: bool) -> Result<(), SnsError> {
        let (x, key, none) = (Sns::exchange(name), Sns::routing_key(name), Table::new());
        let vhost = &self.cfg.vhost;
        self.broker
            .bind_exchange(vhost, AMQ_TOPIC, &x, "", &none)
            .map_err(core_error)?;
        if !fifo {
            self.broker
                .bind_exchange(vhost, &x, AMQ_TOPIC, &key, &none)
                .map_err(core_error)?;
        }
        Ok(())
    }

    pub(super) async fn delete_topic(&self, p: &Params) -> Result<(), SnsError> {
        // Deleting a topic that does not exist succeeds on AWS.
        let name = match self.topic_of(p.req("TopicArn")?) {
            Ok(n) => n,
            Err(e) if e.code == "NotFound" => return Ok(()),
            Err(e) => return Err(e),
        };
        for sub in self.subs(Some(&name)) {
            self.remove_sub(&sub).await?;
        }
        match self
            .broker
            .delete_exchange(&self.cfg.vhost, &Sns::exchange(&name), false)
        {
            Ok(()) => {}
            Err(e) if e.kind() == switchboard_api::ErrorKind::NotFound => {}
            Err(e) => return Err(core_error(e)),
        }
        self.apply_archive(&name, &TopicMeta::default())?;
        self.forget_dedup(&name);
        self.put_topic(&name, None).await
    }

    pub(super) fn list_topics(&self, p: &Params, ctx: &Ctx) -> Result<Out, SnsError> {
        let region = self.sqs.region(ctx);
        let names: Vec<String> = self
            .topic_names()
            .into_iter()
            .filter(|t| self.sqs.split_core(t).0 == region)
            .collect();
        let (items, next) = page(&names, |s| s.as_str(), p.get("NextToken"));
        let mut out = Out::default();
        out.open("Topics");
        for name in items {
            out.open("member")
                .el("TopicArn", &self.topic_arn(name))
                .close("member");
        }
        out.close("Topics");
        if let Some(n) = next {
            out.el("NextToken", &n);
        }
        Ok(out)
    }

    pub(super) fn get_topic_attributes(&self, p: &Params) -> Result<Out, SnsError> {
        let name = self.topic_of(p.req("TopicArn")?)?;
        let meta = self.topic(&name).ok_or_else(SnsError::no_topic)?;
        let arn = self.topic_arn(&name);
        let subs = self.subs(Some(&name));
        let pending = subs.iter().filter(|s| s.pending).count();
        let confirmed = (subs.len() - pending).to_string();
        let mut attrs: BTreeMap<&str, String> = BTreeMap::new();
        attrs.insert("TopicArn", arn.clone());
        attrs.insert("Owner", self.cfg.account_id.clone());
        attrs.insert("Policy", self.default_policy(&arn));
        attrs.insert("DisplayName", String::new());
        attrs.insert("SubscriptionsConfirmed", confirmed);
        attrs.insert("SubscriptionsPending", pending.to_string());
        attrs.insert("SubscriptionsDeleted", "0".into());
        attrs.insert("EffectiveDeliveryPolicy", EFFECTIVE_DELIVERY_POLICY.into());
        if meta.fifo() {
            attrs.insert("ContentBasedDeduplication", "false".into());
            if let Some(t) = archive::beginning(&meta) {
                attrs.insert("BeginningArchiveTime", t);
            }
        }
        for (k, v) in &meta.attributes {
            attrs.insert(k, v.clone());
        }
        let mut out = Out::default();
        out.entries("Attributes", attrs.iter().map(|(k, v)| (*k, v.as_str())));
        Ok(out)
    }

    pub(super) async fn set_topic_attributes(&self, p: &Params) -> Result<(), SnsError> {
        let name = self.topic_of(p.req("TopicArn")?)?;
        let attr = p.req("AttributeName")?;
        if attr == "FifoTopic" {
            return Err(SnsError::bad("AttributeName"));
        }
        check_attribute(attr)?;
        let value = p.get("AttributeValue").unwrap_or("");
        let mut meta = self.topic(&name).ok_or_else(SnsError::no_topic)?;
        check_value(attr, value, meta.fifo())?;
        if attr == "ArchivePolicy" && !archive::active(&meta) {
            meta.archive_since_ms = switchboard_api::wall_ms();
        }
        meta.attributes.insert(attr.to_string(), value.to_string());
        self.apply_archive(&name, &meta)?;
        self.put_topic(&name, Some(&meta)).await
    }

    /// The policy AWS gives a new topic: its owner may do everything.
    pub(super) fn default_policy(&self, arn: &str) -> String {
        let acct = &self.cfg.account_id;
        serde_json::json!({
            "Version": "2008-10-17",
            "Id": "__default_policy_ID",
            "Statement": [{
                "Effect": "Allow",
                "Sid": "__default_statement_ID",
                "Principal": {"AWS": "*"},
                "Action": ["SNS:GetTopicAttributes", "SNS:SetTopicAttributes",
                    "SNS:AddPermission", "SNS:RemovePermission", "SNS:DeleteTopic",
                    "SNS:Subscribe", "SNS:ListSubscriptionsByTopic", "SNS:Publish"],
                "Resource": arn,
                "Condition": {"StringEquals": {"AWS:SourceOwner": acct}},
            }],
        })
        .to_string()
    }

    /// The topic a tagging action's ResourceArn names.
    fn tagged(&self, p: &Params) -> Result<(String, TopicMeta), SnsError> {
        let arn = p.req("ResourceArn")?;
        let missing = || SnsError::resource_not_found("Resource does not exist");
        let name = self.topic_of(arn).map_err(|_| missing())?;
        let meta = self.topic(&name).ok_or_else(missing)?;
        Ok((name, meta))
    }

    pub(super) async fn tag_resource(&self, p: &Params) -> Result<Out, SnsError> {
        let (name, mut meta) = self.tagged(p)?;
        meta.tags.extend(p.tags("Tags")?);
        if meta.tags.len() > MAX_TAGS {
            return Err(SnsError::bad("Tags Reason: too many tags"));
        }
        self.put_topic(&name, Some(&meta)).await?;
        Ok(Out::default())
    }

    pub(super) async fn untag_resource(&self, p: &Params) -> Result<Out, SnsError> {
        let (name, mut meta) = self.tagged(p)?;
        for k in p.list("TagKeys") {
            meta.tags.remove(&k);
        }
        self.put_topic(&name, Some(&meta)).await?;
        Ok(Out::default())
    }

    pub(super) fn list_tags_for_resource(&self, p: &Params) -> Result<Out, SnsError> {
        let (_, meta) = self.tagged(p)?;
        let mut out = Out::default();
        out.open("Tags");
        for (k, v) in &meta.tags {
            out.open("member")
                .el("Key", k)
                .el("Value", v)
                .close("member");
        }
        out.close("Tags");
        Ok(out)
    }
}
