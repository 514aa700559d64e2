"""Bad bytes on raw sockets: the broker answers the way the AMQP 0-9-1 spec (and
RabbitMQ, the reference) does, closes only the offending connection, and keeps
serving everyone else.

Reply codes (spec §1.3 / amqp0-9-1.xml constants): 501 FRAME_ERROR, 502 SYNTAX_ERROR,
503 COMMAND_INVALID, 504 CHANNEL_ERROR, 505 UNEXPECTED_FRAME, 540 NOT_IMPLEMENTED.
"""

from __future__ import annotations

import struct

import pytest

from rawamqp import (BASIC_PUBLISH, CHANNEL_CLOSE, CHANNEL_OPEN, CONNECTION_CLOSE,
                     CONNECTION_START, CONNECTION_TUNE_OK, PROTOCOL_HEADER,
                     RawConnection, basic_publish_args, body_frame, content_header_frame,
                     frame, heartbeat_frame, method_frame, parse_close, shortstr)
from support import requires_switchboard, uniq


class Bystander:
    """A pika connection opened before the abuse; it must keep working."""

    def __init__(self, broker):
        self.conn = broker.connect()
        self.ch = self.conn.channel()
        self.q = self.ch.queue_declare(uniq("bystander"), exclusive=True).method.queue
        self.ch.confirm_delivery()

    def check(self):
        assert self.conn.is_open, "an innocent connection was closed"
        body = uniq("still-alive").encode()
        self.ch.basic_publish("", self.q, body)
        m, _p, got = self.ch.basic_get(self.q, auto_ack=True)
        assert got == body

    def close(self):
        if self.conn.is_open:
            self.conn.close()


@pytest.fixture
def bystander(fresh_broker):
    b = Bystander(fresh_broker)
    yield b
    b.close()


@pytest.fixture
def raw(fresh_broker):
    c = RawConnection(fresh_broker.host, fresh_broker.amqp_port)
    yield c
    c.close()


# ------------------------------------------------------------------ protocol header


@pytest.mark.parametrize("header", [
    b"AMQP\x00\x00\x09\x02",          # unknown 0-9-x revision
    b"AMQP\x00\x00\x0a\x00",          # "0-10"
    b"AMQP\x00\x01\x00\x00",          # AMQP 1.0
    b"AMQP\x03\x01\x00\x00",          # AMQP 1.0 SASL layer
    b"HTTP/1.1",
    b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
], ids=["0-9-2", "0-10", "amqp1.0", "amqp1.0-sasl", "HTTP/1.1", "http-get"])
def test_wrong_protocol_header_gets_supported_header_and_close(fresh_broker, bystander,
                                                               raw, header):
    raw.send(header)
    assert raw.wait_eof(timeout=10) == PROTOCOL_HEADER
    bystander.check()


def test_correct_header_gets_connection_start(raw):
    raw.send(PROTOCOL_HEADER)
    f = raw.read_method()
    assert f.channel == 0 and f.method == CONNECTION_START
    major, minor = f.payload[4], f.payload[5]
    assert (major, minor) == (0, 9)


# ------------------------------------------------------------------ bad frames after open


def _publish(ch=1):
    return method_frame(ch, BASIC_PUBLISH, basic_publish_args(b"", b"nowhere"))


def _channel_close_args():
    return struct.pack(">H", 200) + shortstr(b"") + struct.pack(">HH", 0, 0)


