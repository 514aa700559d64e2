"""Bad STOMP input over raw sockets: every bad frame gets an ERROR frame with a
``message`` header; framing errors end the connection; other clients never notice.

STOMP 1.2 says the server closes the connection right after an ERROR frame, and that
the ERROR names the offending frame's ``receipt`` in ``receipt-id``. RabbitMQ keeps
most connections open after an ERROR and never sets receipt-id, so those two checks
are Switchboard-only (``test_error_names_the_receipt_and_closes``)."""

from __future__ import annotations

import socket
import threading

import pytest

import stomputil
from stomputil import encode_frame, qname, uid

Q = f"pytest.stomp-malformed.{uid()}"  # the one queue the cases may declare


def _frame(cmd, headers, body=b"", **kw):
    return encode_frame(cmd, headers, body, **kw)


# (id, version, bytes after CONNECT, the bad frame's receipt or None)
ERROR_CASES = [
    ("unknown-command", "1.2", _frame("FOO", [("receipt", "r-bad")]), "r-bad"),
    ("lowercase-command", "1.2",
     _frame("send", [("destination", f"/queue/{Q}"), ("receipt", "r-bad")], "x"), "r-bad"),
    ("server-command-message", "1.2",
     _frame("MESSAGE", [("destination", f"/queue/{Q}"), ("receipt", "r-bad")]), "r-bad"),
    ("send-without-destination", "1.2", _frame("SEND", [("receipt", "r-bad")], "x"), "r-bad"),
    ("send-to-unknown-destination-type", "1.2",
     _frame("SEND", [("destination", "/nonsense/x"), ("receipt", "r-bad")], "x"), "r-bad"),
    ("subscribe-without-destination", "1.2",
     _frame("SUBSCRIBE", [("id", "s"), ("receipt", "r-bad")]), "r-bad"),
    ("subscribe-bad-ack-mode", "1.2",
     _frame("SUBSCRIBE", [("destination", f"/queue/{Q}"), ("id", "s"),
                          ("ack", "sometimes"), ("receipt", "r-bad")]), "r-bad"),
    ("ack-unknown-id", "1.2", _frame("ACK", [("id", "no-such-ack"), ("receipt", "r-bad")]),
     "r-bad"),
    ("ack-without-id", "1.2", _frame("ACK", [("receipt", "r-bad")]), "r-bad"),
    ("nack-unknown-id", "1.2", _frame("NACK", [("id", "no-such-ack"), ("receipt", "r-bad")]),
     "r-bad"),
    ("unsubscribe-unknown-id", "1.2",
     _frame("UNSUBSCRIBE", [("id", "never"), ("receipt", "r-bad")]), "r-bad"),
    ("unsubscribe-without-id", "1.2", _frame("UNSUBSCRIBE", [("receipt", "r-bad")]), "r-bad"),
    ("begin-without-transaction", "1.2", _frame("BEGIN", [("receipt", "r-bad")]), "r-bad"),
    ("commit-unknown-transaction", "1.2",
     _frame("COMMIT", [("transaction", "never-begun"), ("receipt", "r-bad")]), "r-bad"),
    ("duplicate-subscription-id", "1.2",
     _frame("SUBSCRIBE", [("destination", f"/queue/{Q}"), ("id", "dup")])
     + _frame("SUBSCRIBE", [("destination", f"/queue/{Q}"), ("id", "dup"),
                            ("receipt", "r-bad")]), "r-bad"),
    ("junk-bytes", "1.2", b"\x01\x02\xfe junk that is no command\n\n\x00", None),
]

# framing errors: the frame cannot be understood, the stream is lost
FATAL_CASES = [
    ("header-without-colon", "1.2",
     b"SEND\ndestination:/queue/" + Q.encode() + b"\nno-colon-here\nreceipt:r-bad\n\nx\x00",
     None),
    ("content-length-not-a-number", "1.2",
     _frame("SEND", [("destination", f"/queue/{Q}"), ("content-length", "ten"),
                     ("receipt", "r-bad")], "x"), None),
    ("content-length-negative", "1.2",
     _frame("SEND", [("destination", f"/queue/{Q}"), ("content-length", "-1"),
                     ("receipt", "r-bad")], "x"), None),
    ("content-length-shorter-than-body", "1.2",     # no NUL where the length ends
     _frame("SEND", [("destination", f"/queue/{Q}"), ("receipt", "r-bad")], "abcdef",
            content_length=2), None),
    ("undefined-escape-1.2", "1.2",
     b"SEND\ndestination:/queue/" + Q.encode() + b"\nx-h:a\\tb\nreceipt:r-bad\n\nx\x00", None),
    ("second-connect", "1.2",
     _frame("CONNECT", [("accept-version", "1.2"), ("host", "/"), ("login", "guest"),
                        ("passcode", "guest")]), None),
]

ALL_CASES = ERROR_CASES + FATAL_CASES


def _bad(stomp_clients, version, data):
    stomp_clients.track_queue(Q)
    r = stomp_clients.raw()
    r.connect(version)
    try:
        r.send_bytes(data)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return r


@pytest.mark.parametrize("case,version,data,receipt", ERROR_CASES,
                         ids=[c[0] for c in ERROR_CASES])
def test_bad_frame_gets_an_error(stomp_clients, case, version, data, receipt):
    r = _bad(stomp_clients, version, data)
    f = r.recv()
    while f.command == "RECEIPT":                   # receipts of good frames before it
        f = r.recv()
    assert f.command == "ERROR", f
    assert f.get("message"), f"ERROR without a message header: {f}"


