//! Which permission each SNS action needs on its topic's exchange (`sns.<topic>`),
//! in RabbitMQ's model: create, delete and change a topic = configure; publish =
//! write; subscribe = read (a subscription is a binding from the topic); reading
//! a topic's attributes or subscriptions = any of the three. Checked before the
//! topic is looked up, so a denial never tells whether it exists.

use super::{Params, Sns};
use crate::sqs::Ctx;
use switchboard_api::{Access, Entity};

use super::error::SnsError;

impl Sns {
    pub(super) fn authorize(&self, action: &str, p: &Params, ctx: &Ctx) -> Result<(), SnsError> {
        let Some(user) = &ctx.user else {
            return Ok(());
        };
        let vhost = &self.cfg.vhost;
        let scoped = self
            .broker
            .open_vhost(user, vhost)
            .map_err(|e| SnsError::authorization_error(e.to_string()))?;
        use Access::*;
        let (need, arn): (&[Access], Option<&str>) = match action {
            "CreateTopic" => {
                let Some(name) = p.get("Name") else {
                    return Ok(());
                };
                let topic = self.sqs.core_name(self.sqs.region(ctx), name);
                return check(&*scoped, vhost, &[Configure], &Self::exchange(&topic));
            }
            "DeleteTopic" | "SetTopicAttributes" | "AddPermission" | "RemovePermission" => {
                (&[Configure], p.get("TopicArn"))
            }
            "TagResource" | "UntagResource" => (&[Configure], p.get("ResourceArn")),
            "Publish" => (&[Write], p.get("TopicArn").or_else(|| p.get("TargetArn"))),
            "PublishBatch" => (&[Write], p.get("TopicArn")),
            "Subscribe" => (&[Read], p.get("TopicArn")),
            "GetTopicAttributes" | "ListSubscriptionsByTopic" => {
                (&[Configure, Write, Read], p.get("TopicArn"))
            }
            "ListTagsForResource" => (&[Configure, Write, Read], p.get("ResourceArn")),
            _ => return Ok(()),
        };
        // A malformed ARN is the action's own error to report.
        let Some((topic, _)) = arn.and_then(|a| self.arn_parts(a)) else {
            return Ok(());
        };
        check(&*scoped, vhost, need, &Self::exchange(&topic))
    }
}

fn check(
    b: &dyn switchboard_api::Broker,
    vhost: &str,
    need: &[Access],
    exchange: &str,
) -> Result<(), SnsError> {
    let mut last = None;
    for a in need {
        match b.check(vhost, *a, Entity::Exchange, exchange) {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(SnsError::authorization_error(
        last.map(|e| e.to_string()).unwrap_or_default(),
    ))
}
