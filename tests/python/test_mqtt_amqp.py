"""MQTT <-> AMQP 0-9-1 on one broker, the RabbitMQ way: MQTT topics live on amq.topic,
MQTT '/' is AMQP '.' and MQTT '.' is AMQP '/'; MQTT 5 properties map onto AMQP
properties (user properties <-> headers, content type, correlation data <->
correlation-id, response topic -> reply-to, message expiry -> expiration in ms) and
QoS 1 publishes are persistent (delivery mode 2).

These need a broker speaking both protocols: Switchboard, or an external one when both
SWITCHBOARD_AMQP_URL and SWITCHBOARD_MQTT_URL point at it (a RabbitMQ with its MQTT
plugin; the MQTT 5 tests need RabbitMQ 3.13 or later). They skip against mosquitto."""

from __future__ import annotations

import pika
import pytest

import mqttutil as mu
from support import is_external, wait_until

pytestmark = pytest.mark.skipif(
    mu.is_mqtt_external() and not (is_external() and mu.MQTT_URL),
    reason="cross-protocol: needs one broker speaking AMQP and MQTT (Switchboard)")


def _text(v):
    return v.decode() if isinstance(v, bytes) else v


def _bound_queue(ch, res, key):
    q = res.queue(ch)
    ch.queue_bind(q, "amq.topic", routing_key=key)
    return q


def _get(ch, q, what="a message on the AMQP queue"):
    got = wait_until(lambda: (lambda r: r if r[0] else None)(ch.basic_get(q, auto_ack=True)),
                     what=what)
    return got  # (method, properties, body)


def test_mqtt_publish_reaches_amqp_queue(ch, res, mqtt_clients):
    u = mu.uid()
    q = _bound_queue(ch, res, f"{u}.b.c")
    body = bytes(range(256))
    mqtt_clients.connected(4).publish(f"{u}/b/c", body, qos=1)
    method, props, got = _get(ch, q)
    assert got == body
    assert (method.exchange, method.routing_key) == ("amq.topic", f"{u}.b.c")
    assert props.delivery_mode == 2, "a QoS 1 publish is a persistent message"


def test_mqtt_publish_reaches_amqp_wildcard_bindings(ch, res, mqtt_clients):
    u = mu.uid()
    star = _bound_queue(ch, res, f"{u}.*.c")
    hash_ = _bound_queue(ch, res, f"{u}.#")
    pub = mqtt_clients.connected(4)
    pub.publish(f"{u}/b/c", "one", qos=1)
    pub.publish(f"{u}/b/b/c", "two", qos=1)
    assert _get(ch, star)[2] == b"one"
    assert [_get(ch, hash_)[2] for _ in range(2)] == [b"one", b"two"]
    assert ch.basic_get(star, auto_ack=True)[0] is None


def test_mqtt5_properties_become_amqp_properties(ch, res, mqtt_clients):
    u = mu.uid()
    q = _bound_queue(ch, res, f"{u}.props")
    mqtt_clients.connected(5).publish(f"{u}/props", b'{"v": 1}', qos=1, properties={
        "UserProperty": [("k1", "v1"), ("tenant", "ünï")],
        "ContentType": "application/json",
        "CorrelationData": b"corr-42",
        "ResponseTopic": f"{u}/reply/to",
        "MessageExpiryInterval": 30,
    })
    _, props, body = _get(ch, q)
    assert body == b'{"v": 1}'
    headers = {k: _text(v) for k, v in (props.headers or {}).items()}
    assert headers.get("k1") == "v1" and headers.get("tenant") == "ünï", headers
    assert props.content_type == "application/json"
    assert props.correlation_id == "corr-42"
    assert props.reply_to == f"{u}.reply.to"
    assert props.expiration == "30000"
    assert props.delivery_mode == 2


@pytest.mark.parametrize("version", mu.VERSIONS, ids=mu.VERSION_IDS.get)
def test_amqp_publish_reaches_mqtt_subscriber(ch, mqtt_clients, version):
    u = mu.uid()
    c = mqtt_clients.connected(version)
    c.subscribe(f"{u}/x/y", qos=1)
    ch.basic_publish("amq.topic", f"{u}.x.y", b"\x00from amqp\xff",
                     pika.BasicProperties(delivery_mode=2))
    m = c.wait_for(1)[0]
    assert (m.topic, m.payload) == (f"{u}/x/y", b"\x00from amqp\xff")


