"""Will messages (abrupt disconnect yes, clean DISCONNECT no, MQTT 5 will delay and
properties) and keepalive (a silent client is dropped after 1.5 x keepalive and its
will published)."""

from __future__ import annotations

import socket
import time

import pytest

import mqttutil as mu
from mqttutil import VERSION_IDS, VERSIONS


def watcher(mqtt_clients, topic, qos=1):
    w = mqtt_clients.connected(5)
    w.subscribe(topic, qos=qos)
    return w


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS.get)
def test_will_published_when_client_drops_the_connection(mqtt_clients, version):
    topic = mu.topic_prefix() + "/will"
    w = watcher(mqtt_clients, topic)
    c = mqtt_clients(version, will={"topic": topic, "payload": b"gone", "qos": 1})
    c.connect()
    c.abort()
    m = w.wait_for(1)[0]
    assert (m.topic, m.payload, m.qos, m.retain) == (topic, b"gone", 1, False)


def test_will_from_raw_connect_then_socket_close(mqtt_clients):
    topic = mu.topic_prefix() + "/rawwill"
    w = watcher(mqtt_clients, topic, qos=2)
    r = mqtt_clients.raw(4)
    assert r.connect(will={"topic": topic, "payload": b"\x00bye\xff", "qos": 2}).rc == 0
    r.close()
    m = w.wait_for(1)[0]
    assert (m.payload, m.qos) == (b"\x00bye\xff", 2)


@pytest.mark.parametrize("version", [4, 5], ids=VERSION_IDS.get)
def test_no_will_after_clean_disconnect(mqtt_clients, version):
    p = mu.topic_prefix()
    w = watcher(mqtt_clients, f"{p}/#")
    c = mqtt_clients(version, will={"topic": f"{p}/will", "payload": b"x", "qos": 1})
    c.connect()
    c.disconnect()
    mqtt_clients.connected(4).publish(f"{p}/fence", "fence", qos=1)
    w.wait_for(1, topic=f"{p}/fence")
    assert mu.stays(lambda: not w.received(f"{p}/will"), 0.5), "will sent after DISCONNECT"


def test_v5_disconnect_with_will_message_reason_sends_will(mqtt_clients):
    topic = mu.topic_prefix() + "/dww"
    w = watcher(mqtt_clients, topic)
    c = mqtt_clients(5, will={"topic": topic, "payload": b"asked-for", "qos": 1})
    c.connect()
    from paho.mqtt.reasoncodes import ReasonCode
    from paho.mqtt.packettypes import PacketTypes
    c.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=0x04))
    assert w.wait_for(1)[0].payload == b"asked-for"


def test_retained_will(mqtt_clients):
    topic = mu.topic_prefix() + "/rwill"
    c = mqtt_clients(4, will={"topic": topic, "payload": b"offline", "qos": 1,
                              "retain": True})
    c.connect()
    c.abort()
    try:
        late = mqtt_clients.connected(4)
        mu.wait_until(lambda: late.subscribe(topic, qos=1) and late.received(),
                      timeout=5, interval=0.2, what="the retained will")
        m = late.received()[0]
        assert (m.payload, m.retain) == (b"offline", True)
    finally:
        mqtt_clients.connected(4).publish(topic, b"", qos=1, retain=True)


def test_v5_will_properties_arrive(mqtt_clients):
    topic = mu.topic_prefix() + "/pwill"
    w = watcher(mqtt_clients, topic)
    c = mqtt_clients(5, will={"topic": topic, "payload": b"{}", "qos": 1, "properties": {
        "UserProperty": [("why", "crash"), ("who", "sensor-7")],
        "ContentType": "application/json", "ResponseTopic": topic + "/reply",
        "CorrelationData": b"\x01\x02"}})
    c.connect()
    c.abort()
    m = w.wait_for(1)[0]
    assert m.props.get("UserProperty") == [("why", "crash"), ("who", "sensor-7")]
    assert m.props.get("ContentType") == "application/json"
    assert m.props.get("ResponseTopic") == topic + "/reply"
    assert m.props.get("CorrelationData") == b"\x01\x02"


def test_v5_will_delay_interval_delays_the_will(mqtt_clients):
    topic = mu.topic_prefix() + "/delay"
    w = watcher(mqtt_clients, topic)
    c = mqtt_clients(5, will={"topic": topic, "payload": b"late", "qos": 1,
                              "properties": {"WillDelayInterval": 1}})
    c.connect(session_expiry=30)
    mqtt_clients.persistent(c.client_id, 5)
    t0 = time.monotonic()
    c.abort()
    w.wait_for(1, timeout=6)
    elapsed = time.monotonic() - t0
    assert elapsed >= 0.8, f"will sent {elapsed:.2f}s after the drop, before its 1s delay"


