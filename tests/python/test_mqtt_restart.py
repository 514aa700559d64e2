"""What survives a broker restart: persistent sessions (subscriptions and queued QoS 1/2
messages), retained messages, unacknowledged deliveries. Each test runs its own broker
(``restartable_mqtt``): a Switchboard restarted on the same data directory, or a
private mosquitto with persistence when the suite targets an external broker.

A clean stop (SIGTERM) must keep everything; Switchboard also promises that nothing
acknowledged is lost by kill -9 (DESIGN.md section 3) - mosquitto writes its
persistence file only at shutdown and every autosave_interval, so those tests are
Switchboard-only."""

from __future__ import annotations

import socket

import pytest

import mqttutil as mu
from mqttutil import PUBACK, PUBLISH, VERSION_IDS

KILL = pytest.param(True, id="sigkill", marks=mu.requires_switchboard(
    "mosquitto saves its state only at shutdown or autosave, not at each PUBACK"))
STOP = pytest.param(False, id="sigterm")


def _persistent_subscriber(mqtt_clients, ep, version, topic, qos=1):
    cid = mu.client_id()
    c = mqtt_clients(version, ep=ep, cid=cid, clean=False)
    c.connect(clean_start=False, session_expiry=3600 if version == 5 else None)
    c.subscribe(topic, qos=qos)
    c.disconnect()
    return cid


def _resume(mqtt_clients, ep, version, cid):
    c = mqtt_clients(version, ep=ep, cid=cid, clean=False)
    ack = c.connect(clean_start=False, session_expiry=3600 if version == 5 else None,
                    timeout=10)
    return c, ack


@pytest.mark.parametrize("kill", [STOP, KILL])
@pytest.mark.parametrize("version", [4, 5], ids=VERSION_IDS.get)
def test_queued_messages_of_persistent_session_survive_restart(restartable_mqtt, mqtt_clients,
                                                               version, kill):
    ep = restartable_mqtt.endpoint
    topic = mu.topic_prefix() + "/persist"
    cid = _persistent_subscriber(mqtt_clients, ep, version, topic)
    pub = mqtt_clients(version, ep=ep)
    pub.connect()
    pub.publish(topic, "q1-a", qos=1)
    pub.publish(topic, "q2-b", qos=2)
    pub.publish(topic, bytes(range(256)), qos=1)
    pub.close()

    ep = restartable_mqtt.restart(kill=kill)
    sub, ack = _resume(mqtt_clients, ep, version, cid)
    assert ack.session_present is True
    got = sub.wait_for(3, timeout=10)
    assert [m.payload for m in got] == [b"q1-a", b"q2-b", bytes(range(256))]
    assert [m.qos for m in got] == [1, 1, 1]
    # the subscription came back too
    p2 = mqtt_clients(version, ep=ep)
    p2.connect()
    p2.publish(topic, "after-restart", qos=1)
    assert sub.wait_for(4)[-1].payload == b"after-restart"


@pytest.mark.parametrize("kill", [STOP, KILL])
def test_subscription_of_persistent_session_survives_restart(restartable_mqtt, mqtt_clients,
                                                             kill):
    ep = restartable_mqtt.endpoint
    topic = mu.topic_prefix() + "/sub-only"
    cid = _persistent_subscriber(mqtt_clients, ep, 4, topic)
    ep = restartable_mqtt.restart(kill=kill)
    pub = mqtt_clients(4, ep=ep)
    pub.connect()
    pub.publish(topic, "published after the restart", qos=1)
    sub, ack = _resume(mqtt_clients, ep, 4, cid)
    assert ack.session_present is True
    assert sub.wait_for(1)[0].payload == b"published after the restart"


