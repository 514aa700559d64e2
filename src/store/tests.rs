//! Journal tests: round trip, torn-write recovery (property test), retirement,
//! group commit, durability waits, failure.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;

use super::segment::HEADER_LEN;
use super::*;

const SEG: u64 = 4096;

fn config(dir: &Path, segment_bytes: u64, fsync: FsyncMode) -> JournalConfig {
    JournalConfig {
        segment_bytes,
        fsync,
        ..JournalConfig::new(dir)
    }
}

/// Deterministic payload, different for every (lsn, len).
fn payload(lsn: Lsn, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (lsn as u8)
                .wrapping_mul(31)
                .wrapping_add(i as u8 ^ (i >> 8) as u8)
        })
        .collect()
}

type Records = Vec<(Lsn, Vec<u8>)>;
/// Per segment: its size and its records' (lsn, offset, frame length).
type Layout = Vec<(u64, Vec<(Lsn, u64, u64)>)>;

fn open(cfg: JournalConfig) -> (Journal, Records) {
    let mut seen = Vec::new();
    let j = Journal::open(cfg, |lsn, p| seen.push((lsn, p.to_vec()))).expect("open journal");
    (j, seen)
}

/// Segment files in LSN order.
fn seg_files(dir: &Path) -> Vec<(Lsn, PathBuf)> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .expect("list dir")
        .filter_map(|e| {
            let e = e.ok()?;
            let lsn = segment::parse_seg_name(e.file_name().to_str()?)?;
            Some((lsn, e.path()))
        })
        .collect();
    v.sort();
    v
}

fn append_all(j: &Journal, sizes: &[usize]) -> Records {
    sizes
        .iter()
        .map(|&len| {
            let lsn = j.next_lsn();
            let p = payload(lsn, len);
            assert_eq!(j.append(&p), lsn);
            (lsn, p)
        })
        .collect()
}

#[test]
fn round_trip_across_segments() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path(), SEG, FsyncMode::Batch);
    let (j, seen) = open(cfg.clone());
    assert!(seen.is_empty());
    assert_eq!(j.next_lsn(), 1);

    // Various sizes, including empty payloads, exact-fit-ish ones and records
    // larger than a segment (which get a segment of their own).
    let mut sizes: Vec<usize> = (0..120).map(|i| (i * 37) % 700).collect();
    sizes.extend([0, 5000, 10, 4096 - HEADER_LEN, 9000, 1]);
    let mut expected = append_all(&j, &sizes);
    // append_with writes straight into the batch.
    let lsn = j.append_with(3, |b| b.extend_from_slice(b"abc"));
    expected.push((lsn, b"abc".to_vec()));
    j.wait_durable_blocking(lsn).expect("durable");
    assert_eq!(j.durable_lsn(), lsn);
    j.close();
    j.close(); // idempotent
    let files = seg_files(tmp.path());
    assert!(
        files.len() > 5,
        "expected many segments, got {}",
        files.len()
    );
    drop(j);

    let (j, seen) = open(cfg.clone());
    assert_eq!(seen, expected);
    assert_eq!(j.recovery().cut, None);
    assert_eq!(j.recovery().records, expected.len() as u64);
    assert_eq!(j.next_lsn(), lsn + 1);
    assert_eq!(j.durable_lsn(), lsn);
    expected.extend(append_all(&j, &[100, 0, 4000, 5]));
    j.close();
    drop(j);

    let (j, seen) = open(cfg);
    assert_eq!(seen, expected);
    assert_eq!(j.next_lsn(), expected.len() as u64 + 1);
}

#[test]
fn second_open_of_same_dir_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path(), SEG, FsyncMode::Never);
    let (j, _) = open(cfg.clone());
    assert!(matches!(
        Journal::open(cfg.clone(), |_, _| {}),
        Err(StoreError::Locked(_))
    ));
    j.close(); // releases the directory even while `j` is still alive
    let (_j2, _) = open(cfg);
}

/// Where each record lands, computed independently of the writer: records go one
/// after another; one that does not fit starts a new segment (sized to fit if it is
/// bigger than a segment; an empty segment is replaced rather than left behind).
fn layout(sizes: &[usize], seg: u64) -> Layout {
    let mut segs: Layout = vec![(seg, Vec::new())];
    let mut pos = 0u64;
    for (i, &len) in sizes.iter().enumerate() {
        let frame = (HEADER_LEN + len) as u64;
        let cur = segs.len() - 1;
        if pos + frame > segs[cur].0 {
            if pos == 0 {
                segs[cur].0 = frame;
            } else {
                segs.push((seg.max(frame), Vec::new()));
                pos = 0;
            }
        }
        let cur = segs.len() - 1;
        segs[cur].1.push((i as Lsn + 1, pos, frame));
        pos += frame;
    }
    segs
}

