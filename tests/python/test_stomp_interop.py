"""STOMP <-> AMQP 0-9-1 and MQTT -> STOMP on one broker, the RabbitMQ way: /queue/x
is the AMQP queue x, /topic/a.b is amq.topic with key a.b (MQTT a/b); STOMP headers
map onto AMQP properties (content-type, content-encoding, correlation-id, reply-to,
expiration, priority, persistent <-> delivery mode, type, app-id, timestamp,
amqp-message-id) and every other header is an AMQP header / MQTT 5 user property.

They need one broker speaking every protocol involved: Switchboard, or an external
one when SWITCHBOARD_AMQP_URL (and SWITCHBOARD_MQTT_URL) point at the same broker as
SWITCHBOARD_STOMP_URL."""

from __future__ import annotations

import time

import pika
import pytest

import mqttutil
import stomputil
from stomputil import qname, uid
from support import wait_until


@pytest.fixture
def amqp(stomp_amqp):
    c = stomp_amqp.connect()
    yield c.channel()
    try:
        c.close()
    except Exception:
        pass


def _get(ch, q):
    return wait_until(lambda: (lambda r: r if r[0] else None)(ch.basic_get(q, auto_ack=True)),
                      what=f"a message on AMQP queue {q}")


def _amqp_queue(ch, stomp_clients, **args) -> str:
    """A durable AMQP queue (so that a STOMP /queue/ declare agrees with it)."""
    q = stomp_clients.track_queue(qname("amqp"))
    ch.queue_declare(q, durable=True, arguments=args or None)
    return q


# --- STOMP -> AMQP ---------------------------------------------------------------


def test_stomp_queue_is_an_amqp_queue(stomp_clients, amqp):
    q = stomp_clients.track_queue(qname())
    c = stomp_clients.connected()
    c.send(f"/queue/{q}", "to amqp")
    amqp.queue_declare(q, passive=True)              # it exists: STOMP declared it
    method, props, body = _get(amqp, q)
    assert body == b"to amqp"
    assert method.routing_key == q


def test_stomp_headers_become_amqp_properties(stomp_clients, amqp):
    q = _amqp_queue(amqp, stomp_clients)
    c = stomp_clients.connected()
    c.send(f"/amq/queue/{q}", '{"k": 1}', headers={
        "content-type": "application/json",
        "content-encoding": "utf-8",
        "correlation-id": "corr-1",
        "reply-to": "/queue/replies",
        "expiration": "60000",
        "priority": "5",
        "persistent": "true",
        "type": "order.created",
        "app-id": "pytest",
        "amqp-message-id": "mid-1",
        "timestamp": "1700000000",
        "x-tenant": "ünï",
        "x-count": "7",
    })
    _, p, body = _get(amqp, q)
    assert body == b'{"k": 1}'
    assert p.content_type == "application/json"
    assert p.content_encoding == "utf-8"
    assert p.correlation_id == "corr-1"
    assert p.reply_to == "/queue/replies"
    assert p.expiration == "60000"
    assert p.priority == 5
    assert p.delivery_mode == 2
    assert p.type == "order.created"
    assert p.app_id == "pytest"
    assert p.message_id == "mid-1"
    assert p.timestamp == 1700000000
    headers = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in p.headers.items()}
    assert headers["x-tenant"] == "ünï"
    assert str(headers["x-count"]) == "7"


def test_stomp_message_without_persistent_is_transient(stomp_clients, amqp):
    q = _amqp_queue(amqp, stomp_clients)
    stomp_clients.connected().send(f"/amq/queue/{q}", "t")
    _, p, _ = _get(amqp, q)
    assert p.delivery_mode in (None, 1)


def test_stomp_topic_send_reaches_amqp_binding(stomp_clients, amqp):
    k = f"pytest.{uid()}"
    q = _amqp_queue(amqp, stomp_clients)
    amqp.queue_bind(q, "amq.topic", routing_key=f"{k}.*")
    stomp_clients.connected().send(f"/topic/{k}.x", "via topic")
    method, _, body = _get(amqp, q)
    assert body == b"via topic"
    assert (method.exchange, method.routing_key) == ("amq.topic", f"{k}.x")


