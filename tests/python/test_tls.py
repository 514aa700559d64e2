"""TLS on every listener, through real clients: pika and kombu over AMQPS (guest's
password, and a client certificate with EXTERNAL), paho-mqtt over MQTTS and WSS,
stomp.py over TLS, STOMP over WSS, boto3 and the aws CLI over HTTPS, the admin API
over HTTPS, and a message from MQTTS to AMQPS. The CA and certificates are made
by the test (``tlsutil.Pki``); the broker gets them through SWITCHBOARD_* variables.

Client certificates here are optional (``tls.ca`` without
``fail_if_no_peer_cert``); test_tls_handshake.py covers required ones.
Switchboard only: these start brokers of their own."""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
import urllib.request

import pika
import pytest

import tlsutil
from support import requires_switchboard, uniq

pytestmark = requires_switchboard("starts brokers of its own with TLS settings")


@pytest.fixture(scope="module")
def pki():
    p = tlsutil.Pki(tlsutil.tmpdir())
    p.server_cert, p.server_key, _ = p.server()
    p.alice = p.client("alice")
    # No CN: the first DNS name is the user.
    p.bob = p.client(None, dns="bob.example")
    p.nobody = p.client("nobody")
    return p


@pytest.fixture(scope="module")
def tls_broker(pki):
    from conftest import start_switchboard, stop_switchboard

    env = tlsutil.tls_env(pki.server_cert, pki.server_key, ca=pki.ca_file,
                          config=tlsutil.users_config(pki.root))
    b = start_switchboard(env=env)
    yield b
    stop_switchboard(b)


def amqps_params(b, pki, cert=None, credentials=None) -> pika.ConnectionParameters:
    host, port = b.ports["amqps"]
    ctx = tlsutil.client_context(pki.ca_file, *(cert or (None, None)))
    return pika.ConnectionParameters(
        host=host, port=port, ssl_options=pika.SSLOptions(ctx, "localhost"),
        credentials=credentials or pika.PlainCredentials("guest", "guest"),
        connection_attempts=1, socket_timeout=10)


def admin_get(b, pki, path: str):
    """GET on the admin API's HTTPS listener as guest."""
    host, port = b.ports["admin-tls"]
    req = urllib.request.Request(f"https://{host}:{port}{path}")
    req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    with urllib.request.urlopen(req, context=tlsutil.client_context(pki.ca_file),
                                timeout=10) as r:
        return r.status, json.loads(r.read())


def connection_users(b, pki, protocol_prefix: str):
    _, conns = admin_get(b, pki, "/api/connections")
    return {c.get("user") for c in conns if str(c.get("protocol", "")).startswith(protocol_prefix)}


def test_listening_line_names_every_tls_listener(tls_broker):
    for key in ("amqp", "mqtt", "mqtt-ws", "stomp", "stomp-ws", "http", "admin",
                "amqps", "mqtts", "mqtt-wss", "stomps", "stomp-wss", "https", "admin-tls"):
        assert key in tls_broker.ports, key
    assert len({p for _, p in tls_broker.ports.values()}) == 14


def test_plain_broker_has_no_tls_listeners(broker):
    if broker.external:
        pytest.skip("external broker")
    assert "amqps" not in broker.ports and "https" not in broker.ports


def test_pika_over_amqps_with_a_password(tls_broker, pki):
    q = uniq("amqps")
    with pika.BlockingConnection(amqps_params(tls_broker, pki)) as c:
        ch = c.channel()
        ch.queue_declare(q, auto_delete=True)
        ch.confirm_delivery()
        ch.basic_publish("", q, b"over TLS")
        method, _, body = ch.basic_get(q, auto_ack=True)
        assert body == b"over TLS"


def test_pika_external_with_a_client_certificate(tls_broker, pki):
    params = amqps_params(tls_broker, pki, cert=pki.alice,
                          credentials=pika.credentials.ExternalCredentials())
    with pika.BlockingConnection(params) as c:
        ch = c.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.confirm_delivery()
        # The broker checks user_id against the user it logged in.
        ch.basic_publish("", q, b"x", pika.BasicProperties(user_id="alice"))
        assert ch.basic_get(q, auto_ack=True)[2] == b"x"
        assert "alice" in connection_users(tls_broker, pki, "AMQP")


def test_external_takes_the_dns_name_when_there_is_no_cn(tls_broker, pki):
    params = amqps_params(tls_broker, pki, cert=pki.bob,
                          credentials=pika.credentials.ExternalCredentials())
    with pika.BlockingConnection(params) as c:
        assert c.is_open
        assert "bob.example" in connection_users(tls_broker, pki, "AMQP")


