//! AMQP 0-9-1 routing, driven by lapin: default exchange, direct, fanout,
//! topic, headers and exchange-to-exchange bindings.
//!
//! Messages are published without confirms and read back with basic.get on
//! the same channel: a broker processes one channel's frames in order, so a
//! message routed by an earlier basic.publish is in its queues by the time a
//! later basic.get on that channel runs.

mod common;

use common::*;
use lapin::{
    BasicProperties, ErrorKind, ExchangeKind,
    options::{
        BasicAckOptions, BasicGetOptions, ExchangeBindOptions, ExchangeDeclareOptions,
        ExchangeDeleteOptions, QueueBindOptions, QueueDeleteOptions,
    },
    protocol::{AMQPErrorKind, AMQPSoftError},
    types::{AMQPValue, FieldTable},
};

async fn declare_exchange(ch: &lapin::Channel, name: &str, kind: ExchangeKind) {
    ch.exchange_declare(
        name.into(),
        kind,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("exchange.declare {name}: {e}"));
}

async fn bind(ch: &lapin::Channel, queue: &str, exchange: &str, key: &str, args: FieldTable) {
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        args,
    )
    .await
    .unwrap_or_else(|e| panic!("queue.bind {queue} -> {exchange} ({key:?}): {e}"));
}

async fn delete_queues(ch: &lapin::Channel, queues: &[&str]) {
    for q in queues {
        ch.queue_delete((*q).into(), QueueDeleteOptions::default())
            .await
            .unwrap_or_else(|e| panic!("queue.delete {q}: {e}"));
    }
}

