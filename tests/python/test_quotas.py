"""Limits that keep one tenant from taking the broker (`[quotas]`, and the AMQP
budget for half-sent messages): each refusal is the protocol's own error and
shows in /metrics, and what was already admitted keeps working."""

from __future__ import annotations

import socket
import time
import urllib.request

import pika
import pytest
import stomp

import mqttutil
import support
from conftest import start_switchboard, stop_switchboard
from rawamqp import (BASIC_PUBLISH, RawConnection, basic_publish_args, body_frame,
                     content_header_frame, method_frame)

pytestmark = support.requires_switchboard("starts brokers with their own limits")


@pytest.fixture
def node(tmp_path):
    started = []

    def start(quotas: str, extra: str = ""):
        cfg = tmp_path / "switchboard.toml"
        cfg.write_text('[[users]]\nname = "guest"\npassword = "guest"\n'
                       'tags = ["administrator"]\n' + extra + "\n[quotas]\n" + quotas)
        b = start_switchboard(env={"SWITCHBOARD_CONFIG": str(cfg)})
        started.append(b)
        return b

    yield start
    for b in started:
        stop_switchboard(b)


def refused_total(b, reason: str) -> float:
    host, port = b.ports["admin"]
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(f'switchboard_refused_total{{reason="{reason}"}}'):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no refusal series for {reason}")


def test_connections_per_user_on_every_protocol(node):
    b = node("max_connections_per_user = 2\n")
    first, second = b.connect(), b.connect()
    # pika reads a 530 during the handshake as a probable access denial.
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as e:
        b.connect()
    assert ('(530) "NOT_ALLOWED - connection refused for user \'guest\': '
            'user connection limit (2) is reached"') in str(e.value)
    ep = mqttutil.endpoint_from_ports(b.ports)
    m = mqttutil.Client(ep, version=5, username="guest", password="guest")
    assert m.connect(expect_ok=False).rc == 0x97
    m.close()
    host, port = b.ports["stomp"]
    s = stomp.Connection12([(host, port)], heartbeats=(0, 0))
    with pytest.raises(stomp.exception.ConnectFailedException):
        s.connect("guest", "guest", wait=True)
    # What was admitted still works; a closed connection frees its place.
    first.channel().queue_declare("still-works", auto_delete=True)
    second.close()
    third = b.connect()
    third.close()
    first.close()
    assert refused_total(b, "user_connection_limit") >= 3


def test_connections_per_vhost(node):
    b = node("max_connections_per_vhost = 1\n")
    c = b.connect()
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as e:
        b.connect()
    assert ('(530) "NOT_ALLOWED - access to vhost \'/\' refused for user \'guest\': '
            'vhost connection limit (1) is reached"') in str(e.value)
    c.close()
    assert refused_total(b, "vhost_connection_limit") == 1


def test_queues_per_vhost(node):
    b = node("max_queues_per_vhost = 2\n")
    conn = b.connect()
    ch = conn.channel()
    ch.queue_declare("q1")
    ch.queue_declare("q2")
    ch.queue_declare("q1")  # an existing queue may be declared again
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare("q3")
    assert e.value.reply_code == 406
    assert e.value.reply_text == ("PRECONDITION_FAILED - cannot declare queue 'q3': "
                                  "queue limit in vhost '/' (2) is reached")
    ch = conn.channel()
    ch.queue_delete("q2")
    ch.queue_declare("q3")
    conn.close()
    assert refused_total(b, "vhost_queue_limit") == 1


def test_connection_rate_per_source(node):
    b = node("connections_per_second_per_source = 5\n")
    host, port = b.ports["amqp"]
    closed = 0
    socks = []
    for _ in range(20):
        s = socket.create_connection((host, port), timeout=5)
        socks.append(s)
    for s in socks:
        s.sendall(b"AMQP\x00\x00\x09\x01")
        s.settimeout(5)
        try:
            data = s.recv(1)
        except (ConnectionResetError, socket.timeout):
            data = b""
        closed += data == b""
        s.close()
    # A burst of 5 is allowed (a few more as the bucket refills meanwhile).
    assert 10 <= closed <= 15, closed
    time.sleep(1.2)
    b.connect().close()
    assert refused_total(b, "source_connection_rate") == closed


def test_amqp_budget_for_half_sent_messages(node):
    """A client declaring large messages on many channels without sending them is
    stopped at the connection's budget (amqp.max_partial_bytes)."""
    b = node("", extra="[amqp]\nmax_message_size = 1048576\nmax_partial_bytes = 2097152\n")
    host, port = b.ports["amqp"]
    raw = RawConnection(host, port)
    raw.handshake()
    for ch in (1, 2, 3):
        raw.open_channel(ch)
        raw.send(method_frame(ch, BASIC_PUBLISH, basic_publish_args(b"", b"q")))
        raw.send(content_header_frame(ch, 1_000_000))
        raw.send(body_frame(ch, b"x" * 1000))
    close = raw.expect_connection_close()
    assert close.reply_code == 506
    assert "above the budget of 2097152" in close.reply_text
    raw.close()
    # Within the budget, large messages go through as always.
    conn = b.connect()
    ch = conn.channel()
    ch.queue_declare("big")
    ch.basic_publish("", "big", b"y" * 1_000_000)
    assert len(ch.basic_get("big", auto_ack=True)[2]) == 1_000_000
    conn.close()
