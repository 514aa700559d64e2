//! Pieces of the on-disk format shared by the writer and recovery: record framing,
//! segment names, zero-filled creation, reading a segment front to back.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::shared::Lsn;

/// `u32 payload_len | u32 crc32c | u64 epoch | u64 lsn`, little-endian.
pub(super) const HEADER_LEN: usize = 24;

/// Temporary name of the segment being zero-filled ahead of need.
pub(super) const NEXT_TMP: &str = "next.seg.tmp";
/// Temporary name of a segment sized for one oversized record.
pub(super) const BIG_TMP: &str = "big.seg.tmp";

/// Zero-fill chunk: big enough for sequential throughput, small enough to allocate
/// freely.
const ZERO_CHUNK: usize = 1 << 20;

/// Bytes [`SegmentReader`] reads at a time: a segment (64 MiB by default) costs
/// start-up this much memory instead of its size. Tiny under test, so that the
/// journal tests' records straddle reads and outgrow them.
pub(super) const READ_CHUNK: usize = if cfg!(test) { 512 } else { 1 << 20 };

pub(super) fn seg_name(first_lsn: Lsn) -> String {
    format!("{first_lsn:020}.seg")
}

pub(super) fn seg_path(dir: &Path, first_lsn: Lsn) -> PathBuf {
    dir.join(seg_name(first_lsn))
}

/// The first LSN encoded in a segment file name, or None if the name is not one of
/// ours.
pub(super) fn parse_seg_name(name: &str) -> Option<Lsn> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // LSN 0 means "nothing", so no record and no segment can start there.
    digits.parse().ok().filter(|&lsn| lsn > 0)
}

/// Writes a header. The CRC covers bytes 8.. of the frame, so it is computed over
/// the finished frame by [`seal`].
pub(super) fn write_header(out: &mut [u8], payload_len: u32, epoch: u64, lsn: Lsn) {
    out[0..4].copy_from_slice(&payload_len.to_le_bytes());
    out[4..8].copy_from_slice(&0u32.to_le_bytes());
    out[8..16].copy_from_slice(&epoch.to_le_bytes());
    out[16..24].copy_from_slice(&lsn.to_le_bytes());
}

/// Fills in the CRC of a complete frame (header + payload).
pub(super) fn seal(frame: &mut [u8]) {
    let crc = crc32c::crc32c(&frame[8..]);
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Length field and LSN of a frame in the writer's own batch buffer (which it built,
/// so the header is known to be complete).
pub(super) fn frame_info(header: &[u8]) -> (usize, Lsn) {
    (le_u32(&header[0..4]) as usize, le_u64(&header[16..24]))
}

/// What sits at one offset of a segment read from disk.
#[derive(Debug)]
pub(super) enum Parsed<'a> {
    /// All-zero header or too few bytes left for one: the data ends here.
    End,
    Record {
        epoch: u64,
        lsn: Lsn,
        payload: &'a [u8],
        /// Offset of the next header.
        next: usize,
    },
    /// Something is written here but it is not a valid record.
    Corrupt(&'static str),
}

/// Parses the record at `off`, checking only what the bytes themselves can prove
/// (length within the file, CRC); the caller checks the LSN sequence.
pub(super) fn parse_at(data: &[u8], off: usize) -> Parsed<'_> {
    let Some(header) = data.get(off..off.saturating_add(HEADER_LEN)) else {
        return Parsed::End;
    };
    if header.iter().all(|&b| b == 0) {
        return Parsed::End;
    }
    let len = le_u32(&header[0..4]) as usize;
    let body_start = off + HEADER_LEN;
    // Checked arithmetic: `len` comes from disk and may be anything.
    let Some(frame_end) = body_start.checked_add(len).filter(|&e| e <= data.len()) else {
        return Parsed::Corrupt("length runs past the end of the segment");
    };
    let stored_crc = le_u32(&header[4..8]);
    if crc32c::crc32c(&data[off + 8..frame_end]) != stored_crc {
        return Parsed::Corrupt("CRC mismatch");
    }
    Parsed::Record {
        epoch: le_u64(&header[8..16]),
        lsn: le_u64(&header[16..24]),
        payload: &data[body_start..frame_end],
        next: frame_end,
    }
}