def test_amqp_properties_become_mqtt5_properties(ch, mqtt_clients):
    u = mu.uid()
    c = mqtt_clients.connected(5)
    c.subscribe(f"{u}/x/y", qos=1)
    ch.basic_publish("amq.topic", f"{u}.x.y", b"hello", pika.BasicProperties(
        headers={"h1": "v1", "h2": "two"}, content_type="text/plain",
        correlation_id="c-1", delivery_mode=2))
    m = c.wait_for(1)[0]
    assert m.payload == b"hello"
    ups = dict(m.props.get("UserProperty", []))
    assert ups.get("h1") == "v1" and ups.get("h2") == "two", m.props
    assert m.props.get("ContentType") == "text/plain"
    assert m.props.get("CorrelationData") == b"c-1"


def test_amqp_publish_reaches_mqtt_wildcard_subscriptions(ch, mqtt_clients):
    u = mu.uid()
    plus, hash_ = mqtt_clients.connected(4), mqtt_clients.connected(4)
    plus.subscribe(f"{u}/+/c", qos=1)
    hash_.subscribe(f"{u}/#", qos=1)
    ch.basic_publish("amq.topic", f"{u}.b.c", b"w")
    ch.basic_publish("amq.topic", f"{u}.b.b.c", b"ww")
    assert [m.topic for m in hash_.wait_for(2)] == [f"{u}/b/c", f"{u}/b/b/c"]
    assert [m.topic for m in plus.wait_for(1)] == [f"{u}/b/c"]


def test_dots_in_mqtt_topics(ch, res, mqtt_clients):
    """MQTT 'v1.0/temp' is AMQP 'v1/0.temp': not the same as MQTT 'v1/0/temp'."""
    u = mu.uid()
    q = _bound_queue(ch, res, f"{u}.#")
    exact, plus, other = (mqtt_clients.connected(4) for _ in range(3))
    exact.subscribe(f"{u}/v1.0/temp", qos=1)
    plus.subscribe(f"{u}/+/temp", qos=1)
    other.subscribe(f"{u}/v1/0/temp", qos=1)
    other.subscribe(f"{u}/fence", qos=1)
    pub = mqtt_clients.connected(4)
    pub.publish(f"{u}/v1.0/temp", "21.5", qos=1)
    pub.publish(f"{u}/fence", "fence", qos=1)
    assert [(m.topic, m.payload) for m in exact.wait_for(1)] == [(f"{u}/v1.0/temp", b"21.5")]
    assert [m.topic for m in plus.wait_for(1)] == [f"{u}/v1.0/temp"]
    other.wait_for(1, topic=f"{u}/fence")
    assert other.received(f"{u}/v1/0/temp") == []
    method, _, body = _get(ch, q)
    assert (method.routing_key, body) == (f"{u}.v1/0.temp", b"21.5")


def test_slashes_in_amqp_routing_keys(ch, mqtt_clients):
    u = mu.uid()
    c = mqtt_clients.connected(4)
    c.subscribe(f"{u}/v2.0/temp", qos=1)
    ch.basic_publish("amq.topic", f"{u}.v2/0.temp", b"19")
    m = c.wait_for(1)[0]
    assert (m.topic, m.payload) == (f"{u}/v2.0/temp", b"19")


def test_request_reply_across_protocols(ch, res, mqtt_clients):
    """An MQTT 5 requester, an AMQP responder that answers on reply-to."""
    u = mu.uid()
    q = _bound_queue(ch, res, f"{u}.service")
    requester = mqtt_clients.connected(5)
    requester.subscribe(f"{u}/replies/r1", qos=1)
    requester.publish(f"{u}/service", "ping", qos=1, properties={
        "ResponseTopic": f"{u}/replies/r1", "CorrelationData": b"id-7"})
    _, props, body = _get(ch, q)
    assert body == b"ping"
    ch.basic_publish("amq.topic", props.reply_to, b"pong",
                     pika.BasicProperties(correlation_id=props.correlation_id))
    m = requester.wait_for(1)[0]
    assert (m.payload, m.props.get("CorrelationData")) == (b"pong", b"id-7")