#[derive(Clone, Debug)]
enum Damage {
    /// Truncate the last segment file at this fraction of its length.
    Truncate(Index),
    /// XOR one byte of one segment with a non-zero mask.
    Flip(Index, Index, u8),
}

fn damage_strategy() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<Index>().prop_map(Damage::Truncate),
        (any::<Index>(), any::<Index>(), 1..=255u8).prop_map(|(s, b, m)| Damage::Flip(s, b, m)),
    ]
}

fn sizes_strategy(max: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![12 => 0..400usize, 1 => 4000..5000usize], 1..max)
}

/// Applies the damage and returns how many records (LSN 1..=n) must survive, and
/// whether recovery must report a cut (a damaged record; a truncated tail may
/// look like a clean end of data).
fn apply_damage(dir: &Path, sizes: &[usize], damage: &Damage) -> (usize, bool) {
    let lay = layout(sizes, SEG);
    let files = seg_files(dir);
    // The writer put the records exactly where the model says.
    let names: Vec<Lsn> = files.iter().map(|f| f.0).collect();
    let model: Vec<Lsn> = lay.iter().map(|s| s.1[0].0).collect();
    assert_eq!(names, model, "segment names");
    for ((_, path), (len, _)) in files.iter().zip(&lay) {
        assert_eq!(
            fs::metadata(path).expect("stat").len(),
            *len,
            "segment size"
        );
    }
    // Records of earlier segments survive, plus those of `seg` before the first
    // one the damage `hit`s.
    let surviving = |seg: usize, hit: &dyn Fn(u64, u64) -> bool| -> usize {
        let before: usize = lay[..seg].iter().map(|s| s.1.len()).sum();
        let in_seg = lay[seg]
            .1
            .iter()
            .take_while(|&&(_, off, frame)| !hit(off, frame))
            .count();
        before + in_seg
    };
    match damage {
        Damage::Truncate(ix) => {
            let (_, path) = files.last().expect("a segment");
            let len = fs::metadata(path).expect("stat").len();
            let at = ix.index(len as usize + 1) as u64;
            let f = fs::OpenOptions::new().write(true).open(path).expect("open");
            f.set_len(at).expect("truncate");
            (
                surviving(files.len() - 1, &|off, frame| off + frame > at),
                false,
            )
        }
        Damage::Flip(s, b, mask) => {
            let seg = s.index(files.len());
            let path = &files[seg].1;
            let mut data = fs::read(path).expect("read");
            let at = b.index(data.len());
            data[at] ^= mask;
            fs::write(path, &data).expect("write");
            let at = at as u64;
            let hit = |off: u64, frame: u64| off <= at && at < off + frame;
            if lay[seg].1.iter().any(|&(_, off, frame)| hit(off, frame)) {
                (surviving(seg, &hit), true)
            } else {
                // Slack after the last record: no record lost.
                (sizes.len(), false)
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn recovery_replays_longest_valid_prefix(
        sizes in sizes_strategy(40),
        damage in damage_strategy(),
        more in sizes_strategy(8),
    ) {
        let tmp = tempfile::tempdir().expect("tempdir");
        // Never: recovery does not depend on fsync, and the test runs faster.
        let cfg = config(tmp.path(), SEG, FsyncMode::Never);
        let (j, _) = open(cfg.clone());
        let written = append_all(&j, &sizes);
        j.close();
        drop(j);

        let (keep, must_cut) = apply_damage(tmp.path(), &sizes, &damage);
        let (j, seen) = open(cfg.clone());
        prop_assert_eq!(&seen[..], &written[..keep]);
        prop_assert_eq!(j.next_lsn(), keep as Lsn + 1);
        if must_cut {
            prop_assert!(j.recovery().cut.is_some());
        }

        // Appends continue after the last good record, and the result is a journal
        // that reopens cleanly with everything in it.
        let mut expected = written[..keep].to_vec();
        expected.extend(append_all(&j, &more));
        j.close();
        drop(j);
        let (j, seen) = open(cfg);
        prop_assert_eq!(&seen, &expected);
        prop_assert_eq!(&j.recovery().cut, &None);
        prop_assert_eq!(j.next_lsn(), expected.len() as Lsn + 1);
    }
}

#[test]
fn garbage_after_the_tail_is_zeroed_so_stale_records_cannot_return() {
    // A crash can persist later pages of a batch but not an earlier one. Recovery
    // must not leave those stale records behind the new tail.
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path(), SEG, FsyncMode::Never);
    let (j, _) = open(cfg.clone());
    let written = append_all(&j, &[100, 100, 100]);
    j.close();
    drop(j);
    let (_, path) = &seg_files(tmp.path())[0];
    let mut data = fs::read(path).expect("read");
    let frame = HEADER_LEN + 100;
    // Record 2 was "lost": zeros. Record 3 survived behind it.
    data[frame..2 * frame].fill(0);
    fs::write(path, &data).expect("write");

    let (j, seen) = open(cfg.clone());
    assert_eq!(seen, written[..1]);
    // A new record 2 of the same size ends exactly where the stale record 3 began.
    let again = append_all(&j, &[100]);
    j.close();
    drop(j);
    let (_, seen) = open(cfg);
    assert_eq!(seen, [written[0].clone(), again[0].clone()]);
}

#[test]
fn retire_before_deletes_only_whole_segments_below() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path(), SEG, FsyncMode::Batch);
    let (j, _) = open(cfg.clone());
    // 224-byte frames: 18 per 4 KiB segment.
    let written = append_all(&j, &[200; 120]);
    let last = written.len() as Lsn;
    j.wait_durable_blocking(last).expect("durable");
    let files = seg_files(tmp.path());
    assert!(files.len() >= 6);
    let firsts: Vec<Lsn> = files.iter().map(|f| f.0).collect();

    // One below segment 2's first LSN: segment 1 still holds a record >= it.
    j.retire_before(firsts[2] - 1);
    assert_eq!(seg_files(tmp.path()), files[1..]);
    // Segment 2's first LSN: everything in segment 1 is below it.
    j.retire_before(firsts[2]);
    assert_eq!(seg_files(tmp.path()), files[2..]);
    // Lower than what is gone already: nothing happens.
    j.retire_before(1);
    assert_eq!(seg_files(tmp.path()), files[2..]);
    // Everything: only the segment being written stays.
    j.retire_before(Lsn::MAX);
    assert_eq!(seg_files(tmp.path()), files[files.len() - 1..]);
    assert_eq!(j.stats().segments, 1);
    assert_eq!(j.stats().bytes_on_disk, SEG);

    let lsn = j.append(b"after retire");
    j.close();
    drop(j);
    let (j, seen) = open(cfg);
    let first_kept = *firsts.last().expect("segments");
    let mut expected: Records = written[first_kept as usize - 1..].to_vec();
    expected.push((lsn, b"after retire".to_vec()));
    assert_eq!(seen, expected);
    assert_eq!(j.next_lsn(), lsn + 1);
}

