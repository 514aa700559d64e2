//! MQTT 3.1.1 end to end, driven by rumqttc: publish/subscribe at every QoS with
//! wildcards, retained messages, persistent sessions (across a disconnect, a restart
//! and a SIGKILL), wills, session takeover, topics with dots and `$` topics.
//!
//! `SWITCHBOARD_MQTT_ADDR=host:port` runs the tests that need no restart against
//! another broker (mosquitto) to check the tests themselves.

mod common;

use common::mqtt::*;
use common::*;
use rumqttc::{LastWill, SubscribeReasonCode as Rc};

async fn client(b: &Broker, id: &str) -> V4 {
    V4::connect(opts4(&b.addr, id)).await
}

async fn persistent(addr: &str, id: &str) -> V4 {
    let mut o = opts4(addr, id);
    o.set_clean_session(false);
    V4::connect(o).await
}

/// Payloads (with QoS and retain flag) until the one equal to `end`, inclusive.
async fn until(c: &mut V4, end: &str) -> Vec<(String, String, QoS, bool)> {
    let mut out = Vec::new();
    loop {
        let p = c.next_publish().await;
        let body = text(&p.payload);
        out.push((p.topic.clone(), body.clone(), p.qos, p.retain));
        if body == end {
            return out;
        }
    }
}

