//! What the parts of a node share: its role, epoch and the active's client ports
//! (for forwarding). A cheap handle; the std mutex is never held across `.await`.

use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::link::{Link, Quiet};
use super::wire::Status;

#[derive(Default)]
pub(super) struct Inner {
    pub active: bool,
    pub epoch: u64,
    /// Highest epoch heard of from the peer (a node never follows an older one).
    pub seen_epoch: u64,
    pub last_lsn: u64,
    /// The standby's last acknowledged position (active only).
    pub acked_lsn: u64,
    pub in_sync: bool,
    /// When the standby last heard from the active (any message; it pings every
    /// 200 ms). None before the first session.
    pub heard: Option<std::time::Instant>,
    /// The active's client ports by listener name, learned from its Welcome.
    pub target: Vec<(String, u16)>,
    /// Cancels the current leader session when a standby reconnects.
    pub session: Option<CancellationToken>,
}

pub(super) struct NodeState {
    pub node: String,
    pub peer: String,
    /// How the peer is reached (plain TCP or mutual TLS).
    pub link: Arc<Link>,
    /// The last refused connection to this node's replication port, so a peer
    /// retrying every 200 ms is logged once.
    pub refusals: Quiet,
    inner: Mutex<Inner>,
    /// `switchboard ctl promote` (static locks).
    pub promote: Notify,
    /// Set when this node learns it must stop serving (a newer epoch exists).
    pub fenced: CancellationToken,
}

impl NodeState {
    pub fn new(node: String, peer: String, link: Arc<Link>) -> Arc<NodeState> {
        Arc::new(NodeState {
            node,
            peer,
            link,
            refusals: Quiet::default(),
            inner: Mutex::new(Inner::default()),
            promote: Notify::new(),
            fenced: CancellationToken::new(),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn status(&self) -> Status {
        let g = self.lock();
        Status {
            node: self.node.clone(),
            active: g.active,
            epoch: g.epoch,
            last_lsn: g.last_lsn,
            in_sync: g.in_sync,
        }
    }

    /// What the admin API shows of this node.
    pub fn view(&self) -> switchboard_api::admin::ReplicationView {
        let g = self.lock();
        switchboard_api::admin::ReplicationView {
            active: g.active,
            epoch: g.epoch,
            peer: self.peer.clone(),
            in_sync: g.in_sync,
            last_lsn: g.last_lsn,
            acked_lsn: g.acked_lsn,
        }
    }

    pub fn saw_epoch(&self, epoch: u64) {
        let mut g = self.lock();
        g.seen_epoch = g.seen_epoch.max(epoch);
    }

    /// Where to forward a client of listener `name`: the peer's host and the
    /// active's port for it.
    pub fn forward_to(&self, name: &str) -> Option<String> {
        let port = self.lock().target.iter().find(|(n, _)| n == name)?.1;
        let host = self.peer.rsplit_once(':').map_or(&*self.peer, |(h, _)| h);
        Some(format!("{host}:{port}"))
    }

    /// Stop serving: a node with a newer epoch is active.
    pub fn fence(&self, why: &str) {
        tracing::error!("fenced: {why}; this node stops serving clients");
        self.fenced.cancel();
    }
}
