use super::Entry;
use super::lane::Lane;
use super::ready::Ready;
use std::sync::Arc;
use switchboard_api::Message;

fn entry(seq: u64, group: Option<&str>) -> Entry {
    let m = Message {
        group_id: group.map(str::to_string),
        ..Default::default()
    };
    Entry {
        seq,
        msg: super::Payload::Mem(Arc::new(m)),
        priority: 0,
        expires_at: None,
        delivery_count: 0,
        redelivered: false,
        size: 0,
        lsn: 0,
        first_ms: 0,
    }
}

fn push(r: &mut Ready, seq: u64, group: Option<&str>) {
    r.push(entry(seq, group), group);
}

fn seqs(r: &mut Ready, n: usize) -> Vec<u64> {
    std::iter::from_fn(|| r.pop())
        .take(n)
        .map(|(e, _)| e.seq)
        .collect()
}

#[test]
fn lane_requeue_restores_order() {
    let mut l = Lane::default();
    for s in 0..5 {
        l.push(entry(s, None));
    }
    let a = l.pop().unwrap();
    let b = l.pop().unwrap();
    let c = l.pop().unwrap();
    l.requeue(c);
    l.requeue(a);
    l.requeue(b);
    let order: Vec<u64> = std::iter::from_fn(|| l.pop()).map(|e| e.seq).collect();
    assert_eq!(order, [0, 1, 2, 3, 4]);
}

#[test]
fn grouped_ready_blocks_group_until_settled() {
    let mut r = Ready::grouped();
    push(&mut r, 0, Some("a"));
    push(&mut r, 1, Some("a"));
    push(&mut r, 2, Some("b"));
    assert_eq!(r.pop().unwrap().0.seq, 0);
    assert_eq!(r.pop().unwrap().0.seq, 2);
    assert!(r.pop().is_none(), "group a is in flight");
    r.group_settled(Some("a"));
    assert_eq!(r.pop().unwrap().0.seq, 1);
    assert_eq!(r.len(), 0);
}

fn paged(seq: u64) -> Entry {
    Entry {
        msg: super::Payload::Paged { off: seq, len: 1 },
        ..entry(seq, None)
    }
}

#[test]
fn paged_entries_keep_their_group_in_a_grouped_queue() {
    let mut r = Ready::grouped();
    for (seq, g) in [(0, "a"), (1, "b"), (2, "a"), (3, "b"), (4, "a")] {
        r.push(paged(seq), Some(g));
    }
    // The group comes from the lane: a paged entry has no message to read it from.
    let (e, from) = r.pop().unwrap();
    assert_eq!((e.seq, from.as_deref()), (0, Some("a")));
    assert!(e.msg.group().is_none());
    let (e, from) = r.pop().unwrap();
    assert_eq!((e.seq, from.as_deref()), (1, Some("b")));
    assert!(r.pop().is_none(), "both groups are in flight");
    assert_eq!(r.pop_same_group("a").map(|e| e.seq), Some(2));
    r.group_settled(from.as_deref());
    assert_eq!(r.pop().map(|(e, _)| e.seq), Some(3));
    // A group that is not in flight cannot be continued from the side.
    r.group_settled(Some("b"));
    r.group_settled(Some("a"));
    r.group_settled(Some("a"));
    assert!(r.pop_same_group("a").is_none());
    assert_eq!(
        r.pop().map(|(e, g)| (e.seq, g)),
        Some((4, Some("a".into())))
    );
    assert_eq!(r.len(), 0);
}

#[test]
fn plain_queue_serves_a_quiet_group_before_a_noisy_backlog() {
    let mut r = Ready::plain(0);
    for s in 0..1000 {
        push(&mut r, s, Some("noisy"));
    }
    for s in 1000..1010 {
        push(&mut r, s, Some("quiet"));
    }
    assert_eq!(r.len(), 1010);
    let first = seqs(&mut r, 20);
    let quiet: Vec<u64> = first.iter().copied().filter(|s| *s >= 1000).collect();
    assert_eq!(
        quiet,
        (1000..1010).collect::<Vec<_>>(),
        "one turn each: {first:?}"
    );
    // Each group still comes out in its own order, and nothing twice or lost.
    let rest = seqs(&mut r, usize::MAX);
    let mut all: Vec<u64> = first.into_iter().chain(rest).collect();
    let noisy: Vec<u64> = all.iter().copied().filter(|s| *s < 1000).collect();
    assert_eq!(noisy, (0..1000).collect::<Vec<_>>());
    all.sort_unstable();
    assert_eq!(all, (0..1010).collect::<Vec<_>>());
    assert_eq!(r.len(), 0);
}

