"""MQTT basics with paho (3.1, 3.1.1 and 5): CONNECT/CONNACK, publish/subscribe at
every QoS, wildcards, `$`-topics, client identifiers."""

from __future__ import annotations

import pytest

import mqttutil as mu
from mqttutil import VERSION_IDS, VERSIONS

ALL_BYTES = bytes(range(256))


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS.get)
def test_connect_gets_connack_accepted(mqtt_clients, version):
    c = mqtt_clients(version)
    ack = c.connect()
    assert ack.rc == 0
    assert ack.session_present is False
    c.disconnect()
    assert c.disconnects, "no disconnect recorded after DISCONNECT"


def test_connack_bytes_311(mqtt_clients):
    r = mqtt_clients.raw(4)
    ack = r.connect()
    assert (ack.flags, ack.body) == (0, b"\x00\x00")


def test_connack_v5_properties_are_well_formed(mqtt_clients):
    r = mqtt_clients.raw(5)
    ack = r.connect()
    assert ack.rc == 0 and ack.session_present is False
    # whatever the broker announces must be within the spec's ranges
    p = ack.props
    assert p.get("MaximumQoS", 2) in (0, 1, 2)
    assert p.get("RetainAvailable", 1) in (0, 1)
    assert p.get("ReceiveMaximum", 65535) >= 1
    assert p.get("MaximumPacketSize", 1 << 28) >= 1


@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS.get)
def test_publish_subscribe_at_qos(mqtt_clients, version, qos):
    topic = mu.topic_prefix() + "/q"
    sub = mqtt_clients.connected(version)
    assert sub.subscribe(topic, qos=qos) == [qos]
    pub = mqtt_clients.connected(version)
    pub.publish(topic, ALL_BYTES, qos=qos)
    pub.publish(topic, b"", qos=qos)
    got = sub.wait_for(2)
    assert [m.payload for m in got] == [ALL_BYTES, b""]
    assert all(m.topic == topic and m.qos == qos and not m.retain for m in got)


def test_delivered_qos_is_the_lower_of_publish_and_subscription(mqtt_clients):
    base = mu.topic_prefix()
    pub = mqtt_clients.connected(4)
    subs = {}
    for sq in (0, 1, 2):
        subs[sq] = mqtt_clients.connected(4)
        subs[sq].subscribe(f"{base}/#", qos=sq)
    for pq in (0, 1, 2):
        pub.publish(f"{base}/p{pq}", f"p{pq}", qos=pq)
    for sq, c in subs.items():
        got = {m.topic: m.qos for m in c.wait_for(3)}
        assert got == {f"{base}/p{pq}": min(pq, sq) for pq in (0, 1, 2)}, sq


def test_versions_interoperate(mqtt_clients):
    topic = mu.topic_prefix() + "/mix"
    subs = {v: mqtt_clients.connected(v) for v in VERSIONS}
    for c in subs.values():
        c.subscribe(topic, qos=1)
    for v in VERSIONS:
        mqtt_clients.connected(v).publish(topic, f"from-{v}", qos=1)
    for v, c in subs.items():
        assert sorted(m.payload for m in c.wait_for(3)) == [b"from-3", b"from-4", b"from-5"], v


def test_order_is_kept_per_publisher(mqtt_clients):
    topic = mu.topic_prefix() + "/order"
    sub = mqtt_clients.connected(4)
    sub.subscribe(topic, qos=1)
    pub = mqtt_clients.connected(4)
    infos = [pub.publish(topic, str(i), qos=1, wait=False) for i in range(200)]
    for i in infos:
        i.wait_for_publish(5)
    got = sub.wait_for(200)
    assert [int(m.payload) for m in got] == list(range(200))


def test_large_payload(mqtt_clients):
    topic = mu.topic_prefix() + "/big"
    body = ALL_BYTES * 1024  # 256 KiB
    sub = mqtt_clients.connected(5)
    sub.subscribe(topic, qos=1)
    mqtt_clients.connected(5).publish(topic, body, qos=1, timeout=10)
    assert sub.wait_for(1, timeout=10)[0].payload == body


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS.get)
def test_wildcards(mqtt_clients, version):
    p = mu.topic_prefix()
    plus, hash_, plus_end = (mqtt_clients.connected(version) for _ in range(3))
    plus.subscribe(f"{p}/+/c")
    hash_.subscribe(f"{p}/a/#")
    plus_end.subscribe(f"{p}/+")
    pub = mqtt_clients.connected(version)
    for t in ("a/c", "b/c", "a/b/c", "a", "b/d", "/c", "a/"):
        pub.publish(f"{p}/{t}", t)
    pub.publish(f"{p}/a/fence/c", "fence")  # matched by a/#
    pub.publish(f"{p}/fence/c", "fence")  # matched by +/c
    pub.publish(f"{p}/fence", "fence")  # matched by +
    plus.wait_for(1, topic=f"{p}/fence/c")
    hash_.wait_for(1, topic=f"{p}/a/fence/c")
    plus_end.wait_for(1, topic=f"{p}/fence")

    def topics(c):
        return sorted(m.topic[len(p) + 1:] for m in c.received())
    assert topics(plus) == sorted(["a/c", "b/c", "/c", "fence/c"])
    # '#' also matches the parent level itself, and an empty last level
    assert topics(hash_) == sorted(["a/c", "a/b/c", "a", "a/", "a/fence/c"])
    assert topics(plus_end) == sorted(["a", "fence"])


