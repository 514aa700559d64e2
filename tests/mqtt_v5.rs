//! MQTT 5.0 features end to end, driven by rumqttc's v5 client: subscription
//! options and identifiers, topic aliases, message expiry, properties and shared
//! subscriptions. Sessions, keep-alive, flow control and QoS 2 across reconnects
//! are in mqtt_v5_session.rs.
//!
//! `SWITCHBOARD_MQTT_ADDR=host:port` runs them against another broker (mosquitto)
//! to check the tests themselves.

mod common;

use bytes::Bytes;
use common::mqtt::*;
use common::*;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{
    Filter, PubAckReason, Publish, PublishProperties, RetainForwardRule, SubscribeProperties,
    SubscribeReasonCode,
};
use std::collections::BTreeSet;
use std::time::Duration;

async fn client(b: &Broker, id: &str) -> V5 {
    V5::connect(opts5(&b.addr, id)).await
}

fn filter(path: &str, qos: QoS, set: impl FnOnce(&mut Filter)) -> Filter {
    let mut f = Filter::new(path, qos);
    set(&mut f);
    f
}

fn sub_id(id: usize) -> Option<SubscribeProperties> {
    Some(SubscribeProperties {
        id: Some(id),
        user_properties: Vec::new(),
    })
}

fn topic(p: &Publish) -> String {
    text(&p.topic)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_carry_the_matching_subscription_identifiers() {
    let Some(b) = Broker::start() else { return };
    let r = root("v5-subid");
    let mut c = client(&b, &unique("subid")).await;
    let plus = vec![Filter::new(format!("{r}/+/temp"), QoS::AtLeastOnce)];
    let hash = vec![Filter::new(format!("{r}/#"), QoS::AtLeastOnce)];
    assert_eq!(
        c.subscribe_with(plus, sub_id(7)).await,
        [SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    c.subscribe_with(hash, sub_id(300_000)).await;

    let mut publ = client(&b, &unique("pub")).await;
    publ.publish(&format!("{r}/a/temp"), QoS::AtLeastOnce, false, b"both")
        .await;
    publ.publish(&format!("{r}/a/hum"), QoS::AtLeastOnce, false, b"one")
        .await;

    // Either one PUBLISH with both ids or one per subscription (MQTT 5 §3.3.4).
    let mut ids = BTreeSet::new();
    while ids.len() < 2 {
        let p = c.next_publish().await;
        assert_eq!(text(&p.payload), "both");
        let props = p.properties.expect("properties");
        assert!(!props.subscription_identifiers.is_empty());
        ids.extend(props.subscription_identifiers);
    }
    assert_eq!(ids, BTreeSet::from([7, 300_000]));
    let p = c.next_publish().await;
    assert_eq!(text(&p.payload), "one");
    assert_eq!(p.properties.unwrap().subscription_identifiers, [300_000]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_local_subscription_does_not_get_its_own_messages() {
    let Some(b) = Broker::start() else { return };
    let t = format!("{}/chat", root("v5-nolocal"));
    let mut me = client(&b, &unique("me")).await;
    let mut other = client(&b, &unique("other")).await;
    me.subscribe_with(
        vec![filter(&t, QoS::AtLeastOnce, |f| f.nolocal = true)],
        None,
    )
    .await;
    other.subscribe(&t, QoS::AtLeastOnce).await;

    me.publish(&t, QoS::AtLeastOnce, false, b"from me").await;
    assert_eq!(text(&other.next_publish().await.payload), "from me");
    other
        .publish(&t, QoS::AtLeastOnce, false, b"from other")
        .await;
    let p = me.next_publish().await;
    assert_eq!(
        text(&p.payload),
        "from other",
        "its own message was skipped"
    );
    me.no_publish(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_as_published_keeps_the_retain_flag_on_live_deliveries() {
    let Some(b) = Broker::start() else { return };
    let t = format!("{}/state", root("v5-rap"));
    let mut keep = client(&b, &unique("keep")).await;
    let mut plain = client(&b, &unique("plain")).await;
    keep.subscribe_with(
        vec![filter(&t, QoS::AtLeastOnce, |f| f.preserve_retain = true)],
        None,
    )
    .await;
    plain.subscribe(&t, QoS::AtLeastOnce).await;

    let mut publ = client(&b, &unique("pub")).await;
    publ.publish(&t, QoS::AtLeastOnce, true, b"on").await;
    assert!(keep.next_publish().await.retain, "retain as published");
    assert!(
        !plain.next_publish().await.retain,
        "retain cleared on a live delivery"
    );
    publ.publish(&t, QoS::AtLeastOnce, true, b"").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_handling_controls_retained_messages_on_subscribe() {
    let Some(b) = Broker::start() else { return };
    let t = format!("{}/config", root("v5-rh"));
    let mut publ = client(&b, &unique("pub")).await;
    publ.publish(&t, QoS::AtLeastOnce, true, b"old").await;

    // 2: never on subscribe.
    let mut never = client(&b, &unique("never")).await;
    let rule = |r: RetainForwardRule| move |f: &mut Filter| f.retain_forward_rule = r;
    never
        .subscribe_with(
            vec![filter(&t, QoS::AtLeastOnce, rule(RetainForwardRule::Never))],
            None,
        )
        .await;
    // 1: only when the subscription is new.
    let mut new = client(&b, &unique("new")).await;
    let on_new = || {
        vec![filter(
            &t,
            QoS::AtLeastOnce,
            rule(RetainForwardRule::OnNewSubscribe),
        )]
    };
    new.subscribe_with(on_new(), None).await;
    let p = new.next_publish().await;
    assert_eq!((text(&p.payload).as_str(), p.retain), ("old", true));
    new.subscribe_with(on_new(), None).await;

    publ.publish(&t, QoS::AtLeastOnce, false, b"live").await;
    assert_eq!(bodies5(&never.until("live").await), ["live"]);
    assert_eq!(bodies5(&new.until("live").await), ["live"]);
    publ.publish(&t, QoS::AtLeastOnce, true, b"").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_retained_message_is_not_sent_on_subscribe() {
    let Some(b) = Broker::start() else { return };
    let t = format!("{}/flash", root("v5-retexp"));
    let mut publ = client(&b, &unique("pub")).await;
    let props = PublishProperties {
        message_expiry_interval: Some(1),
        ..Default::default()
    };
    publ.publish_with(&t, QoS::AtLeastOnce, true, b"stale", Some(props))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut late = client(&b, &unique("late")).await;
    late.subscribe(&t, QoS::AtLeastOnce).await;
    publ.publish(&t, QoS::AtLeastOnce, false, b"live").await;
    assert_eq!(bodies5(&late.until("live").await), ["live"], "MQTT-3.3.2-5");
    publ.publish(&t, QoS::AtLeastOnce, true, b"").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_alias_set_on_one_publish_is_used_by_the_next() {
    let Some(b) = Broker::start() else { return };
    let t = format!("{}/very/long/topic/name", root("v5-alias"));
    let mut sub = client(&b, &unique("sub")).await;
    sub.subscribe(&t, QoS::AtLeastOnce).await;
    let mut publ = client(&b, &unique("pub")).await;
    let max = publ
        .connack
        .properties
        .as_ref()
        .and_then(|p| p.topic_alias_max);
    assert!(
        max.unwrap_or(0) >= 1,
        "server offers topic aliases: {max:?}"
    );

    let alias = || {
        Some(PublishProperties {
            topic_alias: Some(1),
            ..Default::default()
        })
    };
    publ.publish_with(&t, QoS::AtLeastOnce, false, b"first", alias())
        .await;
    publ.publish_with("", QoS::AtLeastOnce, false, b"second", alias())
        .await;
    for want in ["first", "second"] {
        let p = sub.next_publish().await;
        assert_eq!((topic(&p), text(&p.payload)), (t.clone(), want.to_string()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_without_subscribers_is_acknowledged_with_no_matching_subscribers() {
    let Some(b) = Broker::start() else { return };
    let mut publ = client(&b, &unique("pub")).await;
    let t = format!("{}/nobody", root("v5-nomatch"));
    let reason = publ
        .publish_with(&t, QoS::AtLeastOnce, false, b"x", None)
        .await;
    assert_eq!(
        reason,
        Some(format!("{:?}", PubAckReason::NoMatchingSubscribers))
    );
}

/// Parks a persistent session subscribed to `t`, publishes `msgs` (body, expiry)
/// while it is away, waits `away` and reconnects it.
async fn away(b: &Broker, t: &str, msgs: &[(&str, Option<u32>)], away: Duration) -> V5 {
    let id = unique("away");
    let mut c = session5(&b.addr, &id, true, 300).await;
    c.subscribe(t, QoS::AtLeastOnce).await;
    c.disconnect().await;
    let mut publ = client(b, &unique("pub")).await;
    for (body, expiry) in msgs {
        let props = PublishProperties {
            message_expiry_interval: *expiry,
            ..Default::default()
        };
        publ.publish_with(t, QoS::AtLeastOnce, false, body.as_bytes(), Some(props))
            .await;
    }
    tokio::time::sleep(away).await;
    let c = session5(&b.addr, &id, false, 300).await;
    assert!(c.connack.session_present);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_message_is_not_delivered_to_a_returning_session() {
    let Some(b) = Broker::start() else { return };
    let t = format!("{}/alerts", root("v5-expiry"));
    let msgs = [("short", Some(1)), ("long", Some(300)), ("forever", None)];
    let mut c = away(&b, &t, &msgs, Duration::from_secs(2)).await;
    let got = c.until("forever").await;
    assert_eq!(
        bodies5(&got),
        ["long", "forever"],
        "the 1 s message expired"
    );
    let expiry = |p: &Publish| {
        p.properties
            .as_ref()
            .and_then(|p| p.message_expiry_interval)
    };
    assert!(expiry(&got[0]).is_some_and(|e| e > 0 && e <= 300));
    assert_eq!(expiry(&got[1]), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_message_expiry_is_reduced_by_the_time_waited() {
    let Some(b) = Broker::start() else { return };
    let t = format!("{}/alerts", root("v5-expiry-left"));
    let mut c = away(&b, &t, &[("long", Some(300))], Duration::from_secs(3)).await;
    let p = c.next_publish().await;
    let left = p.properties.and_then(|p| p.message_expiry_interval);
    assert!(
        left.is_some_and(|e| e <= 298),
        "remaining lifetime {left:?}, sent 300 s ago + 3 s"
    );
}

fn rich_props(user: Vec<(String, String)>) -> PublishProperties {
    PublishProperties {
        payload_format_indicator: Some(1),
        content_type: Some("application/json".into()),
        correlation_data: Some(Bytes::from_static(b"req-42")),
        response_topic: Some("replies/v1.0/client-7".into()),
        user_properties: user,
        ..Default::default()
    }
}

async fn round_trip_props(b: &Broker, sent: PublishProperties) -> PublishProperties {
    let t = format!("{}/req", root("v5-props"));
    let mut sub = client(b, &unique("sub")).await;
    sub.subscribe(&t, QoS::AtLeastOnce).await;
    let mut publ = client(b, &unique("pub")).await;
    publ.publish_with(&t, QoS::AtLeastOnce, false, br#"{"x":1}"#, Some(sent))
        .await;
    let p = sub.next_publish().await;
    assert_eq!(text(&p.payload), r#"{"x":1}"#);
    p.properties.expect("properties")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_properties_arrive_unchanged() {
    let Some(b) = Broker::start() else { return };
    let user = vec![
        ("sensor".into(), "t-1".into()),
        ("unit".into(), "°C".into()),
    ];
    let got = round_trip_props(&b, rich_props(user.clone())).await;
    assert_eq!(got.user_properties, user);
    assert_eq!(got.content_type.as_deref(), Some("application/json"));
    assert_eq!(got.correlation_data.as_deref(), Some(&b"req-42"[..]));
    assert_eq!(got.response_topic.as_deref(), Some("replies/v1.0/client-7"));
    assert_eq!(got.payload_format_indicator, Some(1));

    // Binary correlation data too.
    let mut props = rich_props(Vec::new());
    props.correlation_data = Some(Bytes::from_static(b"\xff\x00\x01"));
    let got = round_trip_props(&b, props).await;
    assert_eq!(got.correlation_data.as_deref(), Some(&b"\xff\x00\x01"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_properties_keep_their_order_and_repeats() {
    let Some(b) = Broker::start() else { return };
    let user: Vec<(String, String)> = [("z", "1"), ("a", "2"), ("z", "3")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let got = round_trip_props(&b, rich_props(user.clone())).await;
    assert_eq!(got.user_properties, user);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_subscription_splits_messages_between_its_members() {
    let Some(b) = Broker::start() else { return };
    let r = root("v5-share");
    let shared = format!("$share/workers/{r}/jobs");
    let mut w1 = client(&b, &unique("w1")).await;
    let mut w2 = client(&b, &unique("w2")).await;
    for w in [&mut w1, &mut w2] {
        assert_eq!(
            w.subscribe(&shared, QoS::AtLeastOnce).await,
            [SubscribeReasonCode::Success(QoS::AtLeastOnce)]
        );
    }
    let mut publ = client(&b, &unique("pub")).await;
    const N: usize = 20;
    for i in 0..N {
        publ.publish(
            &format!("{r}/jobs"),
            QoS::AtLeastOnce,
            false,
            format!("job{i}").as_bytes(),
        )
        .await;
    }
    let (mut got1, mut got2) = (Vec::new(), Vec::new());
    while got1.len() + got2.len() < N {
        tokio::select! {
            p = w1.next_publish() => got1.push(text(&p.payload)),
            p = w2.next_publish() => got2.push(text(&p.payload)),
        }
    }
    w1.no_publish(QUIET).await;
    w2.no_publish(QUIET).await;
    assert!(!got1.is_empty() && !got2.is_empty(), "{got1:?} / {got2:?}");
    let all: BTreeSet<&String> = got1.iter().chain(&got2).collect();
    assert_eq!(all.len(), N, "nothing twice: {got1:?} / {got2:?}");
}
