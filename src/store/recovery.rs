//! Start-up: replay the valid prefix of the journal and cut off whatever follows
//! (see the module docs of `store` for the rules).

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use super::error::StoreError;
use super::segment::{self, Parsed, READ_CHUNK, SegmentReader};
use super::shared::{Lsn, SegMeta};

/// What [`Journal::open`](super::Journal::open) found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Records replayed.
    pub records: u64,
    /// LSN of the first record replayed (0 if none).
    pub first_lsn: Lsn,
    /// LSN of the last record replayed (0 if none).
    pub last_lsn: Lsn,
    /// Epoch of the last record replayed (0 if none).
    pub last_epoch: u64,
    /// Why and where the journal was cut, if it was.
    pub cut: Option<String>,
    /// Segment files deleted because they followed the cut.
    pub segments_removed: usize,
    /// `(epoch, first LSN)` of every run of records of one epoch, oldest first.
    pub epochs: Vec<(u64, Lsn)>,
}

const TRUNCATED: &str = "truncated for replication";

pub(super) struct Recovered {
    /// Segments left, in LSN order.
    pub segments: Vec<SegMeta>,
    /// LSN the next append gets.
    pub next_lsn: Lsn,
    /// Offset in the last segment where the next record goes.
    pub tail_pos: u64,
    pub report: RecoveryReport,
}

/// `keep_upto`: records after this LSN are cut as if torn (a standby dropping the
/// suffix the new active never had); `Lsn::MAX` keeps every valid record.
pub(super) fn recover(
    dir: &Path,
    keep_upto: Lsn,
    replay: &mut dyn FnMut(Lsn, u64, &[u8]),
) -> Result<Recovered, StoreError> {
    let mut found = list_segments(dir)?;
    found.sort_unstable_by_key(|s| s.0);

    let mut report = RecoveryReport::default();
    let mut kept: Vec<SegMeta> = Vec::new();
    // The last kept segment, where its records end, and its length.
    let mut last: Option<(PathBuf, u64, u64)> = None;
    let mut expected: Option<Lsn> = None;
    let mut remove_from = found.len();

    for (i, (first_lsn, path)) in found.iter().enumerate() {
        if let Some(e) = expected
            && *first_lsn != e
        {
            // The previous segment's records end before this segment's name says
            // they do (a write to it was lost), or a segment is missing.
            report.cut = Some(format!(
                "segment {} follows a segment whose records end at LSN {}",
                segment::seg_name(*first_lsn),
                e - 1
            ));
            remove_from = i;
            break;
        }
        // Read a window at a time: a whole segment in memory would make start-up
        // peak a segment (64 MiB) above what the replayed state needs.
        let file = File::open(path).map_err(|e| StoreError::io("open", path, e))?;
        let read_err = |e| StoreError::io("read", path, e);
        let mut reader = SegmentReader::new(&file, READ_CHUNK).map_err(read_err)?;
        let mut next = *first_lsn;
        let mut bad: Option<&'static str> = None;
        // Where the accepted records end: the reader steps over a record it parsed
        // even when its LSN gets it refused.
        let mut off = 0;
        loop {
            match reader.next().map_err(read_err)? {
                Parsed::End => break,
                Parsed::Corrupt(why) => {
                    bad = Some(why);
                    break;
                }
                Parsed::Record { lsn, .. } if lsn != next => {
                    bad = Some("LSN out of sequence");
                    break;
                }
                Parsed::Record { lsn, .. } if lsn > keep_upto => {
                    bad = Some(TRUNCATED);
                    break;
                }
                Parsed::Record {
                    epoch,
                    lsn,
                    payload,
                    ..
                } => {
                    replay(lsn, epoch, payload);
                    if report.epochs.last().is_none_or(|e| e.0 != epoch) {
                        report.epochs.push((epoch, lsn));
                    }
                    if report.records == 0 {
                        report.first_lsn = lsn;
                    }
                    report.records += 1;
                    report.last_lsn = lsn;
                    report.last_epoch = epoch;
                    next += 1;
                    off = reader.offset();
                }
            }
        }
        let len = reader.len();
        kept.push(SegMeta {
            first_lsn: *first_lsn,
            len,
        });
        expected = Some(next);
        let next_name_matches = found.get(i + 1).is_some_and(|s| s.0 == next);
        last = Some((path.clone(), off, len));
        if let Some(why) = bad {
            if next_name_matches && why != TRUNCATED {
                // The next segment starts exactly where this one's records stop, so
                // nothing was ever written here: damage in unused space, not data.
                tracing::warn!(
                    segment = %path.display(),
                    offset = off,
                    "journal: ignoring invalid bytes after the last record of a sealed segment ({why})"
                );
            } else {
                report.cut = Some(format!(
                    "{why} in segment {} at offset {off}",
                    segment::seg_name(*first_lsn)
                ));
                remove_from = i + 1;
                break;
            }
        }
    }

    // The last kept segment is where appends continue: whatever follows its records
    // must read as zeros, or a later append ending on an old record boundary would
    // make stale, never-confirmed records valid again. Zeroed (and synced) before
    // later segments are deleted, so a crash in between leaves a journal that is
    // cut at the same place by the next recovery.
    let tail_pos = match &last {
        Some((path, end, len)) => {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(|e| StoreError::io("open", path, e))?;
            let zeros =
                segment::zeros_from(&file, *end).map_err(|e| StoreError::io("read", path, e))?;
            if !zeros {
                tracing::info!(
                    segment = %path.display(),
                    offset = end,
                    "journal: zeroing unconfirmed bytes after the last record"
                );
                segment::write_zeros(&file, *end, *len)
                    .and_then(|()| file.sync_data())
                    .map_err(|e| StoreError::io("zero tail of", path, e))?;
            }
            *end
        }
        None => 0,
    };

    let doomed = &found[remove_from..];
    for (_, path) in doomed {
        segment::remove_if_exists(path).map_err(|e| StoreError::io("remove", path, e))?;
    }
    report.segments_removed = doomed.len();
    if !doomed.is_empty() {
        segment::sync_dir(dir).map_err(|e| StoreError::io("fsync directory", dir, e))?;
    }
    if let Some(cut) = &report.cut {
        tracing::warn!(
            dir = %dir.display(),
            last_lsn = report.last_lsn,
            segments_removed = report.segments_removed,
            "journal cut at the first invalid record: {cut}"
        );
    }

    // A previous process may have been killed after writing but before syncing (or
    // have run without fsync): make what was just replayed durable before anything
    // is reported durable on top of it.
    for s in &kept {
        let path = segment::seg_path(dir, s.first_lsn);
        File::open(&path)
            .and_then(|f| f.sync_data())
            .map_err(|e| StoreError::io("fdatasync", &path, e))?;
    }

    let next_lsn = expected.unwrap_or(1);
    Ok(Recovered {
        segments: kept,
        next_lsn,
        tail_pos,
        report,
    })
}

