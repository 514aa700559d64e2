//! Core behaviour through the `Broker` trait, without any protocol.

use super::*;
use std::sync::Mutex;
use switchboard_api::{DeliverySink, ErrorKind, Properties, Settle, SinkEvent, Value};

struct Collect(Mutex<Vec<Delivery>>, Mutex<Vec<u64>>);

impl DeliverySink for Collect {
    fn push(&self, ev: SinkEvent) {
        match ev {
            SinkEvent::Deliver { delivery, .. } => self.0.lock().unwrap().push(delivery),
            SinkEvent::Cancelled { consumer } => self.1.lock().unwrap().push(consumer),
        }
    }
}

impl Collect {
    fn new() -> Arc<Collect> {
        Arc::new(Collect(Mutex::default(), Mutex::default()))
    }
    fn take(&self) -> Vec<Delivery> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

pub(super) fn core() -> Core {
    Core::new(Users::default())
}

fn declare(c: &Core, name: &str, args: &[(&str, Value)]) {
    let decl = QueueDecl {
        name: name.into(),
        arguments: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        ..Default::default()
    };
    c.declare_queue("/", &decl, 1).unwrap();
}

pub(super) fn msg(key: &str, body: &str) -> Message {
    Message::new("", key, bytes::Bytes::from(body.to_string()))
}

fn publish(c: &Core, key: &str, body: &str) -> PublishOutcome {
    c.publish("/", msg(key, body), PublishOptions::default())
        .unwrap()
}

fn body(d: &Delivery) -> String {
    String::from_utf8(d.message.body.to_vec()).unwrap()
}

fn consume(c: &Core, q: &str, prefetch: u32) -> (Arc<Collect>, Box<dyn ConsumerHandle>) {
    let sink = Collect::new();
    let h = c
        .consume(
            "/",
            q,
            ConsumerSpec {
                tag: 7,
                owner: 1,
                prefetch,
                shared_credit: None,
                exclusive: false,
                priority: 0,
                sink: sink.clone(),
            },
        )
        .unwrap();
    (sink, h)
}

#[tokio::test]
async fn push_respects_prefetch_and_ack_frees_credit() {
    let c = core();
    declare(&c, "q", &[]);
    for i in 0..5 {
        publish(&c, "q", &i.to_string());
    }
    let (sink, _h) = consume(&c, "q", 2);
    let first = sink.take();
    assert_eq!(first.iter().map(body).collect::<Vec<_>>(), ["0", "1"]);
    first[0].queue.settle(&[first[0].seq], Settle::Ack);
    let next = sink.take();
    assert_eq!(next.iter().map(body).collect::<Vec<_>>(), ["2"]);
}

#[tokio::test]
async fn single_active_consumer_hand_over_keeps_order() {
    // The active consumer goes away holding unacked deliveries (as a closing
    // channel does: cancel, then requeue): the next consumer must get those
    // first, not what came after them.
    let c = core();
    declare(&c, "q", &[("x-single-active-consumer", Value::Bool(true))]);
    for i in 0..6 {
        publish(&c, "q", &i.to_string());
    }
    let (first, h1) = consume(&c, "q", 2);
    let (second, _h2) = consume(&c, "q", 2);
    let held = first.take();
    assert_eq!(held.iter().map(body).collect::<Vec<_>>(), ["0", "1"]);
    assert!(second.take().is_empty());
    h1.cancel();
    assert!(
        second.take().is_empty(),
        "nothing before 0 and 1 are settled"
    );
    held[0].queue.settle(
        &held.iter().map(|d| d.seq).collect::<Vec<_>>(),
        Settle::Requeue,
    );
    let next = second.take();
    assert_eq!(next.iter().map(body).collect::<Vec<_>>(), ["0", "1"]);
    assert!(next.iter().all(|d| d.redelivered));
    // Acked by a consumer that has gone: the hand-over happens then too.
    declare(&c, "r", &[("x-single-active-consumer", Value::Bool(true))]);
    for i in 0..4 {
        publish(&c, "r", &i.to_string());
    }
    let (a, ha) = consume(&c, "r", 1);
    let (b, _hb) = consume(&c, "r", 1);
    let d = a.take();
    ha.cancel();
    assert!(b.take().is_empty());
    d[0].queue.settle(&[d[0].seq], Settle::Ack);
    assert_eq!(b.take().iter().map(body).collect::<Vec<_>>(), ["1"]);
}

#[tokio::test]
async fn requeue_returns_to_original_position_redelivered() {
    let c = core();
    declare(&c, "q", &[]);
    for b in ["a", "b", "c"] {
        publish(&c, "q", b);
    }
    let (d1, _) = c.get("/", "q", 1, false).unwrap().unwrap();
    let (d2, _) = c.get("/", "q", 1, false).unwrap().unwrap();
    d2.queue.settle(&[d2.seq], Settle::Requeue);
    d1.queue.settle(&[d1.seq], Settle::Requeue);
    let got: Vec<(String, bool)> = (0..3)
        .map(|_| {
            let (d, _) = c.get("/", "q", 1, true).unwrap().unwrap();
            (body(&d), d.redelivered)
        })
        .collect();
    assert_eq!(
        got,
        [("a".into(), true), ("b".into(), true), ("c".into(), false)]
    );
}

#[tokio::test]
async fn lease_expires_and_message_reappears_with_count() {
    let c = core();
    declare(&c, "q", &[]);
    publish(&c, "q", "x");
    let got = c.receive("/", "q", 10, Duration::from_millis(50)).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].delivery_count, 1);
    assert!(
        c.receive("/", "q", 10, Duration::from_secs(1))
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    let again = c.receive("/", "q", 10, Duration::from_secs(30)).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].delivery_count, 2);
    assert!(again[0].redelivered);
    // Extending keeps it hidden; zero makes it visible at once.
    again[0]
        .queue
        .set_visibility(again[0].seq, None, Duration::ZERO)
        .unwrap();
    let third = c.receive("/", "q", 10, Duration::from_secs(30)).unwrap();
    assert_eq!(third.len(), 1);
    third[0].queue.settle(&[third[0].seq], Settle::Ack);
    assert!(
        third[0]
            .queue
            .set_visibility(third[0].seq, None, Duration::from_secs(1))
            .is_err()
    );
}

