"""Bad input over raw sockets: the broker closes that one connection (MQTT 5: after a
DISCONNECT with the reason code the spec names, where it names one) and keeps serving
everyone else."""

from __future__ import annotations

import socket
import time

import pytest

import mqttutil as mu
from mqttutil import (CONNACK, DISCONNECT, SUBSCRIBE, connect_packet, packet, publish_packet,
                      subscribe_packet)


class Bystander:
    """A subscriber and a publisher that must not notice anything."""

    def __init__(self, mqtt_clients):
        self.clients = mqtt_clients
        self.topic = mu.topic_prefix() + "/bystander"
        self.sub = mqtt_clients.connected(4)
        self.sub.subscribe(self.topic, qos=1)
        self.pub = mqtt_clients.connected(5)
        self.n = 0

    def check(self):
        assert self.sub.connected and self.pub.connected, "a bystander lost its connection"
        self.n += 1
        self.pub.publish(self.topic, f"still here {self.n}", qos=1)
        assert self.sub.wait_for(self.n)[-1].payload == f"still here {self.n}".encode()
        assert self.clients.connected(4).connected


@pytest.fixture
def bystander(mqtt_clients):
    return Bystander(mqtt_clients)


def _connect_with_flags(version, or_flags):
    p = bytearray(connect_packet(mu.client_id(), version=version))
    name_len = 6 if version == 3 else 4
    p[2 + 2 + name_len + 1] |= or_flags  # fixed header, name length, name, level, flags
    return bytes(p)


def _closed_with(raw, allowed):
    got = raw.read_until_closed()
    assert [(p.type, p.rc) for p in got] in allowed, got


NOTHING = [[]]


def v5_reasons(*codes):
    """Closed, optionally after a DISCONNECT with one of ``codes``."""
    return [[]] + [[(DISCONNECT, c)] for c in codes]


# (id, bytes after a successful CONNECT, allowed for 3.1.1, allowed for 5)
AFTER_CONNECT = [
    ("second-connect", lambda v: connect_packet(mu.client_id(), version=v),
     NOTHING, v5_reasons(0x82)),
    ("publish-qos3", lambda v: publish_packet("a/b", b"x", qos=3, version=v),
     NOTHING, v5_reasons(0x81)),
    ("topic-invalid-utf8", lambda v: publish_packet(b"a/\xff\xfe", b"x", version=v),
     NOTHING, v5_reasons(0x81)),
    ("topic-utf16-surrogate", lambda v: publish_packet(b"a/\xed\xa0\x80", b"x", version=v),
     NOTHING, v5_reasons(0x81)),
    ("topic-nul", lambda v: publish_packet(b"a/\x00b", b"x", version=v),
     NOTHING, v5_reasons(0x81)),
    ("publish-wildcard-plus", lambda v: publish_packet("a/+/b", b"x", version=v),
     NOTHING, v5_reasons(0x90, 0x81, 0x82)),
    ("publish-wildcard-hash", lambda v: publish_packet("a/#", b"x", qos=1, version=v),
     NOTHING, v5_reasons(0x90, 0x81, 0x82)),
    ("publish-empty-topic", lambda v: publish_packet("", b"x", version=v),
     NOTHING, v5_reasons(0x82, 0x81, 0x90)),
    ("publish-qos1-packet-id-0", lambda v: publish_packet("a/b", b"x", qos=1, mid=0, version=v),
     NOTHING, v5_reasons(0x81, 0x82)),
    ("subscribe-wrong-flags", lambda v: packet(SUBSCRIBE, 0, subscribe_packet(
        [("a", 0)], version=v)[2:]), NOTHING, v5_reasons(0x81)),
    ("subscribe-no-filters", lambda v: packet(SUBSCRIBE, 2, b"\x00\x01" + (
        b"\x00" if v == 5 else b"")), NOTHING, v5_reasons(0x81, 0x82)),
    ("subscribe-qos3", lambda v: subscribe_packet([("a", 3)], version=v),
     NOTHING, v5_reasons(0x81)),
    ("reserved-packet-type-0", lambda v: b"\x00\x00", NOTHING, v5_reasons(0x81, 0x82)),
    ("remaining-length-5-bytes", lambda v: b"\x30\xff\xff\xff\xff\x01",
     NOTHING, v5_reasons(0x81)),
    ("garbage", lambda v: b"\xde\xad\xbe\xef" * 8, NOTHING, v5_reasons(0x81, 0x82)),
]


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
@pytest.mark.parametrize("case", AFTER_CONNECT, ids=[c[0] for c in AFTER_CONNECT])
def test_bad_packet_after_connect_closes_connection(mqtt_clients, bystander, version, case):
    _, make, allowed4, allowed5 = case
    r = mqtt_clients.raw(version)
    assert r.connect().rc == 0
    r.send(make(version))
    _closed_with(r, allowed5 if version == 5 else allowed4)
    bystander.check()


