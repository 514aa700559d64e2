//! Subscribe, Unsubscribe, ListSubscriptions(ByTopic), Get/SetSubscriptionAttributes.
//! An `sqs` subscription is confirmed at once (as AWS does for SQS endpoints) and is
//! a binding of the queue to the topic's exchange, carrying the filter policy. An
//! `http`, `https`, `email` or `email-json` one waits for its confirmation
//! (`confirm.rs`), then is the same with a queue of its own.

use super::meta::SubMeta;
use super::notification::filter_args;
use super::xml::Out;
use super::{Params, Sns, SnsError, core_error, delivery, page, policy};
use crate::sqs::Ctx;
use std::collections::BTreeMap;

/// Subscription attributes a client may set.
const SETTABLE: &[&str] = &[
    "RawMessageDelivery",
    "FilterPolicy",
    "FilterPolicyScope",
    "DeliveryPolicy",
    "RedrivePolicy",
    "SubscriptionRoleArn",
    "ReplayPolicy",
];

/// Protocols AWS has that this broker does not deliver to.
const LATER: &[&str] = &["sms", "application", "lambda", "firehose"];

/// Protocols delivered by a worker after the endpoint confirms.
const PUSHED: &[&str] = &["http", "https", "email", "email-json"];

/// Checks one attribute as Subscribe and SetSubscriptionAttributes take it.
pub(super) fn check_attribute(name: &str, value: &str) -> Result<(), SnsError> {
    if !SETTABLE.contains(&name) {
        return Err(SnsError::bad(format!("AttributeName: {name}")));
    }
    match name {
        "RawMessageDelivery"
            if !matches!(value.to_ascii_lowercase().as_str(), "true" | "false") =>
        {
            Err(SnsError::bad(
                "RawMessageDelivery: Invalid value [{value}]. Must be true or false."
                    .replace("{value}", value),
            ))
        }
        "FilterPolicyScope" if !matches!(value, "MessageAttributes" | "MessageBody") => {
            Err(SnsError::bad(
                "FilterPolicyScope: Invalid filter policy scope, please specify MessageAttributes or MessageBody",
            ))
        }
        "DeliveryPolicy" if !value.is_empty() => {
            policy::check_subscription(value).map_err(SnsError::bad)
        }
        "RedrivePolicy"
            if !value.is_empty()
                && !delivery::dead_letter_arn(value)
                    .is_some_and(|a| a.starts_with("arn:aws:sqs:")) =>
        {
            Err(SnsError::bad(
                "RedrivePolicy: deadLetterTargetArn must be an SQS queue ARN",
            ))
        }
        "ReplayPolicy" if !value.is_empty() => {
            super::archive::check_replay_policy(value).map(|_| ())
        }
        "FilterPolicy"
            if !value.is_empty()
                && !serde_json::from_str::<serde_json::Value>(value)
                    .is_ok_and(|v| v.is_object()) =>
        {
            Err(SnsError::bad("FilterPolicy: failed to parse JSON."))
        }
        _ => Ok(()),
    }
}

