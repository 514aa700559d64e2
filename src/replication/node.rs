//! A node of an active/standby pair from start to stop: bind every listener, follow
//! the active (forwarding clients to it) until this node holds the lock and may
//! take over, then serve as the active on the same addresses (docs/REPLICATION.md
//! has the state machine).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::leader::Leader;
use super::link::{self, Link, LinkError};
use super::lock::{Holder, Lock, LockError};
use super::state::NodeState;
use super::wire::{self, Msg, Status};
use super::{follower, proxy};
use crate::config::Config;
use crate::server::{Listeners, Server, StartError};
use crate::store::{Lsn, Replica, ReplicaError};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("--peer needs --lock (file:PATH, etcd:URL or static:active|standby)")]
    NoLock,
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("standby store: {0}")]
    Replica(#[from] ReplicaError),
    #[error("cannot read or write the node id in {0}: {1}")]
    NodeId(String, std::io::Error),
    #[error("fenced: a node with a newer epoch is active")]
    Fenced,
    #[error("{0}")]
    LinkTls(String),
}

/// Runs a node of a pair until `stop` (Ok) or until it is fenced (Err). `announce`
/// gets the `listening …` line at start and again at every role change.
/// `reloads`: the configuration read again at each SIGHUP (the TLS files are
/// reloaded from it, in either role).
pub async fn run(
    cfg: Config,
    announce: impl Fn(&str),
    stop: CancellationToken,
    mut reloads: tokio::sync::watch::Receiver<Config>,
) -> Result<(), NodeError> {
    let rc = cfg.replication.clone();
    let peer = rc.peer.clone().unwrap_or_default();
    if rc.lock.is_empty() {
        return Err(NodeError::NoLock);
    }
    let lock = Arc::new(Lock::parse(
        &rc.lock,
        Duration::from_millis(rc.lease_ttl_ms.max(1000)),
    )?);
    let link = Arc::new(Link::new(&cfg).map_err(NodeError::LinkTls)?);
    let listeners = Listeners::bind(&cfg).await?;
    {
        let tls = listeners.tls.as_ref().map(|(a, _)| a.clone());
        let link = link.clone();
        tokio::spawn(async move {
            while reloads.changed().await.is_ok() {
                let cfg = reloads.borrow_and_update().clone();
                if let Some(tls) = &tls {
                    crate::server::reload_tls(tls, &cfg);
                }
                link.reload(&cfg);
            }
        });
    }
    let repl = crate::server::bind("replication", &cfg.bind, rc.port).await?;
    let repl_addr = repl.local_addr().map_err(|source| StartError::Bind {
        what: "replication",
        addr: cfg.bind.clone(),
        source,
    })?;
    let st = NodeState::new(node_id(&cfg.data_dir)?, peer, link.clone());
    // `replication=` whatever the link speaks: drills and scripts find the port by
    // that key; the follower's log line says `tls=true`.
    let line = |role: &str| {
        format!(
            "listening {} replication={repl_addr} role={role}",
            listeners.describe()
        )
    };
    let leader: Arc<std::sync::Mutex<Option<Arc<Leader>>>> = Arc::default();
    tokio::spawn(serve_peers(repl, st.clone(), leader.clone(), lock.clone()));

    // Standby: follow and forward until this node may take over.
    let replica = Replica::open(&cfg.data_dir, cfg.fsync, Lsn::MAX)?;
    st.lock().last_lsn = replica.journal().last_record().1;
    announce(&line("standby"));
    let follow_stop = CancellationToken::new();
    let following = tokio::spawn(follower::follow(replica, st.clone(), follow_stop.clone()));
    let forwarding = CancellationToken::new();
    proxy::spawn(&listeners, &st, &forwarding);
    let held = tokio::select! {
        _ = stop.cancelled() => None,
        h = take_over(&lock, &st) => Some(h?),
        _ = evict_dead_holder(&lock, &st) => None,
    };
    follow_stop.cancel();
    let replica = match following.await {
        Ok(r) => r?,
        Err(e) => return Err(ReplicaError::Snapshot(format!("follower task: {e}")).into()),
    };
    let Some(held) = held else {
        replica.close();
        return Ok(());
    };
    let (last_epoch, _) = replica.journal().last_record();
    let epoch = held.epoch.max(last_epoch).max(st.lock().seen_epoch) + 1;
    replica.close();
    lock.write(&Holder {
        epoch,
        node: st.node.clone(),
        in_sync: false,
    })
    .await?;
    forwarding.cancel();

    // Active.
    let probe: switchboard_api::admin::ReplicationProbe = {
        let st = st.clone();
        Arc::new(move || st.view())
    };
    let server = Server::start_on(&cfg, &listeners, epoch, Some(probe)).await?;
    {
        let mut g = st.lock();
        g.active = true;
        g.epoch = epoch;
        g.in_sync = false;
    }
    let ports = listeners
        .named()
        .iter()
        .filter_map(|(n, l)| Some((n.to_string(), l.local_addr().ok()?.port())))
        .collect();
    *leader.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(Leader {
        store: server.store().clone(),
        st: st.clone(),
        lock: lock.clone(),
        cfg: rc,
        epoch,
        ports,
        pins: Default::default(),
    }));
    tracing::info!(epoch, "this node is active");
    announce(&line("active"));
    let fenced = tokio::select! {
        _ = stop.cancelled() => false,
        _ = st.fenced.cancelled() => true,
        _ = lock.lost() => {
            st.fence("the lock's lease could not be renewed in time");
            true
        }
    };
    server
        .shutdown(Duration::from_secs(if fenced { 0 } else { 5 }))
        .await;
    lock.release().await;
    if fenced {
        return Err(NodeError::Fenced);
    }
    Ok(())
}

