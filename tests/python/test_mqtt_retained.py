"""Retained messages: kept per topic, delivered on subscribe (also through wildcards)
with the retain flag, cleared by an empty retained publish; MQTT 5 retain handling and
retain-as-published."""

from __future__ import annotations

import pytest

import mqttutil as mu
from mqttutil import VERSION_IDS, VERSIONS


class Retainer:
    """Publishes retained messages and clears them again at teardown."""

    def __init__(self, mqtt_clients):
        self.pub = mqtt_clients.connected(5)
        self.topics = set()

    def __call__(self, topic, payload, qos=1, properties=None):
        self.topics.add(topic)
        self.pub.publish(topic, payload, qos=qos, retain=True, properties=properties)

    def clear(self):
        for t in self.topics:
            try:
                self.pub.publish(t, b"", qos=1, retain=True)
            except BaseException:
                pass


@pytest.fixture
def retain(mqtt_clients):
    r = Retainer(mqtt_clients)
    yield r
    r.clear()


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS.get)
def test_retained_message_delivered_on_subscribe_with_retain_flag(mqtt_clients, retain,
                                                                   version):
    topic = mu.topic_prefix() + "/r"
    retain(topic, "first")
    retain(topic, "last")  # only the last one is kept
    sub = mqtt_clients.connected(version)
    sub.subscribe(topic, qos=1)
    m = sub.wait_for(1)[0]
    assert (m.topic, m.payload, m.retain, m.qos) == (topic, b"last", True, 1)
    assert mu.stays(lambda: len(sub.received()) == 1, 0.3)


@pytest.mark.parametrize("flt", ["+/+", "#", "+/#", "a/#"])
def test_retained_messages_delivered_through_wildcards(mqtt_clients, retain, flt):
    p = mu.topic_prefix()
    retain(f"{p}/a/1", "a1")
    retain(f"{p}/a/2", "a2")
    retain(f"{p}/b/1", "b1")
    sub = mqtt_clients.connected(4)
    sub.subscribe(f"{p}/{flt}", qos=1)
    expected = {"+/+": {"a1", "a2", "b1"}, "#": {"a1", "a2", "b1"},
                "+/#": {"a1", "a2", "b1"}, "a/#": {"a1", "a2"}}[flt]
    got = sub.wait_for(len(expected))
    assert {m.payload.decode() for m in got} == expected
    assert all(m.retain for m in got)
    assert mu.stays(lambda: len(sub.received()) == len(expected), 0.3)


def test_empty_retained_publish_clears(mqtt_clients, retain):
    p = mu.topic_prefix()
    retain(f"{p}/gone", "soon gone")
    retain(f"{p}/stays", "stays")
    live = mqtt_clients.connected(4)
    live.subscribe(f"{p}/gone", qos=1)
    live.wait_for(1)
    retain(f"{p}/gone", b"")
    # current subscribers get the empty message as a normal publish
    m = live.wait_for(2)[1]
    assert (m.payload, m.retain) == (b"", False)

    late = mqtt_clients.connected(4)
    late.subscribe(f"{p}/#", qos=1)
    late.wait_for(1)
    assert mu.stays(lambda: len(late.received()) == 1, 0.3)
    assert [m.topic for m in late.received()] == [f"{p}/stays"]


def test_live_messages_have_retain_flag_cleared_311(mqtt_clients, retain):
    topic = mu.topic_prefix() + "/live"
    sub = mqtt_clients.connected(4)
    sub.subscribe(topic, qos=1)
    retain(topic, "live-retained")
    m = sub.wait_for(1)[0]
    assert (m.payload, m.retain) == (b"live-retained", False)


def test_retained_delivery_qos_is_min_of_message_and_subscription(mqtt_clients, retain):
    p = mu.topic_prefix()
    retain(f"{p}/q0", "q0", qos=0)
    retain(f"{p}/q2", "q2", qos=2)
    sub1 = mqtt_clients.connected(4)
    sub1.subscribe(f"{p}/#", qos=1)
    got = {m.payload: m.qos for m in sub1.wait_for(2)}
    assert got == {b"q0": 0, b"q2": 1}


