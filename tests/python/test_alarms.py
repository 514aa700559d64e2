"""Resource alarms as a publisher sees them: with the free-disk watermark above what
the disk has, the broker sends connection.blocked and takes no publish; after the
limit is lowered (config file + SIGHUP) it sends connection.unblocked and the held
messages arrive. Nothing is dropped."""

from __future__ import annotations

import signal
import time

import pika
import pytest

from conftest import start_switchboard, stop_switchboard
from support import is_external, uniq

pytestmark = pytest.mark.skipif(is_external(), reason="controls the broker's limits")


def _count(params, q):
    c = pika.BlockingConnection(params)
    try:
        return c.channel().queue_declare(q, passive=True).method.message_count
    finally:
        c.close()


def test_disk_alarm_blocks_publishers_until_the_limit_is_lowered(tmp_path):
    cfg = tmp_path / "switchboard.toml"
    cfg.write_text("[limits]\ndisk_free_limit = 9000000000000000000\n")
    b = start_switchboard(env={"SWITCHBOARD_CONFIG": str(cfg)})
    try:
        params = pika.URLParameters(b.amqp_url)
        q = uniq("alarm")
        setup = pika.BlockingConnection(params)
        setup.channel().queue_declare(q, durable=True)
        setup.close()

        conn = pika.BlockingConnection(params)
        events = []
        conn.add_on_connection_blocked_callback(lambda _c, m: events.append(("blocked", m.method.reason)))
        conn.add_on_connection_unblocked_callback(lambda _c, _m: events.append(("unblocked", None)))
        ch = conn.channel()
        for i in range(5):
            ch.basic_publish("", q, f"m{i}".encode(), pika.BasicProperties(delivery_mode=2))
        deadline = time.monotonic() + 10
        while not events and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.2)
        assert events and events[0][0] == "blocked", events
        assert "disk" in events[0][1]
        conn.process_data_events(time_limit=1.0)
        assert _count(params, q) == 0, "a publish got through during the alarm"

        cfg.write_text("[limits]\ndisk_free_limit = 0\n")
        b.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while ("unblocked", None) not in events and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.2)
        assert ("unblocked", None) in events, events
        deadline = time.monotonic() + 10
        while _count(params, q) < 5 and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.2)
        assert _count(params, q) == 5, "held publishes were lost"
        conn.close()
    finally:
        stop_switchboard(b)
