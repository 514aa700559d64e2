"""STOMP destinations: /queue, /topic, /exchange, /amq/queue, /temp-queue (with
reply-to), and durable topic subscriptions in RabbitMQ's and ActiveMQ's dialects."""

from __future__ import annotations

import pytest

import stomputil
from stomputil import qname, uid


# --- /queue ----------------------------------------------------------------------


def test_queue_is_declared_on_first_send_and_keeps_messages(stomp_clients):
    q = stomp_clients.track_queue(qname())
    producer = stomp_clients.connected()
    for i in range(3):
        producer.send(f"/queue/{q}", f"m{i}")   # receipted: the queue exists now
    consumer = stomp_clients.connected()
    consumer.subscribe(f"/queue/{q}")
    assert consumer.bodies(3) == ["m0", "m1", "m2"]
    assert consumer.quiet()


def test_queue_is_declared_on_first_subscribe(stomp_clients):
    q = stomp_clients.track_queue(qname())
    consumer = stomp_clients.connected()
    consumer.subscribe(f"/queue/{q}")
    stomp_clients.connected().send(f"/queue/{q}", "after subscribe")
    assert consumer.bodies(1) == ["after subscribe"]


def test_queue_competing_consumers_share_the_messages(stomp_clients):
    q = stomp_clients.track_queue(qname())
    a, b = stomp_clients.connected(), stomp_clients.connected()
    a.subscribe(f"/queue/{q}")
    b.subscribe(f"/queue/{q}")
    producer = stomp_clients.connected()
    sent = [f"m{i}" for i in range(20)]
    for body in sent:
        producer.send(f"/queue/{q}", body, receipt=False)
    producer.sync()
    a.rec.wait(lambda: len(a.rec.messages) + len(b.rec.messages) >= 20, 5, "20 messages")
    got_a = [m.body for m in a.rec.messages]
    got_b = [m.body for m in b.rec.messages]
    assert sorted(got_a + got_b) == sorted(sent)      # each exactly once
    assert got_a and got_b                            # both consumers got some
    assert got_a == sorted(got_a, key=sent.index)     # each in send order
    assert a.quiet(0.3, len(got_a)) and b.quiet(0.3, len(got_b))


def test_queue_unsubscribe_stops_delivery(stomp_clients):
    q = stomp_clients.track_queue(qname())
    c = stomp_clients.connected()
    sid = c.subscribe(f"/queue/{q}")
    c.send(f"/queue/{q}", "one")
    assert c.bodies(1) == ["one"]
    c.unsubscribe(sid)
    c.send(f"/queue/{q}", "two")
    assert c.quiet(0.5)
    other = stomp_clients.connected()
    other.subscribe(f"/queue/{q}")
    assert other.bodies(1) == ["two"]


def test_two_subscriptions_on_one_connection_are_told_apart(stomp_clients):
    q1, q2 = stomp_clients.track_queue(qname()), stomp_clients.track_queue(qname())
    c = stomp_clients.connected()
    s1 = c.subscribe(f"/queue/{q1}", id="first")
    s2 = c.subscribe(f"/queue/{q2}", id="second")
    c.send(f"/queue/{q1}", "for first")
    c.send(f"/queue/{q2}", "for second")
    got = {m.headers["subscription"]: m.body for m in c.take(2)}
    assert got == {s1: "for first", s2: "for second"}


# --- /topic ----------------------------------------------------------------------


def test_topic_fans_out_to_every_subscriber(stomp_clients):
    t = f"pytest.{uid()}.a.b"
    subs = [stomp_clients.connected(v) for v in ("1.0", "1.1", "1.2")]
    for s in subs:
        s.subscribe(f"/topic/{t}")
    producer = stomp_clients.connected()
    for i in range(5):
        producer.send(f"/topic/{t}", f"m{i}")
    for s in subs:
        assert s.bodies(5) == [f"m{i}" for i in range(5)]
        assert s.quiet(0.2)


def test_topic_two_subscriptions_on_one_connection_each_get_a_copy(stomp_clients):
    t = f"pytest.{uid()}.x"
    c = stomp_clients.connected()
    c.subscribe(f"/topic/{t}", id="s1")
    c.subscribe(f"/topic/{t}", id="s2")
    c.send(f"/topic/{t}", "both")
    msgs = c.take(2)
    assert sorted(m.headers["subscription"] for m in msgs) == ["s1", "s2"]
    assert all(m.body == "both" for m in msgs)


def test_topic_without_subscribers_keeps_nothing(stomp_clients):
    t = f"pytest.{uid()}.gone"
    c = stomp_clients.connected()
    c.send(f"/topic/{t}", "nobody listens")
    c.subscribe(f"/topic/{t}")
    c.send(f"/topic/{t}", "now")
    assert c.bodies(1) == ["now"]
    assert c.quiet(0.3)