def test_retained_message_with_qos0_is_kept(mqtt_clients, retain):
    topic = mu.topic_prefix() + "/q0"
    retain(topic, "zero", qos=0)
    # a QoS 0 publish has no acknowledgement: a second client's subscribe waits for it
    sub = mqtt_clients.connected(4)
    mu.wait_until(lambda: sub.subscribe(topic, qos=0) and sub.received(), timeout=5,
                  interval=0.2, what="the QoS 0 retained message")
    assert sub.received()[0].payload == b"zero"


def test_v5_retained_properties_are_kept(mqtt_clients, retain):
    topic = mu.topic_prefix() + "/props"
    retain(topic, "p", properties={"UserProperty": [("k", "v")], "ContentType": "text/x"})
    sub = mqtt_clients.connected(5)
    sub.subscribe(topic, qos=1)
    m = sub.wait_for(1)[0]
    assert m.props.get("UserProperty") == [("k", "v")]
    assert m.props.get("ContentType") == "text/x"


# -- MQTT 5 subscription options ----------------------------------------------------

def test_v5_retain_handling_0_sends_on_every_subscribe(mqtt_clients, retain):
    topic = mu.topic_prefix() + "/rh0"
    retain(topic, "r")
    sub = mqtt_clients.connected(5)
    sub.subscribe(topic, qos=1, retain_handling=0)
    sub.wait_for(1)
    sub.subscribe(topic, qos=1, retain_handling=0)
    assert [m.retain for m in sub.wait_for(2)] == [True, True]


def test_v5_retain_handling_1_sends_only_for_a_new_subscription(mqtt_clients, retain):
    p = mu.topic_prefix()
    retain(f"{p}/rh1", "r")
    retain(f"{p}/fence", "fence")
    sub = mqtt_clients.connected(5)
    sub.subscribe(f"{p}/rh1", qos=1, retain_handling=1)
    sub.wait_for(1)
    sub.subscribe(f"{p}/rh1", qos=1, retain_handling=1)  # exists already: nothing
    sub.subscribe(f"{p}/fence", qos=1, retain_handling=1)
    sub.wait_for(1, topic=f"{p}/fence")
    assert mu.stays(lambda: len(sub.received(f"{p}/rh1")) == 1, 0.3)


def test_v5_retain_handling_2_never_sends_retained(mqtt_clients, retain):
    p = mu.topic_prefix()
    retain(f"{p}/rh2", "r")
    retain(f"{p}/fence", "fence")
    sub = mqtt_clients.connected(5)
    sub.subscribe(f"{p}/rh2", qos=1, retain_handling=2)
    sub.subscribe(f"{p}/fence", qos=1, retain_handling=0)
    sub.wait_for(1, topic=f"{p}/fence")
    assert mu.stays(lambda: not sub.received(f"{p}/rh2"), 0.3)
    # the subscription itself works
    mqtt_clients.connected(5).publish(f"{p}/rh2", "live", qos=1)
    assert sub.wait_for(1, topic=f"{p}/rh2")[0].payload == b"live"


@pytest.mark.parametrize("rap", [False, True], ids=["rap0", "rap1"])
def test_v5_retain_as_published(mqtt_clients, retain, rap):
    topic = mu.topic_prefix() + "/rap"
    sub = mqtt_clients.connected(5)
    sub.subscribe(topic, qos=1, retain_as_published=rap)
    retain(topic, "retained-live")
    mqtt_clients.connected(5).publish(topic, "plain", qos=1)
    got = sub.wait_for(2)
    assert [(m.payload, m.retain) for m in got] == [(b"retained-live", rap),
                                                     (b"plain", False)]


def test_v5_retained_on_subscribe_has_retain_flag_regardless_of_rap(mqtt_clients, retain):
    topic = mu.topic_prefix() + "/rapsub"
    retain(topic, "r")
    sub = mqtt_clients.connected(5)
    sub.subscribe(topic, qos=1, retain_as_published=False)
    assert sub.wait_for(1)[0].retain is True
