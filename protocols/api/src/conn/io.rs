use super::ReadRoom;
use bytes::{Buf, BytesMut};
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A connection stops taking deliveries while this much output waits for the
/// socket: a client that does not read cannot make the broker buffer without bound
/// (its queue keeps the messages instead).
pub const OUTPUT_LIMIT: usize = 1 << 20;

/// A write buffer that grew past this is dropped once written out, so a connection
/// that was busy once does not keep a large buffer while idle.
const KEEP_WRITE_CAPACITY: usize = 64 * 1024;

/// What [`Io::transfer`] did. `0` bytes means the peer closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moved {
    Read(usize),
    Wrote(usize),
}

/// One connection's byte stream with the buffers the connection owns: bytes read
/// and not yet decoded, and bytes encoded and not yet written.
pub struct Io<S> {
    pub stream: S,
    pub rbuf: BytesMut,
    pub wbuf: BytesMut,
    room: ReadRoom,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Io<S> {
    pub fn new(stream: S) -> Self {
        Io {
            stream,
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            room: ReadRoom::default(),
        }
    }

    /// Whether the output is small enough to take more deliveries.
    pub fn accepting(&self) -> bool {
        self.wbuf.len() < OUTPUT_LIMIT
    }

    /// Reads what the socket has into `rbuf`; `Ok(0)`: the peer closed.
    /// Cancel-safe, so it can be a `select!` arm.
    pub async fn read(&mut self) -> std::io::Result<usize> {
        let room = self.room.prepare(&mut self.rbuf);
        let n = self.stream.read_buf(&mut self.rbuf).await?;
        self.room.read(n, room);
        Ok(n)
    }

    /// Writes all of `wbuf`. Not cancel-safe: for loops that write between their
    /// `select!`s.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
            self.shrink_written();
        }
        Ok(())
    }

    /// One write of `wbuf` or, with `read`, one read into `rbuf`, whichever the
    /// socket allows first (the write when both do). Cancel-safe: for loops that
    /// keep serving timers and queues while a slow client holds up their output.
    pub async fn transfer(&mut self, read: bool) -> std::io::Result<Moved> {
        let room = if read {
            self.room.prepare(&mut self.rbuf)
        } else {
            0
        };
        poll_fn(|cx| {
            if !self.wbuf.is_empty()
                && let Poll::Ready(r) = Pin::new(&mut self.stream).poll_write(cx, &self.wbuf)
            {
                let n = r?;
                self.wbuf.advance(n);
                if self.wbuf.is_empty() {
                    self.shrink_written();
                }
                return Poll::Ready(Ok(Moved::Wrote(n)));
            }
            if read {
                // A fresh `read_buf` future per poll is fine: it keeps no state
                // between polls, and one that is dropped has read nothing.
                let r = pin!(self.stream.read_buf(&mut self.rbuf)).poll(cx);
                if let Poll::Ready(r) = r {
                    let n = r?;
                    self.room.read(n, room);
                    return Poll::Ready(Ok(Moved::Read(n)));
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Best effort at the end: write what is left (giving up after `linger`, when
    /// given) and shut the stream down.
    pub async fn close(&mut self, linger: Option<Duration>) {
        match linger {
            Some(d) => {
                let _ = tokio::time::timeout(d, self.flush()).await;
            }
            None => {
                let _ = self.flush().await;
            }
        }
        let _ = self.stream.shutdown().await;
    }

    fn shrink_written(&mut self) {
        if self.wbuf.capacity() > KEEP_WRITE_CAPACITY {
            self.wbuf = BytesMut::with_capacity(1024);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn transfer_writes_before_it_reads_and_reports_a_close() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut io = Io::new(a);
        b.write_all(b"in").await.ok();
        io.wbuf.extend_from_slice(b"out");
        assert_eq!(io.transfer(true).await.ok(), Some(Moved::Wrote(3)));
        assert_eq!(io.transfer(true).await.ok(), Some(Moved::Read(2)));
        assert_eq!(&io.rbuf[..], b"in");
        drop(b);
        assert_eq!(io.transfer(true).await.ok(), Some(Moved::Read(0)));
    }

    #[tokio::test]
    async fn output_over_the_limit_stops_deliveries_until_flushed() {
        let (a, mut b) = tokio::io::duplex(64 * 1024);
        let mut io = Io::new(a);
        io.wbuf.extend_from_slice(&vec![0; OUTPUT_LIMIT]);
        assert!(!io.accepting());
        let reader = tokio::spawn(async move {
            let mut sink = Vec::new();
            b.read_to_end(&mut sink).await.map(|_| sink.len())
        });
        io.close(None).await;
        assert!(io.accepting());
        assert!(io.wbuf.capacity() <= KEEP_WRITE_CAPACITY);
        assert_eq!(reader.await.ok().and_then(Result::ok), Some(OUTPUT_LIMIT));
    }
}
