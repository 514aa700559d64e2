"""Shutdown as a client sees it: SIGTERM makes the broker close every connection
with 320 CONNECTION_FORCED (as `rabbitmqctl stop` does) and exit with status 0."""

from __future__ import annotations

import signal

import pytest

from conftest import start_switchboard, stop_switchboard
from rawamqp import RawConnection
from support import is_external


@pytest.mark.skipif(is_external(), reason="stops the broker it started")
def test_sigterm_closes_connections_with_320_and_exits_zero():
    b = start_switchboard()
    try:
        c = RawConnection(b.host, b.amqp_port)
        try:
            c.handshake()
            c.open_channel(1)
            b.proc.send_signal(signal.SIGTERM)
            close = c.expect_connection_close(timeout=10)
            assert close.reply_code == 320, close
            assert "CONNECTION_FORCED" in close.reply_text, close
        finally:
            c.close()
        assert b.proc.wait(timeout=15) == 0
    finally:
        stop_switchboard(b)
