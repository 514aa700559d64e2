"""STOMP as RabbitMQ's STOMP plugin answers it, for apps written against RabbitMQ:
destination parsing, x-queue-name, durable subscriptions without an id, message-id
on SEND, and receipts of transactional SENDs. Validated against RabbitMQ 3.10's
rabbitmq_stomp (SWITCHBOARD_STOMP_URL=stomp://127.0.0.1:61613 with
SWITCHBOARD_AMQP_URL naming the same node)."""

from __future__ import annotations

import pytest

import stomputil
from stomputil import qname, uid


@pytest.fixture
def amqp(stomp_amqp):
    c = stomp_amqp.connect()
    yield c.channel()
    try:
        c.close()
    except Exception:
        pass


def _refused(stomp_clients, command, headers, body=""):
    """The ERROR a frame gets. (Switchboard then closes the connection, as the STOMP
    specification says; RabbitMQ 3.10 keeps it open after these.)"""
    r = stomp_clients.raw()
    r.connect()
    r.send(command, headers, body)
    return r.expect("ERROR")


def test_a_bare_destination_is_a_queue(stomp_clients):
    q = stomp_clients.track_queue(qname())
    c = stomp_clients.connected()
    c.subscribe(f"/queue/{q}")
    c.send(q, "bare")
    m = c.take(1)[0]
    assert m.body == "bare"
    assert m.headers["destination"] == f"/queue/{q}"


@pytest.mark.parametrize("dest,kind,rest", [
    ("/queue/a/b", "queue", "/a/b"),
    ("/topic/a/b", "topic", "/a/b"),
    ("/exchange/amq.direct/k/extra", "exchange", "/amq.direct/k/extra"),
])
def test_destinations_with_extra_parts_are_invalid(stomp_clients, dest, kind, rest):
    err = _refused(stomp_clients, "SEND", [("destination", dest)], "x")
    assert err["message"] == "Invalid destination"
    assert err.body.decode().strip() == f"'{rest}' is not a valid {kind} destination"


def test_unknown_destination_kind(stomp_clients):
    err = _refused(stomp_clients, "SUBSCRIBE", [("destination", "/bogus/x"), ("id", "s")])
    assert err["message"] == "Unknown destination"
    assert err.body.decode().startswith("'/bogus/x' is not a valid destination.")


def test_message_from_a_keyless_exchange_has_no_trailing_slash(stomp_clients):
    c = stomp_clients.connected()
    c.subscribe("/exchange/amq.fanout")
    c.send("/exchange/amq.fanout", "to all")
    m = c.take(1)[0]
    assert m.headers["destination"] == "/exchange/amq.fanout"


def test_message_id_on_send_is_refused(stomp_clients):
    q = stomp_clients.track_queue(qname())
    err = _refused(stomp_clients, "SEND",
                   [("destination", f"/queue/{q}"), ("message-id", "mine")], "x")
    assert err["message"] == "Invalid header"


def test_durable_topic_subscription_needs_an_id(stomp_clients):
    # STOMP 1.0 has no required id; the durable subscription still needs one.
    r = stomp_clients.raw()
    r.connect(version=None)
    r.send("SUBSCRIBE", [("destination", f"/topic/pytest.{uid()}"), ("durable", "true"),
                         ("auto-delete", "false")])
    err = r.expect("ERROR")
    assert err["message"] == "Missing Header"
    assert "Header 'id' is required for durable subscriptions" in err.body.decode()


def test_x_queue_name_names_a_topic_subscriptions_queue(stomp_clients, amqp):
    q = stomp_clients.track_queue(qname("named"))
    t = f"pytest.{uid()}.named"
    sub = stomp_clients.connected()
    sub.subscribe(f"/topic/{t}", id="s", headers={"x-queue-name": q, "durable": "true",
                                                  "auto-delete": "false"})
    p = stomp_clients.connected()
    p.send(f"/topic/{t}", "first")
    assert sub.bodies(1) == ["first"]
    sub.unsubscribe("s")
    p.send(f"/topic/{t}", "while away")
    # The queue is the one the header named, so an AMQP app reads the same messages.
    method, _, body = amqp.basic_get(q, auto_ack=True)
    assert method is not None and body == b"while away"


def test_transactional_send_is_receipted_at_commit(stomp_clients):
    q = stomp_clients.track_queue(qname())
    r = stomp_clients.raw()
    r.connect()
    r.send("BEGIN", [("transaction", "t")])
    r.send("SEND", [("destination", f"/queue/{q}"), ("transaction", "t"),
                    ("receipt", "in-tx")], "later")
    assert r.poll(0.5) is None, "a transactional SEND was receipted before COMMIT"
    r.send("COMMIT", [("transaction", "t"), ("receipt", "commit")])
    # RabbitMQ answers the COMMIT first and the SEND once its confirm is in; both
    # come after the COMMIT, which is the point.
    assert sorted(r.expect("RECEIPT")["receipt-id"] for _ in range(2)) == ["commit", "in-tx"]


@pytest.mark.parametrize("frames,message,body", [
    ([("FOO", [])], "Bad command", 'Could not interpret command "FOO"'),
    ([("SEND", [])], "Missing destination", "\"SEND\" must include a 'destination' header"),
    ([("SUBSCRIBE", [("destination", "/queue/pytest.stomp-dup"), ("id", "a")]),
      ("SUBSCRIBE", [("destination", "/queue/pytest.stomp-dup"), ("id", "a")])],
     "Duplicated subscription identifier", "already exists."),
    ([("UNSUBSCRIBE", [("id", "zz")])], "No subscription found",
     "UNSUBSCRIBE must refer to an existing subscription."),
    ([("COMMIT", [("transaction", "zz")])], "Bad transaction",
     'Invalid transaction identifier: "zz"'),
    ([("SEND", [("destination", "/exchange/pytest-none")])], "not_found",
     "NOT_FOUND - no exchange 'pytest-none' in vhost '/'"),
    ([("SUBSCRIBE", [("destination", "/amq/queue/pytest-none"), ("id", "a")])], "not_found",
     "NOT_FOUND - no queue 'pytest-none' in vhost '/'"),
], ids=["command", "destination", "duplicate", "unsubscribe", "transaction", "exchange",
        "amq-queue"])
def test_error_frames_in_rabbitmqs_words(stomp_clients, frames, message, body):
    r = stomp_clients.raw()
    r.connect()
    for command, headers in frames:
        r.send(command, headers, b"x" if command == "SEND" else b"")
    err = r.expect("ERROR")
    assert err["message"] == message
    assert err["version"] == "1.0,1.1,1.2"
    assert body in err.body.decode()


@pytest.mark.parametrize("kw,body", [
    ({"passcode": "wrong"}, "Access refused for user 'guest'"),
    ({"host": "pytest-no-such-vhost"}, "Virtual host 'pytest-no-such-vhost' access denied"),
], ids=["login", "vhost"])
def test_refused_connect_in_rabbitmqs_words(stomp_clients, kw, body):
    r = stomp_clients.raw()
    err = r.connect(expect="ERROR", **kw)
    assert err["message"] == "Bad CONNECT"
    assert body in err.body.decode()


def test_version_mismatch_in_rabbitmqs_words(stomp_clients):
    r = stomp_clients.raw()
    err = r.connect(version="9.9", expect="ERROR")
    assert err["message"] == "Version mismatch"
    assert err["version"] == "1.0,1.1,1.2"
