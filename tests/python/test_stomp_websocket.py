"""STOMP over WebSocket (RabbitMQ web-stomp's convention: path /ws, subprotocols
v10.stomp, v11.stomp, v12.stomp; one or more STOMP frames per WebSocket message)."""

from __future__ import annotations

import time

import pytest
import websocket

from stomputil import encode_frame, qname, uid


@pytest.fixture
def ws_ep(stomp_ep):
    if not stomp_ep.has_ws:
        pytest.skip("no STOMP-over-WebSocket endpoint (set SWITCHBOARD_STOMP_WS_URL)")
    return stomp_ep


@pytest.mark.parametrize("subprotocol,version", [
    ("v10.stomp", "1.0"), ("v11.stomp", "1.1"), ("v12.stomp", "1.2")])
def test_ws_subprotocol_connect_send_message(stomp_clients, ws_ep, subprotocol, version):
    q = stomp_clients.track_queue(qname())
    w = stomp_clients.ws_raw([subprotocol])
    assert w.subprotocol == subprotocol
    f = w.connect(version)
    assert f["version"] == version
    w.send("SUBSCRIBE", [("destination", f"/queue/{q}"), ("id", "ws-0"), ("receipt", "s")])
    assert w.expect("RECEIPT")["receipt-id"] == "s"
    w.send("SEND", [("destination", f"/queue/{q}"), ("x-h", "v1")], f"over {subprotocol}")
    m = w.expect("MESSAGE")
    assert m.body == f"over {subprotocol}".encode()
    assert m["subscription"] == "ws-0"
    assert m["x-h"] == "v1"


def test_ws_server_picks_one_offered_subprotocol(stomp_clients, ws_ep):
    w = stomp_clients.ws_raw(["v10.stomp", "v11.stomp", "v12.stomp"])
    assert w.subprotocol in ("v10.stomp", "v11.stomp", "v12.stomp")
    assert w.connect("1.0,1.1,1.2")["version"] in ("1.0", "1.1", "1.2")


def test_ws_unknown_subprotocol_only_is_not_accepted(ws_ep):
    with pytest.raises(websocket.WebSocketException):
        ws = websocket.create_connection(ws_ep.ws_url, subprotocols=["mqtt"], timeout=5)
        try:
            # a server that accepted must at least not claim a protocol we did not offer
            assert ws.getsubprotocol() in (None, "mqtt")
            raise websocket.WebSocketException("accepted without a subprotocol")
        finally:
            ws.close()


def test_ws_wrong_path_is_refused(ws_ep):
    bad = ws_ep.ws_url.rsplit("/", 1)[0] + f"/not-stomp-{uid()}"
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(bad, subprotocols=["v12.stomp"], timeout=5)


def test_ws_to_tcp_and_back(stomp_clients, ws_ep):
    q_in = stomp_clients.track_queue(qname())
    q_out = stomp_clients.track_queue(qname())
    tcp = stomp_clients.connected()
    tcp.subscribe(f"/queue/{q_in}")
    w = stomp_clients.ws_raw(["v12.stomp"])
    w.connect("1.2")
    w.send("SUBSCRIBE", [("destination", f"/queue/{q_out}"), ("id", "0"), ("receipt", "s")])
    w.expect("RECEIPT")
    w.send("SEND", [("destination", f"/queue/{q_in}")], "ws -> tcp")
    assert tcp.bodies(1) == ["ws -> tcp"]
    tcp.send(f"/queue/{q_out}", "tcp -> ws")
    assert w.expect("MESSAGE").body == b"tcp -> ws"


def test_ws_topic_fan_out_to_ws_and_tcp(stomp_clients, ws_ep):
    t = f"pytest.{uid()}.ws"
    tcp = stomp_clients.connected()
    tcp.subscribe(f"/topic/{t}")
    w = stomp_clients.ws_raw(["v12.stomp"])
    w.connect("1.2")
    w.send("SUBSCRIBE", [("destination", f"/topic/{t}"), ("id", "0"), ("receipt", "s")])
    w.expect("RECEIPT")
    w.send("SEND", [("destination", f"/topic/{t}")], "everyone")
    assert w.expect("MESSAGE").body == b"everyone"
    assert tcp.bodies(1) == ["everyone"]


def test_ws_binary_frames_and_binary_body(stomp_clients, ws_ep):
    q = stomp_clients.track_queue(qname())
    w = stomp_clients.ws_raw(["v12.stomp"], binary=True)
    w.connect("1.2")
    w.send("SUBSCRIBE", [("destination", f"/queue/{q}"), ("id", "0"), ("receipt", "s")])
    w.expect("RECEIPT")
    body = b"\x00" + bytes(range(256)) + b"\x00"
    w.send("SEND", [("destination", f"/queue/{q}")], body, content_length=True)
    assert w.expect("MESSAGE").body == body


def test_ws_several_frames_in_one_message(stomp_clients, ws_ep):
    q = stomp_clients.track_queue(qname())
    w = stomp_clients.ws_raw(["v12.stomp"])
    w.connect("1.2")
    w.send_bytes(encode_frame("SUBSCRIBE", [("destination", f"/queue/{q}"), ("id", "0"),
                                            ("receipt", "s")])
                 + encode_frame("SEND", [("destination", f"/queue/{q}")], "one")
                 + encode_frame("SEND", [("destination", f"/queue/{q}")], "two"))
    assert w.expect("RECEIPT")["receipt-id"] == "s"
    assert [w.expect("MESSAGE").body for _ in range(2)] == [b"one", b"two"]


def test_ws_frame_split_over_two_messages(stomp_clients, ws_ep):
    q = stomp_clients.track_queue(qname())
    w = stomp_clients.ws_raw(["v12.stomp"])
    w.connect("1.2")
    w.send("SUBSCRIBE", [("destination", f"/queue/{q}"), ("id", "0"), ("receipt", "s")])
    w.expect("RECEIPT")
    frame = encode_frame("SEND", [("destination", f"/queue/{q}")], "split")
    w.send_bytes(frame[:10])
    w.send_bytes(frame[10:])
    assert w.expect("MESSAGE").body == b"split"


def test_ws_heart_beats(stomp_clients, ws_ep):
    w = stomp_clients.ws_raw(["v12.stomp"])
    f = w.connect("1.2", heart_beat="0,1000")
    assert int(f["heart-beat"].split(",")[0]) > 0
    start = time.monotonic()
    assert w.poll(3.0) is None
    assert len(w.heartbeats) >= 2, w.heartbeats
    assert w.heartbeats[0] - start <= 1.6


def test_ws_bad_login_is_refused(stomp_clients, ws_ep):
    w = stomp_clients.ws_raw(["v12.stomp"])
    f = w.connect("1.2", passcode="wrong", expect="ERROR")
    assert f.get("message")


def test_stomp_py_websocket_transport(stomp_clients, ws_ep):
    """stomp.py's own WebSocket transport (1.2, no subprotocol offered)."""
    q = stomp_clients.track_queue(qname())
    c = stomp_clients("1.2", ws=True).connect()
    assert c.connected_frame.headers["version"] == "1.2"
    c.subscribe(f"/queue/{q}")
    c.send(f"/queue/{q}", "stomp.py over ws")
    assert c.bodies(1) == ["stomp.py over ws"]
    c.disconnect()
