"""STOMP heart-beating (1.1+): server-to-client EOLs, and closing silent clients."""

from __future__ import annotations

import time

import pytest

from stomputil import qname


def _negotiated(f):
    sx, sy = (int(x) for x in f["heart-beat"].split(","))
    return sx, sy


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_server_sends_heart_beats_when_asked(stomp_clients, version):
    """heart-beat:0,1000 -- the client wants to hear from the server every second:
    it gets an EOL at least about every second (and is not flooded)."""
    r = stomp_clients.raw()
    f = r.connect(version, heart_beat="0,1000")
    sx, sy = _negotiated(f)
    assert sx > 0, f"server will not send heart-beats: {f}"
    interval = max(sx, 1000) / 1000
    start = time.monotonic()
    assert r.poll(3.5 * interval) is None          # no frames, only EOLs
    beats = [start] + r.heartbeats
    gaps = [b - a for a, b in zip(beats, beats[1:])]
    assert len(r.heartbeats) >= 2, f"only {len(r.heartbeats)} heart-beat(s) in 3.5 intervals"
    assert max(gaps + [time.monotonic() - beats[-1]]) <= 1.6 * interval, gaps
    assert min(gaps[1:] or [1]) >= 0.1, f"heart-beats flood the client: {gaps}"
    assert not r.eof


def test_no_heart_beats_unless_asked(stomp_clients):
    r = stomp_clients.raw()
    r.connect("1.2", heart_beat="0,0")
    assert r.poll(2.5) is None
    assert r.heartbeats == []
    assert not r.eof


def test_silent_client_without_heart_beats_stays_connected(stomp_clients):
    r = stomp_clients.raw()
    r.connect("1.2")                                # no heart-beat header: 0,0
    assert not r.is_closed(3.0)
    r.roundtrip()


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_silent_client_that_promised_heart_beats_is_disconnected(stomp_clients, version):
    """heart-beat:1000,0 -- the client promises something every second, then sends
    nothing: the broker closes the connection within a few seconds, not at once."""
    r = stomp_clients.raw()
    f = r.connect(version, heart_beat="1000,0")
    _, sy = _negotiated(f)
    assert sy > 0, f"server does not expect heart-beats: {f}"
    start = time.monotonic()
    assert r.is_closed(max(sy, 1000) / 1000 * 3 + 3), "silent client still connected"
    took = time.monotonic() - start
    assert took >= 0.9 * max(sy, 1000) / 1000, f"closed after {took:.2f}s: no grace"


def test_client_sending_heart_beats_stays_connected(stomp_clients):
    r = stomp_clients.raw()
    f = r.connect("1.2", heart_beat="1000,0")
    _, sy = _negotiated(f)
    interval = max(sy, 1000) / 1000
    deadline = time.monotonic() + 4 * interval
    while time.monotonic() < deadline:
        r.send_bytes(b"\n")
        assert not r.is_closed(interval / 3)
    r.roundtrip()                                   # and it still works


def test_client_frames_count_as_heart_beats(stomp_clients):
    r = stomp_clients.raw()
    f = r.connect("1.2", heart_beat="1000,0")
    _, sy = _negotiated(f)
    interval = max(sy, 1000) / 1000
    deadline = time.monotonic() + 4 * interval
    while time.monotonic() < deadline:
        r.roundtrip()                               # a BEGIN/ABORT pair, no EOLs
        time.sleep(interval / 3)
    assert not r.eof


def test_crlf_heart_beats_are_accepted(stomp_clients):
    r = stomp_clients.raw()
    f = r.connect("1.2", heart_beat="1000,0")
    _, sy = _negotiated(f)
    interval = max(sy, 1000) / 1000
    deadline = time.monotonic() + 3.5 * interval
    while time.monotonic() < deadline:
        r.send_bytes(b"\r\n")
        assert not r.is_closed(interval / 3)
    r.roundtrip()


def test_stomp_py_with_heart_beats_both_ways(stomp_clients):
    q = stomp_clients.track_queue(qname())
    c = stomp_clients("1.2", heartbeats=(1000, 1000)).connect()
    c.subscribe(f"/queue/{q}")
    time.sleep(3.5)
    assert c.is_connected() and not c.rec.heartbeat_timeout
    assert len(c.rec.heartbeats) >= 2
    c.send(f"/queue/{q}", "after a quiet while")
    assert c.bodies(1) == ["after a quiet while"]


def test_messages_flow_alongside_heart_beats(stomp_clients):
    q = stomp_clients.track_queue(qname())
    r = stomp_clients.raw()
    r.connect("1.2", heart_beat="1000,1000")
    r.send("SUBSCRIBE", [("destination", f"/queue/{q}"), ("id", "0")])
    sender = stomp_clients.connected()
    for i in range(5):
        sender.send(f"/queue/{q}", f"m{i}", receipt=False)
        r.send_bytes(b"\n")
        time.sleep(0.4)
    got = [r.expect("MESSAGE").body for _ in range(5)]
    assert got == [f"m{i}".encode() for i in range(5)]
    assert not r.eof


@pytest.mark.parametrize("asked,answer", [("250,1500", "1000,1000"), ("4999,10000", "10000,4000")])
def test_heart_beats_are_negotiated_in_whole_seconds_as_rabbitmq(stomp_clients, asked, answer):
    r = stomp_clients.raw()
    assert r.connect("1.2", heart_beat=asked)["heart-beat"] == answer
