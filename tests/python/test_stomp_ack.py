"""STOMP acknowledgement modes (auto, client, client-individual), NACK and
redelivery, prefetch."""

from __future__ import annotations

import time

import pytest

import stomputil
from stomputil import qname


def _fill(stomp_clients, q, n, prefix="m"):
    p = stomp_clients.connected()
    for i in range(n):
        p.send(f"/queue/{q}", f"{prefix}{i}")
    p.disconnect()


def _leftover(stomp_clients, q, expect: int, window: float = 0.5):
    """Subscribe afresh (auto ack) and return what is still in the queue."""
    c = stomp_clients.connected()
    c.subscribe(f"/queue/{q}")
    msgs = c.take(expect) if expect else []
    assert c.quiet(window), f"more than {expect} message(s) left: {c.rec.messages}"
    c.disconnect()
    return msgs


def test_auto_ack_removes_delivered_messages(stomp_clients):
    q = stomp_clients.track_queue(qname())
    _fill(stomp_clients, q, 3)
    c = stomp_clients.connected()
    c.subscribe(f"/queue/{q}", ack="auto")
    assert c.bodies(3) == ["m0", "m1", "m2"]
    c.disconnect()
    assert _leftover(stomp_clients, q, 0) == []


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_client_ack_is_cumulative(stomp_clients, version):
    """ack:client -- acknowledging message 3 acknowledges 1-3; 4 and 5 stay unacked
    and come back, marked redelivered, after the consumer goes away."""
    q = stomp_clients.track_queue(qname())
    _fill(stomp_clients, q, 5)
    c = stomp_clients.connected(version)
    c.subscribe(f"/queue/{q}", ack="client")
    msgs = c.take(5)
    assert [m.body for m in msgs] == [f"m{i}" for i in range(5)]
    c.ack(msgs[2], receipt=True)
    c.disconnect()
    left = _leftover(stomp_clients, q, 2)
    assert [m.body for m in left] == ["m3", "m4"]
    assert all(m.headers.get("redelivered") == "true" for m in left), left


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_client_individual_ack_acks_only_that_message(stomp_clients, version):
    q = stomp_clients.track_queue(qname())
    _fill(stomp_clients, q, 4)
    c = stomp_clients.connected(version)
    c.subscribe(f"/queue/{q}", ack="client-individual")
    msgs = c.take(4)
    c.ack(msgs[2], receipt=True)
    c.disconnect()
    left = _leftover(stomp_clients, q, 3)
    assert sorted(m.body for m in left) == ["m0", "m1", "m3"]


def test_unacked_messages_return_to_other_consumers(stomp_clients):
    q = stomp_clients.track_queue(qname())
    _fill(stomp_clients, q, 2)
    a = stomp_clients.connected()
    a.subscribe(f"/queue/{q}", ack="client-individual")
    first = a.take(2)
    assert [m.headers.get("redelivered", "false") for m in first] == ["false", "false"]
    b = stomp_clients.connected()
    b.subscribe(f"/queue/{q}", ack="client-individual")
    assert b.quiet(0.3)            # still held by a
    a.close()                      # gone without acking
    again = b.take(2)
    assert [m.body for m in again] == ["m0", "m1"]
    assert all(m.headers.get("redelivered") == "true" for m in again)
    for m in again:
        b.ack(m)
    b.sync()


