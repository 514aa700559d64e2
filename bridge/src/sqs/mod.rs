//! Amazon SQS on the core. Every action takes the JSON protocol's input shape and
//! returns its output shape; `query` translates for the Query protocol.
//!
//! An SQS queue is a durable core queue in the configured vhost (`Config::vhost`),
//! so AMQP, MQTT and STOMP clients see the same messages. What SQS has and the core
//! does not (attributes such as VisibilityTimeout, tags, policy) is kept per queue in
//! the durable keyed store ([`meta`]); what the core has is set as queue arguments:
//! DelaySeconds → `x-delivery-delay`, MessageRetentionPeriod → `x-message-ttl`,
//! RedrivePolicy → dead-lettering to the target queue with `x-delivery-limit`, FIFO
//! → `x-ordering: grouped` with a 5-minute `x-dedup-window`. A standard queue is a
//! plain core queue, whose ordering serves message groups in turns (fair queues).
//! Queues of a region other than the configured one are core queues named
//! `<region>/<name>` (`region.rs`).

mod access;
mod attributes;
pub(crate) mod batch;
mod catalog;
pub(crate) mod convert;
pub mod digest;
pub mod error;
mod input;
pub(crate) mod meta;
mod move_task;
pub mod query;
mod queues;
mod receipt;
mod receive;
mod region;
pub mod reply;
mod send;
mod settle;
pub mod typed;

pub use error::SqsError;
pub use region::valid_region;
pub use reply::Output;

use crate::Config;
use meta::QueueMeta;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use switchboard_api::{Broker, BrokerError, ErrorKind, KeySpace, User};

/// Queue metadata and message move tasks, in the core's durable keyed store.
const SQS_SPACE: KeySpace = KeySpace::new("sqs");

/// A hook for messages an SNS topic delivered to a queue: SNS renders their body
/// (the notification envelope) for the subscription they came through. SQS holds
/// it without knowing SNS, so the two modules do not import each other.
pub trait Notifications: Send + Sync {
    /// The body `queue`'s receiver gets instead of the stored one (and then no
    /// message attributes, as on AWS); `None`: the message as stored.
    fn envelope(
        &self,
        queue: &str,
        message: &switchboard_api::Message,
        base_url: &str,
    ) -> Option<String>;

    /// Waits until [`Notifications::envelope`] can render these messages of
    /// `queue` cheaply (SNS's signing key may still be in the making, and signing
    /// is done here off the async threads); quick when none came from SNS.
    fn ready<'a>(
        &'a self,
        queue: &'a str,
        messages: &'a [&'a switchboard_api::Message],
    ) -> BoxFuture<'a>;
}

/// What [`Notifications::ready`] returns (the trait stays object-safe).
pub type BoxFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;

/// What a request brings besides its parameters.
pub struct Ctx {
    /// `http://host:port` for the queue URLs in replies.
    pub base_url: String,
    /// The signer (`None` when authentication is off).
    pub user: Option<User>,
    /// The request path: old SDKs send Query requests to the queue URL itself and
    /// leave `QueueUrl` out.
    pub path: String,
    /// The request carried a SigV4 signature (verified unless `auth = "none"`): an
    /// SNS ConfirmSubscription or Unsubscribe through a URL's GET does not.
    pub signed: bool,
    /// The SigV4 credential scope's region; `None` for an unsigned request, which
    /// acts in the configured region (or the one its queue URL names).
    pub region: Option<String>,
}

/// The SQS service: a cheap handle on the broker plus the little state SQS keeps
/// outside the core. The std mutex is never held across an `.await`.
pub struct Sqs {
    broker: Arc<dyn Broker>,
    cfg: Config,
    state: Mutex<State>,
    me: std::sync::Weak<Sqs>,
    /// Weak: SNS holds the SQS service, not the other way round.
    notifications: std::sync::OnceLock<std::sync::Weak<dyn Notifications>>,
}

#[derive(Default)]
struct State {
    /// Parsed metadata per queue, a cache of the keyed store.
    meta: HashMap<String, Arc<QueueMeta>>,
    /// Last PurgeQueue per queue (one per 60 s).
    purged: HashMap<String, Instant>,
    /// FIFO sends seen within the deduplication window: the reply a duplicate gets.
    dedup: send::DedupCache,
    /// FIFO ReceiveRequestAttemptId → the reply a retried receive gets.
    attempts: receive::AttemptCache,
    /// Messages deleted lately, so that a later call with their receipt handle can
    /// tell "deleted" from "visible again".
    deleted: settle::Deleted,
    /// Last SequenceNumber handed out (FIFO).
    last_sequence: u128,
    move_tasks: move_task::Tasks,
}

impl Sqs {
    pub fn new(broker: Arc<dyn Broker>, cfg: Config) -> Arc<Sqs> {
        let sqs = Arc::new_cyclic(|me| Sqs {
            broker,
            cfg,
            state: Mutex::default(),
            me: me.clone(),
            notifications: std::sync::OnceLock::new(),
        });
        move_task::resume(&sqs);
        sqs
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.broker
    }

    /// Installs the SNS hook (once; later calls are ignored).
    pub fn set_notifications(&self, n: Arc<dyn Notifications>) {
        let _ = self.notifications.set(Arc::downgrade(&n));
    }

