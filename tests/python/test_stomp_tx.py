"""STOMP receipts and transactions (BEGIN / COMMIT / ABORT)."""

from __future__ import annotations

import pytest

import stomputil
from stomputil import qname, uid


# --- receipts --------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_receipts_for_every_client_frame(stomp_clients, version):
    q = stomp_clients.track_queue(qname())
    r = stomp_clients.raw()
    r.connect(version)
    dest = [("destination", f"/queue/{q}")]
    frames = [
        ("SUBSCRIBE", dest + [("id", "s1"), ("ack", "client")]),
        ("SEND", dest),
        ("BEGIN", [("transaction", "t1")]),
        ("COMMIT", [("transaction", "t1")]),
        ("BEGIN", [("transaction", "t2")]),
        ("ABORT", [("transaction", "t2")]),
    ]
    msgs = []
    for i, (cmd, hdrs) in enumerate(frames):
        rid = f"{cmd.lower()}-{i}-{uid()}"
        r.send(cmd, hdrs + [("receipt", rid)], "body" if cmd == "SEND" else b"")
        f = r.recv()
        while f.command == "MESSAGE":       # the SEND's message, before or after
            msgs.append(f)
            f = r.recv()
        assert f.command == "RECEIPT" and f["receipt-id"] == rid, (cmd, f)
    msg = msgs[0] if msgs else r.expect("MESSAGE")
    ack = [("message-id", msg["message-id"])] if version == "1.0" else \
        [("id", msg["ack"])] if version == "1.2" else \
        [("message-id", msg["message-id"]), ("subscription", "s1")]
    r.send("ACK", ack + [("receipt", "ack-1")])
    assert r.expect("RECEIPT")["receipt-id"] == "ack-1"
    r.send("UNSUBSCRIBE", [("id", "s1"), ("receipt", "unsub-1")])
    assert r.expect("RECEIPT")["receipt-id"] == "unsub-1"
    r.send("DISCONNECT", [("receipt", "disc-1")])
    assert r.expect("RECEIPT")["receipt-id"] == "disc-1"
    assert r.is_closed(stomputil.close_timeout())


def test_receipt_ids_are_echoed_exactly(stomp_clients):
    """Receipt ids are opaque: escaped characters and long values come back as sent."""
    r = stomp_clients.raw()
    r.connect("1.2")
    for rid in ["with:colon", "with space", "ünïcödé", "x" * 500]:
        r.send("BEGIN", [("transaction", "t"), ("receipt", rid)])
        assert r.expect("RECEIPT")["receipt-id"] == rid
        r.send("ABORT", [("transaction", "t")])


def test_receipts_come_in_order(stomp_clients):
    q = stomp_clients.track_queue(qname())
    r = stomp_clients.raw()
    r.connect("1.2")
    for i in range(50):
        r.send("SEND", [("destination", f"/queue/{q}"), ("receipt", f"r{i}")], f"m{i}")
    assert [r.expect("RECEIPT")["receipt-id"] for _ in range(50)] == \
        [f"r{i}" for i in range(50)]


def test_send_receipt_means_the_message_is_in_the_queue(stomp_clients):
    q = stomp_clients.track_queue(qname())
    p = stomp_clients.connected()
    p.send(f"/queue/{q}", "kept", receipt=True)
    p.close()                                  # abruptly, right after the receipt
    c = stomp_clients.connected()
    c.subscribe(f"/queue/{q}")
    assert c.bodies(1) == ["kept"]


# --- transactions ----------------------------------------------------------------


def test_sends_in_a_transaction_appear_at_commit(stomp_clients):
    q = stomp_clients.track_queue(qname())
    consumer = stomp_clients.connected()
    consumer.subscribe(f"/queue/{q}")
    p = stomp_clients.connected()
    p.conn.begin("tx-1")
    for i in range(3):
        p.send(f"/queue/{q}", f"m{i}", receipt=False, transaction="tx-1")
    p.sync()
    assert consumer.quiet(0.5), "a transactional SEND was delivered before COMMIT"
    p.conn.commit("tx-1", headers={"receipt": "commit-1"})
    p.receipt("commit-1")
    assert consumer.bodies(3) == ["m0", "m1", "m2"]


def test_abort_discards_transactional_sends(stomp_clients):
    q = stomp_clients.track_queue(qname())
    consumer = stomp_clients.connected()
    consumer.subscribe(f"/queue/{q}")
    p = stomp_clients.connected()
    p.conn.begin("tx-a")
    p.send(f"/queue/{q}", "discarded", receipt=False, transaction="tx-a")
    p.send(f"/queue/{q}", "outside", receipt=False)
    p.conn.abort("tx-a", headers={"receipt": "abort-1"})
    p.receipt("abort-1")
    assert consumer.bodies(1) == ["outside"]
    assert consumer.quiet(0.5)