#[tokio::test]
async fn only_the_latest_hand_out_settles_a_leased_message() {
    let c = core();
    declare(&c, "q", &[]);
    publish(&c, "q", "x");
    let first = c.receive("/", "q", 1, Duration::from_millis(20)).unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    let second = c.receive("/", "q", 1, Duration::from_secs(30)).unwrap();
    let (q, seq) = (&second[0].queue, second[0].seq);
    assert_eq!(second[0].delivery_count, 2);
    assert!(second[0].first_delivered_ms > 0);
    assert_eq!(second[0].first_delivered_ms, first[0].first_delivered_ms);
    // The first receipt is stale: it neither extends nor deletes.
    assert!(
        q.set_visibility(seq, Some(1), Duration::from_secs(5))
            .is_err()
    );
    assert!(q.settle_leased(seq, 1).is_none());
    assert_eq!(q.stats().in_flight, 1);
    assert!(q.settle_leased(seq, 2).is_some());
    let s = q.stats();
    assert_eq!(
        (s.ready, s.in_flight, s.delayed, s.ready_bytes),
        (0, 0, 0, 0)
    );
    let counts = switchboard_api::MessageCounts {
        publish: 1,
        get: 2,
        redeliver: 1,
        ack: 1,
        ..Default::default()
    };
    assert_eq!(s.counts, counts);
}

#[tokio::test]
async fn queue_arguments_change_in_place_and_wake_long_polls() {
    let c = core();
    declare(&c, "q", &[]);
    let q = c.queue_handle("/", "q").unwrap();
    let notify = q.ready_notify();
    let woken = notify.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();
    c.set_queue_arguments(
        "/",
        "q",
        &[("x-delivery-delay".to_string(), Value::I64(60_000))].into(),
    )
    .unwrap();
    publish(&c, "q", "later");
    assert_eq!(q.stats().delayed, 1);
    assert!(c.set_queue_arguments("/", "q", &Table::new()).is_ok());
    publish(&c, "q", "now");
    assert_eq!(q.stats().ready, 1);
    tokio::time::timeout(Duration::from_secs(1), woken)
        .await
        .expect("a long poll is woken by an arrival");
    let grouped = [("x-ordering".to_string(), Value::string("grouped"))].into();
    assert!(c.set_queue_arguments("/", "q", &grouped).is_err());
    assert_eq!(c.list_queues("/"), vec!["q".to_string()]);
}

