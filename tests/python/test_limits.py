"""Configured limits and login mechanisms, as a client meets them: an oversized
message closes the channel with 406 and nothing is enqueued, a channel number over
channel_max closes the connection with 530, and AMQPLAIN logins work like PLAIN."""

from __future__ import annotations

import struct

import pika
import pika.exceptions
import pytest

from conftest import start_switchboard, stop_switchboard
from rawamqp import (CHANNEL_OPEN, CONNECTION_START, CONNECTION_START_OK, CONNECTION_TUNE,
                     PROTOCOL_HEADER, RawConnection, longstr, method_frame, shortstr)
from support import is_external, uniq

pytestmark = pytest.mark.skipif(is_external(), reason="starts brokers with small limits")


@pytest.fixture
def small_broker():
    b = start_switchboard(env={
        "SWITCHBOARD_AMQP__MAX_MESSAGE_SIZE": "1000",
        "SWITCHBOARD_AMQP__CHANNEL_MAX": "2",
    })
    yield b
    stop_switchboard(b)


def test_message_over_max_size_closes_channel_with_406(small_broker):
    conn = pika.BlockingConnection(pika.URLParameters(small_broker.amqp_url))
    try:
        ch = conn.channel()
        q = ch.queue_declare(uniq("big"), exclusive=True).method.queue
        ch.confirm_delivery()
        ch.basic_publish("", q, b"x" * 1000)  # exactly the limit: accepted
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
            ch.basic_publish("", q, b"x" * 1001)
        assert ei.value.reply_code == 406
        assert "larger than configured max size" in ei.value.reply_text
        ch2 = conn.channel()
        assert ch2.queue_declare(q, passive=True).method.message_count == 1
    finally:
        conn.close()


def test_channel_over_channel_max_closes_connection_with_530(small_broker):
    c = RawConnection(small_broker.host, small_broker.amqp_port)
    try:
        c.handshake()
        c.open_channel(2)
        c.send(method_frame(3, CHANNEL_OPEN, shortstr(b"")))
        close = c.expect_connection_close()
        assert close.reply_code == 530, close
    finally:
        c.close()


def _amqplain(user: bytes, password: bytes) -> bytes:
    def entry(k: bytes, v: bytes) -> bytes:
        return shortstr(k) + b"S" + longstr(v)
    return entry(b"LOGIN", user) + entry(b"PASSWORD", password)


@pytest.mark.parametrize("password,ok", [(b"guest", True), (b"wrong", False)])
def test_amqplain_login(small_broker, password, ok):
    c = RawConnection(small_broker.host, small_broker.amqp_port)
    try:
        c.send(PROTOCOL_HEADER)
        start = c.expect_method(CONNECTION_START)
        assert b"AMQPLAIN" in start.payload
        c.send(method_frame(0, CONNECTION_START_OK,
                            struct.pack(">I", 0) + shortstr(b"AMQPLAIN")
                            + longstr(_amqplain(b"guest", password)) + shortstr(b"en_US")))
        if ok:
            c.expect_method(CONNECTION_TUNE)
        else:
            assert c.expect_connection_close().reply_code == 403
    finally:
        c.close()


def test_configured_vhosts_are_usable_and_isolated():
    b = start_switchboard(env={"SWITCHBOARD_VHOSTS": '["/", "dev"]'})
    try:
        base = f"amqp://guest:guest@{b.host}:{b.amqp_port}"
        dev = pika.BlockingConnection(pika.URLParameters(base + "/dev"))
        root = pika.BlockingConnection(pika.URLParameters(base + "/%2F"))
        try:
            q = uniq("vh")
            dch = dev.channel()
            dch.queue_declare(q)
            dch.basic_publish("", q, b"in dev")
            rch = root.channel()
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
                rch.queue_declare(q, passive=True)
            assert ei.value.reply_code == 404
            assert dch.basic_get(q, auto_ack=True)[2] == b"in dev"
        finally:
            dev.close()
            root.close()
    finally:
        stop_switchboard(b)
