//! Paging of grouped (FIFO) queues, through the queue's own operations: messages
//! beyond the memory budget wait in the spill file and still come out in order per
//! group, one group in flight at a time.

use super::{Queue, QueueArgs, QueueConfig, QueueOwner};
use crate::broker::timer::Timers;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use switchboard_api::{Delivery, Message, QueueHandle, Settle, Table};

struct NoOwner;

impl QueueOwner for NoOwner {
    fn owner_name(&self) -> &str {
        "/"
    }
    fn dead_letter(&self, _: &str, _: Message) {}
    fn remove_queue(&self, _: &str) {}
}

/// A grouped queue that keeps `budget` bytes of ready messages in memory.
fn fifo(dir: &tempfile::TempDir, budget: usize) -> Arc<Queue> {
    let owner: Weak<dyn QueueOwner> = Weak::<NoOwner>::new();
    let cfg = QueueConfig {
        id: 0,
        store: None,
        paging: Some((dir.path().join("q.spill"), budget)),
        name: "q.fifo".into(),
        durable: false,
        auto_delete: false,
        exclusive_owner: None,
        args: QueueArgs {
            grouped: true,
            ..Default::default()
        },
        raw_args: Table::default(),
    };
    Queue::new(cfg, owner, Timers::default())
}

fn msg(group: &str, n: usize) -> Arc<Message> {
    let mut m = Message::new(
        "",
        "q.fifo",
        Bytes::from(format!("{group}-{n}:{}", "x".repeat(200))),
    );
    m.group_id = Some(group.to_string());
    Arc::new(m)
}

fn publish(q: &Queue, groups: &[&str], per_group: usize) {
    for n in 0..per_group {
        for g in groups {
            q.enqueue(msg(g, n));
        }
    }
}

/// `(group, n)` of a delivery, from its body.
fn what(d: &Delivery) -> (String, usize) {
    let body = String::from_utf8_lossy(&d.message.body);
    let (head, _) = body.split_once(':').unwrap_or_default();
    let (g, n) = head.rsplit_once('-').unwrap_or_default();
    (g.to_string(), n.parse().unwrap_or(usize::MAX))
}

const LEASE: Duration = Duration::from_secs(60);

#[test]
fn paged_messages_of_a_grouped_queue_come_out_in_order_per_group() {
    let dir = tempfile::tempdir().unwrap();
    let q = fifo(&dir, 4096);
    publish(&q, &["a", "b", "c"], 100);
    let stats = q.stats();
    assert_eq!(stats.ready, 300);
    assert!(
        stats.paged_bytes > stats.ready_bytes / 2,
        "most of the backlog is on disk: {stats:?}"
    );
    let mut next: HashMap<String, usize> = HashMap::new();
    loop {
        let batch = q.receive(10, LEASE);
        if batch.is_empty() {
            break;
        }
        // One receive is a run of one group (SQS FIFO), in order.
        let first = what(&batch[0]).0;
        for d in &batch {
            let (g, n) = what(d);
            assert_eq!(g, first, "a batch never mixes groups");
            let want = next.entry(g.clone()).or_default();
            assert_eq!(n, *want, "group {g} out of order");
            *want += 1;
        }
        let seqs: Vec<u64> = batch.iter().map(|d| d.seq).collect();
        q.settle_many(&seqs, Settle::Ack);
    }
    assert_eq!(next.values().sum::<usize>(), 300);
    assert!(next.values().all(|n| *n == 100), "{next:?}");
    let stats = q.stats();
    assert_eq!((stats.ready, stats.in_flight, stats.paged_bytes), (0, 0, 0));
}

#[test]
fn a_paged_group_is_held_back_while_one_of_its_messages_is_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing fits: every message is paged out.
    let q = fifo(&dir, 0);
    publish(&q, &["a", "b"], 3);
    assert_eq!(q.stats().paged_bytes, q.stats().ready_bytes);
    let a = q.receive(1, LEASE);
    assert_eq!(a.iter().map(what).collect::<Vec<_>>(), [("a".into(), 0)]);
    // Only b is offered while a0 is leased, and all of b at once.
    let b = q.receive(10, LEASE);
    let got: Vec<_> = b.iter().map(what).collect();
    assert_eq!(got, [("b".into(), 0), ("b".into(), 1), ("b".into(), 2)]);
    assert!(q.receive(10, LEASE).is_empty(), "both groups are in flight");
    q.settle_many(&[a[0].seq], Settle::Ack);
    let rest: Vec<_> = q.receive(10, LEASE).iter().map(what).collect();
    assert_eq!(rest, [("a".into(), 1), ("a".into(), 2)]);
}

#[test]
fn a_requeued_paged_message_is_first_of_its_group_again() {
    let dir = tempfile::tempdir().unwrap();
    let q = fifo(&dir, 0);
    publish(&q, &["a", "b"], 2);
    let a0 = q.receive(1, LEASE);
    assert_eq!(what(&a0[0]), ("a".into(), 0));
    // Visibility 0 puts it back (SQS ChangeMessageVisibility): it is in memory now.
    assert!(q.set_visibility(a0[0].seq, None, Duration::ZERO).is_ok());
    // b had its turn meanwhile; a's run starts again with a0, which is in memory now.
    let again = q.receive(10, LEASE);
    let got: Vec<_> = again.iter().map(what).collect();
    let want = [("b", 0), ("b", 1), ("a", 0), ("a", 1)].map(|(g, n)| (g.to_string(), n));
    assert_eq!(got, want);
    assert!(again[2].redelivered && !again[3].redelivered);
    // A push-style requeue (nack) behind a message still in flight waits for it.
    q.settle_many(&[again[3].seq], Settle::Requeue);
    assert!(q.get(false).is_none(), "a0 is still in flight");
    q.settle_many(&[again[2].seq], Settle::Ack);
    let (a1, left) = q.get(false).unwrap_or_else(|| panic!("a1 is ready again"));
    assert_eq!((what(&a1), left), (("a".into(), 1), 0));
}

#[test]
fn an_expired_paged_message_does_not_block_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let q = fifo(&dir, 0);
    let mut m = (*msg("a", 0)).clone();
    m.properties.expiration = Some("1".into());
    q.enqueue(Arc::new(m));
    q.enqueue(msg("a", 1));
    std::thread::sleep(Duration::from_millis(5));
    // a0 dies on the way out; its group is the lane's, so a1 follows it.
    let got: Vec<_> = q.receive(10, LEASE).iter().map(what).collect();
    assert_eq!(got, [("a".into(), 1)]);
    assert_eq!(q.stats().ready, 0);
}
