"""SQS fair queues (AWS, July 2025): on a standard queue, MessageGroupId names a
tenant, and one tenant's backlog must not hold up the others. AWS: "when one tenant
has a disproportionately large backlog of messages, fair queues prioritize the
delivery of messages from other tenants", so a quiet group's messages are received
with low dwell time even behind thousands of a noisy group's."""

from __future__ import annotations

from typing import Dict, List

import sqsutil
from sqsutil import requires_switchboard_sqs

NOISY = 1000
QUIET = 10


def send_all(c, url: str, group: str, n: int) -> None:
    for start in range(0, n, 10):
        entries = [{"Id": str(i), "MessageBody": f"{group}-{start + i}", "MessageGroupId": group}
                   for i in range(min(10, n - start))]
        r = c.send_message_batch(QueueUrl=url, Entries=entries)
        assert not r.get("Failed"), r


def receive_everything(c, url: str, expected: int) -> List[dict]:
    """Receive in batches of 10, deleting each batch, until ``expected`` messages
    came (or a receive finds the queue empty); in the order received."""
    got: List[dict] = []
    while len(got) < expected:
        batch = sqsutil.receive(c, url, n=10, wait=1, VisibilityTimeout=120,
                                MessageSystemAttributeNames=["MessageGroupId"])
        if not batch:
            break
        got += batch
        c.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])
    return got


@requires_switchboard_sqs("moto serves a standard queue in send order: it has no fair queues")
def test_quiet_group_is_not_starved_by_a_noisy_backlog(sqs):
    url = sqs.queue(kind="fair")
    c = sqs.client
    send_all(c, url, "noisy", NOISY)
    send_all(c, url, "quiet", QUIET)

    got = receive_everything(c, url, NOISY + QUIET)

    bodies = [m["Body"] for m in got]
    quiet_at = [i for i, b in enumerate(bodies) if b.startswith("quiet-")]
    assert len(quiet_at) == QUIET, f"quiet messages received: {len(quiet_at)}"
    assert max(quiet_at) < 200, f"quiet messages arrived at positions {quiet_at}"
    # Every message exactly once, with its group.
    assert sorted(bodies) == sorted([f"noisy-{i}" for i in range(NOISY)]
                                    + [f"quiet-{i}" for i in range(QUIET)])
    groups: Dict[str, str] = {m["Body"]: m["Attributes"]["MessageGroupId"] for m in got}
    assert all(body.startswith(g + "-") for body, g in groups.items())


def test_messages_with_and_without_group_all_arrive_once(sqs):
    url = sqs.queue(kind="fair-mixed")
    c = sqs.client
    sent = []
    for i in range(30):
        kw = {"MessageGroupId": f"g{i % 3}"} if i % 2 else {}
        c.send_message(QueueUrl=url, MessageBody=f"m{i}", **kw)
        sent.append(f"m{i}")
    got = receive_everything(c, url, len(sent))
    assert sorted(m["Body"] for m in got) == sorted(sent)
    assert sqsutil.stays_empty(c, url, window=1.0)
