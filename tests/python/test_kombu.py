"""kombu (on py-amqp, a second independent AMQP 0-9-1 client implementation)."""

from __future__ import annotations

import socket

import pytest
from kombu import Connection, Consumer, Exchange, Producer, Queue

from support import uniq


def kombu_url(broker) -> str:
    # kombu spells the default vhost "/" as an empty path segment or "%2F"
    return broker.amqp_url


@pytest.fixture
def kconn(broker):
    with Connection(kombu_url(broker), connect_timeout=10) as c:
        c.connect()
        yield c


def drain(conn, received, n, timeout=5.0):
    import time
    deadline = time.monotonic() + timeout
    while len(received) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"timed out: got {len(received)} of {n} messages")
        try:
            conn.drain_events(timeout=min(remaining, 0.5))
        except socket.timeout:
            pass


def test_kombu_producer_consumer_json(kconn):
    exchange = Exchange(uniq("kx"), type="direct", auto_delete=True, durable=False)
    queue = Queue(uniq("kq"), exchange=exchange, routing_key="jobs", auto_delete=True,
                  durable=False)
    payloads = [{"n": i, "name": f"job-{i}", "tags": ["a", "b"], "ok": i % 2 == 0,
                 "nested": {"x": None, "y": 1.25}} for i in range(5)]
    received = []

    def on_message(body, message):
        received.append((body, message.content_type, message.properties.get("priority"),
                         message.headers.get("trace")))
        message.ack()

    with Consumer(kconn, queues=[queue], callbacks=[on_message], accept=["json"]):
        producer = Producer(kconn, exchange=exchange, serializer="json")
        for i, p in enumerate(payloads):
            producer.publish(p, routing_key="jobs", headers={"trace": f"t{i}"},
                             priority=3, declare=[queue])
        drain(kconn, received, len(payloads))
    assert [r[0] for r in received] == payloads
    assert all(r[1] == "application/json" for r in received)
    assert [r[3] for r in received] == [f"t{i}" for i in range(5)]


def test_kombu_simple_queue(broker):
    name = uniq("ksimple")
    with Connection(kombu_url(broker)) as c:
        q = c.SimpleQueue(name, serializer="json",
                          queue_opts={"auto_delete": False, "durable": False},
                          exchange_opts={"auto_delete": True, "durable": False})
        try:
            q.put({"hello": "world", "n": [1, 2, 3]})
            q.put({"second": True})
            m = q.get(block=True, timeout=5)
            assert m.payload == {"hello": "world", "n": [1, 2, 3]}
            m.ack()
            m = q.get(block=True, timeout=5)
            assert m.payload == {"second": True}
            m.ack()
            with pytest.raises(q.Empty):
                q.get(block=True, timeout=0.3)
        finally:
            q.close()
            with c.channel() as chan:
                Queue(name, channel=chan).delete()
                Exchange(name, channel=chan).delete()


def test_kombu_topic_routing(kconn):
    ex = Exchange(uniq("ktopic"), type="topic", auto_delete=True, durable=False)
    q_stock = Queue(uniq("stock"), exchange=ex, routing_key="stock.#", auto_delete=True,
                    durable=False)
    q_eu = Queue(uniq("eu"), exchange=ex, routing_key="*.eu", auto_delete=True,
                 durable=False)
    got = {"stock": [], "eu": []}

    def cb(which):
        def on_message(body, message):
            got[which].append(body["k"])
            message.ack()
        return on_message

    with Consumer(kconn, queues=[q_stock], callbacks=[cb("stock")], accept=["json"]), \
            Consumer(kconn, queues=[q_eu], callbacks=[cb("eu")], accept=["json"]):
        producer = Producer(kconn, exchange=ex, serializer="json")
        keys = ["stock.eu", "stock.us.nyse", "stock", "news.eu", "news.us", "eu"]
        for k in keys:
            producer.publish({"k": k}, routing_key=k)
        drain(kconn, got["stock"], 3)
        drain(kconn, got["eu"], 2)
        # give stray (wrong) deliveries a chance to arrive
        try:
            kconn.drain_events(timeout=0.3)
        except socket.timeout:
            pass
    assert got["stock"] == ["stock.eu", "stock.us.nyse", "stock"]
    assert got["eu"] == ["stock.eu", "news.eu"]