#[test]
fn group_commit_batches_many_appenders() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 2000;
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path(), 1 << 20, FsyncMode::Batch);
    let (j, _) = open(cfg.clone());
    let started = Instant::now();
    let mut lsns: Vec<Lsn> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let j = j.clone();
                s.spawn(move || {
                    let mut mine = Vec::with_capacity(PER_THREAD as usize);
                    for i in 0..PER_THREAD {
                        let rec = format!("thread {t} record {i}");
                        mine.push(j.append(rec.as_bytes()));
                    }
                    let last = *mine.last().expect("appended");
                    j.wait_durable_blocking(last).expect("durable");
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("appender thread"))
            .collect()
    });
    let elapsed = started.elapsed();
    let records = THREADS * PER_THREAD;
    lsns.sort_unstable();
    assert_eq!(lsns, (1..=records).collect::<Vec<_>>());
    assert!(j.durable_lsn() >= records);
    let stats = j.stats();
    eprintln!("group commit: {records} records, {stats:?}, {elapsed:?}");
    assert_eq!(stats.records_appended, records);
    assert!(stats.fsyncs > 0);
    assert!(
        stats.fsyncs < records / 4,
        "{} fsyncs for {records} records",
        stats.fsyncs
    );
    j.close();
    drop(j);
    let (_, seen) = open(cfg);
    assert_eq!(seen.len() as u64, records);
}

#[test]
fn back_pressure_does_not_deadlock() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = JournalConfig {
        max_pending_bytes: 1024,
        ..config(tmp.path(), 64 << 10, FsyncMode::Batch)
    };
    let (j, _) = open(cfg);
    std::thread::scope(|s| {
        for _ in 0..2 {
            let j = j.clone();
            s.spawn(move || {
                for _ in 0..300 {
                    j.append(&[7u8; 500]);
                }
            });
        }
    });
    j.wait_durable_blocking(600).expect("durable");
}

#[tokio::test]
async fn wait_durable_resolves_for_an_appended_record() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (j, _) = open(config(tmp.path(), SEG, FsyncMode::Batch));
    let mut rx = j.subscribe();
    let lsn = j.append(b"hello");
    tokio::time::timeout(Duration::from_secs(10), j.wait_durable(lsn))
        .await
        .expect("durable in time");
    assert!(j.durable_lsn() >= lsn);
    // Already durable: returns at once.
    j.wait_durable(lsn).await;
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|&d| d >= lsn))
        .await
        .expect("watch in time")
        .expect("sender alive");
}