#[tokio::test]
async fn grouped_queue_keeps_one_group_in_flight() {
    let c = core();
    declare(&c, "g", &[("x-ordering", Value::string("grouped"))]);
    for (g, b) in [("A", "a1"), ("B", "b1"), ("A", "a2"), ("B", "b2")] {
        let mut m = msg("g", b);
        m.group_id = Some(g.into());
        c.publish("/", m, PublishOptions::default()).unwrap();
    }
    // Two receivers: each gets one group; nobody gets a2 while a1 is in flight.
    let r1 = c.receive("/", "g", 1, Duration::from_secs(30)).unwrap();
    let r2 = c.receive("/", "g", 1, Duration::from_secs(30)).unwrap();
    assert_eq!(body(&r1[0]), "a1");
    assert_eq!(body(&r2[0]), "b1");
    assert!(
        c.receive("/", "g", 10, Duration::from_secs(30))
            .unwrap()
            .is_empty()
    );
    r1[0].queue.settle(&[r1[0].seq], Settle::Ack);
    let r3 = c.receive("/", "g", 10, Duration::from_secs(30)).unwrap();
    assert_eq!(r3.iter().map(body).collect::<Vec<_>>(), ["a2"]);
    // A requeued message goes back to the front of its group.
    r2[0].queue.settle(&[r2[0].seq], Settle::Requeue);
    let r4 = c.receive("/", "g", 10, Duration::from_secs(30)).unwrap();
    assert_eq!(r4.iter().map(body).collect::<Vec<_>>(), ["b1", "b2"]);
    // One receive takes a whole group, then the next one's (SQS FIFO fills a batch).
    for (g, b) in [("C", "c1"), ("D", "d1"), ("C", "c2")] {
        let mut m = msg("g", b);
        m.group_id = Some(g.into());
        c.publish("/", m, PublishOptions::default()).unwrap();
    }
    let r5 = c.receive("/", "g", 10, Duration::from_secs(30)).unwrap();
    assert_eq!(r5.iter().map(body).collect::<Vec<_>>(), ["c1", "c2", "d1"]);
}

#[tokio::test]
async fn delayed_message_becomes_ready_later() {
    let c = core();
    declare(&c, "d", &[]);
    let mut m = msg("d", "later");
    m.delay_ms = Some(100);
    c.publish("/", m, PublishOptions::default()).unwrap();
    assert!(c.get("/", "d", 1, true).unwrap().is_none());
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(body(&c.get("/", "d", 1, true).unwrap().unwrap().0), "later");
}

#[tokio::test]
async fn ttl_expiry_dead_letters_with_x_death() {
    let c = core();
    declare(&c, "dlq", &[]);
    declare(
        &c,
        "ttl",
        &[
            ("x-message-ttl", Value::I32(50)),
            ("x-dead-letter-exchange", Value::string("")),
            ("x-dead-letter-routing-key", Value::string("dlq")),
        ],
    );
    publish(&c, "ttl", "m");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (d, _) = c.get("/", "dlq", 1, true).unwrap().expect("dead-lettered");
    let h = d.message.properties.headers.as_ref().unwrap();
    let Some(Value::Array(deaths)) = h.get("x-death") else {
        panic!("no x-death")
    };
    let Value::Table(t) = &deaths[0] else {
        panic!()
    };
    assert_eq!(t.get("reason").and_then(Value::as_str), Some("expired"));
    assert_eq!(t.get("queue").and_then(Value::as_str), Some("ttl"));
    assert_eq!(t.get("count").and_then(Value::as_i64), Some(1));
}

#[tokio::test]
async fn expired_lease_over_the_limit_dead_letters_on_the_next_receive() {
    let c = core();
    declare(&c, "dlq2", &[]);
    declare(
        &c,
        "sqs",
        &[
            ("x-delivery-limit", Value::I32(0)),
            ("x-dead-letter-exchange", Value::string("")),
            ("x-dead-letter-routing-key", Value::string("dlq2")),
        ],
    );
    publish(&c, "sqs", "m");
    let first = c.receive("/", "sqs", 1, Duration::from_millis(20)).unwrap();
    assert_eq!(first.len(), 1);
    tokio::time::sleep(Duration::from_millis(80)).await;
    // Back in its queue after the lease, as SQS shows it until the next receive.
    let q = c.queue_handle("/", "sqs").unwrap();
    assert_eq!(q.stats().ready, 1);
    assert!(
        c.receive("/", "sqs", 1, Duration::from_secs(30))
            .unwrap()
            .is_empty()
    );
    assert_eq!(q.stats().ready, 0);
    assert_eq!(c.queue_handle("/", "dlq2").unwrap().stats().ready, 1);
}

