//! STOMP ⇄ AMQP 0-9-1 ⇄ MQTT on one core: a STOMP SEND read by lapin with its
//! headers as AMQP properties and headers, an AMQP publish read over STOMP, an MQTT 5
//! publish with user properties read by a STOMP topic subscriber, and a message
//! dead-lettered by an AMQP reject read over STOMP with its `x-death` as JSON
//! (docs/PROTOCOL_MAPPING.md, "Headers ⇄ message properties").

mod common;

use common::mqtt::{QoS5, V5, opts5};
use common::stomp::*;
use common::{as_string, get_eventually, long_str, next_delivery, table, unique};
use lapin::{
    BasicProperties,
    options::{BasicConsumeOptions, BasicRejectOptions},
    types::{AMQPValue, FieldTable, ShortString},
};
use rumqttc::v5::mqttbytes::v5::PublishProperties;

fn short(s: &Option<ShortString>) -> Option<&str> {
    s.as_ref().map(|s| s.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stomp_send_reaches_amqp_with_its_properties() {
    let Some(b) = Broker::with_amqp() else { return };
    let q = unique("stomp-to-amqp");
    let mut s = b.connect().await;
    s.send_with(
        &format!("/queue/{q}"),
        &[
            ("content-type", "application/json"),
            ("correlation-id", "corr-7"),
            ("reply-to", "/queue/replies"),
            ("priority", "6"),
            ("persistent", "true"),
            ("type", "order.created"),
            ("app-id", "shop"),
            ("amqp-message-id", "msg-1"),
            ("region", "eu-west"),
            ("tenant", "a:b c"),
        ],
        br#"{"id":1}"#,
    )
    .await;

    let conn = b.server().connect().await;
    let ch = conn.create_channel().await.unwrap();
    let mut consumer = ch
        .basic_consume(
            q.as_str().into(),
            "c".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let d = next_delivery(&mut consumer).await;
    assert_eq!(&d.data[..], br#"{"id":1}"#);
    assert_eq!(d.exchange.as_str(), "");
    assert_eq!(d.routing_key.as_str(), q);
    let p = &d.properties;
    assert_eq!(short(p.content_type()), Some("application/json"));
    assert_eq!(short(p.correlation_id()), Some("corr-7"));
    assert_eq!(short(p.reply_to()), Some("/queue/replies"));
    assert_eq!(*p.priority(), Some(6));
    assert_eq!(*p.delivery_mode(), Some(2), "persistent:true");
    assert_eq!(short(p.kind()), Some("order.created"));
    assert_eq!(short(p.app_id()), Some("shop"));
    assert_eq!(short(p.message_id()), Some("msg-1"));
    let h = p.headers().clone().expect("headers").inner().clone();
    let get = |k: &str| h.get(k).and_then(as_string);
    assert_eq!(get("region").as_deref(), Some("eu-west"));
    assert_eq!(get("tenant").as_deref(), Some("a:b c"));
    assert!(
        !h.contains_key("destination") && !h.contains_key("persistent"),
        "{h:?}"
    );
    if !common::Server::external() {
        // RabbitMQ keeps these two as AMQP headers; we drop them as frame headers.
        for frame_header in ["receipt", "content-length"] {
            assert!(!h.contains_key(frame_header), "{frame_header} in {h:?}");
        }
    }
    s.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amqp_publish_reaches_stomp_with_its_headers() {
    let Some(b) = Broker::with_amqp() else { return };
    let q = unique("amqp-to-stomp");
    let dest = format!("/queue/{q}");
    let mut s = b.connect().await;
    s.subscribe("s", &dest, "client-individual").await;

    let conn = b.server().connect().await;
    let ch = conn.create_channel().await.unwrap();
    let props = BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_correlation_id("c-9".into())
        .with_reply_to("answers".into())
        .with_priority(3)
        .with_delivery_mode(2)
        .with_type("ping".into())
        .with_app_id("tool".into())
        .with_message_id("m-9".into())
        .with_headers(table(&[
            ("colour", long_str("green")),
            ("count", AMQPValue::LongInt(42)),
            ("big", AMQPValue::LongLongInt(-7_000_000_000)),
        ]));
    common::publish_with(&ch, "", &q, "hello from amqp", props).await;

    let m = s.next_message().await;
    assert_eq!(text(&m), "hello from amqp");
    assert_eq!(hdr(&m, "destination"), dest);
    assert_eq!(hdr(&m, "subscription"), "s");
    assert_eq!(hdr(&m, "content-type"), "text/plain");
    assert_eq!(hdr(&m, "correlation-id"), "c-9");
    assert_eq!(hdr(&m, "reply-to"), "/reply-queue/answers");
    assert_eq!(hdr(&m, "priority"), "3");
    assert_eq!(hdr(&m, "persistent"), "true");
    assert_eq!(hdr(&m, "type"), "ping");
    assert_eq!(hdr(&m, "app-id"), "tool");
    assert_eq!(hdr(&m, "amqp-message-id"), "m-9");
    assert_eq!(hdr(&m, "colour"), "green");
    assert_eq!(hdr(&m, "count"), "42");
    assert_eq!(hdr(&m, "big"), "-7000000000");
    assert_eq!(hdr(&m, "content-length"), "15");
    s.ack(&m).await;
    s.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqtt5_publish_reaches_a_stomp_topic_subscriber_with_its_user_properties() {
    let Some(b) = Broker::own() else { return };
    let mut s = b.connect().await;
    s.subscribe("t", "/topic/a.b", "auto").await;
    s.subscribe("w", "/topic/a.*", "auto").await;

    let mqtt = b.server().mqtt_addr().expect("mqtt listener").to_string();
    let mut publ = V5::connect(opts5(&mqtt, &unique("mqtt-pub"))).await;
    let props = PublishProperties {
        user_properties: vec![("sensor".into(), "t-1".into()), ("unit".into(), "C".into())],
        content_type: Some("application/json".into()),
        ..Default::default()
    };
    publ.publish_with(
        "a/b",
        QoS5::AtLeastOnce,
        false,
        br#"{"t":21.5}"#,
        Some(props),
    )
    .await;

    let mut subs = Vec::new();
    for _ in 0..2 {
        let m = s.next_message().await;
        assert_eq!(text(&m), r#"{"t":21.5}"#);
        assert_eq!(hdr(&m, "destination"), "/topic/a.b");
        assert_eq!(hdr(&m, "sensor"), "t-1");
        assert_eq!(hdr(&m, "unit"), "C");
        assert_eq!(hdr(&m, "content-type"), "application/json");
        assert_eq!(hdr(&m, "persistent"), "true", "QoS 1 is persistent");
        subs.push(hdr(&m, "subscription").to_string());
    }
    subs.sort();
    assert_eq!(subs, ["t", "w"]);
    // A topic that matches neither.
    publ.publish("a/b/c", QoS5::AtLeastOnce, false, b"deeper")
        .await;
    s.no_frame(QUIET).await;
    s.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_message_read_over_stomp_carries_x_death() {
    // RabbitMQ's STOMP plugin drops array headers such as x-death; we send JSON.
    let Some(b) = Broker::own() else { return };
    let conn = b.server().connect().await;
    let ch = conn.create_channel().await.unwrap();
    let (q, dlq) = (unique("rejected"), unique("dead"));
    common::declare_queue(&ch, &dlq, FieldTable::default()).await;
    let args = table(&[
        ("x-dead-letter-exchange", long_str("")),
        ("x-dead-letter-routing-key", long_str(&dlq)),
    ]);
    common::declare_queue(&ch, &q, args).await;
    common::publish_with(
        &ch,
        "",
        &q,
        "unwanted",
        BasicProperties::default().with_headers(table(&[("origin", long_str("amqp"))])),
    )
    .await;
    let got = get_eventually(&ch, &q, false).await;
    ch.basic_reject(
        got.delivery.delivery_tag,
        BasicRejectOptions { requeue: false },
    )
    .await
    .unwrap();
    let mut s = b.connect().await;
    s.subscribe("d", &format!("/amq/queue/{dlq}"), "client-individual")
        .await;
    let m = s.next_message().await;
    assert_eq!(text(&m), "unwanted");
    assert_eq!(hdr(&m, "destination"), format!("/queue/{dlq}"));
    assert_eq!(hdr(&m, "origin"), "amqp");
    let raw = hdr(&m, "x-death");
    let json = parse_json(raw).unwrap_or_else(|| panic!("x-death is not JSON: {raw}"));
    let deaths = json
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {raw}"));
    assert_eq!(deaths.len(), 1, "{raw}");
    let d = &deaths[0];
    assert_eq!(d.get("count").and_then(Json::as_f64), Some(1.0), "{raw}");
    assert_eq!(
        d.get("reason").and_then(Json::as_str),
        Some("rejected"),
        "{raw}"
    );
    assert_eq!(
        d.get("queue").and_then(Json::as_str),
        Some(q.as_str()),
        "{raw}"
    );
    assert_eq!(d.get("exchange").and_then(Json::as_str), Some(""), "{raw}");
    let keys = d.get("routing-keys").and_then(Json::as_array);
    assert_eq!(keys, Some(&[Json::Str(q.clone())][..]), "{raw}");
    assert_eq!(hdr(&m, "x-first-death-reason"), "rejected");
    assert_eq!(hdr(&m, "x-first-death-queue"), q);
    s.ack(&m).await;
    s.disconnect().await;
}