impl Sns {
    pub(super) async fn subscribe(&self, p: &Params, ctx: &Ctx) -> Result<Out, SnsError> {
        let topic = self.topic_of(p.req("TopicArn")?)?;
        let protocol = p.req("Protocol")?;
        if LATER.contains(&protocol) {
            return Err(SnsError::bad(format!(
                "Amazon SNS does not support this protocol string: {protocol} protocol not supported"
            )));
        }
        if protocol != "sqs" && !PUSHED.contains(&protocol) {
            return Err(SnsError::bad(format!(
                "Amazon SNS does not support this protocol string: {protocol}"
            )));
        }
        let endpoint = p.req("Endpoint")?;
        let email = matches!(protocol, "email" | "email-json");
        if email {
            self.check_email_endpoint(endpoint)?;
        }
        let attributes = p.map("Attributes", "key", "value")?;
        for (k, v) in &attributes {
            check_attribute(k, v)?;
            if email {
                super::email::check_attribute(protocol, k)?;
            }
        }
        if PUSHED.contains(&protocol) {
            let sub = self
                .subscribe_pushed(&topic, protocol, endpoint, attributes, ctx)
                .await?;
            let show = !sub.pending
                || p.get("ReturnSubscriptionArn")
                    .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            let arn = if show {
                self.sub_arn(&sub.topic, &sub.id)
            } else {
                "pending confirmation".to_string()
            };
            let mut out = Out::default();
            out.el("SubscriptionArn", &arn);
            return Ok(out);
        }
        let queue = self
            .sqs
            .name_from_arn(endpoint)
            .filter(|q| self.broker.queue_exists(&self.cfg.vhost, q))
            .ok_or_else(|| SnsError::bad("SQS endpoint ARN"))?;
        self.check_sqs_subscription(&topic, endpoint, &attributes)?;
        // Subscribing the same endpoint again answers the existing subscription.
        let sub = match self
            .subs(Some(&topic))
            .into_iter()
            .find(|s| s.protocol == protocol && s.endpoint == endpoint)
        {
            Some(s) => s,
            None => {
                let sub = SubMeta {
                    topic: topic.clone(),
                    id: uuid::Uuid::new_v4().to_string(),
                    protocol: protocol.to_string(),
                    endpoint: endpoint.to_string(),
                    queue,
                    attributes,
                    authenticated: true,
                    ..SubMeta::default()
                };
                self.bind(&sub)?;
                self.put_sub(&sub, true).await?;
                self.start_replay(&sub).await?;
                sub
            }
        };
        let mut out = Out::default();
        out.el("SubscriptionArn", &self.sub_arn(&sub.topic, &sub.id));
        Ok(out)
    }

    pub(super) fn bind(&self, sub: &SubMeta) -> Result<(), SnsError> {
        self.broker
            .bind_queue(
                &self.cfg.vhost,
                &sub.queue,
                &Sns::exchange(&sub.topic),
                "",
                &filter_args(&sub.attributes),
                0,
            )
            .map_err(|e| match e.kind() {
                // The core refuses a bad filter policy with AWS's own sentence.
                switchboard_api::ErrorKind::InvalidArgument
                | switchboard_api::ErrorKind::PreconditionFailed => {
                    SnsError::bad(format!("FilterPolicy: {e}"))
                }
                _ => core_error(e),
            })
    }

    /// Removes a subscription's binding; a queue or topic already gone is fine.
    pub(super) fn unbind(&self, sub: &SubMeta) {
        if !sub.bound() {
            return;
        }
        let r = self.broker.unbind_queue(
            &self.cfg.vhost,
            &sub.queue,
            &Sns::exchange(&sub.topic),
            "",
            &filter_args(&sub.attributes),
            0,
        );
        if let Err(e) = r {
            tracing::debug!(queue = %sub.queue, topic = %sub.topic, "SNS unbind: {e}");
        }
    }

    fn find_sub(&self, arn: &str) -> Result<SubMeta, SnsError> {
        self.sub_of(arn)
            .and_then(|(t, id)| self.sub(&t, &id))
            .ok_or_else(|| SnsError::not_found("Subscription does not exist"))
    }

    pub(super) async fn unsubscribe(&self, p: &Params, ctx: &Ctx) -> Result<(), SnsError> {
        let arn = p.req("SubscriptionArn")?;
        if self.sub_of(arn).is_none() {
            return Err(SnsError::bad("SubscriptionArn"));
        }
        // Unsubscribing twice succeeds, as on AWS.
        let Ok(sub) = self.find_sub(arn) else {
            return Ok(());
        };
        // The UnsubscribeURL's GET is unsigned; a subscription confirmed with
        // AuthenticateOnUnsubscribe takes signed requests only.
        if !ctx.signed && sub.authenticate_on_unsubscribe {
            return Err(SnsError::authorization_error(
                "Unsubscribe of this subscription must be authenticated",
            ));
        }
        self.remove_sub(&sub).await?;
        if sub.is_http() && !sub.pending {
            self.send_confirmation(&sub, "UnsubscribeConfirmation");
        }
        Ok(())
    }

    /// Ends a subscription: no more deliveries, its record gone.
    pub(super) async fn remove_sub(&self, sub: &SubMeta) -> Result<(), SnsError> {
        self.unbind(sub);
        self.deactivate(sub);
        self.forget_replay(sub).await?;
        self.put_sub(sub, false).await
    }

