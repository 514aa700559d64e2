//! What survives a restart and a crash (SIGKILL), seen through lapin.
//!
//! The contract (DESIGN.md §3): a persistent message in a durable queue whose
//! publish was confirmed is still there after kill -9; durable exchanges, queues and
//! bindings come back; transient messages and non-durable queues do not.

mod common;

use common::*;
use futures_lite::StreamExt;
use lapin::{
    BasicProperties, Confirmation, ExchangeKind,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
        BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
        QueueBindOptions, QueueDeclareOptions,
    },
    types::{AMQPValue, FieldTable},
};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> TempDir {
        let d = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&d).expect("temp dir");
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

async fn confirmed(
    ch: &lapin::Channel,
    exchange: &str,
    key: &str,
    body: &str,
    props: BasicProperties,
) {
    let c = ch
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            props,
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert_eq!(c, Confirmation::Ack(None), "publish of {body} not acked");
}

/// basic.get without auto-ack: the delivery stays unsettled until acked or nacked.
async fn get_unsettled(ch: &lapin::Channel, q: &str) -> lapin::message::BasicGetMessage {
    ch.basic_get(q.into(), BasicGetOptions { no_ack: false })
        .await
        .expect("basic.get")
        .unwrap_or_else(|| panic!("{q} is empty"))
}

async fn nack(ch: &lapin::Channel, tag: u64, requeue: bool) {
    let opts = BasicNackOptions {
        requeue,
        multiple: false,
    };
    ch.basic_nack(tag, opts).await.expect("basic.nack");
}

