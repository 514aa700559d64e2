"""STOMP connections: CONNECT/STOMP, version negotiation, CONNECTED headers, login,
virtual hosts, DISCONNECT."""

from __future__ import annotations

import re
import threading

import pytest
import stomp.exception

import stomputil
from stomputil import qname


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_stomp_py_connects_and_round_trips(stomp_clients, version):
    c = stomp_clients.connected(version)
    assert c.is_connected()
    assert c.connected_frame.headers.get("version") == version
    q = stomp_clients.track_queue(qname())
    c.subscribe(f"/queue/{q}")
    c.send(f"/queue/{q}", f"hello over {version}")
    assert c.bodies(1) == [f"hello over {version}"]
    c.disconnect()
    assert not c.is_connected()


@pytest.mark.parametrize("accept,expected", [
    ("1.0,1.1,1.2", "1.2"),
    ("1.2", "1.2"),
    ("1.1", "1.1"),
    ("1.0", "1.0"),
    ("1.0,1.1", "1.1"),
    ("1.1,1.0", "1.1"),       # order does not matter: the highest common version wins
    ("1.1,1.2,9.9", "1.2"),   # versions the server does not know are ignored
    (None, "1.0"),            # no accept-version: a STOMP 1.0 client
])
def test_version_negotiation(stomp_clients, accept, expected):
    r = stomp_clients.raw()
    f = r.connect(accept)
    assert f["version"] == expected


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_stomp_command_connects(stomp_clients, version):
    """STOMP is the 1.1+ name of CONNECT."""
    r = stomp_clients.raw()
    f = r.connect(version, command="STOMP")
    assert f.command == "CONNECTED" and f["version"] == version


def test_connected_headers(stomp_clients):
    r1 = stomp_clients.raw()
    f1 = r1.connect("1.2", heart_beat="0,0")
    r2 = stomp_clients.raw()
    f2 = r2.connect("1.2", heart_beat="0,0")
    assert f1["version"] == "1.2"
    # server = name ["/" version] *(comment)
    assert re.match(r"^[^/\s]+(/\S+)?( .*)?$", f1["server"]), f1
    assert f1["session"] and f2["session"] and f1["session"] != f2["session"]
    assert re.match(r"^\d+,\d+$", f1["heart-beat"]), f1
    assert f1.body == b""


def test_connected_heart_beat_header_answers_the_clients(stomp_clients):
    """The client offers to send every 2 s and wants a beat every 3 s; the server's
    answer is "sx,sy" with sy > 0 (it will read the client's beats) and sx > 0 (it will
    send)."""
    r = stomp_clients.raw()
    f = r.connect("1.2", heart_beat="2000,3000")
    sx, sy = (int(x) for x in f["heart-beat"].split(","))
    assert sx > 0 and sy > 0, f


def test_stomp_py_heartbeats_negotiated(stomp_clients):
    c = stomp_clients("1.2", heartbeats=(4000, 4000)).connect()
    sx, sy = (int(x) for x in c.connected_frame.headers["heart-beat"].split(","))
    assert sx > 0 and sy > 0


def test_no_common_version_is_refused(stomp_clients):
    r = stomp_clients.raw()
    f = r.connect("2.0,3.1", expect="ERROR")
    assert f.get("message")
    # 1.2: the ERROR frame's version header lists the versions the server supports
    assert "1.2" in f.get("version", ""), f


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_bad_passcode_is_refused(stomp_clients, version):
    c = stomp_clients(version)
    with pytest.raises(stomp.exception.ConnectFailedException):
        c.connect(passcode="not-the-password")
    assert c.rec.errors and c.rec.errors[0].headers.get("message")
    assert not c.rec.connected


def test_unknown_user_is_refused(stomp_clients):
    r = stomp_clients.raw()
    f = r.connect("1.2", login=f"nobody-{stomputil.uid()}", passcode="x", expect="ERROR")
    assert f.get("message")


