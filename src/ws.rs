//! WebSocket transports (MQTT on 15675, STOMP on 15674): the handshake picks
//! one of the frontend's subprotocols, then the WebSocket's messages are bridged to
//! an in-memory byte pipe that the frontend's ordinary `serve` reads, so TCP and
//! WebSocket connections share every line of session code. Frontends never see
//! WebSocket at all.

use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;

#[derive(Clone, Copy)]
pub struct Options {
    /// Subprotocols offered, in order of preference (`mqtt`; `v12.stomp`, …).
    pub subprotocols: &'static [&'static str],
    /// Accept text messages and answer in text (STOMP); otherwise binary only (MQTT
    /// §6: a text message closes the connection).
    pub text: bool,
    /// Request paths served (others get 404); empty: any path (mosquitto's way).
    pub paths: &'static [&'static str],
    pub handshake_timeout: Duration,
}

/// Completes the WebSocket handshake, then runs `serve` on a byte pipe bridged to
/// it until either side ends. `stream`: TCP, or TLS for WSS.
pub async fn serve<S, F, Fut>(stream: S, opts: Options, serve: F)
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(DuplexStream) -> Fut,
    Fut: Future<Output = ()>,
{
    // The callback's signature is tungstenite's; its error type is large by design.
    #[allow(clippy::result_large_err)]
    let pick = |req: &Request, mut resp: Response| {
        if !opts.paths.is_empty() && !opts.paths.contains(&req.uri().path()) {
            let mut not_found =
                tokio_tungstenite::tungstenite::handshake::server::ErrorResponse::new(Some(
                    format!("no WebSocket endpoint at {}", req.uri().path()),
                ));
            *not_found.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::NOT_FOUND;
            return Err(not_found);
        }
        let offered: Vec<&str> = req
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        if let Some(p) = opts.subprotocols.iter().find(|p| offered.contains(p)) {
            resp.headers_mut()
                .insert("sec-websocket-protocol", HeaderValue::from_static(p));
        }
        Ok(resp)
    };
    let handshake = tokio_tungstenite::accept_hdr_async(stream, pick);
    let ws = match tokio::time::timeout(opts.handshake_timeout, handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!("WebSocket handshake failed: {e}");
            return;
        }
        Err(_) => return,
    };
    let (mut ws_tx, mut ws_rx) = ws.split();
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (mut pipe_rx, mut pipe_tx) = tokio::io::split(theirs);
    let pump = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            tokio::select! {
                m = ws_rx.next() => match m {
                    Some(Ok(Ws::Binary(b))) => {
                        if pipe_tx.write_all(&b).await.is_err() { break; }
                    }
                    Some(Ok(Ws::Text(t))) if opts.text => {
                        if pipe_tx.write_all(t.as_bytes()).await.is_err() { break; }
                    }
                    Some(Ok(Ws::Ping(_) | Ws::Pong(_) | Ws::Frame(_))) => {}
                    Some(Ok(Ws::Text(_) | Ws::Close(_))) | Some(Err(_)) | None => break,
                },
                n = pipe_rx.read(&mut buf) => match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let msg = match (opts.text, std::str::from_utf8(&buf[..n])) {
                            (true, Ok(s)) => Ws::Text(s.into()),
                            _ => Ws::Binary(buf[..n].to_vec().into()),
                        };
                        if ws_tx.send(msg).await.is_err() { break; }
                    }
                },
            }
        }
        let _ = ws_tx.close().await;
    };
    tokio::join!(serve(ours), pump);
}