@pytest.mark.parametrize("case,version,data,receipt", FATAL_CASES,
                         ids=[c[0] for c in FATAL_CASES])
def test_framing_error_ends_the_connection(stomp_clients, case, version, data, receipt):
    r = _bad(stomp_clients, version, data)
    frames = r.wait_closed(stomputil.close_timeout())
    assert all(f.command == "ERROR" for f in frames), frames


@stomputil.requires_switchboard("RabbitMQ keeps the connection after most ERROR frames, "
                                "sets no receipt-id, and closes on framing errors "
                                "without an ERROR")
@pytest.mark.parametrize("case,version,data,receipt", ALL_CASES,
                         ids=[c[0] for c in ALL_CASES])
def test_error_names_the_receipt_and_closes(stomp_clients, case, version, data, receipt):
    r = _bad(stomp_clients, version, data)
    frames = r.wait_closed(stomputil.close_timeout())
    errors = [f for f in frames if f.command == "ERROR"]
    assert len(errors) == 1 and errors[0].get("message"), frames
    assert frames[-1].command == "ERROR", f"frames after the ERROR: {frames}"
    if receipt:
        assert errors[0].get("receipt-id") == receipt, errors[0]
        assert not any(f.command == "RECEIPT" and f.get("receipt-id") == receipt
                       for f in frames), frames


@stomputil.requires_switchboard("RabbitMQ accepts SUBSCRIBE without id in 1.1/1.2 "
                                "(it uses the destination)")
@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_subscribe_without_id_is_an_error_in_1_1_and_1_2(stomp_clients, version):
    r = _bad(stomp_clients, version,
             _frame("SUBSCRIBE", [("destination", "/topic/pytest.noid"), ("receipt", "r-s")]))
    err = r.error_then_close(stomputil.close_timeout())
    assert err.get("receipt-id") == "r-s"


def test_subscribe_without_id_is_fine_in_1_0(stomp_clients):
    t = f"pytest.{uid()}.noid"
    r = stomp_clients.raw()
    r.connect("1.0")
    r.send("SUBSCRIBE", [("destination", f"/topic/{t}"), ("receipt", "s")])
    assert r.expect("RECEIPT")["receipt-id"] == "s"
    r.send("SEND", [("destination", f"/topic/{t}")], "hi")
    assert r.expect("MESSAGE").body == b"hi"


@stomputil.requires_switchboard("RabbitMQ 3.10 has no header size limit (it takes a "
                                "5 MiB header)")
def test_oversized_header_is_refused(stomp_clients):
    r = _bad(stomp_clients, "1.2",
             _frame("SEND", [("destination", f"/queue/{Q}"), ("x-huge", "h" * (1 << 20)),
                             ("receipt", "r-big")], "x"))
    err = r.error_then_close(stomputil.close_timeout())
    assert err.get("message")


@stomputil.requires_switchboard("RabbitMQ 3.10 buffers an unfinished header section "
                                "without limit")
def test_frame_that_never_ends_is_refused(stomp_clients):
    """A header section that keeps growing and never reaches its blank line (nor a
    NUL): the broker gives up at its limit instead of buffering for ever."""
    r = stomp_clients.raw()
    r.connect("1.2")
    chunk = b"h" * 65536
    try:
        r.send_bytes(b"SEND\ndestination:/queue/" + Q.encode() + b"\nx-endless:")
        for _ in range(64):                         # up to 4 MiB, stop when refused
            r.send_bytes(chunk)
            if r.is_closed(0.01):
                break
    except (BrokenPipeError, ConnectionResetError):
        pass
    frames = r.wait_closed(stomputil.close_timeout())
    assert all(f.command == "ERROR" for f in frames), frames


def test_client_closing_mid_frame_is_harmless(stomp_clients):
    q = stomp_clients.track_queue(qname())
    c = stomp_clients.connected()
    c.subscribe(f"/queue/{q}")
    r = stomp_clients.raw()
    r.connect("1.2")
    r.send_bytes(encode_frame("SEND", [("destination", f"/queue/{q}")], "never")[:-3])
    r.sock.shutdown(socket.SHUT_RDWR)
    r.close()
    c.send(f"/queue/{q}", "fine")
    assert c.bodies(1) == ["fine"]                  # the half frame was not delivered


def test_bad_input_does_not_disturb_other_clients(stomp_clients):
    q = stomp_clients.track_queue(qname())
    good = stomp_clients.connected()
    good.subscribe(f"/queue/{q}", ack="client-individual")
    good.send(f"/queue/{q}", "before")
    before = good.take(1)[0]

    def attack(version, data):
        try:
            r = stomputil.Raw(stomp_clients.ep)
            r.connect(version)
            r.send_bytes(data)
            r.poll(0.5)
            r.close()
        except Exception:
            pass

    stomp_clients.track_queue(Q)
    threads = [threading.Thread(target=attack, args=(v, d)) for _, v, d, _ in ALL_CASES]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    good.ack(before)
    good.send(f"/queue/{q}", "after")
    assert good.bodies(1) == ["after"]
    q2 = stomp_clients.track_queue(qname())
    fresh = stomp_clients.connected()
    fresh.subscribe(f"/queue/{q2}")
    fresh.send(f"/queue/{q2}", "new connection")
    assert fresh.bodies(1) == ["new connection"]
