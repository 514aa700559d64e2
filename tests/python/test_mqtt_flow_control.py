"""Flow control from a slow MQTT subscriber to the QoS 1 publishers feeding it.

mosquitto bounds a slow subscriber's queue by dropping past max_queued_messages;
Switchboard drops nothing and instead holds the publishers' PUBACKs while the
subscriber's queue holds ``mqtt.backlog_limit`` ready messages, so each publisher's
in-flight window stops it and the backlog (and with it latency and memory) stays
near the limit. These tests watch the queue's depth through the admin API while a
fast publisher feeds a subscriber that acknowledges slowly."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

import mqttutil as mu
from conftest import start_switchboard, stop_switchboard
from support import admin_call, requires_switchboard

pytestmark = requires_switchboard("the backlog limit is a Switchboard setting")

N = 2000
WINDOW = 20          # the publisher's in-flight window (paho's default)
LIMIT = 200


def _depth(admin, client_id):
    """Ready messages in the subscriber's session queue, as the admin API says."""
    queues = admin_call(admin, "/api/queues")
    return max((q.get("messages_ready", 0) for q in queues if client_id in q["name"]),
               default=0)


def _run(env):
    b = start_switchboard(env=env)
    try:
        ep = mu.endpoint_from_ports(b.ports)
        topic = f"{mu.topic_prefix()}/flow"
        sub = mu.Client(ep, manual_ack=True)
        sub.connect()
        sub.subscribe(topic, qos=1)
        stop = threading.Event()
        acked = []

        def acker():
            # About 500 messages a second: a subscriber slower than the publisher.
            while not stop.is_set():
                msgs = sub.received()
                if len(acked) < len(msgs):
                    m = msgs[len(acked)]
                    sub.paho.ack(m.mid, m.qos)
                    acked.append(m)
                time.sleep(0.002)

        t = threading.Thread(target=acker, daemon=True)
        t.start()

        pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=mu.client_id())
        pub.max_inflight_messages_set(WINDOW)
        pub.max_queued_messages_set(0)
        done = threading.Event()
        confirmed = [0]

        def on_publish(c, ud, mid, rc, props):
            confirmed[0] += 1
            if confirmed[0] == N:
                done.set()

        pub.on_publish = on_publish
        pub.connect(ep.host, ep.port)
        pub.loop_start()
        for i in range(N):
            pub.publish(topic, str(i).encode(), qos=1)
        depths = []
        deadline = time.monotonic() + 60
        while not done.is_set() and time.monotonic() < deadline:
            depths.append(_depth(b.ports["admin"], sub.client_id))
            time.sleep(0.05)
        assert done.is_set(), f"only {confirmed[0]} of {N} publishes confirmed"
        got = sub.wait_for(N, timeout=30)
        stop.set()
        t.join()
        pub.loop_stop()
        pub.disconnect()
        sub.close()
        assert [int(m.payload) for m in got] == list(range(N)), "lost or out of order"
        return max(depths, default=0)
    finally:
        stop_switchboard(b)


def test_a_slow_subscriber_holds_its_publishers_back_and_loses_nothing():
    held = _run({"SWITCHBOARD_MQTT__BACKLOG_LIMIT": str(LIMIT)})
    free = _run({"SWITCHBOARD_MQTT__BACKLOG_LIMIT": "0"})
    # With the limit the backlog stays near it (plus the publisher's window and what
    # arrived between two samples); without, the publisher runs ahead.
    assert held <= LIMIT + WINDOW + 100, f"backlog reached {held} with the limit"
    assert free > 3 * LIMIT, f"without a limit the backlog only reached {free}"


def test_a_queue_without_a_consumer_buffers_without_holding_anyone():
    """An offline persistent session is not drained by anyone: holding publishers
    for it would stall them, so its queue buffers as before."""
    b = start_switchboard(env={"SWITCHBOARD_MQTT__BACKLOG_LIMIT": "50",
                               "SWITCHBOARD_MQTT__BACKLOG_MAX_HOLD_MS": "60000"})
    try:
        ep = mu.endpoint_from_ports(b.ports)
        topic = f"{mu.topic_prefix()}/offline"
        sub = mu.Client(ep, clean=False)
        sub.connect()
        sub.subscribe(topic, qos=1)
        sub.disconnect()
        pub = mu.Client(ep)
        pub.connect()
        for i in range(500):
            pub.publish(topic, str(i), qos=1, timeout=20)
        pub.disconnect()
        assert _depth(b.ports["admin"], sub.client_id) == 500
        sub.reconnect()
        assert len(sub.wait_for(500, timeout=20)) == 500
        sub.close()
    finally:
        stop_switchboard(b)
