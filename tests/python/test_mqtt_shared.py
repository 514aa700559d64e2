"""Shared subscriptions (`$share/<group>/<filter>`, MQTT 5): the members of a group
split the messages between them; every group and every plain subscriber gets all."""

from __future__ import annotations

import collections

import pytest

import mqttutil as mu
from mqttutil import DISCONNECT

N = 20


def _publish(mqtt_clients, topic, n=N, qos=1):
    pub = mqtt_clients.connected(5)
    for i in range(n):
        pub.publish(topic, str(i), qos=qos)


def _split_ok(members, n=N):
    mu.wait_until(lambda: sum(len(m.received()) for m in members) >= n,
                  what=f"{n} messages across the group")
    assert mu.stays(lambda: sum(len(m.received()) for m in members) == n, 0.3), \
        "more deliveries than messages"
    counts = collections.Counter(int(x.payload) for m in members for x in m.received())
    assert sorted(counts) == list(range(n)), "a message was lost"
    assert set(counts.values()) == {1}, f"delivered twice: {counts}"
    return [len(m.received()) for m in members]


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_group_members_split_the_messages(mqtt_clients, qos):
    p = mu.topic_prefix()
    a, b, plain = (mqtt_clients.connected(5) for _ in range(3))
    for c in (a, b):
        assert c.subscribe(f"$share/g1/{p}/#", qos=qos) == [qos]
    plain.subscribe(f"{p}/#", qos=qos)
    _publish(mqtt_clients, f"{p}/x", qos=max(qos, 1))
    per_member = _split_ok([a, b])
    assert all(n > 0 for n in per_member), f"one member got nothing: {per_member}"
    assert [int(m.payload) for m in plain.wait_for(N)] == list(range(N))
    assert all(m.topic == f"{p}/x" for m in a.received() + b.received())


def test_each_group_gets_every_message(mqtt_clients):
    p = mu.topic_prefix()
    g1 = [mqtt_clients.connected(5) for _ in range(2)]
    g2 = [mqtt_clients.connected(5)]
    for c in g1:
        c.subscribe(f"$share/one/{p}/t", qos=1)
    g2[0].subscribe(f"$share/two/{p}/t", qos=1)
    _publish(mqtt_clients, f"{p}/t")
    _split_ok(g1)
    _split_ok(g2)


def test_remaining_member_gets_everything_after_another_leaves(mqtt_clients):
    p = mu.topic_prefix()
    a, b = mqtt_clients.connected(5), mqtt_clients.connected(5)
    a.subscribe(f"$share/g/{p}/t", qos=1)
    b.subscribe(f"$share/g/{p}/t", qos=1)
    b.disconnect()
    _publish(mqtt_clients, f"{p}/t")
    assert _split_ok([a]) == [N]


def test_unsubscribe_leaves_the_group(mqtt_clients):
    p = mu.topic_prefix()
    a, b = mqtt_clients.connected(5), mqtt_clients.connected(5)
    a.subscribe(f"$share/g/{p}/t", qos=1)
    b.subscribe(f"$share/g/{p}/t", qos=1)
    b.unsubscribe(f"$share/g/{p}/t")
    _publish(mqtt_clients, f"{p}/t")
    assert _split_ok([a]) == [N]
    assert b.received() == []


def test_same_group_name_with_different_filters_are_different_groups(mqtt_clients):
    p = mu.topic_prefix()
    a, b = mqtt_clients.connected(5), mqtt_clients.connected(5)
    a.subscribe(f"$share/g/{p}/+", qos=1)
    b.subscribe(f"$share/g/{p}/#", qos=1)
    _publish(mqtt_clients, f"{p}/t")
    _split_ok([a])
    _split_ok([b])


def test_connack_does_not_deny_shared_subscriptions(mqtt_clients):
    ack = mqtt_clients.raw(5).connect()
    assert ack.props.get("SharedSubscriptionAvailable", 1) == 1


@mu.requires_switchboard("mosquitto 2.0.11 accepts No Local on a shared subscription")
def test_no_local_on_shared_subscription_is_a_protocol_error(mqtt_clients):
    r = mqtt_clients.raw(5)
    r.connect()
    r.send(mu.subscribe_packet([(f"$share/g/{mu.topic_prefix()}", 0x01 | 0x04)], version=5))
    got = r.read_until_closed()
    assert [(x.type, x.rc) for x in got] == [(DISCONNECT, 0x82)], got
