//! The byte stream of one MQTT connection with its buffers, and the codec that
//! fills and reads them.

use crate::codec::{Codec, CodecError, Packet};
use switchboard_api::conn::Io;
use tokio::io::{AsyncRead, AsyncWrite};

/// The socket with its buffers, and the codec that fills and reads them.
pub(crate) struct Wire<S> {
    pub io: Io<S>,
    pub codec: Codec,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    /// Reads until a whole packet is decoded. `Ok(None)`: the peer closed.
    pub async fn read_packet(&mut self) -> Result<Option<Packet>, CodecError> {
        loop {
            if let Some(p) = self.codec.decode(&mut self.io.rbuf)? {
                return Ok(Some(p));
            }
            match self.io.read().await {
                Ok(0) | Err(_) => return Ok(None),
                Ok(_) => {}
            }
        }
    }

    pub fn encode(&mut self, p: Packet) {
        if let Err(e) = self.codec.encode(p, &mut self.io.wbuf) {
            tracing::debug!("packet not sent: {e}");
        }
    }
}
