use super::Entry;
use super::ready::{Lane, Ready};
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
    r.push(entry(0, Some("a")));
    r.push(entry(1, Some("a")));
    r.push(entry(2, Some("b")));
    assert_eq!(r.pop().unwrap().seq, 0);
    assert_eq!(r.pop().unwrap().seq, 2);
    assert!(r.pop().is_none(), "group a is in flight");
    r.group_settled(Some("a"));
    assert_eq!(r.pop().unwrap().seq, 1);
    assert_eq!(r.len(), 0);
}
