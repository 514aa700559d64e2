"""Helpers shared by the test modules (imported as ``support``)."""

from __future__ import annotations

import os
import random
import socket
import time
import uuid
from typing import Callable

import pytest

EXTERNAL_URL = os.environ.get("SWITCHBOARD_AMQP_URL")


def is_external() -> bool:
    """True when the suite runs against an external broker (e.g. RabbitMQ)."""
    return bool(EXTERNAL_URL)


def requires_switchboard(reason: str):
    """Skip a test when running against the external (reference) broker."""
    return pytest.mark.skipif(is_external(), reason=reason)


_handed_out: set = set()


def restartable_port() -> int:
    """A free loopback port for a server the test stops and starts again on the same
    port. Drawn from below the kernel's ephemeral range: a port the kernel handed
    out (bind to 0) can be given, while its server is down, to a client's outgoing
    connection or another server's port-0 listener, and the restart then finds it
    taken. Never the same port twice in one run."""
    low = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    span = (10000, low) if low > 11000 else (1024, low)
    for _ in range(1000):
        port = random.randrange(*span)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {span}")


def uniq(prefix: str = "t") -> str:
    return f"pytest.{prefix}.{uuid.uuid4().hex[:12]}"


def wait_until(pred: Callable[[], object], timeout: float = 5.0, interval: float = 0.05,
               what: str = "condition"):
    """Poll ``pred`` until it returns a truthy value; return that value or fail."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def admin_call(addr, path: str, method: str = "GET", body=None, timeout: float = 10):
    """The admin API at ``addr`` (host, port) as guest: JSON in, and out for /api
    paths (None for an empty answer); other paths (/metrics) come back as text."""
    import base64
    import json
    import urllib.request

    host, port = addr
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{host}:{port}{path}", data=data, method=method)
    req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        text = r.read().decode()
    if not path.startswith("/api"):
        return text
    return json.loads(text) if text else None
