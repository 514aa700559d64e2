//! `etcd:URL,…`: a lease and an election key in etcd (DESIGN.md §5), spoken through
//! etcd's v3 JSON gateway so that building needs no protoc.
//!
//! Two keys under the prefix:
//! - `<prefix>/leader` is put with the holder's lease, so it vanishes when the holder
//!   revokes it or stops renewing it. It is created only if absent, so its
//!   create_revision — the revision of the winning txn — is unique to one holder:
//!   that is the fencing token, and the guard of every write.
//! - `<prefix>/record` holds the `Holder` record and has no lease: the next holder
//!   must read what the previous one wrote after that one's leader key is gone.

mod http;

use super::{Holder, LockError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use http::{CallError, Gateway};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often a standby retries the election while the key is held. Polling costs a
/// read-only txn (no new revision); a watch over the gateway is a long-lived stream
/// that would need its own reconnect logic for no gain at this rate.
const POLL: Duration = Duration::from_millis(100);
/// How soon a failed renewal is retried (well within the renewal window).
const RENEW_RETRY: Duration = Duration::from_millis(100);

/// Where the lock stands, as `lost()` sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Held(i64),
    Lost(i64),
}

/// A granted lease and the task keeping it alive.
struct Session {
    lease: i64,
    /// Set by the renewer when it gives the lease up for lost.
    dead: Arc<AtomicBool>,
    renewer: JoinHandle<()>,
}

impl Drop for Session {
    /// A lease nobody renews expires by itself; dropping the session (or the whole
    /// lock, or a cancelled `acquire`) must therefore stop the renewals.
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

pub struct EtcdLock {
    gateway: Arc<Gateway>,
    leader_key: String,
    record_key: String,
    ttl: Duration,
    held: Mutex<Option<Session>>,
    revision: AtomicU64,
    phase: Arc<watch::Sender<Phase>>,
}

impl EtcdLock {
    pub fn new(endpoints: Vec<String>, prefix: String, ttl: Duration) -> EtcdLock {
        let prefix = prefix.trim_end_matches('/');
        // A request slower than a third of the TTL has eaten a renewal slot: better
        // to try the next endpoint.
        let attempt_timeout = (ttl / 3).clamp(Duration::from_millis(300), Duration::from_secs(5));
        EtcdLock {
            gateway: Arc::new(Gateway::new(endpoints, attempt_timeout)),
            leader_key: format!("{prefix}/leader"),
            record_key: format!("{prefix}/record"),
            ttl,
            held: Mutex::new(None),
            revision: AtomicU64::new(0),
            phase: Arc::new(watch::Sender::new(Phase::Idle)),
        }
    }

    fn held(&self) -> MutexGuard<'_, Option<Session>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until this node holds the election key; returns the previous record.
    /// Cancelling it is safe: the lease it took is no longer renewed and expires.
    pub async fn acquire(&self) -> Result<Holder, LockError> {
        let stale = {
            let mut held = self.held();
            if held
                .as_ref()
                .is_some_and(|s| !s.dead.load(Ordering::SeqCst))
            {
                return Err(LockError::Etcd(format!(
                    "{} is already held by this lock",
                    self.leader_key
                )));
            }
            held.take().map(|s| s.lease)
        };
        // A holding that was lost: `lost()` now waits for the next one, and the old
        // lease, if etcd still has it, must not keep the key from us until it expires.
        if let Some(lease) = stale {
            self.phase.send_replace(Phase::Idle);
            self.revoke(lease).await;
        }
        loop {
            let session = self.grant().await?;
            match self.campaign(&session).await {
                Ok(Some((revision, holder))) => {
                    let (lease, dead) = (session.lease, session.dead.clone());
                    self.revision.store(revision, Ordering::SeqCst);
                    *self.held() = Some(session);
                    self.phase.send_replace(Phase::Held(lease));
                    // The renewer marks `Lost` only over `Held`; had it given up just
                    // before that, nobody would: do it here (see `renew`).
                    if dead.load(Ordering::SeqCst) {
                        mark_lost(&self.phase, lease);
                    }
                    return Ok(holder);
                }
                // The lease expired while we waited (a long pause, etcd unreachable
                // for a TTL): campaign again with a new one.
                Ok(None) => continue,
                Err(e) => {
                    let lease = session.lease;
                    drop(session);
                    self.revoke(lease).await;
                    return Err(e);
                }
            }
        }
    }