@pytest.mark.parametrize("kill", [STOP, KILL])
def test_retained_messages_survive_restart(restartable_mqtt, mqtt_clients, kill):
    ep = restartable_mqtt.endpoint
    p = mu.topic_prefix()
    pub = mqtt_clients(5, ep=ep)
    pub.connect()
    pub.publish(f"{p}/a", "retained-a", qos=1, retain=True,
                properties={"UserProperty": [("k", "v")]})
    pub.publish(f"{p}/b", "retained-b", qos=1, retain=True)
    pub.publish(f"{p}/b", b"", qos=1, retain=True)  # cleared again: must stay cleared
    pub.close()

    ep = restartable_mqtt.restart(kill=kill)
    sub = mqtt_clients(5, ep=ep)
    sub.connect(timeout=10)
    sub.subscribe(f"{p}/#", qos=1)
    m = sub.wait_for(1)[0]
    assert (m.topic, m.payload, m.retain) == (f"{p}/a", b"retained-a", True)
    assert m.props.get("UserProperty") == [("k", "v")]
    assert mu.stays(lambda: len(sub.received()) == 1, 0.3), sub.received()


@pytest.mark.parametrize("kill", [STOP, KILL])
def test_unacknowledged_delivery_is_redelivered_after_restart(restartable_mqtt, mqtt_clients,
                                                              kill):
    ep = restartable_mqtt.endpoint
    topic = mu.topic_prefix() + "/inflight"
    cid = mu.client_id()
    r = mu.Raw(ep, 4)
    r.connect(cid=cid, clean=False)
    r.subscribe([(topic, 1)])
    pub = mqtt_clients(4, ep=ep)
    pub.connect()
    pub.publish(topic, "not acked", qos=1)
    assert r.expect(PUBLISH).payload == b"not acked"  # and no PUBACK
    r.close()
    pub.close()

    ep = restartable_mqtt.restart(kill=kill)
    r = mu.Raw(ep, 4, timeout=10)
    try:
        ack = r.connect(cid=cid, clean=False)
        assert ack.session_present is True
        m = r.expect(PUBLISH)
        assert (m.payload, m.qos) == (b"not acked", 1)
        r.send(mu.ack_packet(PUBACK, m.mid) + mu.disconnect_packet())
    finally:
        r.close()


def test_acknowledgement_before_clean_shutdown_is_kept(restartable_mqtt, mqtt_clients):
    """Graceful shutdown settles in-flight work: a PUBACK read before SIGTERM holds."""
    ep = restartable_mqtt.endpoint
    topic = mu.topic_prefix() + "/acked"
    cid = mu.client_id()
    r = mu.Raw(ep, 4)
    r.connect(cid=cid, clean=False)
    r.subscribe([(topic, 1)])
    pub = mqtt_clients(4, ep=ep)
    pub.connect()
    pub.publish(topic, "acked", qos=1)
    m = r.expect(PUBLISH)
    r.send(mu.ack_packet(PUBACK, m.mid) + mu.disconnect_packet())
    r.read_until_closed()
    r.close()
    pub.close()
    ep = restartable_mqtt.restart()
    r = mu.Raw(ep, 4, timeout=10)
    try:
        assert r.connect(cid=cid, clean=False).session_present is True
        with pytest.raises(socket.timeout):
            pytest.fail(f"delivered again after PUBACK: {r.read(timeout=0.5)}")
    finally:
        r.close()


def test_clean_session_state_does_not_survive_restart(restartable_mqtt, mqtt_clients):
    ep = restartable_mqtt.endpoint
    cid = mu.client_id()
    c = mqtt_clients(4, ep=ep, cid=cid, clean=True)
    c.connect()
    c.subscribe(mu.topic_prefix(), qos=1)
    c.abort()
    ep = restartable_mqtt.restart()
    c2 = mqtt_clients(4, ep=ep, cid=cid, clean=False)
    assert c2.connect(timeout=10).session_present is False


def test_v5_session_expiry_counts_across_restart(restartable_mqtt, mqtt_clients):
    """A session with a long expiry survives; one with expiry 0 is gone."""
    ep = restartable_mqtt.endpoint
    keep, drop = mu.client_id(), mu.client_id()
    for cid, expiry in ((keep, 3600), (drop, 0)):
        c = mqtt_clients(5, ep=ep, cid=cid)
        c.connect(clean_start=False, session_expiry=expiry)
        c.subscribe(mu.topic_prefix(), qos=1)
        c.disconnect()
    ep = restartable_mqtt.restart()
    for cid, present in ((keep, True), (drop, False)):
        c = mqtt_clients(5, ep=ep, cid=cid)
        assert c.connect(clean_start=False, session_expiry=3600,
                         timeout=10).session_present is present, cid
