//! MQTT ⇄ AMQP 0-9-1 through `amq.topic`: rumqttc on one side, lapin on the other.
//! The mapping (docs/PROTOCOL_MAPPING.md, RabbitMQ's): MQTT `/` ⇄ AMQP `.` (and `.`
//! ⇄ `/`), user properties ⇄ headers, content type ⇄ content-type, correlation
//! data ⇄ correlation-id, response topic ⇄ reply-to (routing-key form), message
//! expiry (s) ⇄ expiration (ms), QoS ≥ 1 ⇄ delivery-mode 2.

mod common;

use bytes::Bytes;
use common::mqtt::*;
use common::*;
use lapin::{
    BasicProperties,
    message::BasicGetMessage,
    options::{QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
};
use rumqttc::v5::mqttbytes::v5::PublishProperties;

/// An exclusive queue bound to `amq.topic` with each of `keys`.
async fn bound_queue(ch: &lapin::Channel, keys: &[&str]) -> String {
    let q = unique("mqtt-cross");
    let opts = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    ch.queue_declare(q.as_str().into(), opts, FieldTable::default())
        .await
        .expect("queue.declare");
    for key in keys {
        ch.queue_bind(
            q.as_str().into(),
            "amq.topic".into(),
            (*key).into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("queue.bind {key}: {e}"));
    }
    q
}

fn header(m: &BasicGetMessage, key: &str) -> Option<AMQPValue> {
    m.delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(key).cloned())
}

fn short(s: &Option<lapin::types::ShortString>) -> Option<&str> {
    s.as_ref().map(|s| s.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_publish_reaches_an_amqp_queue_with_its_properties() {
    let Some(b) = Broker::own() else { return };
    let conn = b.server().connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = bound_queue(&ch, &["sensors.#"]).await;

    let mut publ = V5::connect(opts5(&b.addr, &unique("pub"))).await;
    let props = PublishProperties {
        user_properties: vec![("sensor".into(), "t-1".into()), ("unit".into(), "C".into())],
        content_type: Some("application/json".into()),
        correlation_data: Some(Bytes::from_static(b"req-42")),
        response_topic: Some("replies/client-1".into()),
        message_expiry_interval: Some(5),
        ..Default::default()
    };
    publ.publish_with(
        "sensors/kitchen/temp",
        QoS5::AtLeastOnce,
        false,
        br#"{"t":21.5}"#,
        Some(props),
    )
    .await;

    let m = get_eventually(&ch, &q, true).await;
    assert_eq!(body(&m.delivery), r#"{"t":21.5}"#);
    assert_eq!(m.delivery.exchange.as_str(), "amq.topic");
    assert_eq!(m.delivery.routing_key.as_str(), "sensors.kitchen.temp");
    let p = &m.delivery.properties;
    assert_eq!(
        header(&m, "sensor").as_ref().and_then(as_string).as_deref(),
        Some("t-1")
    );
    assert_eq!(
        header(&m, "unit").as_ref().and_then(as_string).as_deref(),
        Some("C")
    );
    assert_eq!(short(p.content_type()), Some("application/json"));
    assert_eq!(short(p.correlation_id()), Some("req-42"));
    assert_eq!(
        short(p.reply_to()),
        Some("replies.client-1"),
        "routing-key form"
    );
    assert_eq!(short(p.expiration()), Some("5000"));
    assert_eq!(*p.delivery_mode(), Some(2), "QoS 1 is persistent");

    // QoS 0 is not persistent.
    publ.publish("sensors/hall/temp", QoS5::AtMostOnce, false, b"q0")
        .await;
    let m = get_eventually(&ch, &q, true).await;
    assert_eq!(body(&m.delivery), "q0");
    assert_ne!(*m.delivery.properties.delivery_mode(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_publish_reaches_mqtt_subscribers_with_its_properties() {
    let Some(b) = Broker::own() else { return };
    let mut sub5 = V5::connect(opts5(&b.addr, &unique("sub5"))).await;
    sub5.subscribe("cmd/+", QoS5::AtLeastOnce).await;
    let mut sub4 = V4::connect(opts4(&b.addr, &unique("sub4"))).await;
    sub4.subscribe("cmd/#", QoS::AtLeastOnce).await;

    let conn = b.server().connect().await;
    let ch = conn.create_channel().await.unwrap();
    let props = BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_correlation_id("c-1".into())
        .with_reply_to("resp.dev1".into())
        .with_expiration("60000".into())
        .with_delivery_mode(2)
        .with_headers(table(&[
            ("k", long_str("v")),
            ("n", AMQPValue::LongInt(42)),
        ]));
    publish_with(&ch, "amq.topic", "cmd.dev1", "reboot", props).await;

    let p = sub5.next_publish().await;
    assert_eq!(text(&p.topic), "cmd/dev1");
    assert_eq!(text(&p.payload), "reboot");
    assert_eq!(p.qos, QoS5::AtLeastOnce, "persistent ⇒ QoS 1");
    let props = p.properties.expect("properties");
    assert!(
        props.user_properties.contains(&("k".into(), "v".into())),
        "{props:?}"
    );
    assert!(
        props.user_properties.contains(&("n".into(), "42".into())),
        "{props:?}"
    );
    assert_eq!(props.content_type.as_deref(), Some("text/plain"));
    assert_eq!(props.correlation_data.as_deref(), Some(&b"c-1"[..]));
    assert_eq!(props.response_topic.as_deref(), Some("resp/dev1"));
    assert!(
        props
            .message_expiry_interval
            .is_some_and(|e| e > 0 && e <= 60)
    );

    let p = sub4.next_publish().await;
    assert_eq!(
        (p.topic.as_str(), text(&p.payload).as_str()),
        ("cmd/dev1", "reboot")
    );
    assert_eq!(p.qos, QoS::AtLeastOnce);

    // A transient AMQP message arrives at QoS 0.
    publish(&ch, "amq.topic", "cmd.dev2", "ping").await;
    let p = sub5.next_publish().await;
    assert_eq!(
        (text(&p.topic).as_str(), p.qos),
        ("cmd/dev2", QoS5::AtMostOnce)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dots_and_slashes_swap_between_mqtt_topics_and_routing_keys() {
    let Some(b) = Broker::own() else { return };
    let conn = b.server().connect().await;
    let ch = conn.create_channel().await.unwrap();
    let swapped = bound_queue(&ch, &["v1/0.temp"]).await;
    let literal = bound_queue(&ch, &["v1.0.temp"]).await;

    let mut mq = V4::connect(opts4(&b.addr, &unique("dots"))).await;
    mq.publish("v1.0/temp", QoS::AtLeastOnce, false, b"21.5")
        .await;
    let m = get_eventually(&ch, &swapped, true).await;
    assert_eq!(body(&m.delivery), "21.5");
    assert_eq!(m.delivery.routing_key.as_str(), "v1/0.temp");
    mq.publish("v1/0/temp", QoS::AtLeastOnce, false, b"other")
        .await;
    let m = get_eventually(&ch, &literal, true).await;
    assert_eq!(body(&m.delivery), "other");
    assert!(get(&ch, &swapped).await.is_none());

    // And back: an AMQP routing key with '/' reaches the MQTT topic with '.'.
    mq.subscribe("a.b/c", QoS::AtLeastOnce).await;
    publish(&ch, "amq.topic", "a/b.c", "back").await;
    let p = mq.next_publish().await;
    assert_eq!(
        (p.topic.as_str(), text(&p.payload).as_str()),
        ("a.b/c", "back")
    );
}