def test_transaction_spans_destinations(stomp_clients):
    q = stomp_clients.track_queue(qname())
    t = f"pytest.{uid()}.tx"
    qc, tc = stomp_clients.connected(), stomp_clients.connected()
    qc.subscribe(f"/queue/{q}")
    tc.subscribe(f"/topic/{t}")
    p = stomp_clients.connected()
    p.conn.begin("tx-x")
    p.send(f"/queue/{q}", "to queue", receipt=False, transaction="tx-x")
    p.send(f"/topic/{t}", "to topic", receipt=False, transaction="tx-x")
    p.sync()
    assert qc.quiet(0.3) and tc.quiet(0.0)
    p.conn.commit("tx-x")
    assert qc.bodies(1) == ["to queue"]
    assert tc.bodies(1) == ["to topic"]


def test_two_transactions_on_one_connection_are_independent(stomp_clients):
    q = stomp_clients.track_queue(qname())
    consumer = stomp_clients.connected()
    consumer.subscribe(f"/queue/{q}")
    p = stomp_clients.connected()
    p.conn.begin("A")
    p.conn.begin("B")
    p.send(f"/queue/{q}", "a", receipt=False, transaction="A")
    p.send(f"/queue/{q}", "b", receipt=False, transaction="B")
    p.conn.abort("A")
    p.conn.commit("B")
    assert consumer.bodies(1) == ["b"]
    assert consumer.quiet(0.3)


def test_disconnect_aborts_an_open_transaction(stomp_clients):
    q = stomp_clients.track_queue(qname())
    p = stomp_clients.connected()
    p.conn.begin("open")
    p.send(f"/queue/{q}", "never committed", receipt=False, transaction="open")
    p.disconnect()
    consumer = stomp_clients.connected()
    consumer.subscribe(f"/queue/{q}")
    assert consumer.quiet(0.5)


def test_ack_in_a_transaction_takes_effect_at_commit(stomp_clients):
    """With prefetch-count 1 the next message arrives only when the ACK counts: not
    at the transactional ACK, but at COMMIT."""
    q = stomp_clients.track_queue(qname())
    p = stomp_clients.connected()
    for i in range(2):
        p.send(f"/queue/{q}", f"m{i}")
    c = stomp_clients.connected()
    c.subscribe(f"/queue/{q}", ack="client-individual", **{"prefetch-count": "1"})
    m0 = c.take(1)[0]
    c.conn.begin("tx-ack")
    c.ack(m0, transaction="tx-ack")
    c.sync()
    assert c.quiet(0.5), "the transactional ACK took effect before COMMIT"
    c.conn.commit("tx-ack")
    m1 = c.take(1)[0]
    assert m1.body == "m1"
    c.ack(m1, receipt=True)


def test_ack_in_an_aborted_transaction_leaves_the_message_unacked(stomp_clients):
    q = stomp_clients.track_queue(qname())
    stomp_clients.connected().send(f"/queue/{q}", "m0")
    c = stomp_clients.connected()
    c.subscribe(f"/queue/{q}", ack="client-individual")
    m0 = c.take(1)[0]
    c.conn.begin("tx-ab")
    c.ack(m0, transaction="tx-ab")
    c.conn.abort("tx-ab", headers={"receipt": "ab"})
    c.receipt("ab")
    c.disconnect()
    again = stomp_clients.connected()
    again.subscribe(f"/queue/{q}")
    m = again.take(1)[0]
    assert m.body == "m0" and m.headers.get("redelivered") == "true"


def test_ack_in_a_committed_transaction_is_final(stomp_clients):
    q = stomp_clients.track_queue(qname())
    stomp_clients.connected().send(f"/queue/{q}", "m0")
    c = stomp_clients.connected()
    c.subscribe(f"/queue/{q}", ack="client-individual")
    m0 = c.take(1)[0]
    c.conn.begin("tx-c")
    c.ack(m0, transaction="tx-c")
    c.conn.commit("tx-c", headers={"receipt": "cm"})
    c.receipt("cm")
    c.disconnect()
    again = stomp_clients.connected()
    again.subscribe(f"/queue/{q}")
    assert again.quiet(0.5)


@pytest.mark.parametrize("cmd", ["COMMIT", "ABORT"])
def test_unknown_transaction_is_an_error(stomp_clients, cmd):
    r = stomp_clients.raw()
    r.connect("1.2")
    r.send(cmd, [("transaction", f"never-begun-{uid()}")])
    f = r.expect("ERROR")
    assert f.get("message")


def test_send_in_unknown_transaction_is_an_error(stomp_clients):
    q = stomp_clients.track_queue(qname())
    r = stomp_clients.raw()
    r.connect("1.2")
    r.send("SEND", [("destination", f"/queue/{q}"), ("transaction", "nope")], "x")
    f = r.expect("ERROR")
    assert f.get("message")
