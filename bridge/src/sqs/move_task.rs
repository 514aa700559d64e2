//! Message move tasks (StartMessageMoveTask, ListMessageMoveTasks,
//! CancelMessageMoveTask): moving messages out of a dead-letter queue, back to the
//! queues they died in or to a chosen destination.
//!
//! A task is a background loop that leases a batch from the source, republishes
//! each message, waits for the copies to be durable and only then deletes the
//! originals: a crash in between leaves a message in both places, never in none.
//! Its record lives in the keyed store (`task/<handle>`), so a running task resumes
//! after a restart.

use super::convert::TYPES_HEADER;
use super::{Ctx, Sqs, SqsError, input};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use switchboard_api::{Message, PublishOptions};

const PREFIX: &str = "task/";
/// How long a batch stays leased while it is being moved.
const LEASE: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Task {
    handle: String,
    source_arn: String,
    destination_arn: Option<String>,
    rate: Option<i64>,
    /// RUNNING, COMPLETED, CANCELLING, CANCELLED, FAILED.
    status: String,
    moved: u64,
    to_move: u64,
    started_ms: u64,
    failure: Option<String>,
}

#[derive(Default)]
pub struct Tasks {
    tasks: HashMap<String, Task>,
    cancel: HashMap<String, Arc<AtomicBool>>,
}

/// Restarts the tasks that were running when the broker stopped.
pub fn resume(sqs: &Arc<Sqs>) {
    let found = sqs
        .broker
        .keyed_scan(&sqs.cfg.vhost, super::SQS_SPACE, &mut |k| {
            k.starts_with(PREFIX)
        });
    let mut running = Vec::new();
    {
        let mut st = sqs.lock();
        for (_, m) in found {
            let Ok(t) = serde_json::from_slice::<Task>(&m.body) else {
                continue;
            };
            if t.status == "RUNNING" || t.status == "CANCELLING" {
                let flag = Arc::new(AtomicBool::new(t.status == "CANCELLING"));
                st.move_tasks.cancel.insert(t.handle.clone(), flag.clone());
                running.push((t.handle.clone(), flag));
            }
            st.move_tasks.tasks.insert(t.handle.clone(), t);
        }
    }
    if running.is_empty() {
        return;
    }
    // Needs a runtime: the server builds the service inside one.
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        for (handle, flag) in running {
            let sqs = sqs.clone();
            rt.spawn(async move { sqs.run_task(handle, flag).await });
        }
    }
}

impl Sqs {
    fn store_task(&self, t: &Task) -> u64 {
        let Ok(value) = super::meta::json_record(t) else {
            return 0;
        };
        let key = format!("{PREFIX}{}", t.handle);
        self.broker
            .keyed_put(&self.cfg.vhost, super::SQS_SPACE, &key, Some(value))
            .unwrap_or(0)
    }

    fn update_task(&self, handle: &str, f: impl FnOnce(&mut Task)) -> Option<Task> {
        let t = {
            let mut st = self.lock();
            let t = st.move_tasks.tasks.get_mut(handle)?;
            f(t);
            t.clone()
        };
        self.store_task(&t);
        Some(t)
    }