#[test]
fn interval_mode_confirms_on_write_and_syncs_later() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (j, _) = open(config(
        tmp.path(),
        SEG,
        FsyncMode::Interval(Duration::from_millis(50)),
    ));
    let lsn = j.append(b"x");
    j.wait_durable_blocking(lsn).expect("durable");
    let deadline = Instant::now() + Duration::from_secs(10);
    while j.synced_lsn() < lsn {
        assert!(Instant::now() < deadline, "never synced");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(j.stats().fsyncs >= 1);
}

#[test]
fn disk_failure_stops_durability_but_not_appends() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("journal");
    let (j, _) = open(config(&dir, SEG, FsyncMode::Batch));
    let first = j.append(&[1u8; 100]);
    j.wait_durable_blocking(first).expect("durable");
    // With the directory gone the next rollover cannot name its segment. The
    // journal may be preparing its next segment meanwhile: try again until the
    // directory is gone.
    let mut tries = 0;
    while let Err(e) = fs::remove_dir_all(&dir) {
        tries += 1;
        assert!(tries < 100, "remove dir: {e}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let lsns: Vec<Lsn> = (0..100).map(|_| j.append(&[2u8; 500])).collect();
    let last = *lsns.last().expect("appended");
    assert_eq!(last, first + 100);
    assert!(matches!(
        j.wait_durable_blocking(last),
        Err(StoreError::NotDurable)
    ));
    assert!(j.is_failed());
    assert!(j.durable_lsn() < last);
    // Appends keep returning fresh LSNs and never become durable.
    assert_eq!(j.append(b"late"), last + 1);
    j.close();
}

/// `cargo test --release --lib store::tests::throughput -- --ignored --nocapture`
#[test]
#[ignore]
fn throughput_1k_batch_4_threads() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 50_000;
    let tmp = tempfile::tempdir_in(".").expect("tempdir on the real disk");
    let (j, _) = open(config(tmp.path(), 64 << 20, FsyncMode::Batch));
    let rec = [0x5au8; 1024];
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            let j = j.clone();
            s.spawn(move || {
                let mut last = 0;
                for _ in 0..PER_THREAD {
                    last = j.append(&rec);
                }
                j.wait_durable_blocking(last).expect("durable");
            });
        }
    });
    let open_loop = started.elapsed();
    let n = (THREADS * PER_THREAD) as f64;
    let stats = j.stats();
    eprintln!(
        "open loop: {n} x 1 KiB in {open_loop:?}: {:.0} records/s, {:.0} MiB/s, {} fsyncs",
        n / open_loop.as_secs_f64(),
        n / 1024.0 / open_loop.as_secs_f64(),
        stats.fsyncs
    );

    // Closed loop: each thread waits for its record before appending the next, as
    // a publisher without pipelining does; batches are at most THREADS records.
    const CLOSED: usize = 2000;
    let fsyncs_before = j.stats().fsyncs;
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            let j = j.clone();
            s.spawn(move || {
                for _ in 0..CLOSED {
                    let lsn = j.append(&rec);
                    j.wait_durable_blocking(lsn).expect("durable");
                }
            });
        }
    });
    let closed = started.elapsed();
    let n = (THREADS * CLOSED) as f64;
    eprintln!(
        "closed loop: {n} x 1 KiB in {closed:?}: {:.0} records/s, {} fsyncs",
        n / closed.as_secs_f64(),
        j.stats().fsyncs - fsyncs_before
    );
    j.close();
}

#[test]
fn scan_rereads_records_and_leaves_the_writer_able_to_roll_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (j, _) = open(config(dir.path(), SEG, FsyncMode::Batch));
    let first = append_all(&j, &[100; 30]);
    j.close();
    drop(j);
    let (j, replayed) = open(config(dir.path(), SEG, FsyncMode::Batch));
    assert_eq!(replayed, first);
    // Let the writer's preparer put the next segment in place first, as it has
    // long done by the time start-up's second pass runs on a real journal.
    let prepared = dir.path().join(super::segment::NEXT_TMP);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !prepared.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    // The second pass start-up makes must see the same records...
    let mut scanned = Vec::new();
    j.scan(j.next_lsn() - 1, |lsn, p| scanned.push((lsn, p.to_vec())))
        .expect("scan");
    assert_eq!(scanned, first);
    // ...and must not disturb the writer's prepared next segment: appending across
    // several rollovers still becomes durable.
    let more = append_all(&j, &[500; 40]);
    let last = more.last().expect("appended").0;
    j.wait_durable_blocking(last)
        .expect("durable after rollovers");
    assert!(!j.is_failed());
}
