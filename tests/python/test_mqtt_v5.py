"""MQTT 5 features: no-local, subscription identifiers, topic aliases, receive maximum,
maximum packet size, message expiry, request/response, user properties, SUBACK
reason codes."""

from __future__ import annotations

import socket

import pytest

import mqttutil as mu
from mqttutil import DISCONNECT, PUBACK, PUBLISH, SUBACK


def test_no_local_suppresses_own_messages(mqtt_clients):
    p = mu.topic_prefix()
    c = mqtt_clients.connected(5)
    c.subscribe(f"{p}/t", qos=1, no_local=True)
    c.subscribe(f"{p}/fence", qos=1)
    c.publish(f"{p}/t", "own", qos=1)
    c.publish(f"{p}/fence", "fence", qos=1)
    c.wait_for(1, topic=f"{p}/fence")
    assert c.received(f"{p}/t") == []
    mqtt_clients.connected(5).publish(f"{p}/t", "other", qos=1)
    assert c.wait_for(1, topic=f"{p}/t")[0].payload == b"other"


def test_without_no_local_own_messages_come_back(mqtt_clients):
    topic = mu.topic_prefix() + "/echo"
    c = mqtt_clients.connected(5)
    c.subscribe(topic, qos=1)
    c.publish(topic, "own", qos=1)
    assert c.wait_for(1)[0].payload == b"own"


def test_subscription_identifier_in_delivered_publish(mqtt_clients):
    p = mu.topic_prefix()
    c = mqtt_clients.connected(5)
    c.subscribe(f"{p}/with/#", qos=1, sub_id=7)
    c.subscribe(f"{p}/without", qos=1)
    pub = mqtt_clients.connected(5)
    pub.publish(f"{p}/with/x", "a", qos=1)
    pub.publish(f"{p}/without", "b", qos=1)
    assert c.wait_for(1, topic=f"{p}/with/x")[0].props.get("SubscriptionIdentifier") == [7]
    assert "SubscriptionIdentifier" not in c.wait_for(1, topic=f"{p}/without")[0].props


def test_overlapping_subscriptions_carry_all_their_identifiers(mqtt_clients):
    p = mu.topic_prefix()
    c = mqtt_clients.connected(5)
    c.subscribe(f"{p}/#", qos=1, sub_id=1)
    c.subscribe(f"{p}/a/+", qos=1, sub_id=268435455)  # the largest allowed
    mqtt_clients.connected(5).publish(f"{p}/a/b", "x", qos=1)
    c.wait_for(1)
    mu.stays(lambda: True, 0.3)  # one message with both ids, or one copy per subscription
    ids = sorted(i for m in c.received() for i in m.props.get("SubscriptionIdentifier", []))
    assert ids == [1, 268435455], c.received()


def test_subscription_identifier_on_retained_delivery(mqtt_clients):
    topic = mu.topic_prefix() + "/ret"
    pub = mqtt_clients.connected(5)
    pub.publish(topic, "kept", qos=1, retain=True)
    try:
        c = mqtt_clients.connected(5)
        c.subscribe(topic, qos=1, sub_id=42)
        m = c.wait_for(1)[0]
        assert (m.retain, m.props.get("SubscriptionIdentifier")) == (True, [42])
    finally:
        pub.publish(topic, b"", qos=1, retain=True)


def test_topic_alias_from_client(mqtt_clients):
    p = mu.topic_prefix()
    sub = mqtt_clients.connected(5)
    sub.subscribe(f"{p}/#", qos=1)
    r = mqtt_clients.raw(5)
    ack = r.connect()
    assert ack.props.get("TopicAliasMaximum", 0) >= 1, f"no topic aliases offered: {ack}"
    sends = [(f"{p}/one", 1, b"set"), ("", 1, b"use"), (f"{p}/two", 1, b"remap"),
             ("", 1, b"use-remapped")]
    for mid, (topic, alias, body) in enumerate(sends, 1):
        r.send(mu.publish_packet(topic, body, qos=1, mid=mid, version=5,
                                 properties={"TopicAlias": alias}))
        ack = r.expect(PUBACK)
        assert ack.mid == mid and ack.rc < 0x80, ack
    got = sub.wait_for(4)
    assert [(m.topic, m.payload) for m in got] == [
        (f"{p}/one", b"set"), (f"{p}/one", b"use"), (f"{p}/two", b"remap"),
        (f"{p}/two", b"use-remapped")]
    assert all("TopicAlias" not in m.props for m in got)


def test_topic_alias_above_maximum_is_refused(mqtt_clients):
    r = mqtt_clients.raw(5)
    limit = r.connect().props.get("TopicAliasMaximum", 0)
    r.send(mu.publish_packet("a/b", b"x", qos=1, version=5,
                             properties={"TopicAlias": limit + 1}))
    got = r.read_until_closed()
    assert [(p.type, p.rc) for p in got] in ([], [(DISCONNECT, 0x94)]), got


