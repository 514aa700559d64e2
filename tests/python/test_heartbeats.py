"""Heartbeats and handshake timeouts, observed on a raw socket: the broker sends
heartbeats at half the negotiated interval when idle, closes a peer that stays
silent for two intervals, and drops a client that never finishes the handshake."""

from __future__ import annotations

import time

import pytest

from rawamqp import FRAME_HEARTBEAT, EOF, RawConnection, heartbeat_frame
from conftest import start_switchboard, stop_switchboard
from support import is_external


@pytest.fixture
def raw(fresh_broker):
    c = RawConnection(fresh_broker.host, fresh_broker.amqp_port)
    yield c
    c.close()


def test_server_sends_heartbeats_when_idle(raw):
    raw.handshake(heartbeat=2)
    start = time.monotonic()
    seen = 0
    # Keep our side alive, and count the server's heartbeats over ~3 s.
    while time.monotonic() - start < 3.2:
        raw.send(heartbeat_frame())
        try:
            f = raw.read_frame(timeout=0.9)
        except TimeoutError:
            continue
        if f.type == FRAME_HEARTBEAT:
            seen += 1
    assert seen >= 2, f"expected a heartbeat about every second, saw {seen}"


def test_silent_client_is_disconnected_after_missed_heartbeats(raw):
    raw.handshake(heartbeat=1)
    start = time.monotonic()
    with pytest.raises(EOF):
        while True:
            raw.read_frame(timeout=10)
    waited = time.monotonic() - start
    assert waited < 8, f"connection stayed open {waited:.1f} s without client traffic"


def test_heartbeat_zero_keeps_idle_connection_open(raw):
    raw.handshake(heartbeat=0)
    with pytest.raises(TimeoutError):
        raw.read_frame(timeout=2.5)
    raw.open_channel(1)


@pytest.mark.skipif(is_external(), reason="needs a broker started with a 1 s handshake timeout")
def test_client_that_never_finishes_the_handshake_is_dropped():
    b = start_switchboard(env={"SWITCHBOARD_AMQP__HANDSHAKE_TIMEOUT_MS": "1000"})
    try:
        silent = RawConnection(b.host, b.amqp_port)
        half = RawConnection(b.host, b.amqp_port)
        try:
            start = time.monotonic()
            # One sends nothing; the other stops after connection.start.
            half.send(b"AMQP\x00\x00\x09\x01")
            for c in (silent, half):
                c.wait_eof(timeout=10)
            assert time.monotonic() - start < 5
        finally:
            silent.close()
            half.close()
    finally:
        stop_switchboard(b)
