//! What MQTT connections share: which client ids are connected (for session
//! takeover) and wills waiting out their delay. A cheap-clone handle; its std Mutex
//! is never held across `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    next: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    live: HashMap<(String, String), Live>,
    /// Packet ids of messages a session had in flight when its connection ended
    /// (queue seq → id), for the next connection of that client to reuse.
    parked: HashMap<(String, String), HashMap<u64, u16>>,
    /// Delayed wills, cancelled when the client comes back in time.
    wills: HashMap<(String, String), (u64, CancellationToken)>,
}

struct Live {
    id: u64,
    kick: CancellationToken,
    /// Cancelled when the connection's claim is dropped. A token, not a watch
    /// channel: every idle connection holds one, and a watch channel is three
    /// times its size.
    gone: CancellationToken,
}

/// Held by a connection while it owns a client id; tells the registry when it ends.
pub struct Claim {
    registry: Registry,
    key: (String, String),
    id: u64,
    pub kicked: CancellationToken,
    gone: CancellationToken,
}

impl Claim {
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.gone.cancel();
        let mut st = self.registry.lock();
        if st.live.get(&self.key).is_some_and(|l| l.id == self.id) {
            st.live.remove(&self.key);
        }
    }
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the client id (per vhost): a connection already holding it is told to
    /// go (session takeover) and awaited, and a delayed will of the same client is
    /// cancelled.
    pub async fn claim(&self, vhost: &str, client_id: &str) -> Claim {
        let key = (vhost.to_string(), client_id.to_string());
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let gone = CancellationToken::new();
        let kicked = CancellationToken::new();
        let previous = {
            let mut st = self.lock();
            if let Some((_, w)) = st.wills.remove(&key) {
                w.cancel();
            }
            st.live.insert(
                key.clone(),
                Live {
                    id,
                    kick: kicked.clone(),
                    gone: gone.clone(),
                },
            )
        };
        if let Some(p) = previous {
            p.kick.cancel();
            // The old connection requeues its in-flight messages and cancels its
            // consumer before it drops its claim; a bound keeps a stuck one from
            // blocking the new client forever.
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(5), p.gone.cancelled()).await;
        }
        Claim {
            registry: self.clone(),
            key,
            id,
            kicked,
            gone,
        }
    }

    /// Registers a will that fires after a delay unless the client reconnects:
    /// the token is cancelled if it does. `None` if it already has (another
    /// connection than `claim` holds the client id).
    pub fn delay_will(
        &self,
        vhost: &str,
        client_id: &str,
        claim: u64,
    ) -> Option<(u64, CancellationToken)> {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let t = CancellationToken::new();
        let key = (vhost.to_string(), client_id.to_string());
        let mut st = self.lock();
        if st.live.get(&key).is_some_and(|l| l.id != claim) {
            return None;
        }
        if let Some((_, old)) = st.wills.insert(key, (id, t.clone())) {
            old.cancel();
        }
        Some((id, t))
    }

    /// A delayed will fired: forget it if it is still the registered one.
    pub fn will_done(&self, vhost: &str, client_id: &str, id: u64) {
        let key = (vhost.to_string(), client_id.to_string());
        let mut st = self.lock();
        if st.wills.get(&key).is_some_and(|(i, _)| *i == id) {
            st.wills.remove(&key);
        }
    }

    pub fn park(&self, vhost: &str, client_id: &str, ids: HashMap<u64, u16>) {
        self.lock()
            .parked
            .insert((vhost.to_string(), client_id.to_string()), ids);
    }

    pub fn unpark(&self, vhost: &str, client_id: &str) -> HashMap<u64, u16> {
        self.lock()
            .parked
            .remove(&(vhost.to_string(), client_id.to_string()))
            .unwrap_or_default()
    }

    pub fn connected(&self) -> usize {
        self.lock().live.len()
    }
}