fn bodies(v: &[(String, String, QoS, bool)]) -> Vec<&str> {
    v.iter().map(|m| m.1.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_at_each_qos_with_plus_and_hash() {
    let Some(b) = Broker::start() else { return };
    let r = root("v4-wild");
    let mut exact = client(&b, &unique("sub-plus")).await;
    let mut all = client(&b, &unique("sub-hash")).await;
    let mut publ = client(&b, &unique("pub")).await;

    assert_eq!(
        exact
            .subscribe(&format!("{r}/+/temp"), QoS::ExactlyOnce)
            .await,
        [Rc::Success(QoS::ExactlyOnce)]
    );
    assert_eq!(
        all.subscribe(&format!("{r}/#"), QoS::AtLeastOnce).await,
        [Rc::Success(QoS::AtLeastOnce)]
    );

    let kitchen = format!("{r}/kitchen/temp");
    publ.publish(&kitchen, QoS::AtMostOnce, false, b"q0").await;
    publ.publish(&kitchen, QoS::AtLeastOnce, false, b"q1").await;
    publ.publish(&kitchen, QoS::ExactlyOnce, false, b"q2").await;
    publ.publish(
        &format!("{r}/kitchen/humidity"),
        QoS::AtLeastOnce,
        false,
        b"hum",
    )
    .await;
    publ.publish(
        &format!("{r}/kitchen/temp/x"),
        QoS::AtLeastOnce,
        false,
        b"deep",
    )
    .await;
    publ.publish(&r, QoS::AtLeastOnce, false, b"parent").await;
    publ.publish(&format!("{r}/end/temp"), QoS::AtLeastOnce, false, b"end")
        .await;

    // `+` matches exactly one level; each message keeps its own QoS.
    let got = until(&mut exact, "end").await;
    assert_eq!(bodies(&got), ["q0", "q1", "q2", "end"]);
    assert_eq!(got[0].0, kitchen);
    let qos: Vec<QoS> = got.iter().map(|m| m.2).collect();
    assert_eq!(
        qos,
        [
            QoS::AtMostOnce,
            QoS::AtLeastOnce,
            QoS::ExactlyOnce,
            QoS::AtLeastOnce
        ]
    );
    assert!(got.iter().all(|m| !m.3), "live deliveries have retain=0");

    // `#` matches any depth, and the parent level itself; QoS 2 is downgraded to
    // the subscription's 1.
    let got = until(&mut all, "end").await;
    assert_eq!(
        bodies(&got),
        ["q0", "q1", "q2", "hum", "deep", "parent", "end"]
    );
    assert_eq!(got[2].2, QoS::AtLeastOnce);
    assert_eq!(got[5].0, r);
    exact.no_publish(QUIET).await;
    all.no_publish(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_message_on_wildcard_subscribe_and_cleared_by_empty_publish() {
    let Some(b) = Broker::start() else { return };
    let r = root("v4-retain");
    let mut publ = client(&b, &unique("pub")).await;
    let (dev1, dev2) = (format!("{r}/dev1/status"), format!("{r}/dev2/status"));
    publ.publish(&dev1, QoS::AtLeastOnce, true, b"online").await;
    publ.publish(&dev2, QoS::AtLeastOnce, true, b"offline")
        .await;

    let mut first = client(&b, &unique("sub1")).await;
    first
        .subscribe(&format!("{r}/+/status"), QoS::AtLeastOnce)
        .await;
    let mut got = [first.next_publish().await, first.next_publish().await];
    got.sort_by(|a, b| a.topic.cmp(&b.topic));
    assert_eq!(got[0].topic, dev1);
    assert_eq!(text(&got[0].payload), "online");
    assert_eq!(got[1].topic, dev2);
    assert_eq!(text(&got[1].payload), "offline");
    assert!(got.iter().all(|p| p.retain), "sent on subscribe: retain=1");
    assert!(got.iter().all(|p| p.qos == QoS::AtLeastOnce));

    // An empty retained publish clears dev1's retained message; it still reaches
    // current subscribers, as a live message.
    publ.publish(&dev1, QoS::AtLeastOnce, true, b"").await;
    let cleared = first.next_publish().await;
    assert_eq!(cleared.topic, dev1);
    assert!(cleared.payload.is_empty());
    assert!(!cleared.retain, "a live delivery has retain=0");

    let mut second = client(&b, &unique("sub2")).await;
    second
        .subscribe(&format!("{r}/+/status"), QoS::AtLeastOnce)
        .await;
    publ.publish(&format!("{r}/zz/status"), QoS::AtLeastOnce, false, b"end")
        .await;
    let got = until(&mut second, "end").await;
    assert_eq!(bodies(&got), ["offline", "end"], "dev1's retained is gone");
    assert!(got[0].3 && !got[1].3);

    // Tidy up for a shared broker.
    publ.publish(&dev2, QoS::AtLeastOnce, true, b"").await;
}

/// Subscribes `id` (persistent) to `filter` at QoS 1 and disconnects.
async fn park(addr: &str, id: &str, filter: &str) {
    let mut c = persistent(addr, id).await;
    assert_eq!(
        c.subscribe(filter, QoS::AtLeastOnce).await,
        [Rc::Success(QoS::AtLeastOnce)]
    );
    c.disconnect().await;
}

async fn publish_all(addr: &str, topic: &str, bodies: &[&str]) {
    let mut p = V4::connect(opts4(addr, &unique("pub"))).await;
    for body in bodies {
        p.publish(topic, QoS::AtLeastOnce, false, body.as_bytes())
            .await;
    }
    p.disconnect().await;
}

async fn expect_bodies(c: &mut V4, want: &[&str]) {
    for w in want {
        let p = c.next_publish().await;
        assert_eq!(text(&p.payload), *w);
        assert_eq!(p.qos, QoS::AtLeastOnce);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_session_gets_qos1_messages_published_while_away() {
    let Some(b) = Broker::start() else { return };
    let r = root("v4-away");
    let id = unique("away");
    let topic = format!("{r}/q");
    park(&b.addr, &id, &topic).await;
    publish_all(&b.addr, &topic, &["m1", "m2", "m3"]).await;

    let mut c = persistent(&b.addr, &id).await;
    assert!(c.connack.session_present, "CONNACK session present");
    expect_bodies(&mut c, &["m1", "m2", "m3"]).await;
    c.no_publish(QUIET).await;
    c.disconnect().await;

    // A clean session discards all of it.
    let c = client(&b, &id).await;
    assert!(!c.connack.session_present);
    c.disconnect().await;
    let c = persistent(&b.addr, &id).await;
    assert!(
        !c.connack.session_present,
        "the clean session ended the old one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_qos1_delivery_is_resent_with_dup_after_reconnect() {
    let Some(b) = Broker::start() else { return };
    let r = root("v4-dup");
    let id = unique("dup");
    let topic = format!("{r}/q");
    park(&b.addr, &id, &topic).await;

    let mut o = opts4(&b.addr, &id);
    o.set_clean_session(false).set_manual_acks(true);
    let mut c = V4::connect(o).await;
    publish_all(&b.addr, &topic, &["once"]).await;
    let p = c.next_publish().await;
    assert_eq!(text(&p.payload), "once");
    assert!(!p.dup);
    c.ev.drop_tcp().await; // no PUBACK

    let mut c = persistent(&b.addr, &id).await;
    assert!(c.connack.session_present);
    let p = c.next_publish().await;
    assert_eq!(text(&p.payload), "once");
    assert!(p.dup, "a resent PUBLISH has DUP=1");
    c.no_publish(QUIET).await;
}

async fn restart_keeps_session(crash: bool) {
    let Some(_) = Broker::own() else { return };
    let dir = TempDir::new("sb-mqtt-restart");
    let mut server = Server::start_in(&dir.0);
    let addr = server.mqtt_addr().unwrap().to_string();
    let id = unique("restart");
    let topic = "plant/line1/count";
    park(&addr, &id, topic).await;
    // PUBACK means the message is durable in the session's queue.
    publish_all(&addr, topic, &["m1", "m2", "m3"]).await;
    if crash {
        server.kill9();
    } else {
        assert!(server.terminate().is_some_and(|s| s.success()));
    }
    drop(server);

    let server = Server::start_in(&dir.0);
    let addr = server.mqtt_addr().unwrap().to_string();
    let mut c = persistent(&addr, &id).await;
    assert!(c.connack.session_present, "session survives the restart");
    expect_bodies(&mut c, &["m1", "m2", "m3"]).await;
    // The subscription survived too: new messages still arrive.
    publish_all(&addr, topic, &["m4"]).await;
    expect_bodies(&mut c, &["m4"]).await;
    c.no_publish(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_session_survives_a_restart() {
    restart_keeps_session(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_session_survives_sigkill() {
    restart_keeps_session(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_is_published_when_the_connection_drops_without_disconnect() {
    let Some(b) = Broker::start() else { return };
    let r = root("v4-will");
    let topic = format!("{r}/status");
    let mut watcher = client(&b, &unique("watcher")).await;
    watcher.subscribe(&topic, QoS::AtLeastOnce).await;

    let with_will = |id: &str| {
        let mut o = opts4(&b.addr, id);
        o.set_last_will(LastWill::new(&topic, "gone", QoS::AtLeastOnce, false));
        o
    };
    // A clean DISCONNECT discards the will.
    V4::connect(with_will(&unique("polite")))
        .await
        .disconnect()
        .await;
    let mut publ = client(&b, &unique("pub")).await;
    publ.publish(&topic, QoS::AtLeastOnce, false, b"marker")
        .await;
    let p = watcher.next_publish().await;
    assert_eq!(text(&p.payload), "marker", "no will after DISCONNECT");

    // Dropping the TCP connection publishes it.
    let mut rude = V4::connect(with_will(&unique("rude"))).await;
    rude.ev.drop_tcp().await;
    let p = watcher.next_publish().await;
    assert_eq!(p.topic, topic);
    assert_eq!(text(&p.payload), "gone");
    assert_eq!(p.qos, QoS::AtLeastOnce);
    watcher.no_publish(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_client_with_the_same_id_takes_the_session_over() {
    let Some(b) = Broker::start() else { return };
    let r = root("v4-takeover");
    let id = unique("twin");
    let topic = format!("{r}/t");
    let mut first = persistent(&b.addr, &id).await;
    first.subscribe(&topic, QoS::AtLeastOnce).await;

    let mut second = persistent(&b.addr, &id).await;
    assert!(second.connack.session_present, "it takes over the session");
    let why = format!("{:?}", first.ev.closed().await);
    eprintln!("first client's connection ended: {why}");

    // The subscription came along, and only the new connection gets messages.
    let mut publ = client(&b, &unique("pub")).await;
    publ.publish(&topic, QoS::AtLeastOnce, false, b"hello")
        .await;
    let p = second.next_publish().await;
    assert_eq!(text(&p.payload), "hello");
    second.no_publish(QUIET).await;
    second.disconnect().await;
    client(&b, &id).await.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_with_dots_round_trips_and_stays_distinct_from_slashes() {
    let Some(b) = Broker::start() else { return };
    let r = root("v4-dots");
    let (dotted, slashed) = (format!("{r}/v1.0/temp"), format!("{r}/v1/0/temp"));
    let mut dot = client(&b, &unique("dot")).await;
    let mut slash = client(&b, &unique("slash")).await;
    let mut plus = client(&b, &unique("plus")).await;
    dot.subscribe(&dotted, QoS::AtLeastOnce).await;
    slash.subscribe(&slashed, QoS::AtLeastOnce).await;
    plus.subscribe(&format!("{r}/v1.0/+"), QoS::AtLeastOnce)
        .await;

    let mut publ = client(&b, &unique("pub")).await;
    publ.publish(&dotted, QoS::AtLeastOnce, false, b"dot").await;
    publ.publish(&slashed, QoS::AtLeastOnce, false, b"slash")
        .await;
    publ.publish(&dotted, QoS::AtLeastOnce, false, b"end").await;

    let got = until(&mut dot, "end").await;
    assert_eq!(bodies(&got), ["dot", "end"]);
    assert_eq!(got[0].0, dotted, "the topic comes back with its dots");
    let got = until(&mut plus, "end").await;
    assert_eq!(bodies(&got), ["dot", "end"]);
    assert_eq!(got[0].0, dotted);
    let p = slash.next_publish().await;
    assert_eq!(
        (p.topic.as_str(), text(&p.payload).as_str()),
        (slashed.as_str(), "slash")
    );
    slash.no_publish(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dollar_topics_are_not_matched_by_leading_wildcards() {
    let Some(b) = Broker::start() else { return };
    let r = root("v4-dollar");
    let dollar = format!("$sbtest/{r}");
    let mut hash = client(&b, &unique("hash")).await;
    let mut plus = client(&b, &unique("plus")).await;
    let mut explicit = client(&b, &unique("explicit")).await;
    hash.subscribe("#", QoS::AtLeastOnce).await;
    plus.subscribe(&format!("+/{r}"), QoS::AtLeastOnce).await;
    explicit.subscribe("$sbtest/#", QoS::AtLeastOnce).await;

    let mut publ = client(&b, &unique("pub")).await;
    publ.publish(&dollar, QoS::AtLeastOnce, false, b"dollar")
        .await;
    publ.publish(&format!("x/{r}"), QoS::AtLeastOnce, false, b"end")
        .await;

    let p = explicit.next_publish().await;
    assert_eq!(
        (p.topic.as_str(), text(&p.payload).as_str()),
        (dollar.as_str(), "dollar")
    );
    let got = until(&mut plus, "end").await;
    assert_eq!(bodies(&got), ["end"], "`+/…` does not match `$sbtest/…`");
    // `#` sees everything else on the broker, but no `$` topic.
    let got = until(&mut hash, "end").await;
    assert!(got.iter().all(|m| !m.0.starts_with('$')), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_topic_levels_are_levels_too() {
    let Some(b) = Broker::start() else { return };
    let r = root("v4-empty");
    let mut plus = client(&b, &unique("plus")).await;
    plus.subscribe(&format!("{r}/+/b"), QoS::AtLeastOnce).await;
    let mut tail = client(&b, &unique("tail")).await;
    tail.subscribe(&format!("{r}/a/+"), QoS::AtLeastOnce).await;
    let mut publ = client(&b, &unique("pub")).await;
    for t in [format!("{r}//b"), format!("{r}/a/"), format!("{r}/x/b")] {
        publ.publish(&t, QoS::AtLeastOnce, false, t.as_bytes())
            .await;
    }
    let p = plus.next_publish().await;
    assert_eq!(p.topic, format!("{r}//b"), "`+` matches an empty level");
    assert_eq!(plus.next_publish().await.topic, format!("{r}/x/b"));
    let p = tail.next_publish().await;
    assert_eq!(p.topic, format!("{r}/a/"), "a trailing empty level");
    tail.no_publish(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_stops_only_that_filter() {
    let Some(b) = Broker::start() else { return };
    let r = root("v4-unsub");
    let mut c = client(&b, &unique("c")).await;
    c.subscribe(&format!("{r}/+"), QoS::AtLeastOnce).await;
    c.subscribe(&format!("{r}/#"), QoS::AtLeastOnce).await;
    c.client.unsubscribe(format!("{r}/#")).await.unwrap();
    c.ev.expect("UNSUBACK", |e| match e {
        rumqttc::Event::Incoming(rumqttc::Packet::UnsubAck(_)) => Some(()),
        _ => None,
    })
    .await;
    let mut publ = client(&b, &unique("pub")).await;
    publ.publish(&format!("{r}/a/b"), QoS::AtLeastOnce, false, b"deep")
        .await;
    publ.publish(&format!("{r}/a"), QoS::AtLeastOnce, false, b"end")
        .await;
    let got = until(&mut c, "end").await;
    assert_eq!(
        bodies(&got),
        ["end"],
        "`{r}/+` still matches, `{r}/#` is gone"
    );
    c.no_publish(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_client_connects_and_receives() {
    // rumqttc has no 3.1 (MQIsdp): this one is raw bytes.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(b) = Broker::start() else { return };
    let r = root("v31");
    let mut s = tokio::net::TcpStream::connect(&b.addr).await.unwrap();
    let id = format!("v31-{}", std::process::id());
    let mut connect = vec![0x00, 0x06];
    connect.extend_from_slice(b"MQIsdp\x03\x02\x00\x3c");
    connect.extend_from_slice(&(id.len() as u16).to_be_bytes());
    connect.extend_from_slice(id.as_bytes());
    let mut pkt = vec![0x10, connect.len() as u8];
    pkt.extend_from_slice(&connect);
    s.write_all(&pkt).await.unwrap();
    let mut ack = [0u8; 4];
    tokio::time::timeout(WAIT, s.read_exact(&mut ack))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ack, [0x20, 0x02, 0x00, 0x00], "CONNACK accepted");

    let filter = format!("{r}/#");
    let mut sub = vec![0x82, (2 + 2 + filter.len() + 1) as u8, 0x00, 0x01];
    sub.extend_from_slice(&(filter.len() as u16).to_be_bytes());
    sub.extend_from_slice(filter.as_bytes());
    sub.push(0x00);
    s.write_all(&sub).await.unwrap();
    let mut suback = [0u8; 5];
    tokio::time::timeout(WAIT, s.read_exact(&mut suback))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(suback, [0x90, 0x03, 0x00, 0x01, 0x00]);

    let topic = format!("{r}/a");
    client(&b, &unique("pub"))
        .await
        .publish(&topic, QoS::AtMostOnce, false, b"hi")
        .await;
    let mut want = vec![0x30, (2 + topic.len() + 2) as u8];
    want.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    want.extend_from_slice(topic.as_bytes());
    want.extend_from_slice(b"hi");
    let mut got = vec![0u8; want.len()];
    tokio::time::timeout(WAIT, s.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, want);
}
