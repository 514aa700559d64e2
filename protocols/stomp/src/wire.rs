//! The byte stream of one STOMP connection with its buffers, and the codec that
//! fills and reads them.

use crate::codec::{Codec, Item};
use crate::frame::Frame;
use crate::inbound::Inbound;
use crate::send::error_frame;
use crate::session::StompError;
use switchboard_api::conn::Io;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Encoder;

pub(crate) struct Wire<S> {
    pub io: Io<S>,
    pub codec: Codec,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    pub fn encode(&mut self, f: Frame) {
        if let Err(e) = self.codec.encode(f, &mut self.io.wbuf) {
            tracing::debug!("STOMP frame not sent: {e}");
        }
    }

    /// The next frame (heart-beats skipped); `Ok(None)` when the peer closed.
    pub async fn read_frame(&mut self) -> Result<Option<Inbound>, StompError> {
        loop {
            match self.codec.decode_inbound(&mut self.io.rbuf) {
                Ok(Some(Item::Frame(f))) => return Ok(Some(f)),
                Ok(Some(Item::HeartBeat)) => continue,
                Ok(None) => {}
                Err(e) => return Err(StompError::from(e)),
            }
            match self.io.read().await {
                Ok(0) | Err(_) => return Ok(None),
                Ok(_) => {}
            }
        }
    }

    /// Sends ERROR and closes.
    pub async fn fail(&mut self, e: &StompError, culprit: Option<&Inbound>) {
        self.encode(error_frame(e, culprit.and_then(|f| f.header("receipt"))));
        self.io.close(None).await;
    }

    /// The `receipt` header of the frame the codec just refused, so the ERROR can
    /// name it (as RabbitMQ's does).
    pub fn refused_receipt(&self) -> Option<String> {
        self.codec
            .partial_receipt()
            .map(str::to_string)
            .or_else(|| receipt_in(&self.io.rbuf))
    }
}

/// The `receipt` header of a frame, read from the raw bytes; best effort, first
/// 64 KiB only.
fn receipt_in(buf: &[u8]) -> Option<String> {
    let head = &buf[..buf.len().min(64 * 1024)];
    let start = head.iter().position(|b| *b != b'\n' && *b != b'\r')?;
    head[start..]
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix(b"receipt:"))
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::to_string)
}