def test_anonymous_connect_from_loopback_is_the_default_user(stomp_clients):
    """No login/passcode from 127.0.0.1: accepted as the default user (RabbitMQ's
    stomp.default_user, Switchboard's loopback default)."""
    r = stomp_clients.raw()
    r.send("CONNECT", [("accept-version", "1.2"), ("host", "/")])
    f = r.expect("CONNECTED")
    assert f["version"] == "1.2"
    q = stomp_clients.track_queue(qname())
    r.send("SUBSCRIBE", [("destination", f"/queue/{q}"), ("id", "0"), ("receipt", "s")])
    r.expect("RECEIPT")
    r.send("SEND", [("destination", f"/queue/{q}")], "anon")
    assert r.expect("MESSAGE").body == b"anon"


def test_host_header_names_the_vhost(stomp_clients):
    c = stomp_clients("1.2", vhost="/").connect()
    assert c.connected_frame.headers["version"] == "1.2"


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_unknown_vhost_is_refused(stomp_clients, version):
    c = stomp_clients(version, vhost=f"no-such-vhost-{stomputil.uid()}")
    with pytest.raises(stomp.exception.ConnectFailedException):
        c.connect()
    assert c.rec.errors[0].headers.get("message")


def test_frame_before_connect_is_refused(stomp_clients):
    q = qname()
    r = stomp_clients.raw()
    r.send("SEND", [("destination", f"/queue/{q}")], "too early")
    f = r.expect("ERROR")
    assert f.get("message")


def test_refused_connections_are_closed(stomp_clients):
    """After the ERROR that refuses a CONNECT the broker closes the connection (all
    kinds at once: RabbitMQ takes 10 s for each)."""
    uid = stomputil.uid()
    cases = {
        "bad passcode": dict(passcode="wrong"),
        "unknown user": dict(login=f"nobody-{uid}", passcode="x"),
        "unknown vhost": dict(host=f"no-such-vhost-{uid}"),
        "no common version": dict(version="7.0"),
    }
    raws = {}
    for what, kw in cases.items():
        r = stomp_clients.raw()
        f = r.connect(**{"version": "1.2", **kw, "expect": "ERROR"})
        assert f.get("message"), what
        raws[what] = r
    early = stomp_clients.raw()
    early.send("SUBSCRIBE", [("destination", "/topic/x"), ("id", "0")])
    raws["frame before CONNECT"] = early

    failures = {}

    def watch(what, r):
        if not r.is_closed(stomputil.close_timeout()):
            failures[what] = "still open"

    threads = [threading.Thread(target=watch, args=item) for item in raws.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures


def test_refused_connection_does_not_disturb_others(stomp_clients):
    good = stomp_clients.connected("1.2")
    q = stomp_clients.track_queue(qname())
    good.subscribe(f"/queue/{q}")
    bad = stomp_clients.raw()
    bad.connect("1.2", passcode="wrong", expect="ERROR")
    good.send(f"/queue/{q}", "still here")
    assert good.bodies(1) == ["still here"]


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_disconnect_with_receipt(stomp_clients, version):
    """DISCONNECT receipt:x -> RECEIPT receipt-id:x, then the broker closes."""
    r = stomp_clients.raw()
    r.connect(version)
    r.send("DISCONNECT", [("receipt", "bye-1")])
    f = r.expect("RECEIPT")
    assert f["receipt-id"] == "bye-1"
    assert r.is_closed(stomputil.close_timeout())


def test_disconnect_after_send_delivers_the_message(stomp_clients):
    """A graceful DISCONNECT settles what was sent before it."""
    q = stomp_clients.track_queue(qname())
    consumer = stomp_clients.connected()
    consumer.subscribe(f"/queue/{q}")
    r = stomp_clients.raw()
    r.connect("1.2")
    for i in range(20):
        r.send("SEND", [("destination", f"/queue/{q}")], f"m{i}")
    r.send("DISCONNECT", [("receipt", "bye")])
    r.expect("RECEIPT")
    assert consumer.bodies(20) == [f"m{i}" for i in range(20)]


def test_many_connections_at_once(stomp_clients):
    clients = [stomp_clients.connected(v) for v in ("1.0", "1.1", "1.2") * 5]
    sessions = {c.connected_frame.headers.get("session") for c in clients}
    assert len(sessions) == len(clients)
    for c in clients:
        c.disconnect()