async fn delete_exchange(ch: &lapin::Channel, name: &str) {
    ch.exchange_delete(name.into(), ExchangeDeleteOptions::default())
        .await
        .unwrap_or_else(|e| panic!("exchange.delete {name}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_exchange_publish_and_basic_get() {
    let server = Server::start();
    let conn = server.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = unique("default-ex");

    let declared = declare_queue(&ch, &q, FieldTable::default()).await;
    assert_eq!(declared.name().as_str(), q);
    assert_eq!(declared.message_count(), 0);
    assert_eq!(declared.consumer_count(), 0);

    let props = BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_correlation_id("corr-1".into())
        .with_message_id("msg-1".into())
        .with_delivery_mode(2)
        .with_headers(table(&[
            ("x-origin", long_str("e2e")),
            ("attempt", AMQPValue::LongInt(7)),
        ]));
    publish_with(&ch, "", &q, "first", props).await;
    publish(&ch, "", &q, "second").await;

    // A manual-ack get: the first message, one more still in the queue.
    let msg = ch
        .basic_get(q.as_str().into(), BasicGetOptions { no_ack: false })
        .await
        .unwrap()
        .expect("first message");
    assert_eq!(body(&msg.delivery), "first");
    assert_eq!(msg.message_count, 1, "messages left after the first get");
    assert_eq!(msg.delivery.exchange.as_str(), "");
    assert_eq!(msg.delivery.routing_key.as_str(), q);
    assert!(!msg.delivery.redelivered);
    let p = &msg.delivery.properties;
    assert_eq!(
        p.content_type().as_ref().map(|s| s.as_str()),
        Some("text/plain")
    );
    assert_eq!(
        p.correlation_id().as_ref().map(|s| s.as_str()),
        Some("corr-1")
    );
    assert_eq!(p.message_id().as_ref().map(|s| s.as_str()), Some("msg-1"));
    assert_eq!(*p.delivery_mode(), Some(2));
    let headers = p.headers().as_ref().expect("headers");
    assert_eq!(
        headers
            .inner()
            .get("x-origin")
            .and_then(as_string)
            .as_deref(),
        Some("e2e")
    );
    assert_eq!(headers.inner().get("attempt").and_then(as_i64), Some(7));
    assert!(msg.delivery.ack(BasicAckOptions::default()).await.unwrap());

    let msg = get(&ch, &q).await.expect("second message");
    assert_eq!(body(&msg.delivery), "second");
    assert_eq!(msg.message_count, 0);
    assert!(msg.delivery.properties.headers().is_none());

    assert!(get(&ch, &q).await.is_none(), "queue should now be empty");

    delete_queues(&ch, &[&q]).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_exchange_routes_by_exact_key() {
    let server = Server::start();
    let conn = server.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let ex = unique("direct");
    let (qa, qb, qab) = (unique("direct-a"), unique("direct-b"), unique("direct-ab"));

    declare_exchange(&ch, &ex, ExchangeKind::Direct).await;
    for q in [&qa, &qb, &qab] {
        declare_queue(&ch, q, FieldTable::default()).await;
    }
    bind(&ch, &qa, &ex, "a", FieldTable::default()).await;
    bind(&ch, &qb, &ex, "b", FieldTable::default()).await;
    bind(&ch, &qab, &ex, "a", FieldTable::default()).await;
    bind(&ch, &qab, &ex, "b", FieldTable::default()).await;

    publish(&ch, &ex, "a", "to-a").await;
    publish(&ch, &ex, "b", "to-b").await;
    publish(&ch, &ex, "c", "to-nobody").await;
    publish(&ch, &ex, "A", "case-sensitive").await;

    assert_eq!(drain(&ch, &qa).await, ["to-a"]);
    assert_eq!(drain(&ch, &qb).await, ["to-b"]);
    assert_eq!(drain(&ch, &qab).await, ["to-a", "to-b"]);

    delete_queues(&ch, &[&qa, &qb, &qab]).await;
    delete_exchange(&ch, &ex).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_exchange_copies_to_every_bound_queue() {
    let server = Server::start();
    let conn = server.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let ex = unique("fanout");
    let qs = [unique("fan-1"), unique("fan-2"), unique("fan-3")];
    let unbound = unique("fan-unbound");

    declare_exchange(&ch, &ex, ExchangeKind::Fanout).await;
    declare_queue(&ch, &unbound, FieldTable::default()).await;
    for (i, q) in qs.iter().enumerate() {
        declare_queue(&ch, q, FieldTable::default()).await;
        // The binding key is ignored by a fanout exchange.
        bind(&ch, q, &ex, &format!("ignored-{i}"), FieldTable::default()).await;
    }

    publish(&ch, &ex, "", "one").await;
    publish(&ch, &ex, "whatever.key", "two").await;

    for q in &qs {
        assert_eq!(drain(&ch, q).await, ["one", "two"], "queue {q}");
    }
    assert!(drain(&ch, &unbound).await.is_empty());

    delete_queues(&ch, &[&qs[0], &qs[1], &qs[2], &unbound]).await;
    delete_exchange(&ch, &ex).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_exchange_matches_star_and_hash() {
    let server = Server::start();
    let conn = server.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let ex = unique("topic");

    declare_exchange(&ch, &ex, ExchangeKind::Topic).await;
    let patterns = [
        "stock.*.nyse", // exactly three words, middle any
        "stock.#",      // "stock" followed by zero or more words
        "stock.*",      // exactly two words
        "#",            // everything
        "*.eu.#",       // one word, "eu", then zero or more
        "#.error",      // ends with "error" (zero or more words before)
        "a.b.c",        // literal
    ];
    let mut queues = Vec::new();
    for p in patterns {
        let q = unique("topic-q");
        declare_queue(&ch, &q, FieldTable::default()).await;
        bind(&ch, &q, &ex, p, FieldTable::default()).await;
        queues.push((p, q));
    }

    let keys = [
        "stock.ibm.nyse",
        "stock.ibm",
        "stock",
        "stock.ibm.nasdaq.extra",
        "fx.eu",
        "fx.eu.rate.daily",
        "eu.fx",
        "error",
        "app.db.error",
        "a.b.c",
        "a.b",
        "",
    ];
    for k in keys {
        publish(&ch, &ex, k, k).await;
    }

    let expect: &[(&str, &[&str])] = &[
        ("stock.*.nyse", &["stock.ibm.nyse"]),
        (
            "stock.#",
            &[
                "stock.ibm.nyse",
                "stock.ibm",
                "stock",
                "stock.ibm.nasdaq.extra",
            ],
        ),
        ("stock.*", &["stock.ibm"]),
        ("#", &keys),
        ("*.eu.#", &["fx.eu", "fx.eu.rate.daily"]),
        ("#.error", &["error", "app.db.error"]),
        ("a.b.c", &["a.b.c"]),
    ];
    for (pattern, want) in expect {
        let q = &queues.iter().find(|(p, _)| p == pattern).unwrap().1;
        assert_eq!(drain(&ch, q).await, *want, "binding pattern {pattern:?}");
    }

    for (_, q) in &queues {
        delete_queues(&ch, &[q]).await;
    }
    delete_exchange(&ch, &ex).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_exchange_matches_all_and_any() {
    let server = Server::start();
    let conn = server.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let ex = unique("headers");
    let (q_all, q_any, q_default) = (unique("hdr-all"), unique("hdr-any"), unique("hdr-dflt"));

    declare_exchange(&ch, &ex, ExchangeKind::Headers).await;
    for q in [&q_all, &q_any, &q_default] {
        declare_queue(&ch, q, FieldTable::default()).await;
    }
    bind(
        &ch,
        &q_all,
        &ex,
        "",
        table(&[
            ("x-match", long_str("all")),
            ("format", long_str("pdf")),
            ("type", long_str("report")),
        ]),
    )
    .await;
    bind(
        &ch,
        &q_any,
        &ex,
        "",
        table(&[
            ("x-match", long_str("any")),
            ("format", long_str("pdf")),
            ("type", long_str("log")),
        ]),
    )
    .await;
    // No x-match: defaults to "all".
    bind(
        &ch,
        &q_default,
        &ex,
        "",
        table(&[("format", long_str("zip"))]),
    )
    .await;

    let send = |name: &'static str, headers: FieldTable| {
        let ch = ch.clone();
        let ex = ex.clone();
        async move {
            let props = BasicProperties::default().with_headers(headers);
            // The routing key is ignored by a headers exchange.
            publish_with(&ch, &ex, "ignored", name, props).await;
        }
    };
    send(
        "pdf-report",
        table(&[("format", long_str("pdf")), ("type", long_str("report"))]),
    )
    .await;
    send(
        "pdf-log",
        table(&[("format", long_str("pdf")), ("type", long_str("log"))]),
    )
    .await;
    send(
        "zip-log-extra",
        table(&[
            ("format", long_str("zip")),
            ("type", long_str("log")),
            ("extra", AMQPValue::LongInt(1)),
        ]),
    )
    .await;
    send("zip", table(&[("format", long_str("zip"))])).await;
    send("report-only", table(&[("type", long_str("report"))])).await;
    send("none", FieldTable::default()).await;

    assert_eq!(drain(&ch, &q_all).await, ["pdf-report"]);
    assert_eq!(
        drain(&ch, &q_any).await,
        ["pdf-report", "pdf-log", "zip-log-extra"]
    );
    assert_eq!(drain(&ch, &q_default).await, ["zip-log-extra", "zip"]);

    delete_queues(&ch, &[&q_all, &q_any, &q_default]).await;
    delete_exchange(&ch, &ex).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_to_exchange_binding() {
    let server = Server::start();
    let conn = server.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let src = unique("e2e-src");
    let dst = unique("e2e-dst");
    let (q_dst, q_src) = (unique("e2e-via-dst"), unique("e2e-direct-on-src"));

    declare_exchange(&ch, &src, ExchangeKind::Topic).await;
    declare_exchange(&ch, &dst, ExchangeKind::Fanout).await;
    // destination first, then source.
    ch.exchange_bind(
        dst.as_str().into(),
        src.as_str().into(),
        "orders.#".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.bind");
    declare_queue(&ch, &q_dst, FieldTable::default()).await;
    declare_queue(&ch, &q_src, FieldTable::default()).await;
    bind(&ch, &q_dst, &dst, "", FieldTable::default()).await;
    bind(&ch, &q_src, &src, "#.created", FieldTable::default()).await;

    publish(&ch, &src, "orders.eu.created", "o1").await;
    publish(&ch, &src, "payments.created", "p1").await;
    publish(&ch, &src, "orders", "o2").await;
    publish(&ch, &dst, "anything", "direct-to-dst").await;

    assert_eq!(
        drain(&ch, &q_dst).await,
        ["o1", "o2", "direct-to-dst"],
        "queue bound to the destination exchange"
    );
    assert_eq!(drain(&ch, &q_src).await, ["o1", "p1"]);
    let msg_exchange_check = {
        // A message routed through the e2e binding keeps the exchange it was
        // published to.
        publish(&ch, &src, "orders.x", "o3").await;
        get(&ch, &q_dst).await.expect("o3")
    };
    assert_eq!(msg_exchange_check.delivery.exchange.as_str(), src);
    assert_eq!(msg_exchange_check.delivery.routing_key.as_str(), "orders.x");

    // After exchange.unbind nothing flows from src to dst any more.
    ch.exchange_unbind(
        dst.as_str().into(),
        src.as_str().into(),
        "orders.#".into(),
        lapin::options::ExchangeUnbindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.unbind");
    publish(&ch, &src, "orders.late", "o4").await;
    assert!(drain(&ch, &q_dst).await.is_empty());

    delete_queues(&ch, &[&q_dst, &q_src]).await;
    delete_exchange(&ch, &src).await;
    delete_exchange(&ch, &dst).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_policy_binding_selects_by_headers() {
    let server = Server::start();
    let conn = server.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let ex = unique("filter-fanout");
    let (q_all, q_sport) = (unique("filter-all"), unique("filter-sport"));

    declare_exchange(&ch, &ex, ExchangeKind::Fanout).await;
    declare_queue(&ch, &q_all, FieldTable::default()).await;
    declare_queue(&ch, &q_sport, FieldTable::default()).await;
    bind(&ch, &q_all, &ex, "", FieldTable::default()).await;
    bind(
        &ch,
        &q_sport,
        &ex,
        "",
        table(&[(
            "x-filter-policy",
            long_str(
                r#"{"interest": [{"prefix": "bas"}, "rugby"], "price": [{"numeric": ["<", 100]}]}"#,
            ),
        )]),
    )
    .await;

    for (name, interest, price) in [
        ("a", "baseball", 10),
        ("b", "rugby", 500),
        ("c", "tennis", 1),
    ] {
        let props = BasicProperties::default().with_headers(table(&[
            ("interest", long_str(interest)),
            ("price", AMQPValue::LongInt(price)),
        ]));
        publish_with(&ch, &ex, "", name, props).await;
    }

    assert_eq!(drain(&ch, &q_all).await, ["a", "b", "c"]);
    assert_eq!(drain(&ch, &q_sport).await, ["a"]);

    delete_queues(&ch, &[&q_all, &q_sport]).await;
    delete_exchange(&ch, &ex).await;
    conn.close(200, "OK".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_filter_policy_closes_the_channel_with_406() {
    let server = Server::start();
    let conn = server.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let ex = unique("filter-bad");
    let q = unique("filter-bad-q");
    declare_exchange(&ch, &ex, ExchangeKind::Fanout).await;
    declare_queue(&ch, &q, FieldTable::default()).await;

    let err = ch
        .queue_bind(
            q.as_str().into(),
            ex.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            table(&[("x-filter-policy", long_str(r#"{"a": []}"#))]),
        )
        .await
        .expect_err("a bad filter policy must be refused");
    match err.kind() {
        ErrorKind::ProtocolError(amqp) => {
            assert_eq!(amqp.get_id(), 406, "reply code: {amqp}");
            assert_eq!(
                amqp.kind(),
                &AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)
            );
            assert!(
                amqp.get_message()
                    .as_str()
                    .contains("Empty arrays are not allowed"),
                "reply text carries AWS's reason: {:?}",
                amqp.get_message()
            );
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }

    let ch = conn.create_channel().await.unwrap();
    delete_queues(&ch, &[&q]).await;
    delete_exchange(&ch, &ex).await;
    conn.close(200, "OK".into()).await.unwrap();
}
