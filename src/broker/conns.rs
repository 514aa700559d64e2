//! Who is connected: what each frontend described of its logged-in connections,
//! and, by client address, how to ask a connection to close. The accept loop
//! registers a closer for every socket it serves ([`Conns::track`]); the frontend
//! describes the connection by its id. The two meet on the peer address, which
//! is unique among a host's live TCP connections.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use switchboard_api::ConnectionId;
use switchboard_api::admin::{ConnectionInfo, ConnectionMeta};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub struct Conns {
    described: Mutex<HashMap<ConnectionId, ConnectionInfo>>,
    closers: Mutex<HashMap<SocketAddr, CancellationToken>>,
}

impl Conns {
    /// Describes a connection; the first description must fit the limits (0: none)
    /// on connections per user and per vhost, counted under the same lock.
    pub fn describe(
        &self,
        id: ConnectionId,
        meta: ConnectionMeta,
        (per_user, per_vhost): (u32, u32),
    ) -> Result<(), super::quotas::Refusal> {
        let mut d = self.described.lock().unwrap_or_else(|e| e.into_inner());
        if meta.limited && !d.contains_key(&id) && (per_user > 0 || per_vhost > 0) {
            let (mut users, mut vhosts) = (0u32, 0u32);
            for c in d.values().filter(|c| c.meta.limited) {
                users += u32::from(c.meta.user == meta.user);
                vhosts += u32::from(c.meta.vhost == meta.vhost);
            }
            if per_user > 0 && users >= per_user {
                return Err(super::quotas::Refusal::UserConnections);
            }
            if per_vhost > 0 && vhosts >= per_vhost {
                return Err(super::quotas::Refusal::VhostConnections);
            }
        }
        let at = d
            .get(&id)
            .map_or_else(switchboard_api::wall_ms, |c| c.connected_at_ms);
        d.insert(
            id,
            ConnectionInfo {
                id,
                meta,
                connected_at_ms: at,
            },
        );
        Ok(())
    }

    pub fn closed(&self, id: ConnectionId) {
        self.described
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    pub fn list(&self) -> Vec<ConnectionInfo> {
        let mut out: Vec<ConnectionInfo> = self
            .described
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        out.sort_by_key(|c| c.id);
        out
    }

    /// The socket from `peer` closes when `token` is cancelled.
    pub fn track(&self, peer: SocketAddr, token: CancellationToken) {
        self.closers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(peer, token);
    }

    pub fn untrack(&self, peer: SocketAddr) {
        self.closers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&peer);
    }

    pub fn close(&self, peer: SocketAddr) -> bool {
        let token = self
            .closers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&peer)
            .cloned();
        match token {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
    }
}