    pub(super) async fn start_message_move_task(
        &self,
        i: &Value,
        _ctx: &Ctx,
    ) -> Result<Value, SqsError> {
        let source_arn = input::req_str(i, "SourceArn")?;
        let destination_arn = input::opt_str(i, "DestinationArn")?;
        let rate = input::int_in(i, "MaxNumberOfMessagesPerSecond", 1, 500)?;
        let source = self
            .name_from_arn(source_arn)
            .filter(|n| self.broker.queue_exists(&self.cfg.vhost, n))
            .ok_or_else(|| {
                SqsError::resource_not_found(
                    "The resource that you specified for the SourceArn parameter doesn't exist.",
                )
            })?;
        if self.dead_letter_sources(&source).is_empty() {
            return Err(SqsError::invalid_parameter_value(
                "Source queue must be configured as a Dead Letter Queue.",
            ));
        }
        if let Some(d) = destination_arn
            && !self
                .name_from_arn(d)
                .is_some_and(|n| self.broker.queue_exists(&self.cfg.vhost, &n))
        {
            return Err(SqsError::resource_not_found(
                "The resource that you specified for the DestinationArn parameter doesn't exist.",
            ));
        }
        let to_move = self
            .broker
            .queue_handle(&self.cfg.vhost, &source)
            .map_or(0, |q| u64::from(q.stats().ready));
        let handle = STANDARD.encode(
            json!({"taskId": uuid::Uuid::new_v4().to_string(), "sourceArn": source_arn})
                .to_string(),
        );
        let task = Task {
            handle: handle.clone(),
            source_arn: source_arn.to_string(),
            destination_arn: destination_arn.map(str::to_string),
            rate,
            status: "RUNNING".into(),
            moved: 0,
            to_move,
            started_ms: switchboard_api::wall_ms(),
            failure: None,
        };
        let flag = Arc::new(AtomicBool::new(false));
        {
            let mut st = self.lock();
            let busy = st.move_tasks.tasks.values().any(|t| {
                t.source_arn == source_arn && (t.status == "RUNNING" || t.status == "CANCELLING")
            });
            if busy {
                return Err(SqsError::invalid_parameter_value(
                    "There is already a task running. Only one active task is allowed for a source queue arn at a given time.",
                ));
            }
            st.move_tasks.tasks.insert(handle.clone(), task.clone());
            st.move_tasks.cancel.insert(handle.clone(), flag.clone());
        }
        let lsn = self.store_task(&task);
        self.durable(lsn).await?;
        if let Some(me) = self.me.upgrade() {
            let h = handle.clone();
            tokio::spawn(async move { me.run_task(h, flag).await });
        }
        Ok(json!({ "TaskHandle": handle }))
    }

    pub(super) fn list_message_move_tasks(&self, i: &Value, _ctx: &Ctx) -> Result<Value, SqsError> {
        let source_arn = input::req_str(i, "SourceArn")?;
        let max = input::int_in(i, "MaxResults", 1, 10)?.unwrap_or(1) as usize;
        if self
            .name_from_arn(source_arn)
            .is_none_or(|n| !self.broker.queue_exists(&self.cfg.vhost, &n))
        {
            return Err(SqsError::resource_not_found(
                "The resource that you specified for the SourceArn parameter doesn't exist.",
            ));
        }
        let mut tasks: Vec<Task> = self
            .lock()
            .move_tasks
            .tasks
            .values()
            .filter(|t| t.source_arn == source_arn)
            .cloned()
            .collect();
        tasks.sort_by_key(|t| std::cmp::Reverse(t.started_ms));
        let results: Vec<Value> = tasks.iter().take(max).map(task_json).collect();
        Ok(json!({ "Results": results }))
    }

    pub(super) async fn cancel_message_move_task(
        &self,
        i: &Value,
        _ctx: &Ctx,
    ) -> Result<Value, SqsError> {
        let handle = input::req_str(i, "TaskHandle")?;
        let known = self.lock().move_tasks.tasks.contains_key(handle);
        if !known {
            return Err(SqsError::invalid_parameter_value(format!(
                "Value {handle} for parameter TaskHandle is invalid."
            )));
        }
        let flag = self.lock().move_tasks.cancel.get(handle).cloned();
        let Some(flag) = flag else {
            return Err(SqsError::resource_not_found("Task does not exist."));
        };
        let t = self
            .update_task(handle, |t| {
                if t.status == "RUNNING" {
                    t.status = "CANCELLING".into();
                }
            })
            .ok_or_else(|| SqsError::resource_not_found("Task does not exist."))?;
        if t.status != "CANCELLING" {
            return Err(SqsError::unsupported_operation(format!(
                "The task is {} and cannot be cancelled.",
                t.status
            )));
        }
        flag.store(true, Ordering::Release);
        Ok(json!({ "ApproximateNumberOfMessagesMoved": t.moved }))
    }

    /// Stops the tasks that read from or write to a deleted queue.
    pub(super) fn cancel_move_tasks_of(&self, queue: &str) {
        let arn = self.queue_arn(queue);
        let st = self.lock();
        for (h, t) in &st.move_tasks.tasks {
            if (t.source_arn == arn || t.destination_arn.as_deref() == Some(arn.as_str()))
                && let Some(f) = st.move_tasks.cancel.get(h)
            {
                f.store(true, Ordering::Release);
            }
        }
    }