def test_v5_will_cancelled_when_client_reconnects_within_delay(mqtt_clients):
    topic = mu.topic_prefix() + "/cancel"
    w = watcher(mqtt_clients, topic)
    will = {"topic": topic, "payload": b"should-not", "qos": 1,
            "properties": {"WillDelayInterval": 1}}
    c = mqtt_clients(5, will=will)
    c.connect(clean_start=False, session_expiry=30)
    mqtt_clients.persistent(c.client_id, 5)
    c.abort()
    back = mqtt_clients(5, cid=c.client_id)
    assert back.connect(clean_start=False, session_expiry=30).session_present is True
    assert mu.stays(lambda: not w.received(), 2.0), "will sent although the client came back"
    back.disconnect()


@mu.requires_switchboard("mosquitto 2.0.11 holds the will for the whole will delay even "
                         "when the session (expiry 0) ended at the disconnect")
def test_v5_will_sent_when_session_expires_before_will_delay(mqtt_clients):
    """The will goes out at the earlier of will delay and session end."""
    topic = mu.topic_prefix() + "/sessend"
    w = watcher(mqtt_clients, topic)
    c = mqtt_clients(5, will={"topic": topic, "payload": b"ended", "qos": 1,
                              "properties": {"WillDelayInterval": 600}})
    c.connect(session_expiry=0)
    c.abort()
    assert w.wait_for(1, timeout=5)[0].payload == b"ended"


# -- keepalive -----------------------------------------------------------------------

@pytest.mark.parametrize("version", [4, 5], ids=VERSION_IDS.get)
def test_silent_client_dropped_after_one_and_a_half_keepalives(mqtt_clients, version):
    topic = mu.topic_prefix() + "/ka"
    w = watcher(mqtt_clients, topic)
    r = mqtt_clients.raw(version)
    ack = r.connect(keepalive=2, will={"topic": topic, "payload": b"timed-out", "qos": 1})
    keepalive = ack.props.get("ServerKeepAlive", 2)
    t0 = time.monotonic()
    # generous upper bound: mosquitto checks keepalives only every few seconds
    got = r.read_until_closed(timeout=keepalive * 1.5 + 6)
    elapsed = time.monotonic() - t0
    assert elapsed >= keepalive * 0.9, f"dropped after {elapsed:.2f}s, inside the keepalive"
    if not mu.is_mqtt_external():
        assert elapsed <= keepalive * 1.5 + 1.5, f"dropped only after {elapsed:.2f}s"
    if version == 5:  # a DISCONNECT is optional; if sent, it says Keep Alive timeout
        assert all(p.type == mu.DISCONNECT and p.rc == 0x8D for p in got), got
    assert w.wait_for(1)[0].payload == b"timed-out"


def test_pingreq_keeps_the_connection_alive(mqtt_clients):
    r = mqtt_clients.raw(4)
    r.connect(keepalive=1)
    deadline = time.monotonic() + 3.5
    pongs = 0
    while time.monotonic() < deadline:
        r.send(mu.pingreq_packet())
        assert r.expect(mu.PINGRESP, timeout=2).body == b""
        pongs += 1
        time.sleep(0.5)  # pacing, well inside the keepalive
    assert pongs >= 6
    r.send(mu.disconnect_packet())
    assert r.read_until_closed() == []


def test_keepalive_zero_means_no_timeout(mqtt_clients):
    r = mqtt_clients.raw(4)
    r.connect(keepalive=0)
    with pytest.raises(socket.timeout):
        r.read(timeout=2.0)
    r.send(mu.pingreq_packet())
    r.expect(mu.PINGRESP)


def test_v5_will_delay_not_published_on_takeover_that_keeps_the_session(mqtt_clients):
    """A new connection for the client id before the will delay has passed: no will."""
    topic = mu.topic_prefix() + "/takeover"
    w = watcher(mqtt_clients, topic)
    will = {"topic": topic, "payload": b"should-not", "qos": 1,
            "properties": {"WillDelayInterval": 1}}
    c = mqtt_clients(5, will=will)
    c.connect(clean_start=False, session_expiry=30)
    mqtt_clients.persistent(c.client_id, 5)
    back = mqtt_clients(5, cid=c.client_id)
    assert back.connect(clean_start=False, session_expiry=30).session_present is True
    c.wait_disconnected()
    assert mu.stays(lambda: not w.received(), 2.0), "will sent although the session went on"
    back.disconnect()
