/// Sizes a connection's read buffer: small at first, so idle connections stay
/// cheap, doubling (up to 64 KiB) whenever a read fills all the room it had, so a
/// busy connection reads many frames per system call instead of a few bytes.
pub struct ReadRoom {
    want: usize,
}

impl Default for ReadRoom {
    fn default() -> Self {
        ReadRoom { want: 512 }
    }
}

impl ReadRoom {
    const MAX: usize = 64 * 1024;

    /// Makes room before a read; returns how much there is.
    pub fn prepare(&mut self, buf: &mut bytes::BytesMut) -> usize {
        if buf.capacity() - buf.len() < self.want {
            buf.reserve(self.want);
        }
        buf.capacity() - buf.len()
    }

    /// After a read of `n` bytes into `room`.
    pub fn read(&mut self, n: usize, room: usize) {
        if n >= room {
            self.want = (self.want * 2).min(Self::MAX);
        }
    }
}