@pytest.mark.parametrize("false", ["false", "False"])
def test_nack_requeue_false_does_not_redeliver(stomp_clients, false):
    """NACK requeue:false drops (or dead-letters) the message, as RabbitMQ does; Python
    clients write the boolean as str(False)."""
    q = stomp_clients.track_queue(qname())
    _fill(stomp_clients, q, 2)
    c = stomp_clients.connected()
    c.subscribe(f"/queue/{q}", ack="client-individual")
    first, second = c.take(2)
    c.nack(first, receipt=True, requeue=false)
    c.ack(second, receipt=True)
    assert c.quiet(0.5), f"redelivered after requeue:{false}: {c.rec.messages}"
    c.disconnect()
    assert _leftover(stomp_clients, q, 0) == []


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_nack_requeues_and_redelivers(stomp_clients, version):
    q = stomp_clients.track_queue(qname())
    _fill(stomp_clients, q, 1)
    c = stomp_clients.connected(version)
    c.subscribe(f"/queue/{q}", ack="client-individual")
    m = c.take(1)[0]
    assert m.headers.get("redelivered", "false") == "false"
    c.nack(m, receipt=True)
    again = c.take(1)[0]
    assert again.body == "m0"
    assert again.headers.get("redelivered") == "true"
    c.ack(again, receipt=True)
    c.disconnect()
    assert _leftover(stomp_clients, q, 0) == []


def test_nack_in_client_mode_leaves_other_messages_unacked(stomp_clients):
    q = stomp_clients.track_queue(qname())
    _fill(stomp_clients, q, 2)
    c = stomp_clients.connected()
    c.subscribe(f"/queue/{q}", ack="client", **{"prefetch-count": "1"})
    m0 = c.take(1)[0]
    c.ack(m0)
    m1 = c.take(1)[0]
    c.nack(m1)
    again = c.take(1)[0]
    assert again.body == "m1" and again.headers.get("redelivered") == "true"
    c.ack(again, receipt=True)


def test_ack_with_receipt(stomp_clients):
    q = stomp_clients.track_queue(qname())
    _fill(stomp_clients, q, 1)
    c = stomp_clients.connected()
    c.subscribe(f"/queue/{q}", ack="client-individual")
    m = c.take(1)[0]
    c.conn.ack(m.headers["ack"], receipt="ack-1")
    c.receipt("ack-1")


def test_client_ack_message_1_0_by_message_id(stomp_clients):
    """STOMP 1.0 acknowledges with the message-id header."""
    q = stomp_clients.track_queue(qname())
    _fill(stomp_clients, q, 2)
    r = stomp_clients.raw()
    r.connect("1.0")
    r.send("SUBSCRIBE", [("destination", f"/queue/{q}"), ("ack", "client")])
    m0, m1 = r.expect("MESSAGE"), r.expect("MESSAGE")
    assert (m0.body, m1.body) == (b"m0", b"m1")
    r.send("ACK", [("message-id", m1["message-id"]), ("receipt", "a")])
    assert r.expect("RECEIPT")["receipt-id"] == "a"
    r.send("DISCONNECT", [("receipt", "bye")])
    r.expect("RECEIPT")
    assert _leftover(stomp_clients, q, 0) == []


def test_message_frame_has_ack_header_in_1_2_client_modes(stomp_clients):
    q = stomp_clients.track_queue(qname())
    _fill(stomp_clients, q, 2)
    c = stomp_clients.connected("1.2")
    c.subscribe(f"/queue/{q}", ack="client-individual")
    m0, m1 = c.take(2)
    assert m0.headers.get("ack") and m1.headers.get("ack")
    assert m0.headers["ack"] != m1.headers["ack"]
    c.ack(m0)
    c.ack(m1, receipt=True)


@pytest.mark.parametrize("ack", ["client", "client-individual"])
def test_prefetch_count_limits_unacked_deliveries(stomp_clients, ack):
    """RabbitMQ's prefetch-count: with 2 and no acks only 2 messages arrive; each
    ack lets one more through."""
    q = stomp_clients.track_queue(qname())
    _fill(stomp_clients, q, 5)
    c = stomp_clients.connected()
    c.subscribe(f"/queue/{q}", ack=ack, **{"prefetch-count": "2"})
    first = c.take(2)
    assert [m.body for m in first] == ["m0", "m1"]
    assert c.quiet(0.5), "more than prefetch-count messages in flight"
    c.ack(first[0])
    assert c.bodies(1) == ["m2"]
    assert c.quiet(0.3)