async fn passive_count(conn: &lapin::Connection, q: &str) -> Option<u32> {
    let ch = conn.create_channel().await.expect("channel");
    let opts = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    ch.queue_declare(q.into(), opts, FieldTable::default())
        .await
        .ok()
        .map(|q| q.message_count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_durable_topology_and_persistent_messages_only() {
    if Server::external() {
        return;
    }
    let dir = TempDir::new("sb-restart");
    let mut server = Server::start_in(&dir.0);
    {
        let conn = server.connect().await;
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let xopts = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.exchange_declare(
            "dx".into(),
            ExchangeKind::Topic,
            xopts,
            FieldTable::default(),
        )
        .await
        .unwrap();
        let args = table(&[("x-max-length", AMQPValue::LongInt(100))]);
        ch.queue_declare("dq".into(), durable(), args)
            .await
            .unwrap();
        ch.queue_bind(
            "dq".into(),
            "dx".into(),
            "a.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_declare(
            "tq".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        confirmed(&ch, "dx", "a.b", "p1", persistent()).await;
        confirmed(&ch, "dx", "a.b", "t1", BasicProperties::default()).await;
        confirmed(&ch, "dx", "a.b", "p2", persistent()).await;
        confirmed(&ch, "", "tq", "p3", persistent()).await;
        // A delivery that went back to the queue keeps its redelivered flag.
        let m = get_unsettled(&ch, "dq").await;
        assert_eq!(body(&m.delivery), "p1");
        nack(&ch, m.delivery.delivery_tag, true).await;
        let _ = conn.close(200, "bye".into()).await;
    }
    server.terminate().expect("clean exit");
    let server = Server::start_in(&dir.0);
    let conn = server.connect().await;
    assert_eq!(
        passive_count(&conn, "dq").await,
        Some(2),
        "p1 and p2 survive, t1 does not"
    );
    assert_eq!(
        passive_count(&conn, "tq").await,
        None,
        "a non-durable queue is gone"
    );
    let ch = conn.create_channel().await.unwrap();
    let first = get(&ch, "dq").await.expect("p1");
    assert_eq!(body(&first.delivery), "p1");
    assert!(
        first.delivery.redelivered,
        "p1 was delivered before the restart"
    );
    let second = get(&ch, "dq").await.expect("p2");
    assert_eq!(body(&second.delivery), "p2");
    assert!(
        !second.delivery.redelivered,
        "p2 was never delivered (clean shutdown)"
    );
    // The durable binding and its queue arguments came back too.
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    confirmed(&ch, "dx", "a.c", "after", persistent()).await;
    assert_eq!(drain(&ch, "dq").await, ["after"]);
    let again = ch
        .queue_declare(
            "dq".into(),
            durable(),
            table(&[("x-max-length", AMQPValue::LongInt(5))]),
        )
        .await;
    assert!(
        again.is_err(),
        "x-max-length was restored, so a different value is refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_lettered_message_and_x_death_survive_a_crash() {
    if Server::external() {
        return;
    }
    let dir = TempDir::new("sb-dlx");
    let mut server = Server::start_in(&dir.0);
    {
        let conn = server.connect().await;
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        ch.queue_declare("dlq".into(), durable(), FieldTable::default())
            .await
            .unwrap();
        let args = table(&[
            ("x-dead-letter-exchange", long_str("")),
            ("x-dead-letter-routing-key", long_str("dlq")),
        ]);
        ch.queue_declare("work".into(), durable(), args)
            .await
            .unwrap();
        confirmed(&ch, "", "work", "job", persistent()).await;
        let m = get_unsettled(&ch, "work").await;
        nack(&ch, m.delivery.delivery_tag, false).await;
        // Let the dead-letter and the settle reach the journal's next batch.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    server.kill9();
    let server = Server::start_in(&dir.0);
    let conn = server.connect().await;
    assert_eq!(passive_count(&conn, "work").await, Some(0));
    let ch = conn.create_channel().await.unwrap();
    let m = get(&ch, "dlq").await.expect("dead-lettered job survives");
    assert_eq!(body(&m.delivery), "job");
    let headers = m.delivery.properties.headers().clone().expect("headers");
    let deaths = match headers.inner().get("x-death") {
        Some(AMQPValue::FieldArray(a)) => a.as_slice().to_vec(),
        other => panic!("x-death missing: {other:?}"),
    };
    let AMQPValue::FieldTable(d) = &deaths[0] else {
        panic!("x-death entry")
    };
    assert_eq!(
        d.inner().get("reason").and_then(as_string).as_deref(),
        Some("rejected")
    );
    assert_eq!(
        d.inner().get("queue").and_then(as_string).as_deref(),
        Some("work")
    );
}

/// Pseudo-random number in 0..n from the clock (no test dependency needed).
fn jitter(n: u64) -> u64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(7);
    (t.wrapping_mul(6364136223846793005) >> 33) % n.max(1)
}

/// One crash round: publish with confirms while a consumer acks slowly, SIGKILL
/// at a random moment, restart, drain. Returns (confirmed, lost, duplicated).
async fn crash_round(round: u32) -> (usize, usize, usize) {
    let dir = TempDir::new("sb-crash");
    let mut server = Server::start_in(&dir.0);
    let conn = server.connect().await;
    let setup = conn.create_channel().await.unwrap();
    setup
        .queue_declare("crash".into(), durable(), FieldTable::default())
        .await
        .unwrap();

    let confirmed_ids: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let acked_ids: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let delivered_ids: Arc<Mutex<HashSet<u64>>> = Arc::default();

    let pub_ch = conn.create_channel().await.unwrap();
    pub_ch
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirmed2 = confirmed_ids.clone();
    let publisher = tokio::spawn(async move {
        let mut window = std::collections::VecDeque::new();
        for id in 0u64.. {
            let body = id.to_string();
            let Ok(p) = pub_ch
                .basic_publish(
                    "".into(),
                    "crash".into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    persistent(),
                )
                .await
            else {
                break;
            };
            window.push_back((id, p));
            if window.len() >= 64 {
                let (id, p) = window.pop_front().expect("non-empty");
                match p.await {
                    Ok(Confirmation::Ack(_)) => {
                        confirmed2.lock().unwrap().insert(id);
                    }
                    _ => break,
                }
            }
        }
    });

    let cons_ch = conn.create_channel().await.unwrap();
    cons_ch
        .basic_qos(50, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = cons_ch
        .basic_consume(
            "crash".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let (acked2, delivered2) = (acked_ids.clone(), delivered_ids.clone());
    let consumer_task = tokio::spawn(async move {
        let mut n = 0u64;
        while let Some(Ok(d)) = consumer.next().await {
            let id: u64 = body(&d).parse().expect("numeric body");
            delivered2.lock().unwrap().insert(id);
            n += 1;
            // Ack only every third delivery so some are in flight at the crash.
            if n.is_multiple_of(3) {
                if d.ack(BasicAckOptions { multiple: true }).await.is_err() {
                    break;
                }
                let mut a = acked2.lock().unwrap();
                let delivered = delivered2.lock().unwrap();
                a.extend(delivered.iter().copied());
            }
        }
    });

    tokio::time::sleep(Duration::from_millis(
        200 + jitter(600) + 97 * round as u64 % 300,
    ))
    .await;
    server.kill9();
    let _ = publisher.await;
    consumer_task.abort();
    drop(conn);

    let server = Server::start_in(&dir.0);
    let conn = server.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let mut seen: HashMap<u64, usize> = HashMap::new();
    let delivered = delivered_ids.lock().unwrap().clone();
    while let Some(m) = ch
        .basic_get("crash".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        let id: u64 = body(&m.delivery).parse().expect("numeric body");
        *seen.entry(id).or_default() += 1;
        if delivered.contains(&id) {
            assert!(
                m.delivery.redelivered,
                "message {id} was delivered before the crash but not flagged redelivered"
            );
        }
    }
    let confirmed = confirmed_ids.lock().unwrap().clone();
    let acked = acked_ids.lock().unwrap().clone();
    let lost: Vec<u64> = confirmed
        .iter()
        .filter(|id| !seen.contains_key(id) && !acked.contains(id))
        .copied()
        .collect();
    let twice = seen.values().filter(|&&n| n > 1).count();
    // Delivered before the crash and back after it: allowed (redelivered checked above).
    let duplicated = seen.keys().filter(|id| delivered.contains(id)).count();
    assert!(
        lost.is_empty(),
        "round {round}: {} confirmed messages lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    assert_eq!(
        twice, 0,
        "round {round}: a message came back twice after recovery"
    );
    (confirmed.len(), lost.len(), duplicated)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_messages_survive_kill_9() {
    if Server::external() {
        return;
    }
    let rounds: u32 = std::env::var("CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let (mut confirmed, mut lost, mut duplicated) = (0, 0, 0);
    for round in 0..rounds {
        let (c, l, d) = crash_round(round).await;
        confirmed += c;
        lost += l;
        duplicated += d;
    }
    println!("rounds {rounds}, confirmed {confirmed}, lost {lost}, duplicated {duplicated}");
    assert!(confirmed > 0, "no publish was confirmed before the crashes");
}

#[test]
fn second_process_on_the_same_data_dir_refuses_to_start() {
    if Server::external() {
        return;
    }
    let dir = TempDir::new("sb-lock");
    let _first = Server::start_in(&dir.0);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--data-dir")
        .arg(&dir.0)
        .args(["--bind", "127.0.0.1", "--amqp-port", "0"])
        .output()
        .expect("run second switchboard");
    assert!(
        !out.status.success(),
        "second process started on a locked data dir"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("in use by another switchboard process"),
        "unclear refusal: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_count_survives_a_crash() {
    if Server::external() {
        return;
    }
    let dir = TempDir::new("sb-count");
    let mut server = Server::start_in(&dir.0);
    {
        let conn = server.connect().await;
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        ch.queue_declare("limit.dlq".into(), durable(), FieldTable::default())
            .await
            .unwrap();
        let args = table(&[
            ("x-delivery-limit", AMQPValue::LongInt(1)),
            ("x-dead-letter-exchange", long_str("")),
            ("x-dead-letter-routing-key", long_str("limit.dlq")),
        ]);
        ch.queue_declare("limit".into(), durable(), args)
            .await
            .unwrap();
        confirmed(&ch, "", "limit", "once", persistent()).await;
        let m = get_unsettled(&ch, "limit").await;
        nack(&ch, m.delivery.delivery_tag, true).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    server.kill9();
    let server = Server::start_in(&dir.0);
    let conn = server.connect().await;
    let ch = conn.create_channel().await.unwrap();
    // Second delivery: allowed (limit 1 = one return). Its return would be the second.
    let m = get_unsettled(&ch, "limit").await;
    assert!(m.delivery.redelivered);
    nack(&ch, m.delivery.delivery_tag, true).await;
    let dead = get_eventually(&ch, "limit.dlq", true).await;
    assert_eq!(
        body(&dead.delivery),
        "once",
        "the count from before the crash was kept"
    );
    assert_eq!(passive_count(&conn, "limit").await, Some(0));
}
