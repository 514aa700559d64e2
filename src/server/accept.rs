//! Accept loops: each listener's connections, plain or TLS (handshake first,
//! in the connection's own task), each with a cancellation token of its own.

use crate::broker::Core;
use crate::tls::{Acceptor, Stream};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switchboard_api::Transport;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The TLS handshake's limit on the HTTPS listeners (the protocol listeners use
/// their own connect timeout).
pub(super) const HTTP_TLS_HANDSHAKE: Duration = Duration::from_secs(10);

/// Starts accept loops with what they all share.
pub(super) struct Spawner<'a> {
    pub shutdown: &'a CancellationToken,
    pub tracker: &'a TaskTracker,
    pub core: &'a Core,
    pub tls: Option<&'a Arc<Acceptor>>,
}

impl Spawner<'_> {
    /// A protocol on its plain listener and, when TLS is on, on its TLS one.
    pub fn both<F, Fut>(
        &self,
        plain: &Arc<TcpListener>,
        secure: Option<&Arc<TcpListener>>,
        handshake: Duration,
        serve: F,
    ) where
        F: Fn(Stream, SocketAddr, Transport, CancellationToken) -> Fut
            + Clone
            + Send
            + Sync
            + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.one(Some(plain), None, serve.clone());
        self.one(secure, Some(handshake), serve);
    }

    /// One listener (none: TLS is off); `handshake`: it is a TLS listener, and
    /// the handshake must be done within this.
    pub fn one<F, Fut>(&self, l: Option<&Arc<TcpListener>>, handshake: Option<Duration>, serve: F)
    where
        F: Fn(Stream, SocketAddr, Transport, CancellationToken) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Some(l) = l else { return };
        let tls = match (handshake, self.tls) {
            (None, _) => None,
            (Some(within), Some(acceptor)) => Some((acceptor.clone(), within)),
            // A TLS listener exists only with an acceptor.
            (Some(_), None) => return,
        };
        self.tracker.spawn(accept_loop(
            l.clone(),
            tls,
            self.shutdown.clone(),
            self.tracker.clone(),
            self.core.clone(),
            serve,
        ));
    }
}
/// Accepts connections and serves each on the tracker with a token of its own:
/// cancelled at shutdown (a child of `shutdown`) or when the admin API closes the
/// connection. `tls`: a TLS listener; the handshake runs in the connection's task
/// (a slow client never holds up accepting) within the given time.
async fn accept_loop<F, Fut>(
    listener: Arc<TcpListener>,
    tls: Option<(Arc<Acceptor>, Duration)>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    core: Core,
    serve: F,
) where
    F: Fn(Stream, SocketAddr, Transport, CancellationToken) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let serve = Arc::new(serve);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        };
        if !core.admit_socket(peer) {
            // Over its source's connection rate: closed before a byte is read (no
            // protocol has spoken yet); counted in /metrics.
            tracing::debug!(%peer, "connection refused: source connection rate");
            drop(tcp);
            continue;
        }
        let _ = tcp.set_nodelay(true);
        let token = shutdown.child_token();
        core.track_socket(peer, token.clone());
        let core = core.clone();
        match &tls {
            None => {
                let served = serve(Stream::Plain(tcp), peer, Transport::PLAIN, token);
                tracker.spawn(async move {
                    served.await;
                    core.untrack_socket(peer);
                });
            }
            Some((acceptor, within)) => {
                let (acceptor, within, serve) = (acceptor.clone(), *within, serve.clone());
                tracker.spawn(async move {
                    let shaken = tokio::select! {
                        r = acceptor.accept(tcp, peer, within) => r,
                        _ = token.cancelled() => None,
                    };
                    if let Some((stream, transport)) = shaken {
                        serve(stream, peer, transport, token).await;
                    }
                    core.untrack_socket(peer);
                });
            }
        }
    }
}