    async fn run_task(self: Arc<Self>, handle: String, cancel: Arc<AtomicBool>) {
        let Some(task) = self.lock().move_tasks.tasks.get(&handle).cloned() else {
            return;
        };
        let Some(source) = self.name_from_arn(&task.source_arn) else {
            return;
        };
        let fixed = task
            .destination_arn
            .as_deref()
            .and_then(|d| self.name_from_arn(d));
        let outcome = loop {
            if cancel.load(Ordering::Acquire) {
                break Ok("CANCELLED");
            }
            let started = tokio::time::Instant::now();
            // A slow task takes no more per batch than it may move per second.
            let batch = task.rate.map_or(10, |r| r.clamp(1, 10) as usize);
            let got = match self.broker.receive(&self.cfg.vhost, &source, batch, LEASE) {
                Ok(g) => g,
                Err(e) => break Err(e.to_string()),
            };
            if got.is_empty() {
                break Ok("COMPLETED");
            }
            let mut lsn = 0;
            let mut failed = None;
            for d in &got {
                let dest = fixed.clone().or_else(|| dead_letter_origin(&d.message));
                let Some(dest) = dest.filter(|q| self.broker.queue_exists(&self.cfg.vhost, q))
                else {
                    failed = Some("The destination queue of a message does not exist.".to_string());
                    break;
                };
                let mut m = (*d.message).clone();
                m.exchange = String::new();
                m.routing_key = dest;
                m.delay_ms = Some(0);
                if let Some(h) = m.properties.headers.as_mut() {
                    h.retain(|k, _| {
                        k == TYPES_HEADER
                            || !(k.starts_with("x-death")
                                || k.starts_with("x-first-death")
                                || k.starts_with("x-last-death"))
                    });
                }
                match self
                    .broker
                    .publish(&self.cfg.vhost, m, PublishOptions::default())
                {
                    Ok(o) => lsn = lsn.max(o.lsn),
                    Err(e) => {
                        failed = Some(e.to_string());
                        break;
                    }
                }
            }
            if let Some(f) = failed {
                for d in &got {
                    let _ = d
                        .queue
                        .set_visibility(d.seq, Some(d.delivery_count), Duration::ZERO);
                }
                break Err(f);
            }
            if self.durable(lsn).await.is_err() {
                return;
            }
            let mut settled = 0;
            for d in &got {
                if let Some(l) = d.queue.settle_leased(d.seq, d.delivery_count) {
                    settled = settled.max(l);
                }
            }
            let n = got.len() as u64;
            self.update_task(&handle, |t| t.moved += n);
            if let Some(rate) = task.rate {
                let budget = Duration::from_secs_f64(n as f64 / rate as f64);
                tokio::time::sleep_until(started + budget).await;
            }
        };
        let lsn = {
            let t = self.update_task(&handle, |t| match outcome {
                Ok(status) => t.status = status.into(),
                Err(why) => {
                    t.status = "FAILED".into();
                    t.failure = Some(why);
                }
            });
            self.lock().move_tasks.cancel.remove(&handle);
            t.map_or(0, |t| self.store_task(&t))
        };
        let _ = self.durable(lsn).await;
    }
}

/// The queue a dead-lettered message died in (latest `x-death` entry).
fn dead_letter_origin(m: &Message) -> Option<String> {
    let h = m.properties.headers.as_ref()?;
    if let Some(q) = h.get("x-last-death-queue").and_then(|v| v.as_str()) {
        return Some(q.to_string());
    }
    match h.get("x-death")? {
        switchboard_api::Value::Array(a) => match a.first()? {
            switchboard_api::Value::Table(t) => t.get("queue")?.as_str().map(str::to_string),
            _ => None,
        },
        _ => None,
    }
}

fn task_json(t: &Task) -> Value {
    let mut v = json!({
        "Status": t.status,
        "SourceArn": t.source_arn,
        "ApproximateNumberOfMessagesMoved": t.moved,
        "ApproximateNumberOfMessagesToMove": t.to_move,
        "StartedTimestamp": t.started_ms,
    });
    if t.status == "RUNNING" {
        v["TaskHandle"] = json!(t.handle);
    }
    if let Some(d) = &t.destination_arn {
        v["DestinationArn"] = json!(d);
    }
    if let Some(r) = t.rate {
        v["MaxNumberOfMessagesPerSecond"] = json!(r);
    }
    if let Some(f) = &t.failure {
        v["FailureReason"] = json!(f);
    }
    v
}