def test_stomp_exchange_send_uses_exchange_and_key(stomp_clients, amqp):
    k = f"pytest.{uid()}"
    q = _amqp_queue(amqp, stomp_clients)
    amqp.queue_bind(q, "amq.direct", routing_key=k)
    stomp_clients.connected().send(f"/exchange/amq.direct/{k}", "direct")
    method, _, body = _get(amqp, q)
    assert (method.exchange, method.routing_key, body) == ("amq.direct", k, b"direct")


# --- AMQP -> STOMP ---------------------------------------------------------------


def test_amqp_properties_become_stomp_headers(stomp_clients, amqp):
    q = _amqp_queue(amqp, stomp_clients)
    c = stomp_clients.connected()
    c.subscribe(f"/amq/queue/{q}")
    amqp.basic_publish("", q, b"from amqp", pika.BasicProperties(
        content_type="application/json", content_encoding="utf-8",
        correlation_id="cid-9", expiration="60000", priority=3, delivery_mode=2,
        type="evt", app_id="amqp-app", message_id="amid-9", timestamp=1700000000,
        headers={"x-str": "v1", "x-int": 42}))
    m = c.take(1)[0]
    h = m.headers
    assert m.body == "from amqp"
    assert h["content-type"] == "application/json"
    assert h["content-encoding"] == "utf-8"
    assert h["correlation-id"] == "cid-9"
    assert h["expiration"] == "60000"
    assert h["priority"] == "3"
    assert h["persistent"] == "true"
    assert h["type"] == "evt"
    assert h["app-id"] == "amqp-app"
    assert h["amqp-message-id"] == "amid-9"
    assert h["timestamp"] == "1700000000"
    assert h["x-str"] == "v1"
    assert h["x-int"] == "42"


def test_amqp_reply_to_is_a_stomp_destination_that_reaches_the_queue(stomp_clients, amqp):
    q = _amqp_queue(amqp, stomp_clients)
    replies = _amqp_queue(amqp, stomp_clients)
    c = stomp_clients.connected()
    c.subscribe(f"/amq/queue/{q}")
    amqp.basic_publish("", q, b"request", pika.BasicProperties(reply_to=replies,
                                                                correlation_id="r-1"))
    req = c.take(1)[0]
    c.send(req.headers["reply-to"], "response",
           **{"correlation-id": req.headers["correlation-id"]})
    _, p, body = _get(amqp, replies)
    assert (body, p.correlation_id) == (b"response", "r-1")


def test_amqp_topic_publish_reaches_stomp_topic_subscriber(stomp_clients, amqp):
    k = f"pytest.{uid()}"
    c = stomp_clients.connected()
    c.subscribe(f"/topic/{k}.#")
    amqp.basic_publish("amq.topic", f"{k}.a.b", b"amqp to topic")
    m = c.take(1)[0]
    assert m.body == "amqp to topic"


def test_binary_body_survives_amqp_to_stomp(stomp_clients, amqp):
    q = _amqp_queue(amqp, stomp_clients)
    c = stomp_clients("1.2", auto_decode=False).connect()
    c.subscribe(f"/amq/queue/{q}")
    body = bytes(range(256)) * 4
    amqp.basic_publish("", q, body)
    assert c.take(1)[0].body == body


# --- TTL, priority, dead letters -------------------------------------------------


def test_stomp_expiration_header_is_a_message_ttl(stomp_clients):
    q = stomp_clients.track_queue(qname())
    p = stomp_clients.connected()
    p.send(f"/queue/{q}", "short-lived", expiration="100")
    p.send(f"/queue/{q}", "kept")
    time.sleep(0.5)
    c = stomp_clients.connected()
    c.subscribe(f"/queue/{q}")
    assert c.bodies(1) == ["kept"]
    assert c.quiet(0.3)


@stomputil.requires_switchboard("ActiveMQ's absolute 'expires' header: RabbitMQ keeps "
                                "it as a plain header")
def test_activemq_expires_in_the_past_drops_the_message(stomp_clients):
    q = stomp_clients.track_queue(qname())
    p = stomp_clients.connected()
    p.send(f"/queue/{q}", "already expired", expires=str(int(time.time() * 1000) - 1000))
    p.send(f"/queue/{q}", "no expiry", expires="0")
    c = stomp_clients.connected()
    c.subscribe(f"/queue/{q}")
    assert c.bodies(1) == ["no expiry"]
    assert c.quiet(0.3)


