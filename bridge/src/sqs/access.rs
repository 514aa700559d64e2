//! Which permission each SQS action needs on its queue, in RabbitMQ's model (the
//! broker's users and their configure/write/read patterns over queue names):
//! create, delete and change a queue = configure; send = write; receive, delete a
//! message, change its visibility, purge = read; reading a queue's URL, attributes
//! or tags = any of the three. Checked before the queue is looked up, so a denial
//! never tells whether the queue exists.

use super::error::SqsError;
use super::input::Members;
use super::{Ctx, Sqs};
use switchboard_api::{Access, Entity};

impl Sqs {
    pub(crate) fn authorize(
        &self,
        action: &str,
        i: &dyn Members,
        ctx: &Ctx,
    ) -> Result<(), SqsError> {
        let Some(user) = &ctx.user else {
            return Ok(());
        };
        let vhost = &self.cfg.vhost;
        let scoped = self
            .broker
            .open_vhost(user, vhost)
            .map_err(|e| SqsError::access_denied(e.to_string()))?;
        use Access::*;
        let need: &[Access] = match action {
            "CreateQueue" | "DeleteQueue" | "SetQueueAttributes" | "TagQueue" | "UntagQueue"
            | "AddPermission" | "RemovePermission" => &[Configure],
            "SendMessage" | "SendMessageBatch" => &[Write],
            "ReceiveMessage"
            | "DeleteMessage"
            | "DeleteMessageBatch"
            | "ChangeMessageVisibility"
            | "ChangeMessageVisibilityBatch"
            | "PurgeQueue"
            | "StartMessageMoveTask" => &[Read],
            "GetQueueUrl"
            | "GetQueueAttributes"
            | "ListQueueTags"
            | "ListDeadLetterSourceQueues" => &[Configure, Write, Read],
            // ListQueues shows only what the user may see; the others name no queue.
            _ => return Ok(()),
        };
        let queue = match action {
            "CreateQueue" | "GetQueueUrl" => match i.member_str("QueueName") {
                Ok(Some(name)) => self.core_name(self.region(ctx), name),
                // The action itself reports what is wrong with its input.
                _ => return Ok(()),
            },
            "StartMessageMoveTask" => match i.member_str("SourceArn") {
                Ok(Some(arn)) => match self.name_from_arn(arn) {
                    Some(q) => q,
                    None => return Ok(()),
                },
                _ => return Ok(()),
            },
            _ => match self.queue_target(i, ctx) {
                Ok(q) => q,
                Err(_) => return Ok(()),
            },
        };
        let mut last = None;
        for a in need {
            match scoped.check(vhost, *a, Entity::Queue, &queue) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(SqsError::access_denied(
            last.map(|e| e.to_string()).unwrap_or_default(),
        ))
    }

    /// Whether ListQueues shows `core` to the request's user (some permission on it).
    pub(crate) fn visible(&self, ctx: &Ctx, core: &str) -> bool {
        let Some(user) = &ctx.user else {
            return true;
        };
        let vhost = &self.cfg.vhost;
        self.broker.open_vhost(user, vhost).is_ok_and(|b| {
            [Access::Configure, Access::Write, Access::Read]
                .into_iter()
                .any(|a| b.check(vhost, a, Entity::Queue, core).is_ok())
        })
    }
}