    /// Grants a lease and starts renewing it.
    async fn grant(&self) -> Result<Session, LockError> {
        let secs = self.ttl.as_millis().div_ceil(1000).max(1) as i64;
        let sent = Instant::now();
        let answer = self
            .call("/v3/lease/grant", &json!({ "TTL": secs }))
            .await?;
        let (Some(lease), Some(granted)) = (int(&answer["ID"]), int(&answer["TTL"])) else {
            return Err(self.odd("/v3/lease/grant", &answer));
        };
        // etcd may raise a TTL to its minimum, never lower it; the lesser of the two
        // keeps the promise made by `ttl`.
        let window =
            (self.ttl.max(Duration::from_secs(1))).min(Duration::from_secs(granted.max(1) as u64));
        let dead = Arc::new(AtomicBool::new(false));
        let renewer = tokio::spawn(renew(
            self.gateway.clone(),
            lease,
            window,
            sent,
            dead.clone(),
            self.phase.clone(),
        ));
        Ok(Session {
            lease,
            dead,
            renewer,
        })
    }

    /// Tries the election until it is won (`Some((revision, previous record))`) or
    /// the session's lease is lost (`None`).
    async fn campaign(&self, session: &Session) -> Result<Option<(u64, Holder)>, LockError> {
        let leader = B64.encode(&self.leader_key);
        let record = B64.encode(&self.record_key);
        let placeholder = serde_json::to_vec(&Holder::default()).unwrap_or_default();
        let txn = json!({
            "compare": [{ "key": leader, "target": "CREATE", "result": "EQUAL",
                          "create_revision": "0" }],
            "success": [
                { "request_put": { "key": leader, "value": B64.encode(placeholder),
                                   "lease": session.lease.to_string() } },
                { "request_range": { "key": record } },
            ],
            "failure": [
                { "request_range": { "key": leader } },
                { "request_range": { "key": record } },
            ],
        });
        loop {
            if session.dead.load(Ordering::SeqCst) {
                return Ok(None);
            }
            let answer = match self.gateway.call("/v3/kv/txn", &txn).await {
                Err(e) if e.lease_not_found() => return Ok(None),
                other => other.map_err(|e| self.failed("/v3/kv/txn", e))?,
            };
            let won = answer["succeeded"].as_bool().unwrap_or(false);
            let revision = if won {
                int(&answer["header"]["revision"])
            } else {
                // A retry on another endpoint may find the key put by our own first
                // attempt, applied before its connection broke: that is a win too.
                first_kv(&answer, 0)
                    .filter(|kv| int(&kv["lease"]) == Some(session.lease))
                    .and_then(|kv| int(&kv["create_revision"]))
            };
            if let Some(revision) = revision {
                let revision =
                    u64::try_from(revision).map_err(|_| self.odd("/v3/kv/txn", &answer))?;
                return Ok(Some((revision, self.record(&answer)?)));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The record read by the txn's second operation.
    fn record(&self, answer: &Value) -> Result<Holder, LockError> {
        let Some(kv) = first_kv(answer, 1) else {
            return Ok(Holder::default());
        };
        let bytes = kv["value"]
            .as_str()
            .map(|v| B64.decode(v))
            .unwrap_or(Ok(Vec::new()))
            .map_err(|e| {
                LockError::Etcd(format!("{}: value is not base64: {e}", self.record_key))
            })?;
        // An unreadable record is not taken for "never held": that would make any
        // node eligible and could hand the lock to a standby that is behind.
        serde_json::from_slice(&bytes).map_err(|e| {
            LockError::Etcd(format!(
                "{}: not a holder record ({e}): {:?}",
                self.record_key,
                String::from_utf8_lossy(&bytes)
            ))
        })
    }

    /// Rewrites the record, only if we still hold the key.
    pub async fn write(&self, h: &Holder) -> Result<(), LockError> {
        let Some(lease) = self.held().as_ref().map(|s| s.lease) else {
            return Err(LockError::Etcd(format!(
                "cannot write {}: this lock does not hold {}",
                self.record_key, self.leader_key
            )));
        };
        let revision = self.revision.load(Ordering::SeqCst);
        let value = B64.encode(
            serde_json::to_vec(h).map_err(|e| LockError::Etcd(format!("encoding {h:?}: {e}")))?,
        );
        let leader = B64.encode(&self.leader_key);
        // The leader key gets the record too, so that reading it shows who holds the
        // lock; it keeps our lease (a put without one would detach it).
        let txn = json!({
            "compare": [{ "key": leader, "target": "CREATE", "result": "EQUAL",
                          "create_revision": revision.to_string() }],
            "success": [
                { "request_put": { "key": B64.encode(&self.record_key), "value": value } },
                { "request_put": { "key": leader, "value": value,
                                   "lease": lease.to_string() } },
            ],
            "failure": [{ "request_range": { "key": leader } }],
        });
        let answer = self.call("/v3/kv/txn", &txn).await?;
        if answer["succeeded"].as_bool().unwrap_or(false) {
            return Ok(());
        }
        let now = match first_kv(&answer, 0).and_then(|kv| int(&kv["create_revision"])) {
            Some(other) => format!("it was created again at revision {other}"),
            None => "it no longer exists".to_string(),
        };
        Err(LockError::Etcd(format!(
            "cannot write {}: we no longer hold {} (won at revision {revision}; {now})",
            self.record_key, self.leader_key
        )))
    }

    /// Revokes the current holder's lease, unless the holder is `me` or went on
    /// without its standby: for a standby that has proof the holder's process is
    /// gone or cut off, so the take-over need not wait for the lease to expire. Safe however it
    /// races: a lease that is not renewed lets nobody serve, and the campaign that
    /// follows is decided by etcd as always. True if a lease was revoked.
    pub async fn evict(&self, me: &str) -> Result<bool, LockError> {
        let answer = self
            .call(
                "/v3/kv/range",
                &json!({ "key": B64.encode(&self.leader_key) }),
            )
            .await?;
        let Some(kv) = answer["kvs"].get(0) else {
            return Ok(false);
        };
        let holder: Holder = kv["value"]
            .as_str()
            .and_then(|v| B64.decode(v).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let Some(lease) = int(&kv["lease"]).filter(|&l| l != 0) else {
            return Ok(false);
        };
        if holder.node == me || self.held().as_ref().is_some_and(|s| s.lease == lease) {
            return Ok(false);
        }
        // A holder that went on without its standby is the only one with everything
        // it confirmed: nobody may take over from it, so its lease stays.
        if !holder.in_sync {
            return Ok(false);
        }
        self.revoke(lease).await;
        Ok(true)
    }

    /// Gives the key up (revokes the lease), so that a standby takes over at once.
    pub async fn release(&self) {
        let session = self.held().take();
        self.phase.send_replace(Phase::Idle);
        if let Some(session) = session {
            let lease = session.lease;
            drop(session);
            self.revoke(lease).await;
        }
    }

    async fn revoke(&self, lease: i64) {
        let body = json!({ "ID": lease.to_string() });
        match self.gateway.call("/v3/lease/revoke", &body).await {
            Err(e) if !e.lease_not_found() => tracing::warn!(
                lease,
                "etcd: {}; the lease expires by itself within its TTL",
                e.describe("/v3/lease/revoke")
            ),
            _ => {}
        }
    }

    /// Resolves when the lease could not be renewed within its TTL minus a margin
    /// (or etcd says it expired). Pending while nothing is held; after `release()` it
    /// waits for the next holding to be lost.
    pub async fn lost(&self) {
        let mut phase = self.phase.subscribe();
        // Err only if the sender is gone, which it cannot be while `self` lives.
        let _ = phase.wait_for(|p| matches!(p, Phase::Lost(_))).await;
    }

    /// The etcd revision at which we became holder (the fencing token).
    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::SeqCst)
    }

    async fn call(&self, path: &str, body: &Value) -> Result<Value, LockError> {
        self.gateway
            .call(path, body)
            .await
            .map_err(|e| self.failed(path, e))
    }

    fn failed(&self, path: &str, e: CallError) -> LockError {
        LockError::Etcd(e.describe(path))
    }

    fn odd(&self, path: &str, answer: &Value) -> LockError {
        LockError::Etcd(format!("{path}: unexpected answer {answer}"))
    }
}

fn mark_lost(phase: &watch::Sender<Phase>, lease: i64) {
    phase.send_if_modified(|p| {
        let was_held = *p == Phase::Held(lease);
        if was_held {
            *p = Phase::Lost(lease);
        }
        was_held
    });
}

/// Keeps `lease` alive every `window / 3` until a renewal has not succeeded for
/// `window` minus a margin, or etcd says the lease is gone; then marks it lost.
/// Deadlines run from when a successful renewal was *sent*: etcd restarts the TTL
/// no earlier than that, so the holder stops believing before etcd lets go.
async fn renew(
    gateway: Arc<Gateway>,
    lease: i64,
    window: Duration,
    granted: Instant,
    dead: Arc<AtomicBool>,
    phase: Arc<watch::Sender<Phase>>,
) {
    // The margin covers closing listeners after `lost()` fires, and a monotonic
    // clock running a little slower than etcd's.
    let give_up_after = window - window / 4;
    // Every half window: a lease whose holder is cut off then has at most a full
    // and on average three quarters of a window left on etcd, so the standby takes
    // over sooner than with frequent renewals, and a failed renewal still gets
    // retried (every RENEW_RETRY) for a quarter window before the holder gives up.
    let every = window / 2;
    let body = json!({ "ID": lease.to_string() });
    let mut renewed = granted;
    let mut next = granted + every;
    let why = loop {
        let deadline = renewed + give_up_after;
        tokio::time::sleep_until(next.min(deadline)).await;
        if Instant::now() >= deadline {
            break format!("not renewed within {give_up_after:?}");
        }
        let sent = Instant::now();
        match tokio::time::timeout_at(deadline, gateway.call("/v3/lease/keepalive", &body)).await {
            Err(_) => break format!("not renewed within {give_up_after:?}"),
            Ok(Ok(answer)) => match answer.get("result").map(|r| int(&r["TTL"])) {
                // etcd omits a zero TTL: the lease has expired or was revoked.
                Some(Some(ttl)) if ttl > 0 => {
                    renewed = sent;
                    next = sent + every;
                }
                Some(_) => break "etcd says the lease has expired".to_string(),
                None => {
                    tracing::warn!(lease, %answer, "etcd: lease keepalive: unexpected answer");
                    next = Instant::now() + RENEW_RETRY;
                }
            },
            Ok(Err(e)) if e.lease_not_found() => break e.describe("/v3/lease/keepalive"),
            Ok(Err(e)) => {
                tracing::warn!(lease, "etcd: {}", e.describe("/v3/lease/keepalive"));
                next = Instant::now() + RENEW_RETRY;
            }
        }
    };
    tracing::warn!(lease, "etcd: lease lost: {why}");
    // `dead` first: `acquire` sets `Held` and then reads `dead`, so one of the two
    // sees the other (both SeqCst) and the loss is never missed.
    dead.store(true, Ordering::SeqCst);
    mark_lost(&phase, lease);
}

/// The gateway writes int64 fields as JSON strings; accept numbers too.
fn int(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => s.parse().ok(),
        v => v.as_i64(),
    }
}

/// The first key-value of the range at `responses[index]` of a txn answer.
fn first_kv(answer: &Value, index: usize) -> Option<&Value> {
    answer["responses"][index]["response_range"]["kvs"]
        .as_array()?
        .first()
}
