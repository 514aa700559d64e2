"""Sessions: persistent sessions keep subscriptions and queue QoS 1/2 messages while
the client is away, CONNACK's session-present flag, clean sessions discard, QoS 2
exactly-once across a reconnect, redelivery of unacknowledged messages, takeover."""

from __future__ import annotations

import socket
import time

import pytest

import mqttutil as mu
from mqttutil import PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, VERSION_IDS, VERSIONS


def persistent(mqtt_clients, version, cid=None, **kw):
    """A not-yet-connected client for a persistent session (v5: expiry 300 s)."""
    c = mqtt_clients(version, cid=cid or mu.client_id(), clean=False, **kw)
    mqtt_clients.persistent(c.client_id, version)
    return c


def connect_persistent(c: mu.Client) -> mu.Connack:
    return c.connect(clean_start=False, session_expiry=300 if c.version == 5 else None)


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS.get)
def test_persistent_session_gets_messages_published_while_away(mqtt_clients, version):
    topic = mu.topic_prefix() + "/away"
    s1 = persistent(mqtt_clients, version)
    assert connect_persistent(s1).session_present is False
    s1.subscribe(topic, qos=1)
    s1.disconnect()

    pub = mqtt_clients.connected(version)
    for i in range(3):
        pub.publish(topic, f"m{i}", qos=1)

    s2 = persistent(mqtt_clients, version, cid=s1.client_id)
    ack = connect_persistent(s2)
    if version != 3:  # MQTT 3.1's CONNACK has no session-present flag
        assert ack.session_present is True
    got = s2.wait_for(3)
    assert [m.payload for m in got] == [b"m0", b"m1", b"m2"]
    assert all(m.qos == 1 for m in got)
    # the subscription itself is part of the session
    pub.publish(topic, "live", qos=1)
    assert s2.wait_for(4)[-1].payload == b"live"


@pytest.mark.parametrize("version", [4, 5], ids=VERSION_IDS.get)
def test_qos2_messages_queued_while_away_arrive_once(mqtt_clients, version):
    topic = mu.topic_prefix() + "/q2"
    s1 = persistent(mqtt_clients, version)
    connect_persistent(s1)
    s1.subscribe(topic, qos=2)
    s1.disconnect()
    pub = mqtt_clients.connected(version)
    for i in range(5):
        pub.publish(topic, str(i), qos=2)
    s2 = persistent(mqtt_clients, version, cid=s1.client_id)
    connect_persistent(s2)
    assert [m.payload for m in s2.wait_for(5)] == [b"0", b"1", b"2", b"3", b"4"]
    assert mu.stays(lambda: len(s2.received()) == 5, 0.3)


def test_clean_session_discards_the_stored_session_311(mqtt_clients):
    topic = mu.topic_prefix() + "/clean"
    cid = mu.client_id()
    s1 = persistent(mqtt_clients, 4, cid=cid)
    connect_persistent(s1)
    s1.subscribe(topic, qos=1)
    s1.disconnect()
    pub = mqtt_clients.connected(4)
    pub.publish(topic, "while-away", qos=1)

    s2 = mqtt_clients(4, cid=cid, clean=True)
    assert s2.connect().session_present is False
    s2.subscribe(topic + "/fence", qos=1)
    pub.publish(topic, "after", qos=1)
    pub.publish(topic + "/fence", "fence", qos=1)
    s2.wait_for(1, topic=topic + "/fence")
    assert s2.received(topic) == [], "clean session kept the old subscription or queue"
    s2.disconnect()

    s3 = persistent(mqtt_clients, 4, cid=cid)
    assert connect_persistent(s3).session_present is False


def test_clean_session_leaves_nothing_behind_311(mqtt_clients):
    """A clean session's subscription ends with the connection."""
    topic = mu.topic_prefix() + "/gone"
    cid = mu.client_id()
    s1 = mqtt_clients(4, cid=cid, clean=True)
    s1.connect()
    s1.subscribe(topic, qos=1)
    s1.disconnect()
    mqtt_clients.connected(4).publish(topic, "x", qos=1)
    s2 = persistent(mqtt_clients, 4, cid=cid)
    assert connect_persistent(s2).session_present is False
    assert mu.stays(lambda: not s2.received(), 0.3)


def test_v5_session_expiry_zero_ends_the_session_at_disconnect(mqtt_clients):
    cid = mu.client_id()
    s1 = persistent(mqtt_clients, 5, cid=cid)
    s1.connect(clean_start=False, session_expiry=0)
    s1.subscribe(mu.topic_prefix(), qos=1)
    s1.disconnect()
    s2 = persistent(mqtt_clients, 5, cid=cid)
    assert s2.connect(clean_start=False, session_expiry=300).session_present is False