def test_external_is_refused_without_a_certificate_or_user(tls_broker, pki):
    # No certificate: EXTERNAL is not offered at all, so pika has nothing to use.
    with pytest.raises(pika.exceptions.AMQPError):
        pika.BlockingConnection(amqps_params(
            tls_broker, pki, credentials=pika.credentials.ExternalCredentials()))
    # A valid certificate for a user the broker does not have.
    with pytest.raises(pika.exceptions.AMQPError):
        pika.BlockingConnection(amqps_params(
            tls_broker, pki, cert=pki.nobody,
            credentials=pika.credentials.ExternalCredentials()))


def test_a_certificate_does_not_stop_password_logins(tls_broker, pki):
    with pika.BlockingConnection(amqps_params(
            tls_broker, pki, cert=pki.nobody,
            credentials=pika.PlainCredentials("guest", "guest"))) as c:
        assert c.is_open


def test_kombu_external_with_a_client_certificate(tls_broker, pki):
    kombu = pytest.importorskip("kombu")
    host, port = tls_broker.ports["amqps"]
    cert, key = pki.alice
    ssl_opts = {"ca_certs": str(pki.ca_file), "certfile": str(cert), "keyfile": str(key),
                "cert_reqs": ssl.CERT_REQUIRED, "server_hostname": "localhost"}
    q = uniq("kombu-tls")
    with kombu.Connection(hostname=host, port=port, ssl=ssl_opts, login_method="EXTERNAL",
                          connect_timeout=10) as conn:
        queue = kombu.Queue(q, routing_key=q, auto_delete=True)
        with conn.Producer() as p:
            p.publish({"hello": "tls"}, routing_key=q, declare=[queue], serializer="json")
        with conn.SimpleQueue(queue) as sq:
            msg = sq.get(timeout=10)
            assert msg.payload == {"hello": "tls"}
            msg.ack()


def _paho(transport: str = "tcp"):
    import paho.mqtt.client as mqtt

    return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=uniq("tls"),
                       transport=transport)


def _mqtt_connect(client, addr, timeout: float = 10.0):
    done = threading.Event()
    result = {}

    def on_connect(c, userdata, flags, reason, props):
        result["rc"] = reason
        done.set()

    client.on_connect = on_connect
    client.connect(addr[0], addr[1], keepalive=30)
    client.loop_start()
    assert done.wait(timeout), "no CONNACK"
    return result["rc"]


@pytest.mark.parametrize("listener,transport", [("mqtts", "tcp"), ("mqtt-wss", "websockets")])
def test_paho_with_a_password(tls_broker, pki, listener, transport):
    c = _paho(transport)
    c.tls_set(ca_certs=str(pki.ca_file))
    c.username_pw_set("guest", "guest")
    try:
        rc = _mqtt_connect(c, tls_broker.ports[listener])
        assert not rc.is_failure, rc
        got = threading.Event()
        c.on_message = lambda *_: got.set()
        topic = f"tls/{uniq()}"
        c.subscribe(topic, qos=1)
        time.sleep(0.3)
        c.publish(topic, b"hi", qos=1)
        assert got.wait(10)
    finally:
        c.loop_stop()
        c.disconnect()


@pytest.mark.parametrize("listener,transport", [("mqtts", "tcp"), ("mqtt-wss", "websockets")])
def test_paho_with_a_client_certificate_and_no_password(tls_broker, pki, listener, transport):
    c = _paho(transport)
    cert, key = pki.alice
    c.tls_set(ca_certs=str(pki.ca_file), certfile=str(cert), keyfile=str(key))
    try:
        rc = _mqtt_connect(c, tls_broker.ports[listener])
        assert not rc.is_failure, rc
        # Over WebSocket the admin API names the protocol as RabbitMQ does.
        prefix = "Web MQTT" if transport == "websockets" else "MQTT"
        assert "alice" in connection_users(tls_broker, pki, prefix)
    finally:
        c.loop_stop()
        c.disconnect()


def test_paho_certificate_of_an_unknown_user_is_refused(tls_broker, pki):
    c = _paho()
    cert, key = pki.nobody
    c.tls_set(ca_certs=str(pki.ca_file), certfile=str(cert), keyfile=str(key))
    try:
        rc = _mqtt_connect(c, tls_broker.ports["mqtts"])
        assert rc.is_failure
    finally:
        c.loop_stop()
        c.disconnect()


def _stomp(b, pki, listener="stomps", cert=None):
    import stomp

    addr = b.ports[listener]
    conn = stomp.Connection([addr], heartbeats=(0, 0))
    kw = {"ca_certs": str(pki.ca_file)}
    if cert:
        kw.update(cert_file=str(cert[0]), key_file=str(cert[1]))
    conn.set_ssl(for_hosts=[addr], **kw)
    return conn


