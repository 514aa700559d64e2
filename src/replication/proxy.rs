//! One endpoint: a standby accepts clients on every client port and forwards each
//! connection, bytes both ways, to the same listener of the active. After a
//! failover the new active serves on the addresses the standby forwarded from, and
//! the connections it was forwarding are closed so their clients come back to it.

use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::state::NodeState;
use crate::server::Listeners;

pub(super) fn spawn(listeners: &Listeners, st: &Arc<NodeState>, cancel: &CancellationToken) {
    for (name, l) in listeners.named() {
        tokio::spawn(accept(name, l.clone(), st.clone(), cancel.clone()));
    }
}

async fn accept(
    name: &'static str,
    l: Arc<TcpListener>,
    st: Arc<NodeState>,
    cancel: CancellationToken,
) {
    loop {
        let (client, _) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = l.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // No active known yet: closing at once lets the client's retry find the
        // active (or this node, promoted) a moment later.
        let Some(target) = st.forward_to(name) else {
            continue;
        };
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let _ = client.set_nodelay(true);
            let upstream =
                tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(&target));
            let up = tokio::select! {
                r = upstream => r,
                // Taking over while still connecting to a cut-off active.
                _ = cancel.cancelled() => return,
            };
            let Ok(Ok(mut up)) = up else {
                tracing::debug!("{name}: active at {target} unreachable; client dropped");
                return;
            };
            let _ = up.set_nodelay(true);
            let mut client = client;
            // At take-over the connections forwarded to the old active end at once:
            // that node is dead or cut off, and its clients reconnect to this one
            // instead of waiting for their own timeouts.
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut up) => {}
                _ = cancel.cancelled() => {}
            }
        });
    }
}