    fn notifications(&self) -> Option<Arc<dyn Notifications>> {
        self.notifications.get().and_then(std::sync::Weak::upgrade)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one action.
    pub async fn call(
        &self,
        action: &str,
        input: Input<'_>,
        ctx: &Ctx,
    ) -> Result<Output, SqsError> {
        let tree = match &input {
            Input::Typed(r) => {
                self.authorize(action, r, ctx)?;
                return self.call_typed(action, r, ctx).await;
            }
            Input::Tree(v) => v,
        };
        self.authorize(action, tree, ctx)?;
        if typed::is_hot(action) {
            let r = typed::Request::from_value(tree)?;
            return self.call_typed(action, &r, ctx).await;
        }
        let i = tree;
        let out = match action {
            "CreateQueue" => self.create_queue(i, ctx).await,
            "GetQueueUrl" => self.get_queue_url(i, ctx),
            "ListQueues" => self.list_queues(i, ctx),
            "DeleteQueue" => self.delete_queue(i, ctx).await,
            "PurgeQueue" => self.purge_queue(i, ctx),
            "GetQueueAttributes" => self.get_queue_attributes(i, ctx),
            "SetQueueAttributes" => self.set_queue_attributes(i, ctx).await,
            "TagQueue" => self.tag_queue(i, ctx).await,
            "UntagQueue" => self.untag_queue(i, ctx).await,
            "ListQueueTags" => self.list_queue_tags(i, ctx),
            "AddPermission" => self.add_permission(i, ctx).await,
            "RemovePermission" => self.remove_permission(i, ctx).await,
            "ListDeadLetterSourceQueues" => self.list_dead_letter_source_queues(i, ctx),
            "StartMessageMoveTask" => self.start_message_move_task(i, ctx).await,
            "ListMessageMoveTasks" => self.list_message_move_tasks(i, ctx),
            "CancelMessageMoveTask" => self.cancel_message_move_task(i, ctx).await,
            other => Err(invalid_action(other)),
        };
        out.map(Output::Tree)
    }

    /// The actions [`typed::is_hot`] names.
    async fn call_typed(
        &self,
        action: &str,
        i: &typed::Request<'_>,
        ctx: &Ctx,
    ) -> Result<Output, SqsError> {
        match action {
            "SendMessage" => self.send_message(i, ctx).await,
            "SendMessageBatch" => self.send_message_batch(i, ctx).await,
            "ReceiveMessage" => self.receive_message(i, ctx).await,
            "DeleteMessage" => self.delete_message(i, ctx).await,
            "DeleteMessageBatch" => self.delete_message_batch(i, ctx).await,
            "ChangeMessageVisibility" => self.change_message_visibility(i, ctx).await,
            "ChangeMessageVisibilityBatch" => self.change_message_visibility_batch(i, ctx).await,
            other => Err(invalid_action(other)),
        }
    }

    /// Waits until the journal holds everything up to `lsn` on disk: the point at
    /// which SQS may answer 200.
    pub(crate) async fn durable(&self, lsn: u64) -> Result<(), SqsError> {
        if lsn == 0 {
            return Ok(());
        }
        let Some(mut w) = self.broker.durable_watch() else {
            return Ok(());
        };
        while *w.borrow_and_update() < lsn {
            if w.changed().await.is_err() {
                return Err(SqsError::service_unavailable("the store is shutting down"));
            }
        }
        Ok(())
    }
}

/// An action's input: the hot actions' (from the JSON protocol) read into a
/// [`typed::Request`], the others' a `serde_json::Value` tree.
// One per request, on the stack: boxing the large variant would be the very
// allocation it saves.
#[allow(clippy::large_enum_variant)]
pub enum Input<'a> {
    Tree(serde_json::Value),
    Typed(typed::Request<'a>),
}

impl<'a> Input<'a> {
    /// A JSON protocol body for `action`; an error when it is not a JSON object.
    pub fn from_json(action: &str, body: &'a [u8]) -> Result<Input<'a>, SqsError> {
        if body.is_empty() {
            return Ok(Input::Tree(serde_json::Value::Object(Default::default())));
        }
        if typed::is_hot(action)
            && let Some(r) = typed::Request::from_json(body)
        {
            return Ok(Input::Typed(r));
        }
        match serde_json::from_slice(body) {
            Ok(v @ serde_json::Value::Object(_)) => Ok(Input::Tree(v)),
            _ => Err(SqsError::serialization(
                "the request body is not a JSON object",
            )),
        }
    }
}

fn invalid_action(action: &str) -> SqsError {
    SqsError::invalid_action(format!(
        "The action {action} is not valid for this endpoint."
    ))
}

fn no_queue() -> SqsError {
    SqsError::queue_does_not_exist("The specified queue does not exist.")
}

/// A core error where SQS has no better word for it: AWS's code for its kind, and
/// the core's plain sentence of the facts (never another protocol's reply text).
fn core_error(e: BrokerError) -> SqsError {
    match e.kind() {
        ErrorKind::NotFound => no_queue(),
        ErrorKind::PreconditionFailed | ErrorKind::NotAllowed | ErrorKind::InvalidArgument => {
            SqsError::invalid_parameter_value(e.to_string())
        }
        ErrorKind::AccessRefused | ErrorKind::ResourceLocked => {
            SqsError::access_denied(e.to_string())
        }
        ErrorKind::ResourceError | ErrorKind::Internal => SqsError::internal(e.to_string()),
    }
}