def test_nothing_published_by_a_bad_publish(mqtt_clients, bystander):
    topic = mu.topic_prefix() + "/bad"
    watcher = mqtt_clients.connected(4)
    watcher.subscribe(topic + "/#", qos=0)
    r = mqtt_clients.raw(4)
    r.connect()
    r.send(publish_packet(topic + "/ok", b"good") + publish_packet(topic + "/x", b"bad", qos=3)
           + publish_packet(topic + "/after", b"never"))
    r.read_until_closed()
    watcher.publish(topic + "/fence", "fence", qos=1)
    watcher.wait_for(1, topic=topic + "/fence")
    assert mu.stays(lambda: [m.payload for m in watcher.received()] == [b"good", b"fence"],
                    0.3), watcher.received()
    bystander.check()


# (id, first bytes on a fresh connection, allowed)
BEFORE_CONNECT = [
    ("publish-first", publish_packet("a/b", b"x"), NOTHING),
    ("subscribe-first", subscribe_packet([("a/b", 0)]), NOTHING),
    ("pingreq-first", mu.pingreq_packet(), NOTHING),
    ("garbage", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", NOTHING),
    ("connect-reserved-flag", _connect_with_flags(4, 0x01), NOTHING),
    ("connect-password-without-username-311",
     connect_packet("x", version=4, password="p"), NOTHING),
    # 3.1.1 lets the server just close; a CONNACK "unacceptable protocol" is fine too
    ("connect-wrong-protocol-name", connect_packet("x", version=4, proto_name=b"MQTX"),
     [[], [(CONNACK, 0x01)], [(CONNACK, 0x84)]]),
    ("connect-will-qos3", _connect_with_flags(4, 0x04 | 0x18), NOTHING),
]


@pytest.mark.parametrize("case", BEFORE_CONNECT, ids=[c[0] for c in BEFORE_CONNECT])
def test_bad_first_packet_closes_connection(mqtt_clients, bystander, case):
    _, data, allowed = case
    r = mqtt_clients.raw(4)
    r.send(data)
    _closed_with(r, allowed)
    bystander.check()


@pytest.mark.parametrize("level", [2, 6, 255])
@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_unsupported_protocol_level_gets_connack_0x01_or_0x84(mqtt_clients, bystander,
                                                               version, level):
    r = mqtt_clients.raw(version)
    r.send(connect_packet(mu.client_id(), version=version, level=level))
    got = r.read_until_closed()
    assert [p.type for p in got] == [CONNACK], got
    # 3.1.1 format: 0x01 unacceptable protocol version; 5 format: 0x84
    assert got[0].rc in (0x01, 0x84), got
    bystander.check()


def test_split_packets_are_reassembled(mqtt_clients, bystander):
    """One byte per TCP write is still a valid stream."""
    topic = mu.topic_prefix() + "/split"
    watcher = mqtt_clients.connected(4)
    watcher.subscribe(topic, qos=1)
    r = mqtt_clients.raw(4)
    data = connect_packet(mu.client_id()) + publish_packet(topic, b"pieces", qos=1, mid=9)
    for i in range(len(data)):
        r.send(data[i:i + 1])
        time.sleep(0.002)
    assert r.expect(CONNACK).rc == 0
    assert r.expect(mu.PUBACK).mid == 9
    assert watcher.wait_for(1)[0].payload == b"pieces"
    bystander.check()


def test_many_packets_in_one_write(mqtt_clients, bystander):
    topic = mu.topic_prefix() + "/batch"
    watcher = mqtt_clients.connected(4)
    watcher.subscribe(topic, qos=1)
    r = mqtt_clients.raw(4)
    r.send(connect_packet(mu.client_id())
           + b"".join(publish_packet(topic, str(i), qos=1, mid=i + 1) for i in range(50)))
    assert r.expect(CONNACK).rc == 0
    assert [r.expect(mu.PUBACK).mid for _ in range(50)] == list(range(1, 51))
    assert [int(m.payload) for m in watcher.wait_for(50)] == list(range(50))
    bystander.check()


# -- connect timeout (Switchboard: 10 s) ----------------------------------------------

CONNECT_TIMEOUT_LIMIT = 20


@mu.requires_switchboard("mosquitto 2.0.11 keeps a connection that never sends CONNECT "
                         "open indefinitely (checked for 70 s)")
@pytest.mark.parametrize("sent", [b"", connect_packet("x")[:5]], ids=["silent", "partial"])
def test_connection_without_connect_is_closed(mqtt_clients, bystander, sent):
    r = mqtt_clients.raw(4)
    r.send(sent)
    t0 = time.monotonic()
    assert r.read_until_closed(timeout=CONNECT_TIMEOUT_LIMIT) == []
    assert time.monotonic() - t0 >= 1.0, "closed at once, before any timeout"
    bystander.check()


def test_connection_closed_by_client_before_connect_is_harmless(mqtt_clients, bystander):
    for _ in range(20):
        s = socket.create_connection((mqtt_clients.ep.host, mqtt_clients.ep.port))
        s.close()
    bystander.check()
