"""A standby so far behind that the active has retired the journal segments it
needs gets a snapshot (docs/REPLICATION.md, "Where to start"): the active's
definitions and every record from its oldest segment on. Two real processes: the
standby is down while the active fills and compacts more than a 64 MiB segment,
comes back, starts over from the snapshot, and after a SIGKILL of the active
serves every confirmed message and every definition, user and retained message.

Switchboard only: no peer broker runs this pair."""

from __future__ import annotations

import base64
import json
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
import pika
import pytest

from pairutil import Pair
from support import requires_switchboard

pytestmark = requires_switchboard("starts its own pair of Switchboard processes")

# More than one journal segment (64 MiB) of filler, consumed, so that compaction
# retires the segment the standby stopped in.
FILLER_MSGS = 80
FILLER_BODY = b"f" * (1 << 20)
SEGMENT_SUFFIX = ".seg"


def segments(data_dir: Path):
    """First LSNs of the journal's segments, oldest first."""
    return sorted(int(p.name[:-len(SEGMENT_SUFFIX)])
                  for p in (data_dir / "journal").glob("*" + SEGMENT_SUFFIX))


def connect(addr) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.ConnectionParameters(
        *addr, connection_attempts=5, retry_delay=0.2, socket_timeout=10,
        blocked_connection_timeout=30))


def get_all(ch, queue: str):
    got = []
    while True:
        m, _, body = ch.basic_get(queue)
        if m is None:
            return got
        got.append(body)
        ch.basic_ack(m.delivery_tag)