def test_unknown_topic_alias_is_a_protocol_error(mqtt_clients):
    r = mqtt_clients.raw(5)
    assert r.connect().props.get("TopicAliasMaximum", 0) >= 1
    r.send(mu.publish_packet("", b"x", qos=1, version=5, properties={"TopicAlias": 1}))
    got = r.read_until_closed()
    assert [(p.type, p.rc) for p in got] in ([], [(DISCONNECT, 0x82)]), got


def _publishes(r, window):
    out = []
    try:
        while True:
            p = r.read(timeout=window)
            assert p.type == PUBLISH, p
            out.append(p)
    except socket.timeout:
        return out


def _receive_maximum_setup(mqtt_clients, n=8):
    topic = mu.topic_prefix() + "/rm"
    r = mqtt_clients.raw(5)
    r.connect(properties={"ReceiveMaximum": 2})
    r.subscribe([(topic, 1)])
    pub = mqtt_clients.connected(5)
    for i in range(n):
        pub.publish(topic, str(i), qos=1)
    return r


def test_receive_maximum_limits_unacknowledged_deliveries(mqtt_clients):
    r = _receive_maximum_setup(mqtt_clients)
    first = _publishes(r, 0.7)
    assert [m.payload for m in first] == [b"0", b"1"], "more in flight than Receive Maximum"
    got = first
    for m in first:
        r.send(mu.ack_packet(PUBACK, m.mid))
    while len(got) < 8:
        m = r.expect(PUBLISH)
        got.append(m)
        r.send(mu.ack_packet(PUBACK, m.mid))
    assert [m.payload for m in got] == [str(i).encode() for i in range(8)]


@mu.requires_switchboard("mosquitto 2.0.11 refills a whole Receive Maximum window on each "
                         "PUBACK (3 in flight with a maximum of 2)")
def test_receive_maximum_one_more_delivery_per_puback(mqtt_clients):
    r = _receive_maximum_setup(mqtt_clients)
    first = _publishes(r, 0.7)
    assert [m.payload for m in first] == [b"0", b"1"]
    r.send(mu.ack_packet(PUBACK, first[0].mid))
    more = _publishes(r, 0.7)
    assert [m.payload for m in more] == [b"2"], f"in flight after one PUBACK: {more}"
    r.send(mu.ack_packet(PUBACK, first[1].mid))
    r.send(mu.ack_packet(PUBACK, more[0].mid))
    assert [m.payload for m in _publishes(r, 0.7)] == [b"3", b"4"]


def test_receive_maximum_does_not_limit_qos0(mqtt_clients):
    topic = mu.topic_prefix() + "/rm0"
    r = mqtt_clients.raw(5)
    r.connect(properties={"ReceiveMaximum": 1})
    r.subscribe([(topic, 0)])
    pub = mqtt_clients.connected(5)
    for i in range(5):
        pub.publish(topic, str(i), qos=1)
    got = [r.expect(PUBLISH) for _ in range(5)]
    assert [m.qos for m in got] == [0] * 5


@pytest.mark.parametrize("qos", [0, 1])
def test_maximum_packet_size_of_client_is_respected(mqtt_clients, qos):
    topic = mu.topic_prefix() + "/mps"
    limit = 128
    r = mqtt_clients.raw(5)
    r.connect(properties={"MaximumPacketSize": limit})
    r.subscribe([(topic, qos)])
    pub = mqtt_clients.connected(5)
    pub.publish(topic, b"x" * 300, qos=1)
    pub.publish(topic, b"small", qos=1)
    m = r.expect(PUBLISH)
    assert m.payload == b"small", f"got {m.size}-byte packet, limit {limit}"
    assert m.size <= limit
    if qos:
        r.send(mu.ack_packet(PUBACK, m.mid))
    assert _publishes(r, 0.3) == []


def test_message_expiry_interval_drops_expired_messages_for_a_returning_session(
        mqtt_clients):
    topic = mu.topic_prefix() + "/exp"
    cid = mu.client_id()
    mqtt_clients.persistent(cid, 5)
    s1 = mqtt_clients(5, cid=cid)
    s1.connect(clean_start=False, session_expiry=300)
    s1.subscribe(topic, qos=1)
    s1.disconnect()
    pub = mqtt_clients.connected(5)
    pub.publish(topic, "short", qos=1, properties={"MessageExpiryInterval": 1})
    pub.publish(topic, "long", qos=1, properties={"MessageExpiryInterval": 100})
    pub.publish(topic, "forever", qos=1)
    mu.stays(lambda: True, 2.2)  # let "short" expire
    s2 = mqtt_clients(5, cid=cid)
    s2.connect(clean_start=False, session_expiry=300)
    got = s2.wait_for(2)
    assert mu.stays(lambda: len(s2.received()) == 2, 0.3)
    assert [m.payload for m in got] == [b"long", b"forever"]
    # the interval is forwarded minus the time the message waited
    assert got[0].props.get("MessageExpiryInterval", 0) <= 98, got[0].props
    assert "MessageExpiryInterval" not in got[1].props


