"""Helpers shared by the test modules (imported as ``support``)."""

from __future__ import annotations

import os
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
