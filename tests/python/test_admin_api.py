"""The admin HTTP API (RabbitMQ's management API shapes) with Debian's own
``rabbitmqadmin``, plain HTTP requests and Prometheus' text format.

Against Switchboard the API is the session broker's ``admin=`` listener; against
an external RabbitMQ (``SWITCHBOARD_AMQP_URL``) it is ``SWITCHBOARD_ADMIN_URL`` or
``http://<host>:15672`` (how these tests are validated). ``rabbitmqadmin`` comes
from the ``rabbitmq-server`` package (.ci/run extracts it); its tests skip without
it."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any, Optional, Tuple

import pika
import pytest

RABBITMQADMIN = shutil.which("rabbitmqadmin")
needs_rabbitmqadmin = pytest.mark.skipif(
    RABBITMQADMIN is None,
    reason="rabbitmqadmin not installed (it ships in Debian's rabbitmq-server package)")


def admin_addr(broker) -> Tuple[str, int]:
    url = os.environ.get("SWITCHBOARD_ADMIN_URL")
    if url:
        u = urllib.parse.urlsplit(url)
        return u.hostname or "127.0.0.1", u.port or 15672
    if broker.external:
        return broker.host, 15672
    return broker.ports["admin"]


class Api:
    def __init__(self, host: str, port: int, user: str = "guest", password: str = "guest"):
        self.base = f"http://{host}:{port}"
        self.host, self.port = host, port
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def call(self, method: str, path: str, body: Any = None,
             headers: Optional[dict] = None, auth: bool = True) -> Tuple[int, Any, dict]:
        data = None if body is None else (body if isinstance(body, bytes)
                                          else json.dumps(body).encode())
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if auth:
            req.add_header("Authorization", self.auth)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                raw, status, hdrs = r.read(), r.status, dict(r.headers)
        except urllib.error.HTTPError as e:
            raw, status, hdrs = e.read(), e.code, dict(e.headers)
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode()
        return status, parsed, hdrs

    def get(self, path: str) -> Any:
        status, body, _ = self.call("GET", path)
        assert status == 200, (path, status, body)
        return body


@pytest.fixture
def api(broker) -> Api:
    return Api(*admin_addr(broker))


def rabbitmqadmin(api: Api, *args: str) -> str:
    cmd = [RABBITMQADMIN, "-H", api.host, "-P", str(api.port), "-u", "guest", "-p", "guest",
           *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


def table(api: Api, *args: str) -> list:
    return json.loads(rabbitmqadmin(api, "-f", "raw_json", *args))


def depth(api: Api, q: str, want: int, field: str = "messages") -> int:
    """The queue's count as `rabbitmqadmin list queues` shows it, once it is `want`
    (RabbitMQ publishes its queue figures every few seconds; Switchboard at once)."""
    deadline = time.monotonic() + 15
    while True:
        got = {r["name"]: r.get(field) for r in table(api, "list", "queues")}.get(q)
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.5)


def uname(kind: str) -> str:
    return f"pytest.admin.{kind}.{uuid.uuid4().hex[:10]}"


@needs_rabbitmqadmin
def test_rabbitmqadmin_declare_publish_get_list_delete(api):
    q, x = uname("q"), uname("x")
    rabbitmqadmin(api, "declare", "queue", f"name={q}", "durable=true",
                  'arguments={"x-max-length": 100}')
    rabbitmqadmin(api, "declare", "exchange", f"name={x}", "type=topic")
    rabbitmqadmin(api, "declare", "binding", f"source={x}", f"destination={q}",
                  "routing_key=orders.#")
    try:
        rabbitmqadmin(api, "publish", f"exchange={x}", "routing_key=orders.eu",
                      "payload=first", 'properties={"delivery_mode": 2}')
        assert depth(api, q, 1) == 1
        queues = {r["name"]: r for r in table(api, "list", "queues")}
        assert queues[q]["durable"] is True
        assert queues[q]["arguments"] == {"x-max-length": 100}
        assert {r["name"]: r["type"] for r in table(api, "list", "exchanges")}[x] == "topic"
        mine = [b for b in table(api, "list", "bindings") if b["destination"] == q]
        assert {(b["source"], b["routing_key"]) for b in mine} == {("", q), (x, "orders.#")}
        # requeue leaves it there; ack_requeue_false takes it.
        [m] = table(api, "get", f"queue={q}", "ackmode=ack_requeue_true")
        assert (m["payload"], m["routing_key"], m["exchange"]) == ("first", "orders.eu", x)
        assert m["properties"]["delivery_mode"] == 2
        [m] = table(api, "get", f"queue={q}", "ackmode=ack_requeue_false")
        assert m["redelivered"] is True
        assert table(api, "get", f"queue={q}", "ackmode=ack_requeue_false") == []
        [b] = [b for b in mine if b["source"] == x]
        rabbitmqadmin(api, "delete", "binding", f"source={x}", "destination_type=queue",
                      f"destination={q}", f"properties_key={b['properties_key']}")
        assert not [b for b in table(api, "list", "bindings")
                    if b["destination"] == q and b["source"] == x]
        [ov] = table(api, "show", "overview")
        assert ov["object_totals"]["queues"] >= 1
    finally:
        rabbitmqadmin(api, "delete", "queue", f"name={q}")
        rabbitmqadmin(api, "delete", "exchange", f"name={x}")
    assert q not in {r["name"] for r in table(api, "list", "queues")}
    assert x not in {r["name"] for r in table(api, "list", "exchanges")}


@needs_rabbitmqadmin
def test_rabbitmqadmin_purge_and_list_vhosts_users_nodes(api):
    q = uname("purge")
    rabbitmqadmin(api, "declare", "queue", f"name={q}", "durable=false")
    try:
        for i in range(3):
            rabbitmqadmin(api, "publish", "routing_key=" + q, f"payload=m{i}")
        assert depth(api, q, 3) == 3
        rabbitmqadmin(api, "purge", "queue", f"name={q}")
        assert depth(api, q, 0) == 0
    finally:
        rabbitmqadmin(api, "delete", "queue", f"name={q}")
    assert "/" in {v["name"] for v in table(api, "list", "vhosts")}
    users = {u["name"]: u for u in table(api, "list", "users")}
    assert "administrator" in users["guest"]["tags"]
    assert table(api, "list", "nodes")[0]["running"] is True


def test_api_shows_an_amqp_queue_and_its_depth(api, broker, ch):
    q = uname("amqp")
    ch.queue_declare(q, durable=True, arguments={"x-message-ttl": 60000})
    try:
        for i in range(4):
            ch.basic_publish("", q, f"m{i}".encode(),
                             pika.BasicProperties(delivery_mode=2))
        path = "/api/queues/%2F/" + urllib.parse.quote(q, safe="")
        deadline = time.monotonic() + 15
        while api.get(path).get("messages_ready") != 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        info = api.get(path)
        assert (info["name"], info["vhost"], info["durable"]) == (q, "/", True)
        assert info["messages_ready"] == 4 and info["messages"] == 4
        assert info["arguments"]["x-message-ttl"] == 60000
        # A consumer holding one unacked shows as unacknowledged and a consumer.
        ch.basic_qos(prefetch_count=1)
        ch.basic_consume(q, lambda *a: None)
        deadline = time.monotonic() + 15
        while api.get(path).get("messages_unacknowledged") != 1 and \
                time.monotonic() < deadline:
            ch.connection.process_data_events(time_limit=0.1)
        info = api.get(path)
        assert info["messages_unacknowledged"] == 1 and info["consumers"] == 1
        # The consumer, with the connection consuming.
        port = ch.connection._impl._transport._sock.getsockname()[1]
        deadline = time.monotonic() + 15
        while True:
            mine = [c for c in api.get("/api/consumers/%2F") if c["queue"]["name"] == q]
            if mine or time.monotonic() > deadline:
                break
            ch.connection.process_data_events(time_limit=0.2)
        [c] = mine
        assert c["prefetch_count"] == 1 and c["ack_required"] is True
        assert c["channel_details"]["peer_port"] == port
        status, _, _ = api.call("DELETE", path + "/contents")
        assert status == 204
        deadline = time.monotonic() + 15
        while api.get(path).get("messages_ready") != 0 and time.monotonic() < deadline:
            ch.connection.process_data_events(time_limit=0.1)
        assert api.get(path)["messages_ready"] == 0
        page = api.get(f"/api/queues/%2F?page=1&page_size=100&name={q}"
                       "&columns=name,messages_ready")
        assert page["items"] == [{"name": q, "messages_ready": 0}]
        assert page["filtered_count"] == 1 and page["page"] == 1
    finally:
        ch.queue_delete(q)


def test_publish_from_the_api_reaches_an_mqtt_subscriber(api, mqtt):
    import paho.mqtt.client as paho

    host, port = mqtt.host, mqtt.port
    topic = f"pytest/{uuid.uuid4().hex[:8]}/admin"
    got = []
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="adm-" + uuid.uuid4().hex[:8])
    c.username_pw_set("guest", "guest")
    c.on_message = lambda _c, _u, m: got.append(m.payload)
    c.connect(host, port)
    c.loop_start()
    try:
        c.subscribe(topic, qos=1)
        time.sleep(0.5)
        status, body, _ = api.call("POST", "/api/exchanges/%2F/amq.topic/publish", {
            "routing_key": topic.replace("/", "."), "payload": "from the console",
            "payload_encoding": "string", "properties": {}})
        assert status == 200 and body == {"routed": True}
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got == [b"from the console"]
    finally:
        c.loop_stop()
        c.disconnect()


def test_errors_are_rabbitmq_shaped(api, broker):
    status, body, hdrs = api.call("GET", "/api/queues", auth=False)
    assert status == 401
    assert "Basic" in hdrs.get("WWW-Authenticate", hdrs.get("www-authenticate", ""))
    bad = Api(api.host, api.port, "guest", "wrong")
    assert bad.call("GET", "/api/overview")[0] == 401
    status, body, _ = api.call("GET", "/api/queues/%2F/" + uname("missing"))
    assert status == 404 and body["error"] and body["reason"]
    assert api.call("GET", "/api/queues/no-such-vhost")[0] == 404
    status, body, _ = api.call("POST", "/api/overview", {})
    assert status == 405
    if not broker.external:
        assert body["error"] == "Method Not Allowed"
    q = uname("bad")
    status, body, _ = api.call("PUT", "/api/queues/%2F/" + q, b"{not json")
    assert status == 400 and body["error"] == "bad_request"
    assert api.call("GET", "/api/queues/%2F/" + q)[0] == 404
    # A redeclare that differs is refused with the reason, and changes nothing.
    assert api.call("PUT", "/api/queues/%2F/" + q, {"durable": True})[0] in (201, 204)
    try:
        status, body, _ = api.call("PUT", "/api/queues/%2F/" + q, {"durable": False})
        assert status == 400 and "durable" in body["reason"]
        assert api.get("/api/queues/%2F/" + q)["durable"] is True
    finally:
        api.call("DELETE", "/api/queues/%2F/" + q)


def test_whoami_and_health(api):
    assert api.get("/api/whoami")["name"] == "guest"
    assert api.get("/api/health/checks/alarms")["status"] == "ok"
    assert api.get("/api/health/checks/virtual-hosts")["status"] == "ok"
    assert api.get("/api/aliveness-test/%2F")["status"] == "ok"


def test_prometheus_metrics(api, broker, ch):
    if broker.external:
        pytest.skip("RabbitMQ serves /metrics on 15692 with another set of series")
    q = uname("metrics")
    ch.queue_declare(q)
    try:
        ch.basic_publish("", q, b"x")
        ch.basic_publish("", q, b"y")
        deadline = time.monotonic() + 5
        while True:
            with urllib.request.urlopen(api.base + "/metrics", timeout=10) as r:
                text = r.read().decode()
                ctype = r.headers["Content-Type"]
            line = f'rabbitmq_queue_messages_ready{{vhost="/",queue="{q}"}} 2'
            if line in text or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert ctype.startswith("text/plain; version=0.0.4")
        assert line in text
        assert f'sqs_approximate_number_of_messages_visible{{vhost="/",queue="{q}"}} 2' in text
        assert "# TYPE rabbitmq_queue_messages_ready gauge" in text
        # Every line is a comment or `name{labels} value`, as Prometheus parses.
        for line in text.splitlines():
            assert line.startswith("#") or float(line.rsplit(" ", 1)[1]) >= 0, line
        # This AMQP connection counts, by protocol.
        assert 'switchboard_connections{protocol="AMQP 0-9-1"}' in text
        # The journal's counters and its sync-latency histogram.
        metric = {l.rsplit(" ", 1)[0]: float(l.rsplit(" ", 1)[1])
                  for l in text.splitlines() if not l.startswith("#")}
        count = metric["switchboard_journal_sync_seconds_count"]
        assert metric['switchboard_journal_sync_seconds_bucket{le="+Inf"}'] == count
        # A confirmed persistent message is one more record, made durable by a sync.
        dq = uname("metrics-durable")
        ch.queue_declare(dq, durable=True)
        try:
            ch.confirm_delivery()
            ch.basic_publish("", dq, b"z", pika.BasicProperties(delivery_mode=2))
            with urllib.request.urlopen(api.base + "/metrics", timeout=10) as r:
                after = {l.rsplit(" ", 1)[0]: float(l.rsplit(" ", 1)[1])
                         for l in r.read().decode().splitlines() if not l.startswith("#")}
            assert after["switchboard_journal_records_appended_total"] > \
                metric["switchboard_journal_records_appended_total"]
            assert after["switchboard_journal_sync_seconds_count"] > count
        finally:
            ch.queue_delete(dq)
    finally:
        ch.queue_delete(q)


def test_a_monitoring_user_reads_but_cannot_change(tmp_path):
    from conftest import start_switchboard, stop_switchboard

    cfg = tmp_path / "switchboard.toml"
    cfg.write_text('[[users]]\nname = "watcher"\npassword = "w"\ntags = ["monitoring"]\n'
                   '[[users]]\nname = "app"\npassword = "a"\n'
                   '[[users]]\nname = "boss"\npassword = "b"\ntags = ["administrator"]\n')
    b = start_switchboard(env={"SWITCHBOARD_CONFIG": str(cfg)})
    try:
        host, port = b.ports["admin"]
        watcher = Api(host, port, "watcher", "w")
        assert watcher.call("GET", "/api/queues")[0] == 200
        assert watcher.call("PUT", "/api/queues/%2F/nope", {})[0] == 401
        assert Api(host, port, "boss", "b").call("GET", "/api/queues/%2F/nope")[0] == 404
        # No management tag: no API at all.
        assert Api(host, port, "app", "a").call("GET", "/api/overview")[0] == 401
        # Users are the administrator's.
        assert watcher.call("GET", "/api/users")[0] == 401
        # A browser's cross-site request is refused even with good credentials.
        boss = Api(host, port, "boss", "b")
        status, _, _ = boss.call("PUT", "/api/queues/%2F/csrf", {},
                                 headers={"Origin": "http://evil.example"})
        assert status == 401
        assert boss.call("GET", "/api/queues/%2F/csrf")[0] == 404
    finally:
        stop_switchboard(b)


def _wait(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not pred() and time.monotonic() < deadline:
        time.sleep(0.05)
    return pred()


def test_connections_of_every_protocol_listed_and_closed(api, broker, mqtt_clients,
                                                          stomp_clients):
    if broker.external:
        pytest.skip("RabbitMQ lists MQTT and STOMP connections only with its plugins")
    amqp = broker.connect(client_properties={"connection_name": "admin-test"})
    m = mqtt_clients.connected(version=5)
    s = stomp_clients.connected()
    try:
        def mine():
            by_port = {}
            for c in api.get("/api/connections"):
                by_port[c["peer_port"]] = c
            return by_port

        amqp_port = amqp._impl._transport._sock.getsockname()[1]
        mqtt_port = m.paho.socket().getsockname()[1]
        assert _wait(lambda: {amqp_port, mqtt_port} <= set(mine()))
        conns = mine()
        a = conns[amqp_port]
        assert (a["protocol"], a["user"], a["vhost"]) == ("AMQP 0-9-1", "guest", "/")
        assert a["client_properties"]["connection_name"] == "admin-test"
        assert a["channels"] == 0
        amqp.channel()
        assert _wait(lambda: mine()[amqp_port]["channels"] == 1)
        mq = conns[mqtt_port]
        assert mq["protocol"] == "MQTT 5.0"
        assert mq["client_properties"]["client_id"] == m.client_id
        assert any(c["protocol"].startswith("STOMP 1.") for c in conns.values())
        ov = api.get("/api/overview")
        assert ov["object_totals"]["connections"] >= 3
        if RABBITMQADMIN:
            listed = table(api, "list", "connections")
            assert a["name"] in {c["name"] for c in listed}
            rabbitmqadmin(api, "close", "connection", f"name={a['name']}")
        else:
            assert api.call("DELETE", "/api/connections/"
                            + urllib.parse.quote(a["name"], safe=""))[0] == 204
        # The AMQP client is told: connection.close 320 CONNECTION_FORCED.
        with pytest.raises(pika.exceptions.ConnectionClosed) as e:
            for _ in range(50):
                amqp.process_data_events(time_limit=0.1)
        assert e.value.reply_code == 320
        assert _wait(lambda: amqp_port not in mine())
        # MQTT too, and the others stay.
        status, _, _ = api.call("DELETE", "/api/connections/"
                                + urllib.parse.quote(mq["name"], safe=""))
        assert status == 204
        assert _wait(lambda: bool(m.disconnects))
        assert s.is_connected()
        assert api.call("DELETE", "/api/connections/127.0.0.1:1")[0] == 404
    finally:
        if amqp.is_open:
            amqp.close()


def test_sqs_and_sns_requests_are_counted_by_action(api, broker):
    if broker.external:
        pytest.skip("Switchboard's own series")
    import botocore.exceptions
    import snsutil
    import sqsutil

    ep = sqsutil.endpoint_from_ports(broker.ports)
    sqs = sqsutil.client(ep)

    def series(name):
        with urllib.request.urlopen(api.base + "/metrics", timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.rsplit(" ", 1)[1])
        return 0.0

    listed = 'switchboard_http_requests_total{service="sqs",action="ListQueues"}'
    failed = 'switchboard_http_request_errors_total{service="sqs",action="GetQueueUrl"}'
    topics = 'switchboard_http_requests_total{service="sns",action="ListTopics"}'
    before = (series(listed), series(failed), series(topics))
    sqs.list_queues()
    sqs.list_queues()
    with pytest.raises(botocore.exceptions.ClientError):
        sqs.get_queue_url(QueueName=uname("missing"))
    snsutil.client(ep).list_topics()
    assert series(listed) == before[0] + 2
    assert series(failed) == before[1] + 1
    assert series(topics) == before[2] + 1
    assert series('switchboard_http_request_duration_seconds_count'
                  '{service="sqs",action="ListQueues"}') >= 2


def test_websocket_and_sqs_connections_are_listed_by_protocol(api, broker, mqtt_clients):
    """WebSocket connections show as RabbitMQ's `Web MQTT` / `Web STOMP`; an SQS
    client's HTTP connection shows with its signer and User-Agent."""
    if broker.external:
        pytest.skip("Switchboard's own connection kinds")
    import boto3
    import botocore.config
    import websocket

    m = mqtt_clients.connected(version=4, transport="websockets")
    host, port = broker.ports["stomp-ws"]
    ws = websocket.create_connection(f"ws://{host}:{port}/ws", subprotocols=["v12.stomp"])
    ws.send("CONNECT\naccept-version:1.2\nlogin:guest\npasscode:guest\nhost:/\n\n\x00")
    assert ws.recv().startswith("CONNECTED")
    http_host, http_port = broker.ports["http"]
    sqs = boto3.client("sqs", endpoint_url=f"http://{http_host}:{http_port}",
                       region_name="us-east-1", aws_access_key_id="guest",
                       aws_secret_access_key="guest",
                       config=botocore.config.Config(retries={"max_attempts": 0}))
    sqs.list_queues()
    try:
        sock = m.paho.socket()
        # paho wraps its WebSocket's socket.
        mqtt_port = getattr(sock, "_socket", sock).getsockname()[1]
        ws_port = ws.sock.getsockname()[1]

        def by_port():
            return {c["peer_port"]: c for c in api.get("/api/connections")}

        assert _wait(lambda: {mqtt_port, ws_port} <= set(by_port()))
        conns = by_port()
        assert conns[mqtt_port]["protocol"] == "Web MQTT 3.1.1"
        assert conns[ws_port]["protocol"] == "Web STOMP 1.2"
        http = [c for c in conns.values() if c["protocol"] == "SQS/SNS over HTTP"]
        assert http and http[0]["user"] == "guest"
        assert "Boto3" in http[0]["client_properties"]["user_agent"]
    finally:
        ws.close()
        sqs.close()
