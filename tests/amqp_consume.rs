//! AMQP 0-9-1 consumers and acknowledgements, driven by lapin: ack, nack with
//! requeue, reject into a dead-letter exchange, prefetch, channel errors,
//! server-side consumer cancellation and transactions.

mod common;

use std::time::Duration;

use common::*;
use futures_lite::StreamExt;
use lapin::{
    ErrorKind, ExchangeKind,
    options::{
        BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions,
        BasicNackOptions, BasicQosOptions, BasicRejectOptions, ExchangeDeclareOptions,
        ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
    },
    protocol::{AMQPErrorKind, AMQPSoftError},
    types::{AMQPValue, FieldTable},
};

async fn consume(ch: &lapin::Channel, queue: &str, tag: &str) -> lapin::Consumer {
    ch.basic_consume(
        queue.into(),
        tag.into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("basic.consume {queue}: {e}"))
}

async fn delete_queue(ch: &lapin::Channel, q: &str) {
    ch.queue_delete(q.into(), QueueDeleteOptions::default())
        .await
        .unwrap_or_else(|e| panic!("queue.delete {q}: {e}"));
}

async fn message_count(ch: &lapin::Channel, q: &str) -> u32 {
    ch.queue_declare(
        q.into(),
        QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("passive queue.declare {q}: {e}"))
    .message_count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_and_ack() {
    let server = Server::start();
    let conn = server.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = unique("consume-ack");
    declare_queue(&ch, &q, FieldTable::default()).await;

    for i in 0..5 {
        publish(&ch, "", &q, &format!("m{i}")).await;
    }

    let tag = unique("ctag");
    let mut consumer = consume(&ch, &q, &tag).await;
    assert_eq!(consumer.tag().as_str(), tag);
    let mut last_tag = 0;
    for i in 0..5 {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(body(&d), format!("m{i}"));
        assert!(!d.redelivered);
        assert_eq!(d.exchange.as_str(), "");
        assert_eq!(d.routing_key.as_str(), q);
        assert!(d.delivery_tag > last_tag, "delivery tags increase");
        last_tag = d.delivery_tag;
        assert!(d.ack(BasicAckOptions::default()).await.unwrap());
    }

    // A message published while the consumer is attached is pushed to it.
    publish(&ch, "", &q, "live").await;
    let d = next_delivery(&mut consumer).await;
    assert_eq!(body(&d), "live");
    d.ack(BasicAckOptions::default()).await.unwrap();

    ch.basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
        .await
        .expect("basic.cancel");
    // Our own cancel ends the stream too.
    assert!(
        tokio::time::timeout(WAIT, consumer.next())
            .await
            .expect("stream end")
            .is_none(),
        "consumer stream should end after basic.cancel"
    );

    // Everything was acked: nothing comes back.
    assert_eq!(message_count(&ch, &q).await, 0);
    assert!(get(&ch, &q).await.is_none());

    delete_queue(&ch, &q).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_requeue_redelivers_in_original_order() {
    let server = Server::start();
    let conn = server.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = unique("nack-requeue");
    declare_queue(&ch, &q, FieldTable::default()).await;
    for b in ["a", "b", "c"] {
        publish(&ch, "", &q, b).await;
    }

    let mut consumer = consume(&ch, &q, &unique("ctag")).await;
    let mut first = Vec::new();
    for _ in 0..3 {
        first.push(next_delivery(&mut consumer).await);
    }
    assert_eq!(first.iter().map(body).collect::<Vec<_>>(), ["a", "b", "c"]);
    assert!(first.iter().all(|d| !d.redelivered));

    // nack all three at once (multiple) with requeue.
    assert!(
        first[2]
            .nack(BasicNackOptions {
                multiple: true,
                requeue: true
            })
            .await
            .unwrap()
    );

    let mut again = Vec::new();
    for _ in 0..3 {
        again.push(next_delivery(&mut consumer).await);
    }
    assert_eq!(
        again.iter().map(body).collect::<Vec<_>>(),
        ["a", "b", "c"],
        "requeued messages come back in their original order"
    );
    assert!(again.iter().all(|d| d.redelivered), "redelivered flag set");

    // A single nack of the middle message puts it back too.
    again[1]
        .nack(BasicNackOptions {
            multiple: false,
            requeue: true,
        })
        .await
        .unwrap();
    let d = next_delivery(&mut consumer).await;
    assert_eq!(body(&d), "b");
    assert!(d.redelivered);
    d.ack(BasicAckOptions::default()).await.unwrap();
    again[0].ack(BasicAckOptions::default()).await.unwrap();
    again[2].ack(BasicAckOptions::default()).await.unwrap();

    assert_no_delivery(&mut consumer, Duration::from_millis(200)).await;
    drop(consumer);
    delete_queue(&ch, &q).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_without_requeue_dead_letters_with_x_death() {
    let server = Server::start();
    let conn = server.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let dlx = unique("dlx");
    let dlq = unique("dlq");
    let work = unique("work");

    ch.exchange_declare(
        dlx.as_str().into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    declare_queue(&ch, &dlq, FieldTable::default()).await;
    ch.queue_bind(
        dlq.as_str().into(),
        dlx.as_str().into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    declare_queue(
        &ch,
        &work,
        table(&[("x-dead-letter-exchange", long_str(&dlx))]),
    )
    .await;

    publish(&ch, "", &work, "poison").await;
    let msg = ch
        .basic_get(work.as_str().into(), BasicGetOptions { no_ack: false })
        .await
        .unwrap()
        .expect("message in work queue");
    assert_eq!(body(&msg.delivery), "poison");
    assert!(
        msg.delivery
            .reject(BasicRejectOptions { requeue: false })
            .await
            .unwrap()
    );

    let dead = get_eventually(&ch, &dlq, true).await;
    assert_eq!(body(&dead.delivery), "poison");
    assert_eq!(
        dead.delivery.exchange.as_str(),
        dlx,
        "delivered via the DLX"
    );
    assert_eq!(
        dead.delivery.routing_key.as_str(),
        work,
        "original routing key is kept"
    );
    let headers = dead
        .delivery
        .properties
        .headers()
        .as_ref()
        .expect("dead-lettered message has headers");
    let x_death = headers
        .inner()
        .get("x-death")
        .and_then(AMQPValue::as_array)
        .expect("x-death header is an array");
    assert_eq!(x_death.as_slice().len(), 1, "one x-death entry");
    let entry = x_death.as_slice()[0]
        .as_field_table()
        .expect("x-death entry is a table")
        .inner();
    assert_eq!(
        entry.get("reason").and_then(as_string).as_deref(),
        Some("rejected")
    );
    assert_eq!(entry.get("count").and_then(as_i64), Some(1));
    assert_eq!(
        entry.get("queue").and_then(as_string).as_deref(),
        Some(work.as_str())
    );
    assert_eq!(
        entry.get("exchange").and_then(as_string).as_deref(),
        Some(""),
        "x-death exchange is the one the message was published to"
    );
    let keys: Vec<String> = entry
        .get("routing-keys")
        .and_then(AMQPValue::as_array)
        .expect("x-death routing-keys array")
        .as_slice()
        .iter()
        .filter_map(as_string)
        .collect();
    assert_eq!(keys, std::slice::from_ref(&work));

    // The work queue is empty: the message was not requeued.
    assert!(get(&ch, &work).await.is_none());

    delete_queue(&ch, &work).await;
    delete_queue(&ch, &dlq).await;
    ch.exchange_delete(dlx.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_limits_unacked_deliveries() {
    let server = Server::start();
    let conn = server.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = unique("prefetch");
    declare_queue(&ch, &q, FieldTable::default()).await;
    for i in 0..10 {
        publish(&ch, "", &q, &format!("m{i}")).await;
    }

    ch.basic_qos(3, BasicQosOptions::default())
        .await
        .expect("basic.qos");
    let mut consumer = consume(&ch, &q, &unique("ctag")).await;

    let mut held = Vec::new();
    for i in 0..3 {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(body(&d), format!("m{i}"));
        held.push(d);
    }
    // Three unacked: the broker must hold the rest back.
    assert_no_delivery(&mut consumer, Duration::from_millis(300)).await;

    // Acking one frees exactly one slot.
    held.remove(0)
        .ack(BasicAckOptions::default())
        .await
        .unwrap();
    let d = next_delivery(&mut consumer).await;
    assert_eq!(body(&d), "m3");
    held.push(d);
    assert_no_delivery(&mut consumer, Duration::from_millis(300)).await;

    // A multiple ack of the newest frees all three slots.
    held.last()
        .unwrap()
        .ack(BasicAckOptions { multiple: true })
        .await
        .unwrap();
    held.clear();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next_delivery(&mut consumer).await);
    }
    assert_eq!(
        seen.iter().map(body).collect::<Vec<_>>(),
        ["m4", "m5", "m6"]
    );
    assert_no_delivery(&mut consumer, Duration::from_millis(300)).await;

    // Drain the rest, acking as we go.
    for d in seen {
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    for i in 7..10 {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(body(&d), format!("m{i}"));
        d.ack(BasicAckOptions::default()).await.unwrap();
    }

    drop(consumer);
    delete_queue(&ch, &q).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_declare_of_missing_queue_closes_channel_only() {
    let server = Server::start();
    let conn = server.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let missing = unique("does-not-exist");

    let err = ch
        .queue_declare(
            missing.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect_err("passive declare of a missing queue must fail");
    match err.kind() {
        ErrorKind::ProtocolError(amqp) => {
            assert_eq!(amqp.get_id(), 404, "reply code: {amqp}");
            assert_eq!(amqp.kind(), &AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND));
            assert!(
                amqp.get_message().as_str().contains(&missing),
                "reply text names the queue: {:?}",
                amqp.get_message()
            );
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }

    // The channel is gone...
    assert!(!ch.status().connected(), "channel should be closed");
    assert!(
        ch.queue_declare(
            unique("after-close").as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default()
        )
        .await
        .is_err(),
        "a closed channel refuses further methods"
    );

    // ...but the connection is fine: a new channel works end to end.
    assert!(conn.status().connected(), "connection still open");
    let ch2 = conn.create_channel().await.expect("new channel");
    let q = unique("after-404");
    declare_queue(&ch2, &q, FieldTable::default()).await;
    publish(&ch2, "", &q, "still works").await;
    assert_eq!(
        body(&get(&ch2, &q).await.expect("message").delivery),
        "still works"
    );

    delete_queue(&ch2, &q).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_queue_cancels_its_consumer() {
    let server = Server::start();
    let conn = server.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let other = conn.create_channel().await.unwrap();
    let q = unique("cancel-on-delete");
    declare_queue(&ch, &q, FieldTable::default()).await;

    let mut consumer = consume(&ch, &q, &unique("ctag")).await;
    publish(&other, "", &q, "before delete").await;
    let d = next_delivery(&mut consumer).await;
    assert_eq!(body(&d), "before delete");
    d.ack(BasicAckOptions::default()).await.unwrap();

    // Delete the queue from another channel: the server sends basic.cancel
    // and lapin ends the consumer stream.
    other
        .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("queue.delete");
    match tokio::time::timeout(WAIT, consumer.next()).await {
        Err(_) => panic!("consumer was not cancelled within {WAIT:?}"),
        Ok(None) => {}
        Ok(Some(item)) => panic!("expected end of stream, got {item:?}"),
    }

    // The consumer's channel stays open and usable.
    assert!(ch.status().connected(), "channel survives the cancel");
    let q2 = unique("after-cancel");
    declare_queue(&ch, &q2, FieldTable::default()).await;
    publish(&ch, "", &q2, "ok").await;
    assert_eq!(body(&get(&ch, &q2).await.expect("message").delivery), "ok");

    delete_queue(&ch, &q2).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_commit_and_rollback() {
    let server = Server::start();
    let conn = server.connect().await;
    let tx = conn.create_channel().await.unwrap();
    let observer = conn.create_channel().await.unwrap();
    let q = unique("tx");
    declare_queue(&observer, &q, FieldTable::default()).await;

    tx.tx_select().await.expect("tx.select");

    // Publishes are held until commit.
    publish(&tx, "", &q, "t1").await;
    publish(&tx, "", &q, "t2").await;
    // tx.select-ok round trip above + a synchronous method on the tx channel
    // makes sure the broker has seen the publishes.
    assert_eq!(
        message_count(&tx, &q).await,
        0,
        "uncommitted publishes are invisible"
    );
    assert!(get(&observer, &q).await.is_none());
    tx.tx_commit().await.expect("tx.commit");
    assert_eq!(message_count(&observer, &q).await, 2);

    // Rolled-back publishes never arrive.
    publish(&tx, "", &q, "discarded").await;
    tx.tx_rollback().await.expect("tx.rollback");
    assert_eq!(message_count(&observer, &q).await, 2);

    // Acks are transactional too: ack + commit removes the message.
    let m = tx
        .basic_get(q.as_str().into(), BasicGetOptions { no_ack: false })
        .await
        .unwrap()
        .expect("t1");
    assert_eq!(body(&m.delivery), "t1");
    m.delivery.ack(BasicAckOptions::default()).await.unwrap();
    tx.tx_commit().await.expect("tx.commit of the ack");
    tx.close(200, "OK".into()).await.unwrap();

    // Only t2 is left: t1 was acked, "discarded" was rolled back.
    assert_eq!(drain(&observer, &q).await, ["t2"]);

    delete_queue(&observer, &q).await;
    conn.close(200, "OK".into()).await.unwrap();
}