    /// The subscriptions of one topic (`Ok`), or of every topic of a region (`Err`).
    pub(super) fn list_subscriptions(
        &self,
        p: &Params,
        scope: Result<&str, &str>,
    ) -> Result<Out, SnsError> {
        let mut subs: Vec<(String, SubMeta)> = self
            .subs(scope.ok())
            .into_iter()
            .filter(|s| scope.is_ok() || Err(self.sqs.split_core(&s.topic).0) == scope)
            .map(|s| (self.sub_arn(&s.topic, &s.id), s))
            .collect();
        subs.sort_by(|a, b| a.0.cmp(&b.0));
        let (items, next) = page(&subs, |(arn, _)| arn.as_str(), p.get("NextToken"));
        // AWS lists a pending subscription without its ARN.
        let shown = |arn: &str, s: &SubMeta| {
            if s.pending {
                "PendingConfirmation".to_string()
            } else {
                arn.to_string()
            }
        };
        let mut out = Out::default();
        out.open("Subscriptions");
        for (arn, s) in items {
            out.open("member")
                .el("SubscriptionArn", &shown(arn, s))
                .el("Owner", &self.cfg.account_id)
                .el("Protocol", &s.protocol)
                .el("Endpoint", &s.endpoint)
                .el("TopicArn", &self.topic_arn(&s.topic))
                .close("member");
        }
        out.close("Subscriptions");
        if let Some(n) = next {
            out.el("NextToken", &n);
        }
        Ok(out)
    }

    pub(super) fn get_subscription_attributes(&self, p: &Params) -> Result<Out, SnsError> {
        let arn = p.req("SubscriptionArn")?;
        let sub = self.find_sub(arn)?;
        let mut attrs: BTreeMap<&str, String> = BTreeMap::new();
        attrs.insert("SubscriptionArn", arn.to_string());
        attrs.insert("TopicArn", self.topic_arn(&sub.topic));
        attrs.insert("Owner", self.cfg.account_id.clone());
        attrs.insert("Protocol", sub.protocol.clone());
        attrs.insert("Endpoint", sub.endpoint.clone());
        attrs.insert(
            "ConfirmationWasAuthenticated",
            sub.authenticated.to_string(),
        );
        attrs.insert("PendingConfirmation", sub.pending.to_string());
        if sub.is_http() {
            let topic_policy = self
                .topic(&sub.topic)
                .and_then(|t| t.attributes.get("DeliveryPolicy").cloned());
            let effective = policy::effective(
                topic_policy.as_deref(),
                sub.attributes.get("DeliveryPolicy").map(String::as_str),
            );
            attrs.insert("EffectiveDeliveryPolicy", effective.to_json());
        }
        attrs.insert("RawMessageDelivery", sub.raw().to_string());
        if let Some(status) = self.replay_status(&sub) {
            attrs.insert("ReplayStatus", status);
        }
        attrs.insert(
            "SubscriptionPrincipal",
            format!("arn:aws:iam::{}:user/switchboard", self.cfg.account_id),
        );
        for (k, v) in &sub.attributes {
            if k != "RawMessageDelivery" {
                attrs.insert(k, v.clone());
            }
        }
        if sub.attributes.contains_key("FilterPolicy") && !attrs.contains_key("FilterPolicyScope") {
            attrs.insert("FilterPolicyScope", "MessageAttributes".into());
        }
        let mut out = Out::default();
        out.entries("Attributes", attrs.iter().map(|(k, v)| (*k, v.as_str())));
        Ok(out)
    }

    pub(super) async fn set_subscription_attributes(&self, p: &Params) -> Result<(), SnsError> {
        let mut sub = self.find_sub(p.req("SubscriptionArn")?)?;
        let name = p.req("AttributeName")?;
        let value = p.get("AttributeValue").unwrap_or("");
        check_attribute(name, value)?;
        if sub.is_email() {
            super::email::check_attribute(&sub.protocol, name)?;
        }
        let old = sub.clone();
        if name == "FilterPolicy" && value.is_empty() {
            sub.attributes.remove(name);
        } else {
            sub.attributes.insert(name.to_string(), value.to_string());
        }
        // A new filter is a new binding: bind it first, so a refused policy leaves
        // the old one in place.
        if sub.bound() && filter_args(&old.attributes) != filter_args(&sub.attributes) {
            self.bind(&sub)?;
            self.unbind(&old);
        }
        // A new ReplayPolicy starts a replay (refused, nothing is stored).
        if name == "ReplayPolicy" {
            self.start_replay(&sub).await?;
        }
        self.put_sub(&sub, true).await
    }
}