def test_stomp_over_tls_with_a_password(tls_broker, pki):
    import stomp

    conn = _stomp(tls_broker, pki)
    got = threading.Event()

    class L(stomp.ConnectionListener):
        def on_message(self, frame):
            if frame.body == "over TLS":
                got.set()

    conn.set_listener("l", L())
    conn.connect("guest", "guest", wait=True)
    try:
        dest = f"/queue/{uniq('stomps')}"
        conn.subscribe(dest, id="1", ack="auto")
        conn.send(dest, "over TLS", receipt="r1")
        assert got.wait(10)
    finally:
        conn.disconnect()


def test_stomp_over_tls_with_a_client_certificate(tls_broker, pki):
    conn = _stomp(tls_broker, pki, cert=pki.alice)
    conn.connect(wait=True)
    try:
        assert conn.is_connected()
        assert "alice" in connection_users(tls_broker, pki, "STOMP")
    finally:
        conn.disconnect()


def test_stomp_over_wss(tls_broker, pki):
    websocket = pytest.importorskip("websocket")
    host, port = tls_broker.ports["stomp-wss"]
    cert, key = pki.alice
    ws = websocket.create_connection(
        f"wss://localhost:{port}/ws", subprotocols=["v12.stomp"], timeout=10,
        sslopt={"ca_certs": str(pki.ca_file), "certfile": str(cert), "keyfile": str(key)})
    try:
        ws.send("CONNECT\naccept-version:1.2\nhost:/\n\n\x00")
        frame = ws.recv()
        assert frame.startswith("CONNECTED"), frame
    finally:
        ws.close()


def _https_endpoint(b):
    import sqsutil

    host, port = b.ports["https"]
    return sqsutil.Endpoint(url=f"https://localhost:{port}")


def test_boto3_sqs_over_https(tls_broker, pki):
    boto3 = pytest.importorskip("boto3")
    ep = _https_endpoint(tls_broker)
    sqs = boto3.client("sqs", endpoint_url=ep.url, region_name="us-east-1",
                       aws_access_key_id="guest", aws_secret_access_key="guest",
                       verify=str(pki.ca_file))
    url = sqs.create_queue(QueueName=uniq("https").replace(".", "-"))["QueueUrl"]
    assert url.startswith("https://"), url
    sqs.send_message(QueueUrl=url, MessageBody="over https")
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2)["Messages"]
    assert got[0]["Body"] == "over https"


def test_boto3_refuses_a_broker_it_cannot_verify(tls_broker, pki):
    boto3 = pytest.importorskip("boto3")
    from botocore.exceptions import SSLError

    other = tlsutil.Pki(tlsutil.tmpdir(), tag="other")
    sqs = boto3.client("sqs", endpoint_url=_https_endpoint(tls_broker).url,
                       region_name="us-east-1", aws_access_key_id="guest",
                       aws_secret_access_key="guest", verify=str(other.ca_file))
    with pytest.raises(SSLError):
        sqs.list_queues()


def test_aws_cli_over_https_with_the_ca_bundle(tls_broker, pki):
    import sqsutil

    ep = _https_endpoint(tls_broker)
    name = uniq("cli").replace(".", "-")
    r = sqsutil.aws_cli(ep, "--ca-bundle", str(pki.ca_file), "--output", "json",
                        "sqs", "create-queue", "--queue-name", name)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["QueueUrl"].startswith("https://")
    r = sqsutil.aws_cli(ep, "--ca-bundle", str(pki.ca_file), "--output", "json",
                        "sns", "create-topic", "--name", name)
    assert r.returncode == 0, r.stderr
    # Without the CA the CLI does not trust the broker.
    r = sqsutil.aws_cli(ep, "sqs", "list-queues")
    assert r.returncode != 0 and "SSL" in r.stderr


def test_admin_api_over_https(tls_broker, pki):
    status, overview = admin_get(tls_broker, pki, "/api/overview")
    assert status == 200
    protocols = {l["protocol"] for l in overview["listeners"]}
    assert {"amqp/ssl", "mqtt/ssl", "stomp/ssl", "https"} <= protocols


def test_mqtts_publish_is_consumed_over_amqps(tls_broker, pki):
    topic = f"tls/{uniq('x').replace('.', '-')}"
    with pika.BlockingConnection(amqps_params(tls_broker, pki)) as c:
        ch = c.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(q, "amq.topic", routing_key=topic.replace("/", "."))
        m = _paho()
        cert, key = pki.alice
        m.tls_set(ca_certs=str(pki.ca_file), certfile=str(cert), keyfile=str(key))
        try:
            assert not _mqtt_connect(m, tls_broker.ports["mqtts"]).is_failure
            m.publish(topic, b"from mqtts", qos=1).wait_for_publish(10)
        finally:
            m.loop_stop()
            m.disconnect()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            method, _, body = ch.basic_get(q, auto_ack=True)
            if method:
                assert body == b"from mqtts"
                return
            time.sleep(0.05)
        pytest.fail("nothing arrived over AMQPS")
