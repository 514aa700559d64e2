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


@pytest.mark.skipif(is_external(), reason="starts Switchboard itself")
def test_logs_are_plain_text_off_a_terminal_and_json_on_request():
    import json

    b = start_switchboard()
    try:
        text = b._stderr()
    finally:
        stop_switchboard(b)
    # stderr is a file here, not a terminal: no colour codes for a log file.
    assert "listening" in text
    assert "\x1b[" not in text
    b = start_switchboard(env={"SWITCHBOARD_LOG_FORMAT": "json"})
    try:
        lines = [line for line in b._stderr().splitlines() if line.strip()]
    finally:
        stop_switchboard(b)
    docs = [json.loads(line) for line in lines]
    assert any(d["fields"]["message"].startswith("listening") for d in docs)
    assert all(d["level"] in ("TRACE", "DEBUG", "INFO", "WARN", "ERROR") for d in docs)