def test_stomp_priority_orders_a_priority_queue(stomp_clients, amqp):
    q = _amqp_queue(amqp, stomp_clients, **{"x-max-priority": 10})
    p = stomp_clients.connected()
    for prio in (1, 9, 5):
        p.send(f"/amq/queue/{q}", f"p{prio}", priority=str(prio))
    c = stomp_clients.connected()
    c.subscribe(f"/amq/queue/{q}")
    assert c.bodies(3) == ["p9", "p5", "p1"]


def _dead_letter_pair(amqp, stomp_clients):
    dlq = _amqp_queue(amqp, stomp_clients)
    q = _amqp_queue(amqp, stomp_clients, **{"x-dead-letter-exchange": "",
                                           "x-dead-letter-routing-key": dlq})
    return q, dlq


def test_nack_without_requeue_dead_letters(stomp_clients, amqp):
    q, dlq = _dead_letter_pair(amqp, stomp_clients)
    c = stomp_clients.connected()
    c.send(f"/amq/queue/{q}", "poison")
    c.subscribe(f"/amq/queue/{q}", ack="client-individual")
    m = c.take(1)[0]
    c.nack(m, receipt=True, requeue="false")
    _, p, body = _get(amqp, dlq)
    assert body == b"poison"
    death = p.headers["x-death"][0]
    assert death["reason"] in ("rejected", b"rejected")
    assert death["queue"] in (q, q.encode())
    assert c.quiet(0.3)


@stomputil.requires_switchboard("RabbitMQ drops the x-death table from STOMP headers")
def test_dead_lettered_message_over_stomp_carries_x_death(stomp_clients, amqp):
    q, dlq = _dead_letter_pair(amqp, stomp_clients)
    c = stomp_clients.connected()
    c.send(f"/amq/queue/{q}", "poison")
    c.subscribe(f"/amq/queue/{q}", ack="client-individual")
    c.nack(c.take(1)[0], receipt=True, requeue="false")
    d = stomp_clients.connected()
    d.subscribe(f"/amq/queue/{dlq}")
    m = d.take(1)[0]
    assert m.body == "poison"
    xd = m.headers.get("x-death")
    assert xd, f"no x-death header: {m.headers}"
    assert q in xd and "rejected" in xd


# --- MQTT <-> STOMP --------------------------------------------------------------

_one_broker = pytest.mark.skipif(
    mqttutil.is_mqtt_external() != stomputil.is_stomp_external(),
    reason="cross-protocol: MQTT and STOMP must be served by one broker")


@_one_broker
def test_mqtt_publish_reaches_stomp_topic(stomp_clients, mqtt_clients):
    u = uid()
    c = stomp_clients.connected()
    c.subscribe(f"/topic/pytest.{u}.a.b")
    mqtt_clients.connected(4).publish(f"pytest/{u}/a/b", b"from mqtt", qos=1)
    m = c.take(1)[0]
    assert m.body == "from mqtt"
    assert m.headers["destination"] == f"/topic/pytest.{u}.a.b"


@_one_broker
def test_mqtt_wildcard_subscriber_gets_stomp_topic_send(stomp_clients, mqtt_clients):
    u = uid()
    sub = mqtt_clients.connected(4)
    sub.subscribe(f"pytest/{u}/#", qos=1)
    stomp_clients.connected().send(f"/topic/pytest.{u}.x.y", "from stomp")
    msgs = sub.wait_for(1)
    assert (msgs[0].topic, msgs[0].payload) == (f"pytest/{u}/x/y", b"from stomp")


@_one_broker
@stomputil.requires_switchboard("RabbitMQ before 3.13 has no MQTT 5")
def test_mqtt5_user_properties_become_stomp_headers(stomp_clients, mqtt_clients):
    u = uid()
    c = stomp_clients.connected()
    c.subscribe(f"/topic/pytest.{u}.props")
    mqtt_clients.connected(5).publish(f"pytest/{u}/props", b"{}", qos=1, properties={
        "UserProperty": [("x-tenant", "acme"), ("x-uni", "ünï")],
        "ContentType": "application/json",
        "CorrelationData": b"corr-5",
    })
    m = c.take(1)[0]
    assert m.headers["x-tenant"] == "acme"
    assert m.headers["x-uni"] == "ünï"
    assert m.headers["content-type"] == "application/json"
    assert m.headers["correlation-id"] == "corr-5"
