"""MQTT over WebSocket (RabbitMQ web-mqtt convention: path /ws, subprotocol "mqtt";
port 15675 by default): paho with transport="websockets", and messages crossing
between WebSocket and plain TCP clients."""

from __future__ import annotations

import base64
import os
import socket

import pytest

import mqttutil as mu
from mqttutil import VERSION_IDS, VERSIONS


@pytest.fixture
def ws(mqtt):
    if not mqtt.has_ws:
        pytest.skip("no MQTT-over-WebSocket endpoint (set SWITCHBOARD_MQTT_WS_URL)")
    return mqtt


@pytest.mark.parametrize("version", VERSIONS, ids=VERSION_IDS.get)
def test_pubsub_over_websocket(ws, mqtt_clients, version):
    topic = mu.topic_prefix() + "/ws"
    sub = mqtt_clients(version, transport="websockets")
    assert sub.connect().rc == 0
    sub.subscribe(topic, qos=1)
    pub = mqtt_clients(version, transport="websockets")
    pub.connect()
    for qos in (0, 1, 2):
        pub.publish(topic, f"q{qos}", qos=qos)
    assert [m.payload for m in sub.wait_for(3)] == [b"q0", b"q1", b"q2"]


@pytest.mark.parametrize("version", [4, 5], ids=VERSION_IDS.get)
def test_websocket_to_tcp_and_back(ws, mqtt_clients, version):
    p = mu.topic_prefix()
    wsc = mqtt_clients(version, transport="websockets")
    wsc.connect()
    wsc.subscribe(f"{p}/to-ws", qos=1)
    tcp = mqtt_clients.connected(version)
    tcp.subscribe(f"{p}/to-tcp", qos=1)
    props = {"UserProperty": [("via", "ws")]} if version == 5 else None
    wsc.publish(f"{p}/to-tcp", b"\x00from ws\xff", qos=1, properties=props)
    tcp.publish(f"{p}/to-ws", b"from tcp", qos=2)
    m = tcp.wait_for(1)[0]
    assert m.payload == b"\x00from ws\xff"
    if version == 5:
        assert m.props.get("UserProperty") == [("via", "ws")]
    m = wsc.wait_for(1)[0]
    assert (m.payload, m.qos) == (b"from tcp", 1)


def test_large_message_over_websocket(ws, mqtt_clients):
    topic = mu.topic_prefix() + "/ws-big"
    body = os.urandom(64 * 1024)
    sub = mqtt_clients(4, transport="websockets")
    sub.connect()
    sub.subscribe(topic, qos=1)
    pub = mqtt_clients(4, transport="websockets")
    pub.connect()
    pub.publish(topic, body, qos=1, timeout=10)
    assert sub.wait_for(1, timeout=10)[0].payload == body


def test_will_of_dropped_websocket_client(ws, mqtt_clients):
    topic = mu.topic_prefix() + "/ws-will"
    watcher = mqtt_clients.connected(4)
    watcher.subscribe(topic, qos=1)
    c = mqtt_clients(4, transport="websockets",
                     will={"topic": topic, "payload": b"ws gone", "qos": 1})
    c.connect()
    c.abort()
    assert watcher.wait_for(1)[0].payload == b"ws gone"


def test_persistent_session_over_websocket_resumes_on_tcp(ws, mqtt_clients):
    topic = mu.topic_prefix() + "/ws-sess"
    cid = mu.client_id()
    mqtt_clients.persistent(cid, 4)
    w = mqtt_clients(4, cid=cid, clean=False, transport="websockets")
    w.connect()
    w.subscribe(topic, qos=1)
    w.disconnect()
    mqtt_clients.connected(4).publish(topic, "queued", qos=1)
    t = mqtt_clients(4, cid=cid, clean=False)
    assert t.connect().session_present is True
    assert t.wait_for(1)[0].payload == b"queued"


def test_upgrade_handshake_echoes_mqtt_subprotocol(ws):
    key = base64.b64encode(os.urandom(16)).decode()
    req = (f"GET {ws.ws_path} HTTP/1.1\r\nHost: {ws.ws_host}:{ws.ws_port}\r\n"
           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Protocol: mqtt\r\n\r\n")
    with socket.create_connection((ws.ws_host, ws.ws_port), timeout=5) as s:
        s.sendall(req.encode())
        resp = b""
        while b"\r\n\r\n" not in resp:
            chunk = s.recv(4096)
            if not chunk:
                break
            resp += chunk
    head = resp.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    assert head[0].split()[1] == "101", head
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
    assert headers.get("sec-websocket-protocol") == "mqtt", headers
    import hashlib
    accept = base64.b64encode(hashlib.sha1(
        (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
    assert headers.get("sec-websocket-accept") == accept