def test_hash_alone_matches_everything(mqtt_clients):
    """A bare "#" subscription sees ordinary topics."""
    p = mu.topic_prefix()
    every = mqtt_clients.connected(5)
    every.subscribe("#", qos=0)
    pub = mqtt_clients.connected(5)
    pub.publish(f"{p}/x/y", "1")
    got = mu.wait_until(lambda: [m for m in every.received() if m.topic == f"{p}/x/y"],
                        what="message via '#'")
    assert got[0].payload == b"1"


@pytest.mark.parametrize("version", [4, 5], ids=VERSION_IDS.get)
def test_dollar_topics_not_matched_by_leading_wildcards(mqtt_clients, version):
    u = mu.uid()
    dollar = f"$test/{u}/x"
    hash_, plus, explicit = (mqtt_clients.connected(version) for _ in range(3))
    hash_.subscribe("#")
    plus.subscribe(f"+/{u}/x")
    explicit.subscribe(f"$test/{u}/#")
    pub = mqtt_clients.connected(version)
    pub.publish(dollar, "dollar", qos=1)
    pub.publish(f"fence/{u}/x", "fence", qos=1)
    assert explicit.wait_for(1)[0].topic == dollar
    hash_.wait_for(1, topic=f"fence/{u}/x")
    plus.wait_for(1, topic=f"fence/{u}/x")
    assert not [m for m in hash_.received() if m.topic.startswith("$")]
    assert [m.topic for m in plus.received()] == [f"fence/{u}/x"]


def test_unsubscribe_stops_delivery(mqtt_clients):
    p = mu.topic_prefix()
    sub = mqtt_clients.connected(4)
    sub.subscribe(f"{p}/a", qos=1)
    sub.subscribe(f"{p}/fence", qos=1)
    pub = mqtt_clients.connected(4)
    pub.publish(f"{p}/a", "before", qos=1)
    sub.wait_for(1, topic=f"{p}/a")
    sub.unsubscribe(f"{p}/a")
    pub.publish(f"{p}/a", "after", qos=1)
    pub.publish(f"{p}/fence", "fence", qos=1)
    sub.wait_for(1, topic=f"{p}/fence")
    assert [m.payload for m in sub.received(f"{p}/a")] == [b"before"]


def test_resubscribe_replaces_qos(mqtt_clients):
    topic = mu.topic_prefix() + "/re"
    sub = mqtt_clients.connected(4)
    assert sub.subscribe(topic, qos=0) == [0]
    assert sub.subscribe(topic, qos=2) == [2]
    mqtt_clients.connected(4).publish(topic, "x", qos=2)
    got = sub.wait_for(1)
    assert got[0].qos == 2
    assert mu.stays(lambda: len(sub.received()) == 1, 0.3), "duplicate after re-subscribe"


def test_subscribe_several_filters_in_one_packet(mqtt_clients):
    p = mu.topic_prefix()
    sub = mqtt_clients.connected(4)
    assert sub.subscribe([(f"{p}/0", 0), (f"{p}/1", 1), (f"{p}/2", 2)]) == [0, 1, 2]


# -- client identifiers -------------------------------------------------------------

def test_empty_client_id_with_clean_session_accepted_311(mqtt_clients):
    r = mqtt_clients.raw(4)
    assert r.connect(cid="", clean=True).rc == 0
    topic = mu.topic_prefix() + "/anon"
    assert r.subscribe([(topic, 1)]).codes == [1]
    mqtt_clients.connected(4).publish(topic, "hi", qos=1)
    m = r.expect(mu.PUBLISH)
    assert (m.topic, m.payload) == (topic, b"hi")


def test_empty_client_id_with_persistent_session_refused_311(mqtt_clients):
    r = mqtt_clients.raw(4)
    ack = r.connect(cid="", clean=False)
    assert ack.rc == 0x02, f"expected CONNACK 0x02 identifier rejected, got {ack}"
    r.read_until_closed()


def test_empty_client_id_v5_gets_assigned_identifier(mqtt_clients):
    c = mqtt_clients(5, cid="")
    ack = c.connect()
    assigned = ack.props.get("AssignedClientIdentifier")
    assert assigned, f"no Assigned Client Identifier in CONNACK {ack}"
    c2 = mqtt_clients(5, cid="")
    assert c2.connect().props.get("AssignedClientIdentifier") not in (None, assigned)


def test_paho_empty_client_id_311_can_publish(mqtt_clients):
    topic = mu.topic_prefix() + "/e"
    sub = mqtt_clients.connected(4, cid="")
    sub.subscribe(topic)
    mqtt_clients.connected(4, cid="").publish(topic, "x", qos=1)
    assert sub.wait_for(1)[0].payload == b"x"


def test_long_and_unicode_client_ids_accepted(mqtt_clients):
    for cid in ("c" * 200, "клиент-" + mu.uid(), "a/b#+$" + mu.uid()):
        c = mqtt_clients(4, cid=cid)
        assert c.connect().rc == 0, cid
        c.disconnect()


@pytest.mark.parametrize("version", [4, 5], ids=VERSION_IDS.get)
def test_subscribe_in_the_same_write_as_connect(mqtt_clients, version):
    """A client need not wait for CONNACK (MQTT-3.1.4): packets sent right behind
    CONNECT, in one write, are handled."""
    topic = mu.topic_prefix() + "/eager"
    r = mqtt_clients.raw(version)
    r.send(mu.connect_packet(mu.client_id(), version=version)
           + mu.subscribe_packet([(topic, 1)], version=version))
    assert r.expect(mu.CONNACK).rc == 0
    assert r.expect(mu.SUBACK) is not None
    pub = mqtt_clients.connected(version)
    pub.publish(topic, b"hi", qos=1)
    assert r.expect(mu.PUBLISH).payload == b"hi"
