"""replication.mode with two real processes (docs/REPLICATION.md): in `sync` mode a
confirmation waits for the standby, in `async` mode it does not; a standby that is
only briefly slow is not declared down; an async pair serves and confirms while its
standby is down, the standby catches up when it comes back, and a failover after
that loses nothing.

Switchboard only: no peer broker runs this pair."""

from __future__ import annotations

import signal
import threading
import time

import pika
import pytest

from pairutil import Pair
from support import requires_switchboard

pytestmark = requires_switchboard("starts its own pair of Switchboard processes")


def connect(addr) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.ConnectionParameters(
        *addr, connection_attempts=5, retry_delay=0.2, socket_timeout=10))


def publish(ch, queue: str, body: str) -> float:
    """One persistent publish; returns the seconds until its confirm."""
    t0 = time.monotonic()
    ch.basic_publish("", queue, body.encode(), pika.BasicProperties(delivery_mode=2),
                     mandatory=True)
    return time.monotonic() - t0


def confirming_channel(addr, queue: str):
    c = connect(addr)
    ch = c.channel()
    ch.confirm_delivery()
    ch.queue_declare(queue, durable=True)
    return c, ch


def drain(addr, queue: str):
    c = connect(addr)
    ch = c.channel()
    got = []
    while True:
        _, _, body = ch.basic_get(queue, auto_ack=True)
        if body is None:
            break
        got.append(body.decode())
    c.close()
    return got


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_briefly_frozen_standby_holds_sync_confirms_only_and_stays_in_sync(mode):
    pair = Pair("file", extra_env={"SWITCHBOARD_REPLICATION__MODE": mode,
                                   "SWITCHBOARD_REPLICATION__ACK_TIMEOUT_MS": "2000"})
    try:
        a = pair.nodes["a"]
        pair.wait_in_sync("a")
        c, ch = confirming_channel(a.addr("amqp"), "modes-frozen")
        publish(ch, "modes-frozen", "warm")
        # Idle for longer than ack_timeout_ms: the standby's heartbeat acks go on,
        # but none of them advances.
        time.sleep(2.5)
        pair.signal("b", signal.SIGSTOP)
        took = []
        t = threading.Thread(target=lambda: took.append(publish(ch, "modes-frozen", "held")),
                             daemon=True)
        t.start()
        # Frozen for well under ack_timeout_ms: slow, not down.
        time.sleep(1.2)
        pair.signal("b", signal.SIGCONT)
        t.join(timeout=15)
        assert took, "never confirmed"
        if mode == "sync":
            assert took[0] >= 1.0, f"sync confirmed in {took[0]:.3f}s without the standby"
        else:
            assert took[0] < 0.9, f"async waited {took[0]:.3f}s for a frozen standby"
        assert "stopped acknowledging" not in a.log(), \
            "a standby frozen for 1.2 s counted as down (ack_timeout_ms = 2000)"
        assert pair.status("a").get("in_sync") == "true"
        c.close()
        pair.wait_caught_up("a")
        pair.kill("a")
        pair.wait_role("b", "active")
        assert sorted(drain(pair.nodes["b"].addr("amqp"), "modes-frozen")) == ["held", "warm"]
    finally:
        pair.close()


def test_async_confirms_while_the_standby_is_down_and_a_failover_after_catch_up_loses_nothing():
    # standby_down = block holds every sync confirmation while the standby is down
    # (test_replication.py); in async mode confirmations never wait for it.
    pair = Pair("file", extra_env={"SWITCHBOARD_REPLICATION__MODE": "async",
                                   "SWITCHBOARD_REPLICATION__STANDBY_DOWN": "block"})
    try:
        a, b = pair.nodes["a"], pair.nodes["b"]
        pair.wait_in_sync("a")
        # Through the standby's address: forwarded to the active.
        c, ch = confirming_channel(b.addr("amqp"), "modes-async")
        for i in range(100):
            publish(ch, "modes-async", f"before-{i}")
        c.close()
        pair.kill("b")
        # More than the 1,000 records of catch-up slack, so the standby's return is
        # a real catch-up before it rejoins.
        c, ch = confirming_channel(a.addr("amqp"), "modes-async")
        slowest = max(publish(ch, "modes-async", f"alone-{i}") for i in range(1500))
        # In sync mode the first of them would wait until the standby is back.
        assert slowest < 5.0, f"a confirm waited {slowest:.2f}s with the standby down"
        ch.queue_declare("modes-async-2", durable=True)
        for i in range(50):
            publish(ch, "modes-async-2", f"second-{i}")
        c.close()
        assert pair.status("a").get("in_sync") == "false"
        pair.start("b")
        pair.wait_role("b", "standby")
        caught = pair.wait_caught_up("a")
        assert caught["lag_lsn"] == 0
        pair.kill("a")
        pair.wait_role("b", "active")
        want = {f"before-{i}" for i in range(100)} | {f"alone-{i}" for i in range(1500)}
        got = drain(b.addr("amqp"), "modes-async")
        assert len(got) == len(want) and set(got) == want
        assert sorted(drain(b.addr("amqp"), "modes-async-2")) == \
            sorted(f"second-{i}" for i in range(50))
    finally:
        pair.close()