/// Segment files in `dir`, unsorted. Deletes leftover `*.tmp` files: segments that
/// were being zero-filled and never got their name, so they hold no records.
/// Reads every record up to `upto` in LSN order without changing anything: a second
/// pass over a journal that `recover` has already cut (start-up reads message
/// bodies this way, after learning which messages are still live).
pub(super) fn scan(dir: &Path, upto: Lsn, f: &mut dyn FnMut(Lsn, &[u8])) -> Result<(), StoreError> {
    // Read-only listing: the writer's preparer may already have a `.seg.tmp` here.
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StoreError::io("list", dir, e))? {
        let entry = entry.map_err(|e| StoreError::io("list", dir, e))?;
        if let Some(lsn) = entry.file_name().to_str().and_then(segment::parse_seg_name) {
            found.push((lsn, entry.path()));
        }
    }
    found.sort_unstable_by_key(|s| s.0);
    for (_, path) in found {
        let file = File::open(&path).map_err(|e| StoreError::io("open", &path, e))?;
        let read_err = |e| StoreError::io("read", &path, e);
        let mut reader = SegmentReader::new(&file, READ_CHUNK).map_err(read_err)?;
        while let Parsed::Record { lsn, payload, .. } = reader.next().map_err(read_err)? {
            if lsn > upto {
                return Ok(());
            }
            f(lsn, payload);
        }
    }
    Ok(())
}

fn list_segments(dir: &Path) -> Result<Vec<(Lsn, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| StoreError::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        if name.ends_with(".seg.tmp") {
            segment::remove_if_exists(&path).map_err(|e| StoreError::io("remove", &path, e))?;
        } else if let Some(lsn) = segment::parse_seg_name(name) {
            out.push((lsn, path));
        }
    }
    Ok(out)
}