def test_prefetch_count_one_gives_round_robin_by_acks(stomp_clients):
    q = stomp_clients.track_queue(qname())
    _fill(stomp_clients, q, 4)
    slow, fast = stomp_clients.connected(), stomp_clients.connected()
    slow.subscribe(f"/queue/{q}", ack="client-individual", **{"prefetch-count": "1"})
    slow_first = slow.take(1)[0]
    fast.subscribe(f"/queue/{q}", ack="client-individual", **{"prefetch-count": "1"})
    got = []
    for _ in range(3):
        m = fast.take(1)[0]
        got.append(m.body)
        fast.ack(m)
    assert got == ["m1", "m2", "m3"]
    assert slow.quiet(0.2, 0)
    slow.ack(slow_first, receipt=True)


@stomputil.requires_switchboard("RabbitMQ ignores ActiveMQ's activemq.prefetchSize")
def test_activemq_prefetch_size_limits_unacked_deliveries(stomp_clients):
    q = stomp_clients.track_queue(qname())
    _fill(stomp_clients, q, 5)
    c = stomp_clients.connected()
    c.subscribe(f"/queue/{q}", ack="client-individual", **{"activemq.prefetchSize": "2"})
    first = c.take(2)
    assert c.quiet(0.5)
    c.ack(first[1])
    assert c.bodies(1) == ["m2"]
    assert c.quiet(0.3)


def test_auto_ack_delivers_everything_without_acks(stomp_clients):
    q = stomp_clients.track_queue(qname())
    _fill(stomp_clients, q, 50)
    c = stomp_clients.connected()
    c.subscribe(f"/queue/{q}")
    assert c.bodies(50) == [f"m{i}" for i in range(50)]


# --- DISCONNECT and auto-ack ------------------------------------------------------


@stomputil.requires_switchboard("RabbitMQ's plugin keeps the subscriptions until it "
                                "has answered the DISCONNECT (the window this pins shut)")
def test_disconnect_cancels_subscriptions_before_its_receipt(stomp_clients, ch):
    """A client that sent DISCONNECT has stopped listening, so the broker drops its
    subscriptions as soon as it reads the frame, not when it has answered it: the
    RECEIPT waits for the client's earlier persistent SEND to be durable (a 4 MiB body
    makes that wait long enough to watch), and a message published meanwhile must
    not be handed to the departing client (with ack:auto it would be settled on the
    way out and lost), but wait in the queue for the next consumer, undelivered."""
    q = stomp_clients.track_queue(qname())
    side = stomp_clients.track_queue(qname("side"))
    producer = stomp_clients.connected()
    leaver = stomp_clients.raw()
    leaver.connect()
    leaver.send("SUBSCRIBE", [("destination", f"/queue/{q}"), ("id", "s"), ("ack", "auto"),
                              ("receipt", "s")])
    leaver.expect("RECEIPT")
    assert ch.queue_declare(q, passive=True).method.consumer_count == 1
    leaver.send_bytes(
        stomputil.encode_frame("SEND", [("destination", f"/queue/{side}"),
                                        ("persistent", "true")], b"d" * (4 << 20))
        + stomputil.encode_frame("DISCONNECT", [("receipt", "bye")]))
    deadline = time.monotonic() + 5
    while ch.queue_declare(q, passive=True).method.consumer_count != 0:
        assert time.monotonic() < deadline, "the subscription outlived the DISCONNECT"
    # The RECEIPT may already be here on a fast disk: what matters is that the
    # subscription went first, and that nothing sent after it reaches the leaver.
    early = leaver.poll(0.0)
    assert early is None or early.command == "RECEIPT", early
    producer.send(f"/queue/{q}", "after")
    frames = ([early] if early is not None else []) + leaver.wait_closed()
    assert [f.command for f in frames] == ["RECEIPT"], frames
    left = _leftover(stomp_clients, q, 1)
    assert [m.body for m in left] == ["after"]
    assert left[0].headers.get("redelivered") == "false", "handed to the departing client"