#[tokio::test]
async fn delivery_limit_dead_letters() {
    let c = core();
    declare(&c, "dlq", &[]);
    declare(
        &c,
        "lim",
        &[
            ("x-delivery-limit", Value::I32(1)),
            ("x-dead-letter-exchange", Value::string("")),
            ("x-dead-letter-routing-key", Value::string("dlq")),
        ],
    );
    publish(&c, "lim", "m");
    for _ in 0..2 {
        let (d, _) = c.get("/", "lim", 1, false).unwrap().unwrap();
        d.queue.settle(&[d.seq], Settle::Requeue);
    }
    assert!(c.get("/", "lim", 1, true).unwrap().is_none());
    let (d, _) = c.get("/", "dlq", 1, true).unwrap().unwrap();
    let h = d.message.properties.headers.as_ref().unwrap();
    assert_eq!(
        h.get("x-first-death-reason").and_then(Value::as_str),
        Some("delivery_limit")
    );
}

#[tokio::test]
async fn max_length_drop_head_and_reject_publish() {
    let c = core();
    declare(&c, "dh", &[("x-max-length", Value::I32(2))]);
    for b in ["1", "2", "3"] {
        publish(&c, "dh", b);
    }
    let (d, left) = c.get("/", "dh", 1, true).unwrap().unwrap();
    assert_eq!((body(&d), left), ("2".to_string(), 1));

    declare(
        &c,
        "rp",
        &[
            ("x-max-length", Value::I32(1)),
            ("x-overflow", Value::string("reject-publish")),
        ],
    );
    assert!(!publish(&c, "rp", "1").rejected);
    assert!(publish(&c, "rp", "2").rejected);
}

#[tokio::test]
async fn dedup_window_drops_repeats() {
    let c = core();
    declare(&c, "dd", &[("x-dedup-window", Value::I32(60_000))]);
    for _ in 0..2 {
        let mut m = msg("dd", "once");
        m.dedup_id = Some("id-1".into());
        c.publish("/", m, PublishOptions::default()).unwrap();
    }
    assert!(c.get("/", "dd", 1, true).unwrap().is_some());
    assert!(c.get("/", "dd", 1, true).unwrap().is_none());
}

#[tokio::test]
async fn priority_queue_serves_highest_first() {
    let c = core();
    declare(&c, "p", &[("x-max-priority", Value::U8(5))]);
    for (p, b) in [(1u8, "low"), (5, "high"), (3, "mid")] {
        let mut m = msg("p", b);
        m.properties = Properties {
            priority: Some(p),
            ..Default::default()
        };
        c.publish("/", m, PublishOptions::default()).unwrap();
    }
    let order: Vec<String> = (0..3)
        .map(|_| body(&c.get("/", "p", 1, true).unwrap().unwrap().0))
        .collect();
    assert_eq!(order, ["high", "mid", "low"]);
}

#[tokio::test]
async fn exclusive_queue_belongs_to_its_connection() {
    let c = core();
    let decl = QueueDecl {
        name: "ex".into(),
        exclusive: true,
        ..Default::default()
    };
    c.declare_queue("/", &decl, 1).unwrap();
    let e = c.get("/", "ex", 2, true).unwrap_err();
    assert_eq!(e.kind(), switchboard_api::ErrorKind::ResourceLocked);
    c.connection_closed(1);
    assert_eq!(
        c.get("/", "ex", 1, true).unwrap_err().kind(),
        switchboard_api::ErrorKind::NotFound
    );
}

#[tokio::test]
async fn deleting_a_queue_cancels_consumers() {
    let c = core();
    declare(&c, "q", &[]);
    let (sink, _h) = consume(&c, "q", 0);
    c.delete_queue("/", "q", false, false, 1).unwrap();
    assert_eq!(*sink.1.lock().unwrap(), vec![7]);
}

#[tokio::test]
async fn shared_credit_spans_queues_and_wakes_the_other_queue() {
    let c = core();
    declare(&c, "a", &[]);
    declare(&c, "b", &[]);
    let shared = Arc::new(switchboard_api::Credit::new(1));
    let sink = Collect::new();
    let mut handles = Vec::new();
    for q in ["a", "b"] {
        let spec = ConsumerSpec {
            tag: 1,
            owner: 1,
            prefetch: 0,
            shared_credit: Some(shared.clone()),
            exclusive: false,
            priority: 0,
            sink: sink.clone(),
        };
        handles.push(c.consume("/", q, spec).unwrap());
    }
    publish(&c, "a", "a1");
    publish(&c, "b", "b1");
    let first = sink.take();
    assert_eq!(first.iter().map(body).collect::<Vec<_>>(), ["a1"]);
    first[0].queue.settle(&[first[0].seq], Settle::Ack);
    assert_eq!(sink.take().iter().map(body).collect::<Vec<_>>(), ["b1"]);
}

