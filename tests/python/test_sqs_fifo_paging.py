"""A FIFO queue's backlog larger than the broker's per-queue memory budget is paged
out to disk like any other queue's (Switchboard only): the broker's memory stays
flat while it grows, the admin API counts the paged-out bytes, and every message
still comes out exactly once and in order within its group -- also after kill -9
and a restart, which reads the backlog back from the journal and pages it again."""

from __future__ import annotations

import shutil
from collections import defaultdict
from typing import Dict, List

import pytest

import sqsutil
from sqsutil import qname, requires_switchboard_sqs
from test_admin_api import Api

pytestmark = requires_switchboard_sqs("starts its own broker with a small memory budget")

BUDGET = 64 * 1024
GROUPS = ["g-a", "g-b", "g-c", "g-d"]
PER_GROUP = 80
BODY = 48 * 1024  # 4 x 80 x 48 KiB = 15 MiB, 240 times the budget
ENV = {"SWITCHBOARD_QUEUE_MEMORY_BYTES": str(BUDGET)}


class Node:
    """A broker of the test's own, with the small budget, restartable on its data."""

    def __init__(self):
        from conftest import start_switchboard

        self._start = start_switchboard
        self.b = start_switchboard(env=ENV)
        self.data_dir = self.b.data_dir
        self._connect()

    def _connect(self) -> None:
        self.ep = sqsutil.endpoint_from_ports(self.b.ports)
        self.client = sqsutil.client(self.ep)
        self.api = Api(*self.b.ports["admin"])

    def kill_and_restart(self) -> None:
        self.b.proc.kill()
        self.b.proc.wait(timeout=10)
        self.b = self._start(env=ENV, data_dir=self.data_dir)
        self._connect()

    def rss_kib(self) -> int:
        with open(f"/proc/{self.b.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def queue_info(self, name: str) -> dict:
        return self.api.get("/api/queues/%2F/" + name)

    def url(self, url: str) -> str:
        return f"{self.ep.url}/{url.split('/', 3)[3]}"

    def close(self) -> None:
        from conftest import _stop_process

        _stop_process(self.b.proc)
        shutil.rmtree(self.data_dir, ignore_errors=True)


@pytest.fixture
def node():
    n = Node()
    yield n
    n.close()


def body(group: str, n: int) -> str:
    head = f"{group}:{n}:"
    return head + "x" * (BODY - len(head))


def send_backlog(c, url: str, numbers: range) -> None:
    """Groups interleaved, so each group's messages are spread over the backlog."""
    entries = [(g, n) for n in numbers for g in GROUPS]
    for i in range(0, len(entries), 10):
        batch = [{"Id": str(k), "MessageBody": body(g, n), "MessageGroupId": g,
                  "MessageDeduplicationId": f"{g}-{n}"}
                 for k, (g, n) in enumerate(entries[i:i + 10])]
        r = c.send_message_batch(QueueUrl=url, Entries=batch)
        assert not r.get("Failed"), r["Failed"]


def drain(c, url: str, seen: Dict[str, List[int]], limit: int) -> int:
    """Receives and deletes up to about `limit` messages, recording each group's order."""
    got = 0
    while got < limit:
        msgs = c.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                 VisibilityTimeout=60, WaitTimeSeconds=1).get("Messages", [])
        if not msgs:
            break
        for m in msgs:
            g, n, rest = m["Body"].split(":", 2)
            assert len(rest) + len(g) + len(n) + 2 == BODY, "body intact"
            seen[g].append(int(n))
        r = c.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(k), "ReceiptHandle": m["ReceiptHandle"]} for k, m in enumerate(msgs)])
        assert not r.get("Failed"), r["Failed"]
        got += len(msgs)
    return got


def test_a_fifo_backlog_beyond_the_memory_budget_is_paged_and_kept_in_order(node):
    name = qname("paged", fifo=True)
    c = node.client
    url = c.create_queue(QueueName=name, Attributes={"FifoQueue": "true"})["QueueUrl"]
    # The first half warms the broker up (buffers, allocator arenas, journal);
    # the second half then shows whether the backlog itself takes memory.
    half = PER_GROUP // 2
    send_backlog(c, url, range(half))
    before = node.rss_kib()
    send_backlog(c, url, range(half, PER_GROUP))
    grown = node.rss_kib() - before
    second = len(GROUPS) * (PER_GROUP - half) * BODY
    # Kept in memory, the second half's 7.5 MiB of bodies would add at least that.
    assert grown * 1024 < second / 2, f"RSS grew {grown} KiB for {second >> 10} KiB of messages"

    info = node.queue_info(name)
    assert info["messages_ready"] == len(GROUPS) * PER_GROUP
    assert info["message_bytes_paged_out"] >= info["message_bytes_ready"] - BUDGET, info

    seen: Dict[str, List[int]] = defaultdict(list)
    first = drain(c, url, seen, limit=len(GROUPS) * PER_GROUP // 3)
    assert first > 0

    node.kill_and_restart()
    c, url = node.client, node.url(url)
    info = node.queue_info(name)
    assert info["messages_ready"] == len(GROUPS) * PER_GROUP - first
    # Recovery hands the backlog to the queue, which pages it out again.
    assert info["message_bytes_paged_out"] >= info["message_bytes_ready"] - BUDGET, info

    rest = drain(c, url, seen, limit=10 ** 6)
    assert first + rest == len(GROUPS) * PER_GROUP
    for g in GROUPS:
        assert seen[g] == list(range(PER_GROUP)), f"group {g}: {seen[g]}"
    assert sqsutil.stays_empty(c, url, window=0.5)
    assert node.queue_info(name)["message_bytes_paged_out"] == 0