/// Reads a segment's records front to back through a window of about `chunk`
/// bytes, growing it only for a record that does not fit (a record is handed out
/// whole). It sees what [`parse_at`] sees over the whole file: the window always
/// reaches the end of the frame a header announces, or the end of the file if that
/// comes first, so a length past the file, a torn header and the CRC read the same.
pub(super) struct SegmentReader<'f> {
    file: &'f File,
    /// File length; lowered if the file turns out shorter when read.
    len: u64,
    chunk: usize,
    /// File bytes `start..start + buf.len()`.
    buf: Vec<u8>,
    start: u64,
    /// Where the next record starts.
    off: u64,
}

impl<'f> SegmentReader<'f> {
    pub(super) fn new(file: &'f File, chunk: usize) -> io::Result<Self> {
        Ok(SegmentReader {
            file,
            len: file.metadata()?.len(),
            chunk: chunk.max(HEADER_LEN),
            buf: Vec::new(),
            start: 0,
            off: 0,
        })
    }

    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Offset of what the next call to `next` parses: after the last record read.
    pub(super) fn offset(&self) -> u64 {
        self.off
    }

    /// What sits at [`offset`](Self::offset); a record is stepped over, `End` and
    /// `Corrupt` are not.
    pub(super) fn next(&mut self) -> io::Result<Parsed<'_>> {
        self.fill(self.off + HEADER_LEN as u64)?;
        let at = (self.off - self.start) as usize;
        if let Some(h) = self.buf.get(at..at + HEADER_LEN)
            && h.iter().any(|&b| b != 0)
        {
            let (len, _) = frame_info(h);
            self.fill(self.off + (HEADER_LEN + len) as u64)?;
        }
        let at = (self.off - self.start) as usize;
        let parsed = parse_at(&self.buf, at);
        if let Parsed::Record { next, .. } = &parsed {
            self.off = self.start + *next as u64;
        }
        Ok(parsed)
    }

    /// Makes the window reach `to`, or the end of the file if that is nearer.
    fn fill(&mut self, to: u64) -> io::Result<()> {
        let to = to.min(self.len);
        if to <= self.start + self.buf.len() as u64 {
            return Ok(());
        }
        // What was parsed already is done with: keep only from the current record.
        let done = (self.off - self.start) as usize;
        self.buf.drain(..done);
        self.start = self.off;
        let want = ((to - self.start) as usize)
            .max(self.chunk)
            .min((self.len - self.start) as usize);
        let have = self.buf.len();
        self.buf.resize(want, 0);
        let got = read_at_most(self.file, &mut self.buf[have..], self.start + have as u64)?;
        if have + got < want {
            self.buf.truncate(have + got);
            self.len = self.start + self.buf.len() as u64;
        }
        Ok(())
    }
}

/// Whether `file` holds only zeros from `from` to its end, read a chunk at a time.
pub(super) fn zeros_from(file: &File, from: u64) -> io::Result<bool> {
    let len = file.metadata()?.len();
    let mut buf = vec![0u8; READ_CHUNK.min(len.saturating_sub(from) as usize)];
    let mut off = from;
    while off < len {
        let got = read_at_most(file, &mut buf, off)?;
        if buf[..got].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        if got < buf.len() {
            break;
        }
        off += got as u64;
    }
    Ok(true)
}

/// Reads up to `buf.len()` bytes at `off`; fewer only at the end of the file.
pub(super) fn read_at_most(file: &File, buf: &mut [u8], off: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], off + done as u64)? {
            0 => break,
            k => done += k,
        }
    }
    Ok(done)
}

/// Creates `path` (replacing any old file) as `len` zero bytes and fsyncs it, data
/// and size both, so that later writes into it need only `fdatasync`.
pub(super) fn create_zeroed(path: &Path, len: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    // Real zero bytes rather than `set_len`: a sparse or unwritten-extent file would
    // make each later fdatasync allocate blocks, a metadata update per batch.
    write_zeros(&file, 0, len)?;
    file.sync_all()?;
    Ok(file)
}

/// Overwrites `from..to` of `file` with zeros (no sync).
pub(super) fn write_zeros(file: &File, from: u64, to: u64) -> io::Result<()> {
    let chunk = vec![0u8; ZERO_CHUNK.min(to.saturating_sub(from) as usize)];
    let mut off = from;
    while off < to {
        let n = chunk.len().min((to - off) as usize);
        file.write_all_at(&chunk[..n], off)?;
        off += n as u64;
    }
    Ok(())
}

/// Makes creations, renames and deletions in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes a file, treating "already gone" as success.
pub(super) fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
