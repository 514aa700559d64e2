"""STOMP framing over raw sockets: split and coalesced writes, binary bodies with
content-length, header escaping, repeated headers, line endings, and what a MESSAGE
frame carries."""

from __future__ import annotations

import time

import pytest

import stomputil
from stomputil import encode_frame, qname, uid


def _subscribed(stomp_clients, version="1.2", ack="auto", **extra):
    q = stomp_clients.track_queue(qname())
    r = stomp_clients.raw()
    r.connect(version)
    hdrs = [("destination", f"/queue/{q}"), ("id", "sub-0"), ("ack", ack),
            ("receipt", "subscribed")] + list(extra.items())
    r.send("SUBSCRIBE", hdrs)
    assert r.expect("RECEIPT")["receipt-id"] == "subscribed"
    return q, r


# --- how bytes arrive ------------------------------------------------------------


def test_whole_session_sent_one_byte_at_a_time(stomp_clients):
    q = stomp_clients.track_queue(qname())
    r = stomp_clients.raw()
    ep = stomp_clients.ep
    session = (
        encode_frame("CONNECT", [("accept-version", "1.2"), ("host", ep.vhost),
                                 ("login", ep.login), ("passcode", ep.passcode)])
        + encode_frame("SUBSCRIBE", [("destination", f"/queue/{q}"), ("id", "0"),
                                     ("receipt", "sub")])
        + encode_frame("SEND", [("destination", f"/queue/{q}"), ("x-h", "v:1")],
                       b"split\x00body", content_length=True)
    )
    r.send_bytes(session, bytewise=True, delay=0.001)
    assert r.expect("CONNECTED")["version"] == "1.2"
    r.version = "1.2"
    r.parser.version = "1.2"
    assert r.expect("RECEIPT")["receipt-id"] == "sub"
    m = r.expect("MESSAGE")
    assert m.body == b"split\x00body"
    assert m["x-h"] == "v:1"


def test_frame_split_at_every_byte_boundary(stomp_clients):
    """The same SEND frame, cut in two at each offset in turn, with a pause between
    the halves: every one is understood."""
    q, r = _subscribed(stomp_clients)
    frame = encode_frame("SEND", [("destination", f"/queue/{q}"), ("receipt", "R"),
                                  ("x-k", "a\\b")], b"body\x00!", content_length=True)
    for i in range(1, len(frame)):
        r.send_bytes(frame[:i])
        time.sleep(0.003)
        r.send_bytes(frame[i:])
    n = len(frame) - 1
    frames = [r.recv() for _ in range(2 * n)]
    msgs = [f for f in frames if f.command == "MESSAGE"]
    receipts = [f for f in frames if f.command == "RECEIPT"]
    assert len(msgs) == n and len(receipts) == n
    assert all(m.body == b"body\x00!" and m["x-k"] == "a\\b" for m in msgs)


def test_several_frames_in_one_write(stomp_clients):
    q = stomp_clients.track_queue(qname())
    r = stomp_clients.raw()
    ep = stomp_clients.ep
    blob = (
        encode_frame("CONNECT", [("accept-version", "1.2"), ("host", ep.vhost),
                                 ("login", ep.login), ("passcode", ep.passcode)])
        + encode_frame("SUBSCRIBE", [("destination", f"/queue/{q}"), ("id", "0"),
                                     ("receipt", "sub")])
        + b"".join(encode_frame("SEND", [("destination", f"/queue/{q}"),
                                         ("receipt", f"r{i}")], f"m{i}")
                   for i in range(3))
    )
    r.send_bytes(blob)
    assert r.expect("CONNECTED")["version"] == "1.2"
    frames = [r.recv() for _ in range(7)]
    assert [f.body for f in frames if f.command == "MESSAGE"] == [b"m0", b"m1", b"m2"]
    assert [f["receipt-id"] for f in frames if f.command == "RECEIPT"] == \
        ["sub", "r0", "r1", "r2"]
    # and DISCONNECT coalesced with the frame before it
    r.send_bytes(encode_frame("BEGIN", [("transaction", "t"), ("receipt", "b")])
                 + encode_frame("DISCONNECT", [("receipt", "bye")]))
    assert [f["receipt-id"] for f in r.wait_closed(stomputil.close_timeout())] == \
        ["b", "bye"]


