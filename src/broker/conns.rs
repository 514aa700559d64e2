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
    pub fn describe(&self, id: ConnectionId, meta: ConnectionMeta) {
        let mut d = self.described.lock().unwrap_or_else(|e| e.into_inner());
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