/// Waits until this node holds the lock and may take over; returns the record the
/// previous holder left.
async fn take_over(lock: &Lock, st: &NodeState) -> Result<Holder, NodeError> {
    loop {
        let h = match lock {
            Lock::Static(true) => {
                // Fixed role "active", unless the peer already is (it was promoted
                // while this node was down): then this node follows it.
                match probe(&st.link, &st.peer).await {
                    Some(s) if s.active => {
                        st.saw_epoch(s.epoch);
                        tracing::info!(
                            epoch = s.epoch,
                            "the peer is active; following it until `switchboard ctl promote`"
                        );
                        st.promote.notified().await;
                    }
                    Some(s) => st.saw_epoch(s.epoch),
                    None => {}
                }
                Holder::default()
            }
            Lock::Static(false) => {
                st.promote.notified().await;
                Holder::default()
            }
            _ => match lock.acquire().await {
                Ok(h) => h,
                // etcd unreachable for a moment (this node just came back from a
                // partition, or etcd is electing): a standby keeps trying.
                Err(e) => {
                    tracing::warn!("cannot campaign for the lock: {e}; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        if h.eligible(&st.node) {
            return Ok(h);
        }
        tracing::warn!(
            holder = %h.node,
            "holding the lock, but the last active went on without this node (its standby was out of sync): waiting for it to come back"
        );
        lock.release().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The active has been silent this long (it pings every 200 ms): time to ask
/// whether its host is still there.
const SUSPECT_AFTER: Duration = Duration::from_millis(500);
/// A connect on a network that works completes within this; the kernel answers it
/// even for a process that is stuck (so a frozen active is never evicted).
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// A lease outlives its holder by up to its TTL. The standby revokes it, so the
/// take-over starts at once, when it has proof the active cannot be serving with
/// its standby: its replication port refuses connections (the host answers, the
/// process is gone), or the link went silent and the host cannot be reached at all
/// (a partition). Safe however it races — see [`Lock::evict`]: a holder cut off
/// from its standby cannot confirm anything until it records the standby out of
/// sync, which the revoked lease forbids, and a holder that did record that is
/// not taken over from. Never returns.
async fn evict_dead_holder(lock: &Lock, st: &NodeState) {
    if !matches!(lock, Lock::Etcd(_)) {
        return std::future::pending().await;
    }
    let mut refused = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (linked, silent) = {
            let g = st.lock();
            (g.in_sync, g.heard.map(|h| h.elapsed() >= SUSPECT_AFTER))
        };
        if linked && silent != Some(true) {
            refused = 0;
            continue;
        }
        use std::io::ErrorKind::{ConnectionRefused, HostUnreachable, NetworkUnreachable};
        let probe = tokio::time::timeout(PROBE_TIMEOUT, TcpStream::connect(&st.peer)).await;
        let kind = probe.as_ref().map(|r| r.as_ref().err().map(|e| e.kind()));
        refused = if kind == Ok(Some(ConnectionRefused)) {
            refused + 1
        } else {
            0
        };
        // A timeout, or no route: the host is cut off, not merely its process gone.
        let unreachable = matches!(
            kind,
            Err(_) | Ok(Some(HostUnreachable | NetworkUnreachable))
        );
        if unreachable && silent == Some(true) {
            match lock.evict(&st.node).await {
                Ok(true) => tracing::warn!(
                    "the active went silent and its host cannot be reached: its lease was revoked"
                ),
                Ok(false) => {}
                Err(e) => tracing::warn!("cannot revoke the unreachable active's lease: {e}"),
            }
            continue;
        }
        // Twice in a row, 100 ms apart: not a listener being swapped.
        if refused >= 2 {
            match lock.evict(&st.node).await {
                Ok(true) => tracing::info!("the active's process is gone: its lease was revoked"),
                Ok(false) => {}
                Err(e) => tracing::warn!("cannot revoke the dead active's lease: {e}"),
            }
            refused = 0;
        }
    }
}

/// The replication port: a standby's Hello (served by the leader once active),
/// status queries and `ctl promote`.
async fn serve_peers(
    l: Arc<TcpListener>,
    st: Arc<NodeState>,
    leader: Arc<std::sync::Mutex<Option<Arc<Leader>>>>,
    lock: Arc<Lock>,
) {
    loop {
        let Ok((s, from)) = l.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let (st, leader, lock) = (st.clone(), leader.clone(), lock.clone());
        tokio::spawn(async move {
            let s = match st.link.accept(s).await {
                Ok(s) => s,
                Err(e) if e.is_quiet() => {
                    tracing::debug!(peer = %from, "replication: {e}");
                    return;
                }
                Err(e) => return st.refusals.warn(Some(from), &e),
            };
            let (mut rd, mut wr) = link::split(s);
            let first = tokio::time::timeout(Duration::from_secs(5), wire::read(&mut rd)).await;
            let msg = match first {
                Ok(Ok(Some(msg))) => msg,
                Ok(Ok(None)) => return,
                Ok(Err(e)) => {
                    return st
                        .refusals
                        .warn(Some(from), &format_args!("not a replication peer: {e}"));
                }
                Err(_) => return,
            };
            let epoch = st.lock().epoch;
            let reply = match msg {
                Msg::Hello {
                    epoch: theirs,
                    last_epoch,
                    last_lsn,
                    ..
                } => {
                    let l = leader.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    if let Some(l) = l {
                        let cancel = CancellationToken::new();
                        if let Some(old) = st.lock().session.replace(cancel.clone()) {
                            old.cancel();
                        }
                        l.session(rd, wr, (theirs, last_epoch, last_lsn), cancel)
                            .await;
                        return;
                    }
                    Msg::Refused {
                        epoch: st.lock().seen_epoch,
                        reason: "not active".into(),
                    }
                }
                Msg::Status => Msg::StatusReply(st.status()),
                Msg::Promote if matches!(*lock, Lock::Static(_)) && !st.lock().active => {
                    st.promote.notify_one();
                    Msg::StatusReply(st.status())
                }
                Msg::Promote => Msg::Refused {
                    epoch,
                    reason: if st.lock().active {
                        "already active".into()
                    } else {
                        "the lock decides who is active; stop the active to fail over".into()
                    },
                },
                _ => return,
            };
            let _ = wire::write(&mut wr, &reply).await;
        });
    }
}

/// Asks a node what it is; None if it does not answer within a second.
pub async fn probe(link: &Link, addr: &str) -> Option<Status> {
    let ask = link.ask(addr, &Msg::Status);
    match tokio::time::timeout(Duration::from_secs(1), ask).await {
        Ok(Ok(Msg::StatusReply(s))) => Some(s),
        _ => None,
    }
}

/// Asks a node what it is, for `switchboard ctl status`: the reason when it
/// cannot.
pub async fn status(link: &Link, addr: &str) -> Result<Status, LinkError> {
    match link.ask(addr, &Msg::Status).await? {
        Msg::StatusReply(s) => Ok(s),
        other => Err(LinkError::NoAnswer {
            addr: addr.into(),
            reason: format!("unexpected answer {other:?}"),
            hint: "",
        }),
    }
}

/// Sends `ctl promote` to a node; its answer.
pub async fn promote(link: &Link, addr: &str) -> Result<Msg, LinkError> {
    link.ask(addr, &Msg::Promote).await
}

/// This node's id, made once and kept in the data directory.
fn node_id(dir: &Path) -> Result<String, NodeError> {
    let path = dir.join("node-id");
    let err = |e| NodeError::NodeId(path.display().to_string(), e);
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    std::fs::create_dir_all(dir).map_err(err)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let id = format!("{:x}-{:x}", nanos, std::process::id());
    std::fs::write(&path, &id).map_err(err)?;
    Ok(id)
}