#[tokio::test]
async fn paged_out_messages_come_back_in_order() {
    let dir = std::env::temp_dir().join(format!("sb-page-{}", std::process::id()));
    let c = Core::with_store(Users::default(), None, Some((dir.clone(), 100)));
    declare(&c, "big", &[]);
    declare(&c, "dlq", &[]);
    declare(
        &c,
        "short",
        &[
            ("x-message-ttl", Value::I32(30)),
            ("x-dead-letter-exchange", Value::string("")),
            ("x-dead-letter-routing-key", Value::string("dlq")),
        ],
    );
    let bodies: Vec<String> = (0..50).map(|i| format!("{i:0>40}")).collect();
    for b in &bodies {
        publish(&c, "big", b);
        publish(&c, "short", b);
    }
    let spilled: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(
        spilled > 40 * 40,
        "over a 100-byte budget most messages are on disk ({spilled} bytes)"
    );
    // Plain consumption reads them back, in order, intact.
    let got: Vec<String> = (0..50)
        .map(|_| body(&c.get("/", "big", 1, true).unwrap().unwrap().0))
        .collect();
    assert_eq!(got, bodies);
    // Paged messages that expire are read back to be dead-lettered.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let dead: Vec<String> =
        std::iter::from_fn(|| c.get("/", "dlq", 1, true).unwrap().map(|(d, _)| body(&d))).collect();
    assert_eq!(dead, bodies);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn paged_out_messages_keep_their_group_turns() {
    let dir = std::env::temp_dir().join(format!("sb-page-fair-{}", std::process::id()));
    let c = Core::with_store(Users::default(), None, Some((dir.clone(), 100)));
    declare(&c, "fair", &[]);
    let send = |group: &str, body: &str| {
        let mut m = msg("fair", body);
        m.group_id = Some(group.into());
        c.publish("/", m, PublishOptions::default()).unwrap();
    };
    for i in 0..30 {
        send("noisy", &format!("n{i:0>40}"));
    }
    send("quiet", "q1");
    send("quiet", "q2");
    // Over a 100-byte budget the quiet messages are on disk, yet served in turn.
    let got: Vec<String> = c
        .receive("/", "fair", 4, Duration::from_secs(30))
        .unwrap()
        .iter()
        .map(body)
        .collect();
    assert_eq!(got[1], "q1");
    assert_eq!(got[3], "q2");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn filter_policy_on_a_fanout_binding_selects_messages() {
    let c = core();
    let decl = ExchangeDecl {
        name: "sns.orders".into(),
        kind: "fanout".into(),
        ..Default::default()
    };
    c.declare_exchange("/", &decl).unwrap();
    declare(&c, "all", &[]);
    declare(&c, "big", &[]);
    c.bind_queue("/", "all", "sns.orders", "", &Table::new(), 1)
        .unwrap();
    let filtered: Table = [(
        "x-filter-policy".to_string(),
        Value::string(r#"{"price_usd": [{"numeric": [">=", 100]}]}"#),
    )]
    .into_iter()
    .collect();
    c.bind_queue("/", "big", "sns.orders", "", &filtered, 1)
        .unwrap();
    for (b, price) in [("cheap", 5), ("dear", 500)] {
        let mut m = Message::new("sns.orders", "", bytes::Bytes::from(b));
        m.properties = Properties {
            headers: Some([("price_usd".to_string(), Value::I64(price))].into()),
            ..Default::default()
        };
        c.publish("/", m, PublishOptions::default()).unwrap();
    }
    let got = |q: &str| {
        let mut out = Vec::new();
        while let Some((d, _)) = c.get("/", q, 1, true).unwrap() {
            out.push(body(&d));
        }
        out
    };
    assert_eq!(got("all"), ["cheap", "dear"]);
    assert_eq!(got("big"), ["dear"]);

    let bad: Table = [(
        "x-filter-policy".to_string(),
        Value::string(r#"{"a": [{"regex": "x"}]}"#),
    )]
    .into_iter()
    .collect();
    let err = c
        .bind_queue("/", "big", "sns.orders", "", &bad, 1)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PreconditionFailed);
    assert_eq!(err.to_string(), "Unrecognized match type regex");
}