def test_v5_clean_start_discards_the_session(mqtt_clients):
    topic = mu.topic_prefix() + "/cs"
    cid = mu.client_id()
    s1 = persistent(mqtt_clients, 5, cid=cid)
    s1.connect(clean_start=False, session_expiry=300)
    s1.subscribe(topic, qos=1)
    s1.disconnect()
    mqtt_clients.connected(5).publish(topic, "x", qos=1)
    s2 = persistent(mqtt_clients, 5, cid=cid)
    assert s2.connect(clean_start=True, session_expiry=300).session_present is False
    assert mu.stays(lambda: not s2.received(), 0.3)


def test_v5_session_expires_after_its_interval(mqtt_clients):
    """Kept within its 1 s expiry interval, gone (give or take a sweep) after it. A probe
    that finds the session takes it over, so each session is probed once."""
    early, late = mu.client_id(), mu.client_id()
    for cid in (early, late):
        s1 = persistent(mqtt_clients, 5, cid=cid)
        s1.connect(clean_start=False, session_expiry=1)
        s1.subscribe(mu.topic_prefix(), qos=1)
        s1.disconnect()

    def probe(cid):
        c = mqtt_clients(5, cid=cid)
        present = c.connect(clean_start=False, session_expiry=0).session_present
        c.disconnect()
        return present
    assert probe(early) is True, "session gone before its expiry interval"
    mu.stays(lambda: True, 3.0)  # 1 s expiry plus the broker's expiry sweep
    assert probe(late) is False, "session still there 3 s after a 1 s expiry interval"


def test_v5_disconnect_can_shorten_session_expiry(mqtt_clients):
    cid = mu.client_id()
    s1 = persistent(mqtt_clients, 5, cid=cid)
    s1.connect(clean_start=False, session_expiry=300)
    s1.subscribe(mu.topic_prefix(), qos=1)
    s1.disconnect(properties={"SessionExpiryInterval": 0})
    s2 = persistent(mqtt_clients, 5, cid=cid)
    assert s2.connect(clean_start=False, session_expiry=300).session_present is False


def test_v5_disconnect_can_lengthen_session_expiry(mqtt_clients):
    """MQTT 5 3.14.2.2.2: the interval sent on DISCONNECT replaces CONNECT's. 1 s on
    CONNECT, 5 s on DISCONNECT: the session is still there 3 s later, with what it
    was sent meanwhile."""
    cid = mu.client_id()
    t = mu.topic_prefix()
    s1 = persistent(mqtt_clients, 5, cid=cid)
    s1.connect(clean_start=False, session_expiry=1)
    s1.subscribe(t, qos=1)
    s1.disconnect(properties={"SessionExpiryInterval": 5})
    mu.stays(lambda: True, 3.0)
    s2 = persistent(mqtt_clients, 5, cid=cid)
    assert s2.connect(clean_start=False, session_expiry=0).session_present is True


# -- redelivery and exactly-once -----------------------------------------------------

@pytest.mark.parametrize("version", [4, 5], ids=VERSION_IDS.get)
def test_unacked_qos1_is_redelivered_with_dup_on_reconnect(mqtt_clients, version):
    topic = mu.topic_prefix() + "/dup"
    cid = mu.client_id()
    mqtt_clients.persistent(cid, version)
    props = {"SessionExpiryInterval": 300} if version == 5 else None
    r1 = mqtt_clients.raw(version)
    r1.connect(cid=cid, clean=False, properties=props)
    r1.subscribe([(topic, 1)])
    mqtt_clients.connected(4).publish(topic, "unacked", qos=1)
    first = r1.expect(PUBLISH)
    assert (first.payload, first.qos, first.dup) == (b"unacked", 1, False)
    r1.close()  # no PUBACK

    r2 = mqtt_clients.raw(version)
    assert r2.connect(cid=cid, clean=False, properties=props).session_present is True
    again = r2.expect(PUBLISH)
    assert (again.payload, again.qos, again.dup) == (b"unacked", 1, True)
    r2.send(mu.ack_packet(PUBACK, again.mid) + mu.disconnect_packet(version))
    r2.close()


AT_ONCE = pytest.param(False, id="at-once", marks=mu.requires_switchboard(
    "mosquitto 2.0.11 takes the session over before reading the old connection's last "
    "PUBACKs, and resends those messages"))