def whoami(pair: Pair, n: str, user: str, password: str):
    host, port = pair.nodes[n].addr("admin")
    req = urllib.request.Request(f"http://{host}:{port}/api/whoami")
    req.add_header("Authorization",
                   "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())["name"]
    except urllib.error.HTTPError as e:
        return e.code


def retained(addr, topic: str):
    got = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    c.on_message = lambda _c, _u, m: got.append((m.payload, m.retain))
    c.connect(*addr)
    c.loop_start()
    c.subscribe(topic, qos=1)
    t0 = time.monotonic()
    while not got and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    c.disconnect()
    c.loop_stop()
    return got


@pytest.fixture
def pair():
    p = Pair("file")
    yield p
    p.close()


# "kept": the standby restarts on its own data directory, now behind the active's
# oldest segment; "new": it comes back on an empty one (a replaced disk).
@pytest.mark.parametrize("standby_disk", ["kept", "new"])
def test_a_standby_behind_the_retired_segments_catches_up_from_a_snapshot(pair, standby_disk):
    a, b = pair.nodes["a"], pair.nodes["b"]
    pair.wait_in_sync("a")

    # While the pair is in sync: a user, an exchange, a queue with arguments, a
    # binding, a retained MQTT message, and messages consumed later (they are in the
    # segment that must be retired, so they may not stay live).
    pair.admin("a", "/api/users/snap-early", "PUT", {"password": "early-pw", "tags": "management"})
    c = connect(a.addr("amqp"))
    ch = c.channel()
    ch.confirm_delivery()
    ch.exchange_declare("snap-x", "topic", durable=True)
    ch.queue_declare("snap-q1", durable=True, arguments={"x-max-length": 10000})
    ch.queue_bind("snap-q1", "snap-x", "k.#")
    for i in range(20):
        ch.basic_publish("snap-x", "k.early", f"early-{i}".encode(),
                         pika.BasicProperties(delivery_mode=2), mandatory=True)
    m = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    m.connect(*a.addr("mqtt"))
    m.loop_start()
    info = m.publish("snap/retained", b"kept", qos=1, retain=True)
    info.wait_for_publish(timeout=10)
    assert info.is_published()
    m.disconnect()
    m.loop_stop()
    pair.wait_caught_up("a")
    standby_last = int(pair.status("b")["last_lsn"])
    pair.kill("b")
    if standby_disk == "new":
        shutil.rmtree(b.data_dir)

    # Alone: more definitions, then more than a segment of traffic, all consumed.
    pair.admin("a", "/api/users/snap-late", "PUT", {"password": "late-pw", "tags": "management"})
    pair.admin("a", "/api/vhosts/snap-vh", "PUT", {})
    ch.exchange_declare("snap-x2", "fanout", durable=True)
    ch.queue_declare("snap-q2", durable=True)
    ch.queue_bind("snap-q2", "snap-x2", "")
    assert len(get_all(ch, "snap-q1")) == 20
    ch.queue_declare("snap-fill", durable=True)
    for _ in range(FILLER_MSGS):
        ch.basic_publish("", "snap-fill", FILLER_BODY, pika.BasicProperties(delivery_mode=2))
    assert len(get_all(ch, "snap-fill")) == FILLER_MSGS
    # The live messages the standby must get from the snapshot.
    for i in range(50):
        ch.basic_publish("snap-x", "k.late", f"late-{i}".encode(),
                         pika.BasicProperties(delivery_mode=2), mandatory=True)
        ch.basic_publish("snap-x2", "", f"late2-{i}".encode(),
                         pika.BasicProperties(delivery_mode=2), mandatory=True)
    t0 = time.monotonic()
    while segments(a.data_dir)[0] <= standby_last:
        assert time.monotonic() - t0 < 30, \
            f"the active never retired LSN {standby_last}: segments {segments(a.data_dir)}"
        time.sleep(0.2)

    # The active keeps serving while the standby catches up: a second client
    # publishes with confirms from before the standby's return until it is in sync.
    during: list = []

    def publish_during():
        pc = connect(a.addr("amqp"))
        pch = pc.channel()
        pch.confirm_delivery()
        for i in range(200):
            pch.basic_publish("snap-x", "k.during", f"during-{i}".encode(),
                              pika.BasicProperties(delivery_mode=2), mandatory=True)
            during.append(i)
            time.sleep(0.005)
        pc.close()

    publisher = threading.Thread(target=publish_during, daemon=True)
    publisher.start()
    pair.start("b")
    pair.wait_role("b", "standby")
    publisher.join(timeout=60)
    assert len(during) == 200, "publishing stalled while the standby caught up"
    pair.wait_caught_up("a", timeout=60)
    assert "starting over from the active's snapshot" in b.log()
    assert segments(b.data_dir)[0] == segments(a.data_dir)[0] > standby_last
    # After the snapshot the standby follows the stream as usual.
    for i in range(10):
        ch.basic_publish("snap-x", "k.after", f"after-{i}".encode(),
                         pika.BasicProperties(delivery_mode=2), mandatory=True)
    c.close()
    pair.wait_caught_up("a")

    pair.kill("a")
    pair.wait_role("b", "active")
    c = connect(b.addr("amqp"))
    ch = c.channel()
    assert sorted(get_all(ch, "snap-q1")) == sorted(
        [f"late-{i}".encode() for i in range(50)] + [f"during-{i}".encode() for i in range(200)]
        + [f"after-{i}".encode() for i in range(10)])
    assert sorted(get_all(ch, "snap-q2")) == sorted(f"late2-{i}".encode() for i in range(50))
    assert ch.queue_declare("snap-fill", passive=True).method.message_count == 0
    # The definitions survived with their kinds, arguments and bindings: routing
    # through both exchanges still reaches the queues.
    ch.confirm_delivery()
    ch.basic_publish("snap-x", "k.new", b"routed", mandatory=True)
    ch.basic_publish("snap-x2", "", b"routed2", mandatory=True)
    assert get_all(ch, "snap-q1") == [b"routed"]
    assert get_all(ch, "snap-q2") == [b"routed2"]
    c.close()
    x = pair.admin("b", "/api/exchanges/%2F/snap-x")
    assert x["type"] == "topic" and x["durable"] is True
    assert pair.admin("b", "/api/exchanges/%2F/snap-x2")["type"] == "fanout"
    q = pair.admin("b", "/api/queues/%2F/snap-q1")
    assert q["arguments"].get("x-max-length") == 10000
    binds = {(x["source"], x["destination"], x["routing_key"])
             for x in pair.admin("b", "/api/bindings/%2F")}
    assert {("snap-x", "snap-q1", "k.#"), ("snap-x2", "snap-q2", "")} <= binds
    assert "snap-vh" in {v["name"] for v in pair.admin("b", "/api/vhosts")}
    assert whoami(pair, "b", "snap-early", "early-pw") == "snap-early"
    assert whoami(pair, "b", "snap-late", "late-pw") == "snap-late"
    assert whoami(pair, "b", "snap-late", "wrong") == 401
    assert retained(b.addr("mqtt"), "snap/retained") == [(b"kept", True)]