# name -> (bytes to send after handshake + channel.open(1), accepted reply codes,
#          expected (class_id, method_id) of the Close or None)
CASES = {
    # a frame whose end octet is not 0xCE: FRAME_ERROR
    "bad-frame-end": (method_frame(1, CHANNEL_CLOSE, _channel_close_args(), end=0x00),
                      {501}, None),
    "bad-frame-end-heartbeat": (frame(8, 0, b"", end=0x00), {501}, None),
    # unknown frame type: FRAME_ERROR (RabbitMQ: "... unknown_frame")
    "unknown-frame-type": (frame(9, 0, b"xyz"), {501}, None),
    "unknown-frame-type-ch1": (frame(9, 1, b"xyz"), {501}, None),
    # heartbeat frames have an empty payload
    "heartbeat-with-payload": (frame(8, 0, b"ab"), {501}, None),
    # larger than the negotiated frame_max (131072): FRAME_ERROR
    "frame-above-frame-max": (frame(1, 1, b"\x00" * 200_000), {501}, None),
    # only a 7-byte header announcing 4 GiB: refused from the header alone
    "frame-header-4GiB": (struct.pack(">BHI", 1, 1, 0xFFFFFFFF), {501}, None),
    # content frames with no basic.publish before them: UNEXPECTED_FRAME
    "body-without-header": (body_frame(1, b"hello"), {505}, None),
    "header-without-method": (content_header_frame(1, 5), {505}, None),
    # a method frame where the content body was expected
    "method-during-content": (_publish() + content_header_frame(1, 5) + _publish(),
                              {505}, None),
    "header-wrong-class": (_publish() + content_header_frame(1, 5, class_id=10),
                           {505}, None),
    # spec 4.2.7 says an invalid heartbeat is 501, spec 4.2.3 says a non-zero channel on
    # a heartbeat is 503; RabbitMQ answers 505 UNEXPECTED_FRAME
    "heartbeat-on-channel-1": (heartbeat_frame(1), {501, 503, 505}, None),
    # method arguments cut short (RabbitMQ: 501 "FRAME_ERROR - cannot decode <<0>>")
    "truncated-method": (method_frame(1, (50, 10), b"\x00"), {501, 502}, None),
    # a channel that was never opened: CHANNEL_ERROR, naming the method (queue.declare)
    "method-on-unopened-channel": (
        method_frame(5, (50, 10), struct.pack(">H", 0) + shortstr(b"q") + b"\x00"
                     + struct.pack(">I", 0)), {504}, (50, 10)),
    "second-channel-open": (method_frame(1, CHANNEL_OPEN, shortstr(b"")), {504}, (20, 10)),
    # a channel method on channel 0 (RabbitMQ: 504 "unexpected method in connection
    # state running")
    "publish-on-channel-0": (_publish(0), {503, 504}, (60, 40)),
    # a connection method on a non-zero channel: COMMAND_INVALID
    "connection-method-on-channel-1": (
        method_frame(1, CONNECTION_TUNE_OK, struct.pack(">HIH", 0, 131072, 0)),
        {503}, (10, 31)),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_frame_closes_connection_with_code(fresh_broker, bystander, raw, case):
    data, codes, method = CASES[case]
    raw.handshake()
    raw.open_channel(1)
    raw.send(data)
    close = raw.expect_connection_close(timeout=10)
    assert close.reply_code in codes, close
    assert close.reply_text, close
    if method is not None:
        assert (close.class_id, close.method_id) == method, close
    bystander.check()


@requires_switchboard("RabbitMQ 3.10 drops the socket without a connection.close when "
                      "it cannot decode the class/method id")
def test_unknown_method_id(fresh_broker, bystander, raw):
    raw.handshake()
    raw.open_channel(1)
    raw.send(method_frame(1, (99, 99), b""))
    close = raw.expect_connection_close(timeout=10)
    assert close.reply_code in (503, 540), close
    bystander.check()


@requires_switchboard("RabbitMQ 3.10 does not notice a body longer than the content "
                      "header's body-size; it fails only on the next frame (505)")
def test_body_longer_than_declared(fresh_broker, bystander, raw):
    raw.handshake()
    raw.open_channel(1)
    raw.send(_publish() + content_header_frame(1, 3) + body_frame(1, b"hello"))
    close = raw.expect_connection_close(timeout=10)
    assert close.reply_code in (501, 505), close
    bystander.check()


def test_garbage_before_connection_open(fresh_broker, bystander, raw):
    """Before connection.open the server may close silently (RabbitMQ does, after a
    3 s anti-DoS delay) or with connection.close; it must not wait for the body of a
    frame claiming 4 GiB."""
    raw.send(PROTOCOL_HEADER)
    assert raw.read_method().method == CONNECTION_START
    raw.send(struct.pack(">BHI", 1, 0, 0xFFFFFFFF))
    rest = raw.wait_eof(timeout=10)
    if rest:
        # a connection.close frame, if anything
        ftype, channel, size = struct.unpack(">BHI", rest[:7])
        assert (ftype, channel) == (1, 0), rest
        payload = rest[7:7 + size]
        assert struct.unpack(">HH", payload[:4]) == CONNECTION_CLOSE, rest
        from rawamqp import Frame
        close = parse_close(Frame(ftype, channel, payload))
        assert close.reply_code in (501, 505), close
    bystander.check()


def test_channel_error_closes_only_the_channel(fresh_broker, raw):
    """A channel-level error (404 on a passive declare) closes that channel with
    channel.close; the connection and its other channels carry on."""
    raw.handshake()
    raw.open_channel(1)
    raw.open_channel(2)
    missing = uniq("missing").encode()
    raw.send(method_frame(1, (50, 10), struct.pack(">H", 0) + shortstr(missing)
                          + b"\x01" + struct.pack(">I", 0)))  # passive
    f = raw.read_method()
    assert f.method == CHANNEL_CLOSE and f.channel == 1, f
    close = parse_close(f)
    assert close.reply_code == 404
    assert close.reply_text == f"NOT_FOUND - no queue '{missing.decode()}' in vhost '/'"
    assert (close.class_id, close.method_id) == (50, 10)
    raw.send(method_frame(1, (20, 41)))  # channel.close-ok
    # channel 2 still works: a server-named exclusive queue
    raw.send(method_frame(2, (50, 10), struct.pack(">H", 0) + shortstr(b"")
                          + b"\x04" + struct.pack(">I", 0)))  # exclusive
    f = raw.read_method()
    assert f.channel == 2 and f.method == (50, 11), f
    # and channel 1 can be reopened
    raw.open_channel(1)


def test_frames_split_across_tcp_writes(fresh_broker, raw):
    """The whole handshake, channel.open and a publish, sent one byte per TCP write,
    still work (the server reassembles frames from a byte stream)."""
    raw.dribble = True
    raw.handshake()
    raw.open_channel(1)
    q = uniq("dribble").encode()
    # queue.declare exclusive, then publish + get
    raw.send(method_frame(1, (50, 10), struct.pack(">H", 0) + shortstr(q) + b"\x04"
                          + struct.pack(">I", 0)))
    f = raw.read_method()
    assert f.method == (50, 11), f
    raw.send(method_frame(1, BASIC_PUBLISH, basic_publish_args(b"", q))
             + content_header_frame(1, 5) + body_frame(1, b"hello"))
    raw.send(method_frame(1, (60, 70), struct.pack(">H", 0) + shortstr(q) + b"\x01"))
    f = raw.read_method()
    assert f.method == (60, 71), f  # basic.get-ok
    header = raw.read_frame()
    assert header.type == 2 and struct.unpack(">Q", header.payload[4:12])[0] == 5
    body = raw.read_frame()
    assert body.type == 3 and body.payload == b"hello"


def test_unknown_exchange_type_is_connection_error(fresh_broker, bystander):
    """RabbitMQ treats an unknown exchange type as a connection error: 503
    "COMMAND_INVALID - unknown exchange type 'bogus'"."""
    import pika.exceptions
    c = fresh_broker.connect()
    try:
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as ei:
            c.channel().exchange_declare(uniq("x"), "bogus")
        assert ei.value.reply_code == 503, ei.value
        assert ei.value.reply_text == "COMMAND_INVALID - unknown exchange type 'bogus'"
    finally:
        if c.is_open:
            c.close()
    bystander.check()


@pytest.mark.parametrize("call, text", [
    (lambda ch: ch.basic_recover(requeue=False), "NOT_IMPLEMENTED - requeue=false"),
    (lambda ch: ch.basic_qos(prefetch_size=10), "NOT_IMPLEMENTED - prefetch_size!=0 (10)"),
], ids=["recover-requeue-false", "qos-prefetch-size"])
def test_not_implemented_is_connection_error_540(fresh_broker, bystander, call, text):
    import pika.exceptions
    c = fresh_broker.connect()
    try:
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as ei:
            call(c.channel())
        assert ei.value.reply_code == 540, ei.value
        assert ei.value.reply_text == text
    finally:
        if c.is_open:
            c.close()
    bystander.check()