@pytest.mark.parametrize("wait_close", [pytest.param(True, id="after-close"), AT_ONCE])
@pytest.mark.parametrize("qos", [1, 2])
def test_acknowledged_deliveries_not_resent_after_reconnect(mqtt_clients, qos, wait_close):
    """Acknowledge everything, DISCONNECT, reconnect (once the broker has closed the old
    connection, or at once as paho's disconnect-then-connect does): nothing comes
    again."""
    topic = mu.topic_prefix() + "/acked"
    cid = mu.client_id()
    mqtt_clients.persistent(cid, 4)
    r = mqtt_clients.raw(4)
    r.connect(cid=cid, clean=False)
    r.subscribe([(topic, qos)])
    pub = mqtt_clients.connected(4)
    for i in range(10):
        pub.publish(topic, str(i), qos=qos)
    done = 0
    while done < 10:
        p = r.read()
        if p.type == PUBLISH:
            r.send(mu.ack_packet(PUBACK if qos == 1 else PUBREC, p.mid))
            done += qos == 1
        elif p.type == PUBREL:
            r.send(mu.ack_packet(PUBCOMP, p.mid))
            done += 1
    r.send(mu.disconnect_packet())
    if wait_close:
        r.read_until_closed()  # the broker has read everything up to the DISCONNECT
    r.close()
    r2 = mqtt_clients.raw(4)
    assert r2.connect(cid=cid, clean=False).session_present is True
    with pytest.raises(socket.timeout):
        pytest.fail(f"settled delivery sent again: {r2.read(timeout=0.5)}")


@pytest.mark.parametrize("version", [4, 5], ids=VERSION_IDS.get)
def test_qos2_flow_resumes_after_reconnect_raw(mqtt_clients, version):
    """Subscriber sent PUBREC for m0 (so the broker resends only PUBREL) and nothing for
    m1 (resent as PUBLISH with DUP): each message reaches the application once."""
    topic = mu.topic_prefix() + "/eo"
    cid = mu.client_id()
    mqtt_clients.persistent(cid, version)
    props = {"SessionExpiryInterval": 300} if version == 5 else None
    r1 = mqtt_clients.raw(version)
    r1.connect(cid=cid, clean=False, properties=props)
    r1.subscribe([(topic, 2)])
    pub = mqtt_clients.connected(4)
    for i in range(3):
        pub.publish(topic, f"m{i}", qos=2)

    m0 = r1.expect(PUBLISH)
    assert (m0.payload, m0.qos) == (b"m0", 2)
    r1.send(mu.ack_packet(PUBREC, m0.mid))
    seen = []
    while not any(p.type == PUBREL for p in seen):
        seen.append(r1.read())
    assert [p for p in seen if p.type == PUBREL][0].mid == m0.mid
    r1.close()  # neither PUBCOMP for m0 nor PUBREC for the others

    r2 = mqtt_clients.raw(version)
    assert r2.connect(cid=cid, clean=False, properties=props).session_present is True
    delivered = [b"m0"]  # handed to the application on its first PUBLISH
    rels = []
    while len(delivered) < 3 or not rels:
        p = r2.read()
        if p.type == PUBREL:
            rels.append(p.mid)
            r2.send(mu.ack_packet(PUBCOMP, p.mid))
        elif p.type == PUBLISH:
            assert p.payload != b"m0", "m0 resent as PUBLISH although PUBREC was sent"
            delivered.append(p.payload)
            r2.send(mu.ack_packet(PUBREC, p.mid))
    assert m0.mid in rels, f"PUBREL for m0 (mid {m0.mid}) not resent: {rels}"
    # complete the remaining flows; nothing is delivered twice
    try:
        while True:
            p = r2.read(timeout=0.5)
            if p.type == PUBREL:
                r2.send(mu.ack_packet(PUBCOMP, p.mid))
            else:
                assert p.type != PUBLISH, f"extra delivery {p}"
    except socket.timeout:
        pass
    assert sorted(delivered) == [b"m0", b"m1", b"m2"]


@pytest.mark.parametrize("version", [4, 5], ids=VERSION_IDS.get)
def test_qos2_exactly_once_when_subscriber_drops_mid_stream(mqtt_clients, version):
    topic = mu.topic_prefix() + "/stream"
    n = 60
    sub = persistent(mqtt_clients, version)
    connect_persistent(sub)
    sub.subscribe(topic, qos=2)

    def cut_at_10th(msg):
        if len(sub.messages) == 10:
            sub.cut()
    sub.on_message = cut_at_10th
    pub = mqtt_clients.connected(version)
    infos = [pub.publish(topic, str(i), qos=2, wait=False) for i in range(n)]
    sub.wait_disconnected()
    sub.on_message = None
    assert sub.reconnect().session_present is True
    for i in infos:
        i.wait_for_publish(10)
    sub.wait_for(n, timeout=10)
    assert mu.stays(lambda: len(sub.received()) == n, 0.5), "duplicates after reconnect"
    assert sorted(int(m.payload) for m in sub.received()) == list(range(n))


