//! MQTT over WebSocket (RabbitMQ web-mqtt's port 15675, subprotocol `mqtt`): the
//! WebSocket's binary messages are bridged to an in-memory byte pipe that the same
//! [`serve`](crate::serve) reads, so TCP and WebSocket share every line of session code.

use crate::{Config, Registry};
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use switchboard_api::Broker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_util::sync::CancellationToken;

pub async fn serve_ws(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<dyn Broker>,
    cfg: Arc<Config>,
    registry: Registry,
    shutdown: CancellationToken,
) {
    // The callback's signature is tungstenite's; its error type is large by design.
    #[allow(clippy::result_large_err)]
    let pick = |req: &Request, mut resp: Response| {
        let wants_mqtt = req
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim() == "mqtt");
        if wants_mqtt {
            resp.headers_mut()
                .insert("sec-websocket-protocol", HeaderValue::from_static("mqtt"));
        }
        Ok(resp)
    };
    let handshake = tokio_tungstenite::accept_hdr_async(stream, pick);
    let ws = match tokio::time::timeout(cfg.connect_timeout, handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "MQTT WebSocket handshake failed: {e}");
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
                    Some(Ok(Ws::Ping(_) | Ws::Pong(_) | Ws::Frame(_))) => {}
                    // MQTT over WebSocket is binary only (MQTT 5 §6).
                    Some(Ok(Ws::Text(_))) | Some(Ok(Ws::Close(_))) | Some(Err(_)) | None => break,
                },
                n = pipe_rx.read(&mut buf) => match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if ws_tx.send(Ws::Binary(buf[..n].to_vec().into())).await.is_err() { break; }
                    }
                },
            }
        }
        let _ = ws_tx.close().await;
    };
    tokio::join!(
        crate::serve(ours, peer, broker, cfg, registry, shutdown),
        pump
    );
}