def test_eols_between_frames_are_ignored(stomp_clients):
    q, r = _subscribed(stomp_clients)
    f1 = encode_frame("SEND", [("destination", f"/queue/{q}")], "a")
    f2 = encode_frame("SEND", [("destination", f"/queue/{q}")], "b")
    r.send_bytes(b"\n\n" + f1 + b"\n\r\n\n" + f2 + b"\n")
    assert [r.expect("MESSAGE").body for _ in range(2)] == [b"a", b"b"]


def test_crlf_line_endings_in_1_2(stomp_clients):
    q, r = _subscribed(stomp_clients)
    r.send_bytes(encode_frame("SEND", [("destination", f"/queue/{q}"), ("x-h", "v"),
                                       ("receipt", "crlf")], "body", eol=b"\r\n"))
    frames = [r.recv(), r.recv()]
    m = next(f for f in frames if f.command == "MESSAGE")
    assert m.body == b"body" and m["x-h"] == "v"       # no stray \r in the value
    assert any(f.command == "RECEIPT" and f["receipt-id"] == "crlf" for f in frames)


# --- bodies ----------------------------------------------------------------------


def test_binary_body_with_nul_bytes_and_content_length(stomp_clients):
    q, r = _subscribed(stomp_clients)
    body = b"\x00\x00" + bytes(range(256)) + b"\x00"
    r.send("SEND", [("destination", f"/queue/{q}"),
                    ("content-type", "application/octet-stream")], body, content_length=True)
    m = r.expect("MESSAGE")
    assert m.body == body
    assert m["content-length"] == str(len(body))
    assert m["content-type"] == "application/octet-stream"


def test_body_without_content_length_ends_at_nul(stomp_clients):
    q, r = _subscribed(stomp_clients)
    r.send("SEND", [("destination", f"/queue/{q}")], "plain text body")
    m = r.expect("MESSAGE")
    assert m.body == b"plain text body"
    if "content-length" in m:
        assert int(m["content-length"]) == len(m.body)


def test_empty_body(stomp_clients):
    q, r = _subscribed(stomp_clients)
    r.send("SEND", [("destination", f"/queue/{q}")], b"")
    r.send("SEND", [("destination", f"/queue/{q}")], b"", content_length=True)
    assert [r.expect("MESSAGE").body for _ in range(2)] == [b"", b""]


def test_large_body(stomp_clients):
    q, r = _subscribed(stomp_clients)
    body = bytes(range(256)) * 4096                    # 1 MiB, with NULs
    r.send("SEND", [("destination", f"/queue/{q}")], body, content_length=True)
    assert r.expect("MESSAGE", timeout=15).body == body


def test_utf8_body_with_stomp_py(stomp_clients):
    q = stomp_clients.track_queue(qname())
    c = stomp_clients.connected()
    c.subscribe(f"/queue/{q}")
    c.send(f"/queue/{q}", "grüße, 世界 ✓", content_type="text/plain;charset=utf-8")
    m = c.take(1)[0]
    assert m.body == "grüße, 世界 ✓"
    assert m.headers["content-type"] == "text/plain;charset=utf-8"


# --- headers ---------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_escaped_header_values_round_trip(stomp_clients, version):
    """\\n, \\c and \\\\ in header values (and names) decode on the way in and are
    encoded again on the way out."""
    q, r = _subscribed(stomp_clients, version)
    value = "line1\nline2:colon\\backslash"
    r.send("SEND", [("destination", f"/queue/{q}"), ("x-esc", value), ("x:key", "k")], "b")
    m = r.expect("MESSAGE")
    assert m["x-esc"] == value
    assert m["x:key"] == "k"


def test_escaped_carriage_return_round_trips_in_1_2(stomp_clients):
    q, r = _subscribed(stomp_clients, "1.2")
    value = "a\rb\r\nc"
    r.send("SEND", [("destination", f"/queue/{q}"), ("x-cr", value)], "b")
    assert r.expect("MESSAGE")["x-cr"] == value


def test_escaping_seen_on_the_wire(stomp_clients):
    """The exact bytes of the MESSAGE frame carry the escapes, not raw LF/colons."""
    q, r = _subscribed(stomp_clients, "1.2")
    r.send("SEND", [("destination", f"/queue/{q}"), ("x-esc", "a\nb:c\\d")], "b")
    raw = b""
    deadline = time.monotonic() + 5
    while b"x-esc:" not in raw or b"\x00" not in raw.split(b"x-esc:", 1)[1]:
        chunk = r._read(max(deadline - time.monotonic(), 0.01))
        assert chunk, "no MESSAGE frame"
        raw += chunk
    assert b"x-esc:a\\nb\\cc\\\\d\n" in raw


