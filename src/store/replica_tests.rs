//! Replication's view of the journal: frames read back from the segments rebuild
//! an identical journal elsewhere; a divergent suffix is cut where the epochs say;
//! the gate holds `durable_lsn`; a standby store applies definition changes and
//! starts over from a snapshot.

use std::path::Path;
use std::time::Duration;

use super::*;
use switchboard_api::Table;

fn journal(dir: &Path, epoch: u64) -> Journal {
    let cfg = JournalConfig {
        segment_bytes: 4096,
        epoch,
        ..JournalConfig::new(dir)
    };
    Journal::open(cfg, |_, _| {}).expect("open journal")
}

fn records(dir: &Path) -> Vec<(Lsn, u64, Vec<u8>)> {
    let mut out = Vec::new();
    let cfg = JournalConfig {
        segment_bytes: 4096,
        ..JournalConfig::new(dir)
    };
    let j =
        Journal::open_with_epochs(cfg, |lsn, e, p| out.push((lsn, e, p.to_vec()))).expect("reopen");
    j.close();
    out
}

fn ship(from: &Journal, to: &Journal, start: Lsn) {
    let mut reader = from.reader(start);
    let upto = from.next_lsn() - 1;
    while reader.position() <= upto {
        let mut frames = Frames::default();
        reader.read(upto, 700, &mut frames).expect("read back");
        assert!(!frames.bytes.is_empty(), "reader made no progress");
        replicate::for_each_frame(&frames.bytes, |e, lsn, p| to.append_replica(e, lsn, p))
            .expect("append replica");
    }
    to.wait_durable_blocking(upto).expect("durable");
}

#[test]
fn shipped_frames_rebuild_the_same_journal_across_segments() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let active = journal(a.path(), 1);
    for i in 0..300u32 {
        active.append(&vec![i as u8; (i % 97) as usize]);
    }
    active.wait_durable_blocking(300).unwrap();
    active.set_epoch(2);
    for i in 0..50u32 {
        active.append(&i.to_le_bytes());
    }
    active.wait_durable_blocking(350).unwrap();
    let standby = journal(b.path(), 0);
    ship(&active, &standby, 1);
    assert_eq!(standby.last_record(), (2, 350));
    standby.close();
    active.close();
    let (ra, rb) = (records(a.path()), records(b.path()));
    assert_eq!(ra.len(), 350);
    assert_eq!(ra, rb);
    assert!(ra.iter().filter(|r| r.1 == 2).count() == 50);
}

#[test]
fn a_reader_starts_in_the_middle_and_out_of_sequence_appends_are_refused() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let active = journal(a.path(), 1);
    for i in 0..200u32 {
        active.append(&[i as u8; 40]);
    }
    active.wait_durable_blocking(200).unwrap();
    let mut reader = active.reader(150);
    let mut frames = Frames::default();
    reader.read(200, usize::MAX, &mut frames).unwrap();
    assert_eq!((frames.first, frames.last), (150, 200));
    let standby = journal(b.path(), 0);
    let err =
        replicate::for_each_frame(&frames.bytes, |e, lsn, p| standby.append_replica(e, lsn, p));
    assert!(matches!(
        err,
        Err(StoreError::OutOfSequence {
            expected: 1,
            got: 150
        })
    ));
}

#[test]
fn a_divergent_suffix_is_cut_where_the_epochs_part() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Both had epoch 1 up to LSN 50; the old active went on alone in epoch 1 to 60,
    // while the new active wrote 51..70 in epoch 3.
    let old = journal(b.path(), 1);
    let new = journal(a.path(), 1);
    for i in 0..50u32 {
        old.append(&i.to_le_bytes());
        new.append(&i.to_le_bytes());
    }
    for _ in 0..10 {
        old.append(b"never confirmed");
    }
    new.set_epoch(3);
    for _ in 0..20 {
        new.append(b"epoch three");
    }
    new.wait_durable_blocking(70).unwrap();
    old.wait_durable_blocking(60).unwrap();
    let (last_epoch, last_lsn) = old.last_record();
    assert_eq!((last_epoch, last_lsn), (1, 60));
    let keep = last_lsn.min(new.end_of_epoch(last_epoch));
    assert_eq!(keep, 50);
    old.close();
    let cfg = JournalConfig {
        segment_bytes: 4096,
        keep_upto: keep,
        ..JournalConfig::new(b.path())
    };
    let old = Journal::open(cfg, |_, _| {}).unwrap();
    assert_eq!(old.next_lsn(), 51);
    ship(&new, &old, 51);
    old.close();
    new.close();
    assert_eq!(records(a.path()), records(b.path()));
}

#[test]
fn the_gate_holds_durable_until_the_standby_acknowledges() {
    let a = tempfile::tempdir().unwrap();
    let j = journal(a.path(), 1);
    j.set_gate(Some(0));
    for _ in 0..10 {
        j.append(b"x");
    }
    let t0 = std::time::Instant::now();
    while j.local_durable_lsn() < 10 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(j.local_durable_lsn(), 10);
    assert_eq!(
        j.durable_lsn(),
        0,
        "nothing durable before the standby has it"
    );
    j.set_gate(Some(4));
    assert_eq!(j.durable_lsn(), 4);
    j.set_gate(None);
    assert_eq!(j.durable_lsn(), 10);
}

#[test]
fn a_standby_store_applies_definitions_and_starts_over_from_a_snapshot() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (store, _) = Store::open(a.path(), Fsync::Never).unwrap();
    store.put_vhost("dev").unwrap();
    let id = store.put_queue("dev", "q", false, &Table::new()).unwrap();
    store
        .put_binding(
            "dev",
            BindingDef {
                source: "amq.topic".into(),
                dest_is_queue: true,
                dest: "q".into(),
                key: "k".into(),
                args: Table::new(),
            },
        )
        .unwrap();
    store
        .put_queue("dev", "gone", false, &Table::new())
        .unwrap();
    store.remove_queue("dev", "gone").unwrap();
    let upto = store.journal().next_lsn() - 1;
    store.journal().wait_durable_blocking(upto).unwrap();

    let mut replica = Replica::open(b.path(), Fsync::Never, Lsn::MAX).unwrap();
    let mut frames = Frames::default();
    store
        .journal()
        .reader(1)
        .read(upto, usize::MAX, &mut frames)
        .unwrap();
    assert_eq!(replica.append_frames(&frames.bytes).unwrap(), upto);
    replica.close();
    let want = Definitions::load(a.path()).unwrap();
    assert_eq!(Definitions::load(b.path()).unwrap(), want);
    assert_eq!(want.queues[&("dev".to_string(), "q".to_string())].id, id);

    // A snapshot: the definitions as they are now and a journal continuing at the
    // active's first LSN (here: further on, as if older segments were retired).
    let (defs, next) = store.definitions_snapshot();
    let replica = Replica::open(b.path(), Fsync::Never, Lsn::MAX).unwrap();
    let replica = replica.reset(next + 100, &defs).unwrap();
    assert_eq!(replica.journal().next_lsn(), next + 100);
    replica.close();
    assert_eq!(Definitions::load(b.path()).unwrap(), want);
    store.close();
}
