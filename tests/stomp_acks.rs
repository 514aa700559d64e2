//! STOMP acknowledgements, credit, transactions and durability, as a client sees
//! them: `ack:auto`, `client` (cumulative), `client-individual`, NACK (requeue, or
//! dead-letter with `requeue:false`), `prefetch-count`, BEGIN/COMMIT/ABORT over SENDs
//! and ACKs, and persistent messages across a SIGKILL of the server.

mod common;

use common::mqtt::TempDir;
use common::stomp::*;
use common::{Server, get_eventually, unique};
use lapin::{
    ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions},
    types::{AMQPValue, FieldTable, LongString},
};

fn queue(prefix: &str) -> String {
    format!("/queue/{}", unique(prefix))
}

/// Sends `bodies` to `dest` on a connection of its own, each with a receipt.
async fn fill(b: &Broker, dest: &str, bodies: &[&str]) {
    let mut p = b.connect().await;
    for body in bodies {
        p.send(dest, body).await;
    }
    p.disconnect().await;
}

fn redelivered(m: &Frame) -> bool {
    hdr(m, "redelivered") == "true"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_ack_messages_are_gone_once_delivered() {
    let Some(b) = Broker::start() else { return };
    let dest = queue("auto");
    fill(&b, &dest, &["m1", "m2", "m3"]).await;
    let mut c = b.connect().await;
    c.subscribe("s", &dest, "auto").await;
    let ms = c.messages(3).await;
    assert_eq!(bodies(&ms), ["m1", "m2", "m3"]);
    for m in &ms {
        assert_eq!(m.header("ack"), None, "no ack id in auto mode: {}", show(m));
        assert_eq!(hdr(m, "subscription"), "s");
        assert!(!redelivered(m));
    }
    c.disconnect().await;
    let mut again = b.connect().await;
    again.subscribe("s", &dest, "auto").await;
    again.no_frame(QUIET).await;
    again.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ack_is_cumulative() {
    let Some(b) = Broker::start() else { return };
    let dest = queue("client");
    fill(&b, &dest, &["m1", "m2", "m3", "m4", "m5"]).await;
    let mut c = b.connect().await;
    c.subscribe("s", &dest, "client").await;
    let ms = c.messages(5).await;
    assert_eq!(bodies(&ms), ["m1", "m2", "m3", "m4", "m5"]);
    // ACK of the third acknowledges the first three.
    c.ack(&ms[2]).await;
    c.disconnect().await;

    let mut again = b.connect().await;
    again.subscribe("s", &dest, "client").await;
    let ms = again.messages(2).await;
    assert_eq!(bodies(&ms), ["m4", "m5"]);
    assert!(
        ms.iter().all(redelivered),
        "{:?}",
        ms.iter().map(show).collect::<Vec<_>>()
    );
    again.no_frame(QUIET).await;
    again.ack(&ms[1]).await;
    again.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_individual_ack_settles_one_message() {
    let Some(b) = Broker::start() else { return };
    let dest = queue("individual");
    fill(&b, &dest, &["m1", "m2", "m3"]).await;
    let mut c = b.connect().await;
    c.subscribe("s", &dest, "client-individual").await;
    let ms = c.messages(3).await;
    assert_eq!(bodies(&ms), ["m1", "m2", "m3"]);
    assert!(ms.iter().all(|m| !redelivered(m)));
    c.ack(&ms[2]).await;
    c.disconnect().await;

    // The first two come back, flagged.
    let mut again = b.connect().await;
    again.subscribe("s", &dest, "client-individual").await;
    let ms = again.messages(2).await;
    assert_eq!(bodies(&ms), ["m1", "m2"]);
    assert!(
        ms.iter().all(redelivered),
        "{:?}",
        ms.iter().map(show).collect::<Vec<_>>()
    );
    again.no_frame(QUIET).await;
    again.ack(&ms[0]).await;
    again.ack(&ms[1]).await;
    again.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_requeues_for_redelivery() {
    let Some(b) = Broker::start() else { return };
    let dest = queue("nack");
    fill(&b, &dest, &["again"]).await;
    let mut c = b.connect().await;
    c.subscribe("s", &dest, "client-individual").await;
    let m = c.next_message().await;
    assert!(!redelivered(&m));
    c.nack(&m, &[]).await;
    let m = c.next_message().await;
    assert_eq!(text(&m), "again");
    assert!(redelivered(&m), "{}", show(&m));
    c.ack(&m).await;
    c.no_frame(QUIET).await;
    c.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_without_requeue_dead_letters() {
    let Some(b) = Broker::with_amqp() else { return };
    let conn = b.server().connect().await;
    let ch = conn.create_channel().await.unwrap();
    let (dlx, dlq, q) = (unique("dlx"), unique("dlq"), unique("nack-dl"));
    ch.exchange_declare(
        dlx.as_str().into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    common::declare_queue(&ch, &dlq, FieldTable::default()).await;
    ch.queue_bind(
        dlq.as_str().into(),
        dlx.as_str().into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let args = common::table(&[(
        "x-dead-letter-exchange",
        AMQPValue::LongString(LongString::from(dlx.as_str())),
    )]);
    common::declare_queue(&ch, &q, args).await;

    // /amq/queue/: the queue as declared, RabbitMQ's way to use an AMQP queue.
    let dest = format!("/amq/queue/{q}");
    let mut c = b.connect().await;
    c.subscribe("s", &dest, "client-individual").await;
    c.send(&dest, "doomed").await;
    let m = c.next_message().await;
    assert_eq!(text(&m), "doomed");
    c.nack(&m, &[("requeue", "false")]).await;
    let dead = get_eventually(&ch, &dlq, true).await;
    assert_eq!(common::body(&dead.delivery), "doomed");
    let headers = dead
        .delivery
        .properties
        .headers()
        .clone()
        .unwrap_or_default();
    assert!(
        headers.inner().contains_key("x-death"),
        "dead-lettered copy has x-death: {headers:?}"
    );
    c.no_frame(QUIET).await;
    c.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_count_bounds_unacknowledged_messages() {
    let Some(b) = Broker::start() else { return };
    let dest = queue("prefetch");
    fill(&b, &dest, &["m1", "m2", "m3", "m4", "m5"]).await;
    let mut c = b.connect().await;
    c.subscribe_with(
        "s",
        &dest,
        &[("ack", "client-individual"), ("prefetch-count", "2")],
    )
    .await;
    let first = c.messages(2).await;
    assert_eq!(bodies(&first), ["m1", "m2"]);
    c.no_frame(QUIET).await;
    c.ack(&first[0]).await;
    let m3 = c.next_message().await;
    assert_eq!(text(&m3), "m3");
    c.no_frame(QUIET).await;
    c.ack(&first[1]).await;
    c.ack(&m3).await;
    assert_eq!(bodies(&c.messages(2).await), ["m4", "m5"]);
    c.no_frame(QUIET).await;
    c.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_sends_appear_at_commit_and_abort_discards_them() {
    let Some(b) = Broker::start() else { return };
    let dest = queue("tx");
    let mut sub = b.connect().await;
    sub.subscribe("s", &dest, "auto").await;
    let mut p = b.connect().await;

    // BEGIN and COMMIT get their RECEIPT (request() checks receipt-id). SENDs in a
    // transaction go without: RabbitMQ holds their receipts until COMMIT, we don't.
    let r = p.begin("tx-1").await;
    assert_eq!(r.command, Command::Receipt);
    for body in ["t1", "t2"] {
        let f = frame(
            Command::Send,
            &[("destination", &dest), ("transaction", "tx-1")],
            body.as_bytes(),
        );
        p.write(&f).await;
    }
    // A receipt for a later frame: the transactional SENDs have been handled.
    p.send(&queue("tx-marker"), "marker").await;
    sub.no_frame(QUIET).await;
    let r = p.commit("tx-1").await;
    assert_eq!(r.command, Command::Receipt);
    assert_eq!(bodies(&sub.messages(2).await), ["t1", "t2"]);

    p.begin("tx-2").await;
    let f = frame(
        Command::Send,
        &[("destination", &dest), ("transaction", "tx-2")],
        b"never",
    );
    p.write(&f).await;
    let r = p.abort("tx-2").await;
    assert_eq!(r.command, Command::Receipt);
    p.send(&dest, "outside").await;
    assert_eq!(text(&sub.next_message().await), "outside");
    sub.no_frame(QUIET).await;
    p.disconnect().await;
    sub.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_in_an_aborted_transaction_leaves_the_message_unacked() {
    let Some(b) = Broker::start() else { return };
    let dest = queue("tx-ack");
    fill(&b, &dest, &["keep"]).await;
    let mut c = b.connect().await;
    c.subscribe("s", &dest, "client-individual").await;
    let m = c.next_message().await;
    c.begin("t").await;
    c.ack_in("t", &m).await;
    c.abort("t").await;
    c.disconnect().await;

    // Still there; this time the ACK is committed.
    let mut again = b.connect().await;
    again.subscribe("s", &dest, "client-individual").await;
    let m = again.next_message().await;
    assert_eq!(text(&m), "keep");
    assert!(redelivered(&m), "{}", show(&m));
    again.begin("t").await;
    again.ack_in("t", &m).await;
    again.commit("t").await;
    again.disconnect().await;

    let mut last = b.connect().await;
    last.subscribe("s", &dest, "client-individual").await;
    last.no_frame(QUIET).await;
    last.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_send_with_receipt_survives_sigkill() {
    if Broker::own().is_none() {
        return;
    }
    let dir = TempDir::new("sb-stomp-crash");
    let mut b = Broker::of(Server::start_in(&dir.0));
    let dest = queue("durable");
    let mut c = b.connect().await;
    c.send_with(
        &dest,
        &[("persistent", "true"), ("content-type", "text/plain")],
        b"survivor",
    )
    .await;
    b.server_mut().kill9();
    drop(c);

    let b = Broker::of(Server::start_in(&dir.0));
    let mut c = b.connect().await;
    c.subscribe("s", &dest, "client-individual").await;
    let m = c.next_message().await;
    assert_eq!(text(&m), "survivor");
    assert_eq!(hdr(&m, "persistent"), "true");
    assert_eq!(hdr(&m, "content-type"), "text/plain");
    c.ack(&m).await;
    c.no_frame(QUIET).await;
    c.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_sends_before_a_disconnect_receipt_survive_sigkill() {
    if Broker::own().is_none() {
        return;
    }
    // DISCONNECT's RECEIPT is documented (PROTOCOL_MAPPING.md) as coming "after
    // everything before it is durable": SENDs without receipts included.
    const N: usize = 300;
    let dir = TempDir::new("sb-stomp-disconnect");
    let mut b = Broker::of(Server::start_in(&dir.0));
    let dest = queue("before-disconnect");
    let mut c = b.connect().await;
    let mut out = Vec::new();
    for i in 0..N {
        out.extend(c.encode(&frame(
            Command::Send,
            &[("destination", &dest), ("persistent", "true")],
            format!("p{i}").as_bytes(),
        )));
    }
    out.extend(c.encode(&frame(Command::Disconnect, &[("receipt", "bye")], b"")));
    c.write_raw(&out).await;
    c.receipt("bye").await;
    b.server_mut().kill9();

    let b = Broker::of(Server::start_in(&dir.0));
    let mut c = b.connect().await;
    c.subscribe("s", &dest, "auto").await;
    let mut got = Vec::new();
    while let Read::Frame(m) = c.read(QUIET).await {
        got.push(text(&m));
    }
    let want: Vec<String> = (0..N).map(|i| format!("p{i}")).collect();
    assert_eq!(got.len(), N, "lost {} of {N}", N - got.len());
    assert_eq!(got, want);
}