def test_stomp_py_headers_with_special_characters(stomp_clients):
    q = stomp_clients.track_queue(qname())
    c = stomp_clients.connected("1.2")
    c.subscribe(f"/queue/{q}")
    c.send(f"/queue/{q}", "b", headers={"x-multi": "one\ntwo", "x-colon": "k:v",
                                        "x-utf": "ünï€"})
    m = c.take(1)[0]
    assert (m.headers["x-multi"], m.headers["x-colon"], m.headers["x-utf"]) == \
        ("one\ntwo", "k:v", "ünï€")


def test_header_values_keep_their_spaces_in_1_1_and_1_2(stomp_clients):
    q, r = _subscribed(stomp_clients, "1.2")
    r.send("SEND", [("destination", f"/queue/{q}"), ("x-sp", "  padded  "),
                    ("x-empty", "")], "b")
    m = r.expect("MESSAGE")
    assert m["x-sp"] == "  padded  "
    assert m.get("x-empty") == ""


@stomputil.requires_switchboard("RabbitMQ escapes ':' as '\\c' on 1.0 connections too")
def test_header_values_are_not_escaped_in_1_0(stomp_clients):
    q, r = _subscribed(stomp_clients, "1.0")
    r.send("SEND", [("destination", f"/queue/{q}"), ("x-url", "http://h:80/p")], "b")
    assert r.expect("MESSAGE")["x-url"] == "http://h:80/p"


def test_repeated_header_first_one_wins(stomp_clients):
    q, r = _subscribed(stomp_clients)
    r.send("SEND", [("destination", f"/queue/{q}"), ("x-rep", "first"),
                    ("x-rep", "second"), ("x-rep", "third")], "b")
    m = r.expect("MESSAGE")
    assert m["x-rep"] == "first"          # the first occurrence on the wire


def test_repeated_destination_first_one_wins(stomp_clients):
    q1 = stomp_clients.track_queue(qname())
    q2 = stomp_clients.track_queue(qname())
    c = stomp_clients.connected()
    c.subscribe(f"/queue/{q1}")
    c.subscribe(f"/queue/{q2}")
    r = stomp_clients.raw()
    r.connect("1.2")
    r.send("SEND", [("destination", f"/queue/{q1}"), ("destination", f"/queue/{q2}")],
           "where")
    m = c.take(1)[0]
    assert m.headers["destination"] == f"/queue/{q1}"
    assert c.quiet(0.3)


# --- what a MESSAGE frame carries ------------------------------------------------


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_message_frame_headers(stomp_clients, version):
    q, r = _subscribed(stomp_clients, version,
                       ack="client" if version != "1.2" else "client-individual")
    r.send("SEND", [("destination", f"/queue/{q}"), ("content-type", "text/plain"),
                    ("x-custom", "custom value"), ("x-num", "42")], "one")
    r.send("SEND", [("destination", f"/queue/{q}")], "two")
    m1, m2 = r.expect("MESSAGE"), r.expect("MESSAGE")
    assert m1["destination"] == f"/queue/{q}"
    assert m1["subscription"] == "sub-0"
    assert m1["message-id"] and m2["message-id"] and m1["message-id"] != m2["message-id"]
    assert m1["content-type"] == "text/plain"
    assert m1["x-custom"] == "custom value" and m1["x-num"] == "42"
    assert m1.get("redelivered", "false") == "false"
    if version == "1.2":
        assert m1["ack"] and m1["ack"] != m2["ack"]
    assert m1.body == b"one" and m2.body == b"two"


def test_topic_message_frame_names_the_topic(stomp_clients):
    t = f"pytest.{uid()}.m"
    r = stomp_clients.raw()
    r.connect("1.2")
    r.send("SUBSCRIBE", [("destination", f"/topic/{t}.*"), ("id", "t-1"), ("receipt", "s")])
    r.expect("RECEIPT")
    r.send("SEND", [("destination", f"/topic/{t}.x")], "hi")
    m = r.expect("MESSAGE")
    assert m["subscription"] == "t-1"
    assert m["destination"] == f"/topic/{t}.x"