def test_topic_wildcards(stomp_clients):
    p = f"pytest.{uid()}"
    star, hash_ = stomp_clients.connected(), stomp_clients.connected()
    star.subscribe(f"/topic/{p}.*")
    hash_.subscribe(f"/topic/{p}.#")
    producer = stomp_clients.connected()
    producer.send(f"/topic/{p}.a", "one level")
    producer.send(f"/topic/{p}.a.b", "two levels")
    producer.send(f"/topic/other.{uid()}", "elsewhere")
    assert star.bodies(1) == ["one level"]
    assert hash_.bodies(2) == ["one level", "two levels"]
    assert star.quiet(0.3) and hash_.quiet(0.3)


def test_topic_unsubscribe_stops_delivery(stomp_clients):
    t = f"pytest.{uid()}.u"
    c = stomp_clients.connected()
    sid = c.subscribe(f"/topic/{t}")
    c.send(f"/topic/{t}", "before")
    assert c.bodies(1) == ["before"]
    c.unsubscribe(sid)
    c.send(f"/topic/{t}", "after")
    assert c.quiet(0.5)


# --- /exchange -------------------------------------------------------------------


def test_exchange_amq_topic_with_routing_pattern(stomp_clients):
    k = f"pytest.{uid()}"
    c = stomp_clients.connected()
    c.subscribe(f"/exchange/amq.topic/{k}.*")
    c.send(f"/exchange/amq.topic/{k}.x", "via exchange")
    c.send(f"/topic/{k}.y", "via topic")            # /topic/ is amq.topic too
    c.send(f"/exchange/amq.topic/{k}.x.deeper", "no match")
    assert c.bodies(2) == ["via exchange", "via topic"]
    assert c.quiet(0.3)


def test_exchange_amq_direct(stomp_clients):
    k = f"pytest.{uid()}"
    a, b = stomp_clients.connected(), stomp_clients.connected()
    a.subscribe(f"/exchange/amq.direct/{k}")
    b.subscribe(f"/exchange/amq.direct/{k}")
    stomp_clients.connected().send(f"/exchange/amq.direct/{k}", "direct")
    assert a.bodies(1) == ["direct"] and b.bodies(1) == ["direct"]


def test_exchange_amq_fanout_reaches_topic_free_subscribers(stomp_clients):
    c = stomp_clients.connected()
    c.subscribe("/exchange/amq.fanout")
    marker = f"fanout-{uid()}"
    stomp_clients.connected().send("/exchange/amq.fanout", marker)
    # amq.fanout is shared with other tests and brokers' users: look for ours
    c.rec.wait(lambda: any(m.body == marker for m in c.rec.messages), 5, marker)


def test_unknown_exchange_is_an_error(stomp_clients):
    c = stomp_clients.connected()
    c.conn.send(f"/exchange/pytest.nope.{uid()}/k", "x", headers={"receipt": "r"})
    err = c.error()
    assert err.headers.get("message")
    assert "r" not in c.rec.receipts


# --- /amq/queue ------------------------------------------------------------------


def test_amq_queue_uses_an_existing_queue(stomp_clients):
    q = stomp_clients.track_queue(qname())
    c = stomp_clients.connected()
    stomputil.ensure_queue(c, q)                    # declared through /queue/
    c.send(f"/amq/queue/{q}", "by amq/queue")
    c.subscribe(f"/amq/queue/{q}")
    assert c.bodies(1) == ["by amq/queue"]
    c.send(f"/queue/{q}", "by queue")               # the same queue
    assert c.bodies(1) == ["by queue"]


def test_amq_queue_subscribe_to_missing_queue_is_an_error(stomp_clients):
    c = stomp_clients.connected()
    c.conn.subscribe(f"/amq/queue/pytest.missing.{uid()}", "s1")
    err = c.error()
    assert err.headers.get("message")


# --- /temp-queue -----------------------------------------------------------------


def test_temp_queue_request_response(stomp_clients):
    svc = stomp_clients.track_queue(qname("svc"))
    service = stomp_clients.connected()
    service.subscribe(f"/queue/{svc}")
    client = stomp_clients.connected()
    client.send(f"/queue/{svc}", "ping", **{"reply-to": "/temp-queue/answers",
                                            "correlation-id": "c-1"})
    req = service.take(1)[0]
    assert req.body == "ping"
    reply_to = req.headers["reply-to"]
    assert reply_to and reply_to != "/temp-queue/answers"   # rewritten to a real queue
    service.send(reply_to, "pong", **{"correlation-id": req.headers["correlation-id"]})
    resp = client.take(1)[0]
    assert resp.body == "pong"
    assert resp.headers["correlation-id"] == "c-1"


