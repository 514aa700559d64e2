//! MQTT 5.0 sessions end to end: session expiry (on CONNECT and on DISCONNECT),
//! takeover, keep-alive, will delay, flow control (Receive Maximum, Maximum Packet
//! Size) and QoS 2 exactly-once across reconnects. rumqttc's v5 client, and its
//! packet codec over a bare socket ([`RawV5`]) where a test must stop between two
//! packets of a handshake.
//!
//! `SWITCHBOARD_MQTT_ADDR=host:port` runs them against another broker (mosquitto)
//! to check the tests themselves.

mod common;

use common::mqtt::*;
use common::*;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5 as p5;
use rumqttc::v5::mqttbytes::v5::{
    Connect, Disconnect, DisconnectProperties, DisconnectReasonCode, Filter, LastWill,
    LastWillProperties, Packet, PingReq, PubComp, PubCompReason, PubRec, PubRel, Publish,
    Subscribe,
};
use std::time::Duration;

async fn client(b: &Broker, id: &str) -> V5 {
    V5::connect(opts5(&b.addr, id)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_with_session_expiry_zero_ends_the_session() {
    let Some(b) = Broker::start() else { return };
    let id = unique("bye");
    let (mut raw, _) = RawV5::connect(&b.addr, &id, true, 300).await;
    let mut sub = Subscribe::new(Filter::new("x/y", QoS::AtLeastOnce), None);
    sub.pkid = 1;
    raw.send(Packet::Subscribe(sub)).await;
    assert!(matches!(raw.recv().await, Packet::SubAck(_)));
    let props = DisconnectProperties {
        session_expiry_interval: Some(0),
        reason_string: None,
        user_properties: Vec::new(),
        server_reference: None,
    };
    let mut d = Disconnect::new(DisconnectReasonCode::NormalDisconnection);
    d.properties = Some(props);
    raw.send(Packet::Disconnect(d)).await;
    raw.eof().await;
    let c = session5(&b.addr, &id, false, 300).await;
    assert!(!c.connack.session_present, "DISCONNECT set the expiry to 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_is_disconnected_after_one_and_a_half_keep_alives_and_its_will_sent() {
    let Some(b) = Broker::start() else { return };
    let t = format!("{}/lost", root("v5-keepalive"));
    let mut watcher = client(&b, &unique("watcher")).await;
    watcher.subscribe(&t, QoS::AtLeastOnce).await;
    let connect = Connect {
        keep_alive: 1,
        client_id: unique("silent"),
        clean_start: true,
        properties: None,
    };
    let will = LastWill::new(&t, "silent one is gone", QoS::AtLeastOnce, false, None);
    let (mut raw, _) = RawV5::connect_with(&b.addr, connect, Some(will)).await;
    let started = std::time::Instant::now();
    let got = raw.eof().await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    if b.server.is_some() {
        // MQTT-3.1.2-22 says close; 5.0 servers may say why first (mosquitto doesn't).
        assert!(
            matches!(&got[..], [Packet::Disconnect(d)] if d.reason_code == DisconnectReasonCode::KeepAliveTimeout),
            "{got:?}"
        );
    }
    let p = watcher.next_publish().await;
    assert_eq!(text(&p.payload), "silent one is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_delay_lets_a_client_come_back_before_its_will_is_sent() {
    let Some(b) = Broker::start() else { return };
    let t = format!("{}/status", root("v5-willdelay"));
    let mut watcher = client(&b, &unique("watcher")).await;
    watcher.subscribe(&t, QoS::AtLeastOnce).await;
    let id = unique("flaky");
    let connect = || {
        let mut o = opts5(&b.addr, &id);
        let props = LastWillProperties {
            delay_interval: Some(2),
            payload_format_indicator: None,
            message_expiry_interval: None,
            content_type: None,
            response_topic: None,
            correlation_data: None,
            user_properties: Vec::new(),
        };
        o.set_clean_start(false)
            .set_session_expiry_interval(Some(60))
            .set_last_will(LastWill::new(
                &t,
                "offline",
                QoS::AtLeastOnce,
                false,
                Some(props),
            ));
        V5::connect(o)
    };
    let mut c = connect().await;
    c.ev.drop_tcp().await;
    // Back within the delay: no will.
    let mut c = connect().await;
    c.publish(&t, QoS::AtLeastOnce, false, b"back").await;
    assert_eq!(bodies5(&watcher.until("back").await), ["back"]);
    // Gone for longer: the will follows, after the delay.
    c.ev.drop_tcp().await;
    let dropped = std::time::Instant::now();
    let p = watcher.next_publish().await;
    assert_eq!(text(&p.payload), "offline");
    assert!(
        dropped.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        dropped.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_maximum_bounds_unacknowledged_deliveries() {
    let Some(b) = Broker::start() else { return };
    let t = format!("{}/work", root("v5-recvmax"));
    let mut o = opts5(&b.addr, &unique("slow"));
    o.set_receive_maximum(Some(2)).set_manual_acks(true);
    let mut slow = V5::connect(o).await;
    slow.subscribe(&t, QoS::AtLeastOnce).await;
    let mut publ = client(&b, &unique("pub")).await;
    for i in 0..5 {
        publ.publish(&t, QoS::AtLeastOnce, false, format!("m{i}").as_bytes())
            .await;
    }
    let first = slow.next_publish().await;
    let second = slow.next_publish().await;
    assert_eq!(bodies5(&[first.clone(), second]), ["m0", "m1"]);
    slow.no_publish(QUIET).await;
    slow.client.ack(&first).await.unwrap();
    assert_eq!(text(&slow.next_publish().await.payload), "m2");
    if b.server.is_some() {
        // MQTT-4.9.0-2 (mosquitto 2.0.11 sends m3 too after one PUBACK).
        slow.no_publish(QUIET).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maximum_packet_size_drops_only_what_does_not_fit() {
    let Some(b) = Broker::start() else { return };
    let t = format!("{}/big", root("v5-maxpkt"));
    let mut o = opts5(&b.addr, &unique("small"));
    o.set_max_packet_size(Some(256));
    let mut small = V5::connect(o).await;
    small.subscribe(&t, QoS::AtLeastOnce).await;
    let mut publ = client(&b, &unique("pub")).await;
    // PUBLISH sizes: about 2 + 2 + topic + 2 + 1 + payload.
    publ.publish(&t, QoS::AtLeastOnce, false, &[b'a'; 150])
        .await;
    publ.publish(&t, QoS::AtLeastOnce, false, &[b'b'; 1000])
        .await;
    publ.publish(&t, QoS::AtLeastOnce, false, b"end").await;
    let got = small.until("end").await;
    let sizes: Vec<usize> = got.iter().map(|p| p.payload.len()).collect();
    assert_eq!(
        sizes,
        [150, 3],
        "the 150-byte message fits in 256 bytes, the 1000-byte one does not"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_is_gone_after_its_expiry_interval() {
    let Some(b) = Broker::start() else { return };
    let t = format!("{}/t", root("v5-sexp"));
    let id = unique("sexp");
    let mut c = session5(&b.addr, &id, true, 1).await;
    assert!(!c.connack.session_present);
    c.subscribe(&t, QoS::AtLeastOnce).await;
    c.disconnect().await;
    let c = session5(&b.addr, &id, false, 1).await;
    assert!(c.connack.session_present, "still there right away");
    c.disconnect().await;

    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut c = session5(&b.addr, &id, false, 1).await;
    assert!(!c.connack.session_present, "expired after 1 s");
    let mut publ = client(&b, &unique("pub")).await;
    publ.publish(&t, QoS::AtLeastOnce, false, b"x").await;
    c.no_publish(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_over_client_gets_disconnect_session_taken_over() {
    // MQTT-3.1.4-3 (mosquitto 2.0.11 only closes the connection, so: ours only).
    let Some(b) = Broker::own() else { return };
    let id = unique("twin");
    let mut first = client(&b, &id).await;
    let _second = client(&b, &id).await;
    assert_eq!(
        first.server_disconnect().await,
        DisconnectReasonCode::SessionTakenOver
    );
}

fn publish2(t: &str, pkid: u16, dup: bool, body: &'static [u8]) -> Packet {
    let mut p = Publish::new(t, QoS::ExactlyOnce, body, None);
    p.pkid = pkid;
    p.dup = dup;
    Packet::Publish(p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_publish_resent_after_reconnect_is_delivered_once() {
    let Some(b) = Broker::start() else { return };
    let t = format!("{}/pay", root("v5-qos2-in"));
    let mut sub = client(&b, &unique("sub")).await;
    sub.subscribe(&t, QoS::ExactlyOnce).await;
    let id = unique("payer");
    let (mut raw, _) = RawV5::connect(&b.addr, &id, true, 300).await;
    raw.send(publish2(&t, 7, false, b"once")).await;
    assert!(matches!(raw.recv().await, Packet::PubRec(r) if r.pkid == 7));
    drop(raw); // PUBREC lost: the client will send the PUBLISH again

    let (mut raw, ack) = RawV5::connect(&b.addr, &id, false, 300).await;
    assert!(ack.session_present);
    raw.send(publish2(&t, 7, true, b"once")).await;
    assert!(matches!(raw.recv().await, Packet::PubRec(r) if r.pkid == 7));
    raw.send(Packet::PubRel(PubRel::new(7, None))).await;
    match raw.recv().await {
        Packet::PubComp(c) => assert_eq!((c.pkid, c.reason), (7, PubCompReason::Success)),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
    raw.send(Packet::Publish(Publish::new(
        &t,
        QoS::AtMostOnce,
        "end",
        None,
    )))
    .await;
    assert_eq!(bodies5(&sub.until("end").await), ["once", "end"]);
}

/// A raw QoS 2 subscriber of `t` with a session of its own.
async fn raw_subscriber(addr: &str, id: &str, t: &str) -> RawV5 {
    let (mut raw, _) = RawV5::connect(addr, id, true, 300).await;
    let mut sub = Subscribe::new(Filter::new(t, QoS::ExactlyOnce), None);
    sub.pkid = 1;
    raw.send(Packet::Subscribe(sub)).await;
    assert!(matches!(raw.recv().await, Packet::SubAck(_)));
    raw
}

async fn recv_publish(raw: &mut RawV5) -> Publish {
    match raw.recv().await {
        Packet::Publish(p) => p,
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_delivery_resumes_with_pubrel_after_reconnect() {
    let Some(b) = Broker::start() else { return };
    let t = format!("{}/orders", root("v5-qos2-rel"));
    let id = unique("rcv");
    let mut raw = raw_subscriber(&b.addr, &id, &t).await;
    let mut publ = client(&b, &unique("pub")).await;
    publ.publish(&t, QoS::ExactlyOnce, false, b"one").await;
    let p = recv_publish(&mut raw).await;
    assert_eq!(
        (text(&p.payload).as_str(), p.qos),
        ("one", QoS::ExactlyOnce)
    );
    raw.send(Packet::PubRec(PubRec::new(p.pkid, None))).await;
    assert!(matches!(raw.recv().await, Packet::PubRel(r) if r.pkid == p.pkid));
    drop(raw); // no PUBCOMP

    let (mut raw, ack) = RawV5::connect(&b.addr, &id, false, 300).await;
    assert!(ack.session_present);
    match raw.recv().await {
        Packet::PubRel(r) => assert_eq!(r.pkid, p.pkid, "PUBREL resent, not the message"),
        other => panic!("expected PUBREL, got {other:?}"),
    }
    raw.send(Packet::PubComp(PubComp::new(p.pkid, None))).await;
    publ.publish(&t, QoS::ExactlyOnce, false, b"two").await;
    assert_eq!(text(&recv_publish(&mut raw).await.payload), "two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_unacknowledged_publish_is_resent_with_its_packet_id() {
    let Some(b) = Broker::start() else { return };
    let t = format!("{}/orders", root("v5-qos2-pid"));
    let id = unique("rcv");
    let mut raw = raw_subscriber(&b.addr, &id, &t).await;
    let mut publ = client(&b, &unique("pub")).await;
    publ.publish(&t, QoS::ExactlyOnce, false, b"a").await;
    publ.publish(&t, QoS::ExactlyOnce, false, b"b").await;
    let a = recv_publish(&mut raw).await;
    let bb = recv_publish(&mut raw).await;
    assert_eq!(text(&bb.payload), "b");
    raw.send(Packet::PubRec(PubRec::new(a.pkid, None))).await;
    assert!(matches!(raw.recv().await, Packet::PubRel(r) if r.pkid == a.pkid));
    raw.send(Packet::PubComp(PubComp::new(a.pkid, None))).await;
    // PINGRESP: the server has read the PUBCOMP (a takeover may not wait for it).
    raw.send(Packet::PingReq(PingReq)).await;
    assert!(matches!(raw.recv().await, Packet::PingResp(_)));
    drop(raw); // "b" never acknowledged

    let (mut raw, _) = RawV5::connect(&b.addr, &id, false, 300).await;
    let again = recv_publish(&mut raw).await;
    assert_eq!(text(&again.payload), "b");
    assert!(again.dup, "resent with DUP=1");
    assert_eq!(again.pkid, bb.pkid, "resent with its original packet id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_refused_in_connack() {
    let Some(b) = Broker::own() else { return };
    let mut o = opts4(&b.addr, &unique("v4"));
    o.set_credentials("guest", "wrong");
    match V4::try_connect(o).await {
        Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, rumqttc::ConnectReturnCode::BadUserNamePassword)
        }
        other => panic!(
            "3.1.1 CONNACK 0x04 expected: {:?}",
            other.map(|c| c.connack)
        ),
    }
    let mut o = opts5(&b.addr, &unique("v5"));
    o.set_credentials("guest", "wrong");
    match V5::try_connect(o).await {
        Err(rumqttc::v5::ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, p5::ConnectReturnCode::BadUserNamePassword)
        }
        other => panic!("5.0 CONNACK 0x86 expected: {:?}", other.map(|c| c.connack)),
    }
    let mut o = opts5(&b.addr, &unique("ok"));
    o.set_credentials("guest", "guest");
    V5::connect(o).await.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_maximum_also_bounds_retained_messages_sent_on_subscribe() {
    let Some(b) = Broker::start() else { return };
    let r = root("v5-recvmax-ret");
    let mut publ = client(&b, &unique("pub")).await;
    for i in 0..4 {
        let t = format!("{r}/dev{i}");
        publ.publish(&t, QoS::AtLeastOnce, true, b"on").await;
    }
    let mut o = opts5(&b.addr, &unique("slow"));
    o.set_receive_maximum(Some(2)).set_manual_acks(true);
    let mut slow = V5::connect(o).await;
    slow.subscribe(&format!("{r}/+"), QoS::AtLeastOnce).await;
    let first = slow.next_publish().await;
    slow.next_publish().await;
    slow.no_publish(QUIET).await; // MQTT-4.9.0-2
    slow.client.ack(&first).await.unwrap();
    assert!(slow.next_publish().await.retain);
    for i in 0..4 {
        let t = format!("{r}/dev{i}");
        publ.publish(&t, QoS::AtLeastOnce, true, b"").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_exactly_once_across_a_broker_crash() {
    let Some(_) = Broker::own() else { return };
    let dir = TempDir::new("sb-mqtt-qos2-crash");
    let mut server = Server::start_in(&dir.0);
    let addr = server.mqtt_addr().unwrap().to_string();
    let t = "ledger/entries";
    // A parked subscriber, and a raw one midway through a QoS 2 delivery.
    let mut parked = session5(&addr, "parked", true, 300).await;
    parked.subscribe(t, QoS::ExactlyOnce).await;
    parked.disconnect().await;
    let mut rcv = raw_subscriber(&addr, "midway", t).await;
    // The publisher's PUBLISH is routed and PUBREC'd, its PUBREL never sent.
    let (mut payer, _) = RawV5::connect(&addr, "payer", true, 300).await;
    payer.send(publish2(t, 9, false, b"once")).await;
    assert!(matches!(payer.recv().await, Packet::PubRec(r) if r.pkid == 9));
    let p = recv_publish(&mut rcv).await;
    rcv.send(Packet::PubRec(PubRec::new(p.pkid, None))).await;
    assert!(matches!(rcv.recv().await, Packet::PubRel(r) if r.pkid == p.pkid));
    server.kill9();
    drop(server);

    let server = Server::start_in(&dir.0);
    let addr = server.mqtt_addr().unwrap().to_string();
    // The publisher resends: acknowledged, not routed again.
    let (mut payer, ack) = RawV5::connect(&addr, "payer", false, 300).await;
    assert!(ack.session_present);
    payer.send(publish2(t, 9, true, b"once")).await;
    assert!(matches!(payer.recv().await, Packet::PubRec(r) if r.pkid == 9));
    payer.send(Packet::PubRel(PubRel::new(9, None))).await;
    assert!(matches!(payer.recv().await, Packet::PubComp(c) if c.pkid == 9));
    // The receiver gets the PUBREL again, not the message.
    let (mut rcv, ack) = RawV5::connect(&addr, "midway", false, 300).await;
    assert!(ack.session_present);
    assert!(matches!(rcv.recv().await, Packet::PubRel(r) if r.pkid == p.pkid));
    rcv.send(Packet::PubComp(PubComp::new(p.pkid, None))).await;

    let mut end = Publish::new(t, QoS::AtLeastOnce, "end", None);
    end.pkid = 10;
    payer.send(Packet::Publish(end)).await;
    assert_eq!(text(&recv_publish(&mut rcv).await.payload), "end");
    let mut parked = session5(&addr, "parked", false, 300).await;
    assert_eq!(bodies5(&parked.until("end").await), ["once", "end"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_then_immediate_reconnect_never_publishes_the_will() {
    let Some(b) = Broker::start() else { return };
    let t = format!("{}/will", root("v5-race"));
    let mut watcher = client(&b, &unique("watcher")).await;
    watcher.subscribe(&t, QoS::AtLeastOnce).await;
    let mut publ = client(&b, &unique("pub")).await;
    let id = unique("racer");
    for i in 0..20 {
        let connect = || Connect {
            keep_alive: 30,
            client_id: id.clone(),
            clean_start: true,
            properties: None,
        };
        let will = LastWill::new(&t, "will", QoS::AtLeastOnce, false, None);
        let (mut old, _) = RawV5::connect_with(&b.addr, connect(), Some(will)).await;
        let bye = Disconnect::new(DisconnectReasonCode::NormalDisconnection);
        old.send(Packet::Disconnect(bye)).await;
        // The same client at once on a new connection (MQTT-3.1.4-3 takeover).
        let (_new, _) = RawV5::connect_with(&b.addr, connect(), None).await;
        let marker = format!("marker{i}");
        publ.publish(&t, QoS::AtLeastOnce, false, marker.as_bytes())
            .await;
        let got = bodies5(&watcher.until(&marker).await);
        assert_eq!(
            got,
            [marker],
            "round {i}: the will of a DISCONNECTed client (MQTT-3.1.2-10)"
        );
    }
}