@pytest.mark.parametrize("qos", [1, 2])
def test_no_message_lost_when_subscriber_drops_mid_stream_raw(mqtt_clients, qos):
    """Publishing goes on while a persistent subscriber (acknowledging everything at
    once) drops its connection and comes straight back: every message arrives."""
    n = 60
    for attempt in range(5):  # the window is small: try a few times
        topic = mu.topic_prefix() + "/nolose"
        cid = mu.client_id()
        mqtt_clients.persistent(cid, 4)
        r = mqtt_clients.raw(4)
        r.connect(cid=cid, clean=False)
        r.subscribe([(topic, qos)])
        pub = mqtt_clients.connected(4)
        infos = [pub.publish(topic, str(i), qos=qos, wait=False) for i in range(n)]
        seen, settled = set(), 0

        def handle(conn, p):
            if p.type == PUBLISH:
                seen.add(int(p.payload))
                conn.send(mu.ack_packet(PUBACK if qos == 1 else PUBREC, p.mid))
                return qos == 1
            if p.type == PUBREL:
                conn.send(mu.ack_packet(PUBCOMP, p.mid))
                return True
            return False
        while settled < 10:
            settled += handle(r, r.read())
        r.sock.shutdown(socket.SHUT_RDWR)
        r.close()
        r2 = mqtt_clients.raw(4)
        assert r2.connect(cid=cid, clean=False).session_present is True
        for i in infos:
            i.wait_for_publish(5)
        deadline = time.monotonic() + 5
        try:
            while len(seen) < n and time.monotonic() < deadline:
                handle(r2, r2.read(timeout=max(0.01, deadline - time.monotonic())))
        except socket.timeout:
            pass
        missing = sorted(set(range(n)) - seen)
        assert not missing, f"attempt {attempt}: never delivered: {missing}"
        r2.close()
        pub.close()


# -- takeover -----------------------------------------------------------------------

@pytest.mark.parametrize("version", [4, 5], ids=VERSION_IDS.get)
def test_second_connection_with_same_client_id_takes_over(mqtt_clients, version):
    cid = mu.client_id()
    topic = mu.topic_prefix() + "/take"
    first = mqtt_clients(version, cid=cid)
    first.connect()
    first.subscribe(topic, qos=1)
    second = mqtt_clients(version, cid=cid)
    second.connect()
    first.wait_disconnected()
    second.subscribe(topic, qos=1)
    mqtt_clients.connected(version).publish(topic, "to-second", qos=1)
    assert second.wait_for(1)[0].payload == b"to-second"
    assert second.connected


def test_takeover_of_persistent_session_keeps_it(mqtt_clients):
    cid = mu.client_id()
    topic = mu.topic_prefix() + "/keep"
    first = persistent(mqtt_clients, 4, cid=cid)
    connect_persistent(first)
    first.subscribe(topic, qos=1)
    second = persistent(mqtt_clients, 4, cid=cid)
    assert connect_persistent(second).session_present is True
    first.wait_disconnected()
    mqtt_clients.connected(4).publish(topic, "kept", qos=1)
    assert second.wait_for(1)[0].payload == b"kept"
    assert first.received() == []


@mu.requires_switchboard("mosquitto 2.0.11 closes the old connection without sending "
                         "DISCONNECT 0x8E")
def test_takeover_sends_v5_disconnect_session_taken_over(mqtt_clients):
    cid = mu.client_id()
    r1 = mqtt_clients.raw(5)
    assert r1.connect(cid=cid).rc == 0
    r2 = mqtt_clients.raw(5)
    assert r2.connect(cid=cid).rc == 0
    got = r1.read_until_closed()
    assert [(p.type, p.rc) for p in got] == [(mu.DISCONNECT, 0x8E)], got
    # paho reports it as the disconnect reason
    cid = mu.client_id()
    first = mqtt_clients(5, cid=cid)
    first.connect()
    mqtt_clients(5, cid=cid).connect()
    rc, _ = first.wait_disconnected()
    assert rc == 0x8E, f"expected reason 0x8E Session taken over, got {rc:#x}"