def test_temp_queue_name_is_stable_per_connection_and_private(stomp_clients):
    svc = stomp_clients.track_queue(qname("svc"))
    service = stomp_clients.connected()
    service.subscribe(f"/queue/{svc}")
    c1, c2 = stomp_clients.connected(), stomp_clients.connected()
    c1.send(f"/queue/{svc}", "a", **{"reply-to": "/temp-queue/r"})
    c1.send(f"/queue/{svc}", "b", **{"reply-to": "/temp-queue/r"})
    c2.send(f"/queue/{svc}", "c", **{"reply-to": "/temp-queue/r"})
    ra, rb, rc = (m.headers["reply-to"] for m in service.take(3))
    assert ra == rb          # the same temp queue for the same name on one connection
    assert ra != rc          # another connection's /temp-queue/r is another queue
    service.send(rc, "only for c2")
    assert c2.bodies(1) == ["only for c2"]
    assert c1.quiet(0.3)


# --- durable topic subscriptions -------------------------------------------------


def _send_n(stomp_clients, dest, n, prefix="m"):
    p = stomp_clients.connected()
    for i in range(n):
        p.send(dest, f"{prefix}{i}")
    p.disconnect()


@pytest.mark.parametrize("true,false", [("true", "false"), ("True", "False")])
def test_durable_subscription_rabbitmq_style(stomp_clients, true, false):
    """durable:true + auto-delete:false + id: messages published while the
    subscriber is away wait for it. Python clients write the booleans as str(True),
    which RabbitMQ reads the same way."""
    t = f"pytest.{uid()}.dur"
    sid = f"dur-{uid()}"
    hdrs = {"durable": true, "auto-delete": false}

    def forget():   # RabbitMQ deletes it on UNSUBSCRIBE durable:true of a live one
        c = stomp_clients.connected()
        c.subscribe(f"/topic/{t}", id=sid, headers=hdrs)
        c.unsubscribe(sid, headers={"durable": "true"})

    stomp_clients.at_teardown(forget)
    sub = stomp_clients.connected()
    sub.subscribe(f"/topic/{t}", id=sid, ack="client-individual", headers=hdrs)
    sub.disconnect()
    _send_n(stomp_clients, f"/topic/{t}", 3)
    back = stomp_clients.connected()
    back.subscribe(f"/topic/{t}", id=sid, ack="client-individual", headers=hdrs)
    msgs = back.take(3)
    assert [m.body for m in msgs] == ["m0", "m1", "m2"]
    for m in msgs:
        back.ack(m)
    back.sync()


def test_non_durable_topic_subscription_misses_what_was_sent_while_away(stomp_clients):
    t = f"pytest.{uid()}.nondur"
    sub = stomp_clients.connected()
    sub.subscribe(f"/topic/{t}", id="s")
    sub.disconnect()
    _send_n(stomp_clients, f"/topic/{t}", 2)
    back = stomp_clients.connected()
    back.subscribe(f"/topic/{t}", id="s")
    assert back.quiet(0.5)


def test_durable_subscription_unsubscribe_durable_removes_it(stomp_clients):
    t = f"pytest.{uid()}.dur"
    sid = f"dur-{uid()}"
    hdrs = {"durable": "true", "auto-delete": "false"}
    sub = stomp_clients.connected()
    sub.subscribe(f"/topic/{t}", id=sid, headers=hdrs)
    sub.unsubscribe(sid, headers={"durable": "true"})   # forget it for good
    sub.disconnect()
    _send_n(stomp_clients, f"/topic/{t}", 2)
    back = stomp_clients.connected()
    back.subscribe(f"/topic/{t}", id=sid, headers=hdrs)
    assert back.quiet(0.5)
    back.unsubscribe(sid, headers={"durable": "true"})


@stomputil.requires_switchboard("RabbitMQ ignores ActiveMQ's client-id and "
                                "activemq.subscriptionName headers")
def test_durable_subscription_activemq_style(stomp_clients):
    t = f"pytest.{uid()}.dur"
    client_id = f"pytest-client-{uid()}"
    name = f"sub-{uid()}"
    hdrs = {"activemq.subscriptionName": name}

    def forget():
        c = stomp_clients.connected(connect_headers={"client-id": client_id})
        c.subscribe(f"/topic/{t}", id="x", headers=hdrs)
        c.unsubscribe("x", headers={**hdrs, "durable": "true"})

    stomp_clients.at_teardown(forget)
    sub = stomp_clients.connected(connect_headers={"client-id": client_id})
    sub.subscribe(f"/topic/{t}", id="a", headers=hdrs)
    sub.disconnect()
    _send_n(stomp_clients, f"/topic/{t}", 3)
    back = stomp_clients.connected(connect_headers={"client-id": client_id})
    back.subscribe(f"/topic/{t}", id="b", headers=hdrs)   # the name, not the id, counts
    assert back.bodies(3) == ["m0", "m1", "m2"]
    assert back.quiet(0.3)
