//! AMQP 0-9-1 publisher confirms, mandatory returns, reject-publish overflow
//! and a throughput smoke test, driven by lapin.

mod common;

use common::*;
use lapin::{
    BasicProperties, Confirmation, ExchangeKind,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueDeleteOptions,
    },
    protocol::{AMQPErrorKind, AMQPSoftError},
    types::{AMQPValue, FieldTable},
};

async fn delete_queue(ch: &lapin::Channel, q: &str) {
    ch.queue_delete(q.into(), QueueDeleteOptions::default())
        .await
        .unwrap_or_else(|e| panic!("queue.delete {q}: {e}"));
}

async fn publish_confirmed(
    ch: &lapin::Channel,
    exchange: &str,
    key: &str,
    mandatory: bool,
    body: &[u8],
) -> Confirmation {
    let confirm = ch
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions {
                mandatory,
                ..BasicPublishOptions::default()
            },
            body,
            BasicProperties::default(),
        )
        .await
        .expect("basic.publish");
    tokio::time::timeout(WAIT, confirm)
        .await
        .expect("no confirmation within timeout")
        .expect("confirmation")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_confirm_is_an_ack() {
    let server = Server::start();
    let conn = server.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = unique("confirm");
    declare_queue(&ch, &q, FieldTable::default()).await;

    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    assert!(ch.status().confirm());

    let c = publish_confirmed(&ch, "", &q, false, b"confirmed").await;
    assert_eq!(
        c,
        Confirmation::Ack(None),
        "routable publish is acked, nothing returned"
    );

    // Several in flight, then wait for all of them.
    for i in 0..20 {
        ch.basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            format!("batch-{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    let returned = ch.wait_for_confirms().await.expect("wait_for_confirms");
    assert!(returned.is_empty());

    // Publishing to an unroutable destination without mandatory is still acked
    // (the message is dropped).
    let c = publish_confirmed(&ch, "", &unique("no-such-queue"), false, b"dropped").await;
    assert_eq!(c, Confirmation::Ack(None));

    let bodies = drain(&ch, &q).await;
    assert_eq!(bodies.len(), 21);
    assert_eq!(bodies[0], "confirmed");
    assert_eq!(bodies[20], "batch-19");

    delete_queue(&ch, &q).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_publish_overflow_nacks_the_confirm() {
    let server = Server::start();
    let conn = server.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = unique("overflow");
    declare_queue(
        &ch,
        &q,
        table(&[
            ("x-max-length", AMQPValue::LongInt(1)),
            ("x-overflow", long_str("reject-publish")),
        ]),
    )
    .await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();

    let first = publish_confirmed(&ch, "", &q, false, b"fits").await;
    assert!(first.is_ack(), "first publish fits: {first:?}");
    let second = publish_confirmed(&ch, "", &q, false, b"overflows").await;
    assert!(
        second.is_nack(),
        "second publish must be nacked: {second:?}"
    );
    assert_eq!(second, Confirmation::Nack(None));

    // The channel is still usable and the queue holds only the first message.
    assert!(ch.status().connected());
    assert_eq!(drain(&ch, &q).await, ["fits"]);

    // Once there is room again publishes are accepted.
    let third = publish_confirmed(&ch, "", &q, false, b"room again").await;
    assert!(third.is_ack());
    assert_eq!(drain(&ch, &q).await, ["room again"]);

    delete_queue(&ch, &q).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mandatory_unroutable_message_is_returned() {
    let server = Server::start();
    let conn = server.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let ex = unique("mandatory");
    ch.exchange_declare(
        ex.as_str().into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();

    let payload = b"nobody wants me";
    let confirm = ch
        .basic_publish(
            ex.as_str().into(),
            "unbound-key".into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            payload,
            BasicProperties::default()
                .with_message_id("ret-1".into())
                .with_headers(table(&[("k", long_str("v"))])),
        )
        .await
        .unwrap();
    let confirmation = tokio::time::timeout(WAIT, confirm).await.unwrap().unwrap();
    // RabbitMQ acks an unroutable message (after basic.return); lapin attaches
    // the returned message to that confirmation.
    assert!(confirmation.is_ack(), "{confirmation:?}");
    let returned = confirmation
        .take_message()
        .expect("returned message attached to the confirmation");
    assert_eq!(returned.reply_code, 312);
    assert_eq!(returned.reply_text.as_str(), "NO_ROUTE");
    assert_eq!(
        returned.error().map(|e| e.kind().clone()),
        Some(AMQPErrorKind::Soft(AMQPSoftError::NOROUTE))
    );
    assert_eq!(returned.delivery.data, payload);
    assert_eq!(returned.delivery.exchange.as_str(), ex);
    assert_eq!(returned.delivery.routing_key.as_str(), "unbound-key");
    assert_eq!(
        returned
            .delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str()),
        Some("ret-1")
    );

    // A mandatory publish that is routable is not returned.
    let q = unique("mandatory-ok");
    declare_queue(&ch, &q, FieldTable::default()).await;
    let c = publish_confirmed(&ch, "", &q, true, b"routed").await;
    assert_eq!(c, Confirmation::Ack(None));
    assert!(ch.wait_for_confirms().await.unwrap().is_empty());
    assert_eq!(drain(&ch, &q).await, ["routed"]);

    delete_queue(&ch, &q).await;
    ch.exchange_delete(ex.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_smoke_10k_confirmed_in_order() {
    const N: usize = 10_000;
    let server = Server::start();
    let conn = server.connect().await;
    let pub_ch = conn.create_channel().await.unwrap();
    let sub_ch = conn.create_channel().await.unwrap();
    let q = unique("smoke");
    declare_queue(&pub_ch, &q, FieldTable::default()).await;
    pub_ch
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();

    let mut confirms = Vec::with_capacity(N);
    for i in 0..N {
        let c = pub_ch
            .basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                format!("{i:05}").as_bytes(),
                BasicProperties::default(),
            )
            .await
            .expect("basic.publish");
        confirms.push(c);
    }
    let mut acked = 0;
    for c in confirms {
        let c = tokio::time::timeout(WAIT, c)
            .await
            .expect("confirmation timed out")
            .expect("confirmation");
        assert_eq!(c, Confirmation::Ack(None));
        acked += 1;
    }
    assert_eq!(acked, N);

    sub_ch
        .basic_qos(500, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = sub_ch
        .basic_consume(
            q.as_str().into(),
            unique("ctag").as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    for i in 0..N {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(body(&d), format!("{i:05}"), "delivery #{i} out of order");
        if (i + 1) % 100 == 0 {
            assert!(d.ack(BasicAckOptions { multiple: true }).await.unwrap());
        }
    }
    assert_no_delivery(&mut consumer, std::time::Duration::from_millis(100)).await;

    delete_queue(&pub_ch, &q).await;
    conn.close(200, "OK".into()).await.unwrap();
}