#[test]
fn ungrouped_messages_are_one_group_among_the_others() {
    let mut r = Ready::plain(0);
    push(&mut r, 0, None);
    push(&mut r, 1, None);
    push(&mut r, 2, Some("a"));
    push(&mut r, 3, Some("a"));
    push(&mut r, 4, None);
    push(&mut r, 5, Some("b"));
    assert_eq!(r.front().map(|e| e.seq), Some(0));
    assert_eq!(seqs(&mut r, 6), [0, 2, 5, 1, 3, 4]);
    // Without any group the queue is a plain FIFO again.
    for s in 6..9 {
        push(&mut r, s, None);
    }
    assert_eq!(seqs(&mut r, 3), [6, 7, 8]);
}

#[test]
fn a_requeued_message_returns_to_its_place_in_its_group() {
    let mut r = Ready::plain(0);
    push(&mut r, 0, Some("a"));
    push(&mut r, 1, Some("a"));
    push(&mut r, 2, Some("b"));
    let (a0, _) = r.pop().unwrap();
    assert_eq!(a0.seq, 0);
    r.requeue(a0);
    // b's turn was next; a's message 0 is again ahead of a's message 1.
    assert_eq!(seqs(&mut r, 3), [2, 0, 1]);
}

#[test]
fn expiry_at_the_head_does_not_pass_the_turn() {
    let mut r = Ready::plain(0);
    push(&mut r, 0, Some("a"));
    push(&mut r, 1, Some("a"));
    push(&mut r, 2, Some("b"));
    assert_eq!(r.discard_front().map(|e| e.seq), Some(0));
    assert_eq!(r.front().map(|e| e.seq), Some(1));
    assert_eq!(seqs(&mut r, 2), [1, 2]);
}

#[test]
fn removing_and_draining_keep_the_groups_consistent() {
    let mut r = Ready::plain(0);
    push(&mut r, 0, None);
    push(&mut r, 1, Some("a"));
    push(&mut r, 2, Some("b"));
    push(&mut r, 3, Some("b"));
    assert_eq!(r.remove(1).map(|e| e.seq), Some(1));
    assert_eq!(r.remove(0).map(|e| e.seq), Some(0));
    assert_eq!(r.len(), 2);
    assert_eq!(r.front().map(|e| e.seq), Some(2));
    push(&mut r, 4, Some("a"));
    let drained: Vec<u64> = r.drain_all().into_iter().map(|e| e.seq).collect();
    assert_eq!(drained, [2, 3, 4]);
    assert_eq!(r.len(), 0);
    assert!(r.pop().is_none());
}

#[test]
fn a_consumer_is_offered_only_the_groups_it_may_take() {
    let mut r = Ready::plain(0);
    push(&mut r, 0, Some("a"));
    push(&mut r, 1, Some("b"));
    push(&mut r, 2, None);
    push(&mut r, 3, Some("a"));
    // "a" belongs to someone else: b, then the ungrouped message; a's wait.
    let mut not_a = |g: &str| g != "a";
    let (e, g) = r.pop_for(&mut not_a).unwrap();
    assert_eq!((e.seq, g.as_deref()), (1, Some("b")));
    let (e, g) = r.pop_for(&mut not_a).unwrap();
    assert_eq!((e.seq, g), (2, None));
    assert!(r.pop_for(&mut not_a).is_none());
    assert_eq!(r.len(), 2);
    let mut any = |_: &str| true;
    let got: Vec<u64> = std::iter::from_fn(|| r.pop_for(&mut any))
        .map(|(e, _)| e.seq)
        .collect();
    assert_eq!(got, [0, 3]);
}