def test_message_expiry_interval_forwarded_to_live_subscriber(mqtt_clients):
    topic = mu.topic_prefix() + "/exp-live"
    sub = mqtt_clients.connected(5)
    sub.subscribe(topic, qos=1)
    mqtt_clients.connected(5).publish(topic, "x", qos=1,
                                      properties={"MessageExpiryInterval": 60})
    assert 55 <= sub.wait_for(1)[0].props.get("MessageExpiryInterval", 0) <= 60


def test_request_response(mqtt_clients):
    p = mu.topic_prefix()
    corr = b"\x00req-1\xff"
    requester, responder = mqtt_clients.connected(5), mqtt_clients.connected(5)
    requester.subscribe(f"{p}/reply/me", qos=1)
    responder.subscribe(f"{p}/service", qos=1)
    requester.publish(f"{p}/service", "ping", qos=1, properties={
        "ResponseTopic": f"{p}/reply/me", "CorrelationData": corr})
    req = responder.wait_for(1)[0]
    assert req.props.get("ResponseTopic") == f"{p}/reply/me"
    assert req.props.get("CorrelationData") == corr
    responder.publish(req.props["ResponseTopic"], "pong", qos=1,
                      properties={"CorrelationData": req.props["CorrelationData"]})
    rep = requester.wait_for(1)[0]
    assert (rep.payload, rep.props.get("CorrelationData")) == (b"pong", corr)


def test_user_properties_arrive_unchanged_and_in_order(mqtt_clients):
    topic = mu.topic_prefix() + "/up"
    pairs = [("a", "1"), ("b", "2"), ("a", "3"), ("ключ", "значение ✓"), ("empty", ""),
             ("", "empty-key"), ("x-y", "with spaces and / . # +")]
    sub5 = mqtt_clients.connected(5)
    sub5.subscribe(topic, qos=1)
    sub4 = mqtt_clients.connected(4)
    sub4.subscribe(topic, qos=1)
    mqtt_clients.connected(5).publish(topic, "body", qos=1,
                                      properties={"UserProperty": pairs})
    assert sub5.wait_for(1)[0].props.get("UserProperty") == pairs
    assert sub4.wait_for(1)[0].payload == b"body"


def test_content_type_and_payload_format_indicator(mqtt_clients):
    topic = mu.topic_prefix() + "/ct"
    sub = mqtt_clients.connected(5)
    sub.subscribe(topic, qos=1)
    mqtt_clients.connected(5).publish(topic, '{"t": 21.5}', qos=1, properties={
        "ContentType": "application/json; charset=utf-8", "PayloadFormatIndicator": 1})
    m = sub.wait_for(1)[0]
    assert m.props.get("ContentType") == "application/json; charset=utf-8"
    assert m.props.get("PayloadFormatIndicator") == 1


def test_suback_reason_codes_are_granted_qos(mqtt_clients):
    p = mu.topic_prefix()
    r = mqtt_clients.raw(5)
    r.connect()
    ack = r.subscribe([(f"{p}/0", 0), (f"{p}/1", 1), (f"{p}/2", 2), (f"{p}/+/#", 2)], mid=77)
    assert (ack.mid, ack.codes) == (77, [0, 1, 2, 2])


@pytest.mark.parametrize("bad", ["a/#/b", "a/b+", "#a", ""])
@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_invalid_topic_filter(mqtt_clients, version, bad):
    """Either a failure code for that filter in SUBACK (0x80 / 0x8F) while the valid one
    is granted, or (as a malformed packet) the connection closed (v5: DISCONNECT 0x81)."""
    p = mu.topic_prefix()
    r = mqtt_clients.raw(version)
    r.connect()
    r.send(mu.subscribe_packet([(f"{p}/ok", 1), (bad, 1)], version=version))
    try:
        first = r.read()
    except mu.Closed:
        first = None
    if first is not None and first.type == SUBACK:
        assert first.codes[0] == 1
        assert first.codes[1] == (0x8F if version == 5 else 0x80), first
        if version == 5 and "ReasonString" in first.props:
            assert isinstance(first.props["ReasonString"], str)
        mqtt_clients.connected(5).publish(f"{p}/ok", "still-works", qos=1)
        assert r.expect(PUBLISH).payload == b"still-works"
    else:
        rest = ([first] if first else []) + r.read_until_closed()
        allowed = [[]] if version == 4 else [[], [(DISCONNECT, 0x81)], [(DISCONNECT, 0x82)],
                                             [(DISCONNECT, 0x8F)]]
        assert [(x.type, x.rc) for x in rest] in allowed, rest
    assert mqtt_clients.connected(version).connected
