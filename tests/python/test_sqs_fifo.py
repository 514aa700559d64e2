"""SQS FIFO queues (``.fifo``): message groups (order, one group in flight at a time),
deduplication (explicit ids, content-based, scope), sequence numbers,
ReceiveRequestAttemptId, and the parameters FIFO queues refuse."""

from __future__ import annotations

import collections
import threading
import time
import uuid

import pytest

import sqsutil
from sqsutil import expect_error, receive, receive_one, requires_switchboard_sqs, stays_empty


def send(sqs, url, body, group="g", dedup=None, **kw):
    return sqs.client.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=group,
                                   MessageDeduplicationId=dedup or uuid.uuid4().hex, **kw)


def delete(sqs, url, msgs):
    for m in msgs:
        sqs.client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


# ---------------------------------------------------------------------------------
# What a FIFO queue refuses


def test_message_group_id_is_required(sqs):
    url = sqs.queue(fifo=True)
    e = expect_error("MissingParameter", sqs.client.send_message, QueueUrl=url, MessageBody="x",
                     MessageDeduplicationId="d1", status=400)
    assert "MessageGroupId" in e.response["Error"]["Message"]


def test_deduplication_id_is_required_without_content_based_deduplication(sqs):
    url = sqs.queue(fifo=True)
    expect_error("InvalidParameterValue", sqs.client.send_message, QueueUrl=url, MessageBody="x",
                 MessageGroupId="g")


def test_per_message_delay_is_refused(sqs):
    url = sqs.queue(fifo=True)
    expect_error("InvalidParameterValue", send, sqs, url, "x", DelaySeconds=5)


def test_per_message_delay_of_zero_is_accepted(sqs):
    """AWS refuses only a real per-message delay on a FIFO queue; an explicit 0 is
    what many SDK wrappers send by default."""
    url = sqs.queue(fifo=True)
    send(sqs, url, "no delay", DelaySeconds=0)
    sqs.client.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "a", "MessageBody": "batched", "MessageGroupId": "g",
         "MessageDeduplicationId": "d-batched", "DelaySeconds": 0}])
    bodies = [m["Body"] for m in receive(sqs.client, url)]
    assert bodies == ["no delay", "batched"]


@requires_switchboard_sqs("moto answers MissingParameter for the whole batch; AWS answers "
                          "InvalidParameterValue")
def test_batch_entry_without_group_id_fails_the_batch(sqs):
    url = sqs.queue(fifo=True)
    e = expect_error("InvalidParameterValue", sqs.client.send_message_batch, QueueUrl=url,
                     Entries=[{"Id": "a", "MessageBody": "x", "MessageGroupId": "g",
                               "MessageDeduplicationId": "d1"},
                              {"Id": "b", "MessageBody": "y", "MessageDeduplicationId": "d2"}])
    assert "MessageGroupId" in e.response["Error"]["Message"]
    assert stays_empty(sqs.client, url, window=0.2)


def test_queue_level_delay_is_allowed(sqs):
    url = sqs.queue(fifo=True, DelaySeconds=1)
    t0 = time.monotonic()
    send(sqs, url, "delayed by the queue")
    assert receive_one(sqs.client, url, timeout=5)["Body"] == "delayed by the queue"
    assert time.monotonic() - t0 >= 0.8


# ---------------------------------------------------------------------------------
# Order and groups


def test_order_within_a_group(sqs):
    url = sqs.queue(fifo=True)
    bodies = [f"m{i:02d}" for i in range(15)]
    for b in bodies:
        send(sqs, url, b)
    got = []
    deadline = time.monotonic() + 10
    while len(got) < len(bodies) and time.monotonic() < deadline:
        batch = receive(sqs.client, url, n=10, wait=1)
        got += [m["Body"] for m in batch]
        delete(sqs, url, batch)
    assert got == bodies


def test_batch_send_keeps_order(sqs):
    url = sqs.queue(fifo=True)
    entries = [{"Id": f"e{i}", "MessageBody": f"b{i}", "MessageGroupId": "g",
                "MessageDeduplicationId": f"d{i}"} for i in range(10)]
    r = sqs.client.send_message_batch(QueueUrl=url, Entries=entries)
    assert r.get("Failed", []) == []
    assert all(s.get("SequenceNumber") for s in r["Successful"])
    got = []
    deadline = time.monotonic() + 10
    while len(got) < 10 and time.monotonic() < deadline:
        batch = receive(sqs.client, url, n=10, wait=1)
        got += [m["Body"] for m in batch]
        delete(sqs, url, batch)
    assert got == [f"b{i}" for i in range(10)]


def test_order_within_groups_under_concurrent_consumers(sqs):
    url = sqs.queue(fifo=True)
    groups, per_group = ["ga", "gb", "gc"], 8
    for i in range(per_group):  # interleaved across groups
        for g in groups:
            send(sqs, url, f"{g}:{i}", group=g)
    processed = collections.defaultdict(list)
    lock = threading.Lock()
    errors = []
    total = len(groups) * per_group

    def consumer():
        c = sqs.client  # botocore clients are thread-safe
        deadline = time.monotonic() + 20
        try:
            while time.monotonic() < deadline:
                with lock:
                    if sum(map(len, processed.values())) >= total:
                        return
                for m in receive(c, url, n=2, wait=1, VisibilityTimeout=30):
                    g, i = m["Body"].split(":")
                    with lock:  # "process" before deleting: the group stays blocked
                        processed[g].append(int(i))
                    time.sleep(0.01)
                    c.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=consumer, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    for g in groups:
        assert processed[g] == list(range(per_group)), (g, dict(processed))


def test_a_group_is_blocked_while_one_of_its_messages_is_in_flight(sqs):
    url = sqs.queue(fifo=True)
    send(sqs, url, "a1", group="a")
    send(sqs, url, "a2", group="a")
    send(sqs, url, "b1", group="b")
    [first] = receive(sqs.client, url, n=1, wait=1, VisibilityTimeout=30,
                      MessageSystemAttributeNames=["MessageGroupId"])
    held = first["Attributes"]["MessageGroupId"]
    other = "b" if held == "a" else "a"
    rest = sqsutil.receive_n(sqs.client, url, 3, timeout=1.5, VisibilityTimeout=30,
                             MessageSystemAttributeNames=["MessageGroupId"])
    assert rest, "the other group's message must be receivable"
    assert {m["Attributes"]["MessageGroupId"] for m in rest} == {other}, rest
    # once the held message is deleted, the rest of its group comes, in order
    delete(sqs, url, [first] + rest)
    if held == "a":
        assert first["Body"] == "a1"
        assert receive_one(sqs.client, url, timeout=3)["Body"] == "a2"
    else:
        assert [m["Body"] for m in rest] == ["a1", "a2"]


def test_expired_message_keeps_its_place_at_the_head_of_its_group(sqs):
    url = sqs.queue(fifo=True)
    send(sqs, url, "first")
    send(sqs, url, "second")
    [m] = receive(sqs.client, url, n=1, wait=1, VisibilityTimeout=1)
    assert m["Body"] == "first"
    again = receive_one(sqs.client, url, timeout=5, VisibilityTimeout=30)
    assert again["Body"] == "first" and again["MessageId"] == m["MessageId"]


@requires_switchboard_sqs("moto deletes through an expired FIFO receipt handle")
def test_fifo_delete_with_an_expired_receipt_handle_is_refused(sqs):
    """AWS (recorded by LocalStack's AWS-validated tests): InvalidParameterValue "Value ...
    for parameter ReceiptHandle is invalid. Reason: The receipt handle has expired."."""
    url = sqs.queue(fifo=True)
    send(sqs, url, "g1-m1")
    [m] = receive(sqs.client, url, n=1, wait=1, VisibilityTimeout=1)
    time.sleep(1.5)
    expect_error("InvalidParameterValue", sqs.client.delete_message, QueueUrl=url,
                 ReceiptHandle=m["ReceiptHandle"], status=400)
    again = receive_one(sqs.client, url, timeout=3)
    assert again["MessageId"] == m["MessageId"]


# ---------------------------------------------------------------------------------
# Deduplication


def test_duplicate_deduplication_id_is_accepted_but_delivered_once(sqs):
    url = sqs.queue(fifo=True)
    r1 = send(sqs, url, "original", dedup="same-id")
    r2 = send(sqs, url, "duplicate", dedup="same-id")
    assert r1["ResponseMetadata"]["HTTPStatusCode"] == r2["ResponseMetadata"]["HTTPStatusCode"] == 200
    got = sqsutil.receive_n(sqs.client, url, 2, timeout=1)
    assert [m["Body"] for m in got] == ["original"]


@requires_switchboard_sqs("moto forgets a deduplication id once its message is deleted; AWS "
                          "keeps it for the whole 5-minute interval")
def test_deduplication_id_outlives_the_deleted_message(sqs):
    url = sqs.queue(fifo=True)
    send(sqs, url, "original", dedup="kept")
    delete(sqs, url, [receive_one(sqs.client, url)])
    send(sqs, url, "too late", dedup="kept")
    assert stays_empty(sqs.client, url, window=1.0)


def test_content_based_deduplication(sqs):
    url = sqs.queue(fifo=True, ContentBasedDeduplication="true")
    for body in ("same body", "same body", "other body"):
        sqs.client.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="g")
    # an explicit id overrides the content hash
    sqs.client.send_message(QueueUrl=url, MessageBody="same body", MessageGroupId="g",
                            MessageDeduplicationId="explicit")
    got = sqsutil.receive_n(sqs.client, url, 4, timeout=1)
    assert [m["Body"] for m in got] == ["same body", "other body", "same body"]


@requires_switchboard_sqs("moto deduplicates across the whole queue whatever "
                          "DeduplicationScope says")
def test_deduplication_scope_message_group(sqs):
    url = sqs.queue(fifo=True, DeduplicationScope="messageGroup",
                    FifoThroughputLimit="perMessageGroupId")
    send(sqs, url, "in a", group="a", dedup="d")
    send(sqs, url, "in b", group="b", dedup="d")
    send(sqs, url, "dup in a", group="a", dedup="d")
    got = sqsutil.receive_n(sqs.client, url, 3, timeout=1)
    assert sorted(m["Body"] for m in got) == ["in a", "in b"]


# ---------------------------------------------------------------------------------
# System attributes, sequence numbers, ReceiveRequestAttemptId


def test_fifo_system_attributes(sqs):
    url = sqs.queue(fifo=True)
    r = send(sqs, url, "attrs", group="grp-1", dedup="dedup-1")
    assert r["SequenceNumber"].isdigit()
    m = receive_one(sqs.client, url, MessageSystemAttributeNames=["All"])
    a = m["Attributes"]
    assert a["MessageGroupId"] == "grp-1"
    assert a["MessageDeduplicationId"] == "dedup-1"
    assert a["SequenceNumber"] == r["SequenceNumber"]
    assert a["ApproximateReceiveCount"] == "1"


@pytest.mark.parametrize("name", ["SentTimestamp", "ApproximateReceiveCount",
                                  "ApproximateFirstReceiveTimestamp", "SenderId",
                                  "MessageGroupId", "MessageDeduplicationId", "SequenceNumber"])
def test_each_system_attribute_alone(sqs, name):
    url = sqs.queue(fifo=True)
    send(sqs, url, "one attribute", group="grp", dedup="ddp")
    m = receive_one(sqs.client, url, MessageSystemAttributeNames=[name])
    assert list(m["Attributes"]) == [name]
    assert m["Attributes"][name]


@requires_switchboard_sqs("moto draws SequenceNumber at random (and only for messages with an "
                          "explicit deduplication id)")
def test_sequence_numbers_increase(sqs):
    """SequenceNumber (up to 128 bits) increases within a message group."""
    url = sqs.queue(fifo=True, ContentBasedDeduplication="true")
    seqs = collections.defaultdict(list)
    for i in range(6):
        g = "g" if i % 2 else "h"
        r = sqs.client.send_message(QueueUrl=url, MessageBody=f"s{i}", MessageGroupId=g)
        seqs[g].append(int(r["SequenceNumber"]))
    for g, values in seqs.items():
        assert values == sorted(values) and len(set(values)) == 3, (g, values)
        assert all(v < 2 ** 128 for v in values)


@requires_switchboard_sqs("moto ignores ReceiveRequestAttemptId")
def test_receive_request_attempt_id_retry_returns_the_same_messages(sqs):
    url = sqs.queue(fifo=True)
    for i in range(3):
        send(sqs, url, f"r{i}")
    first = receive(sqs.client, url, n=10, wait=1, ReceiveRequestAttemptId="attempt-1")
    assert first
    retry = receive(sqs.client, url, n=10, wait=0, ReceiveRequestAttemptId="attempt-1")
    assert [(m["MessageId"], m["ReceiptHandle"]) for m in retry] == [
        (m["MessageId"], m["ReceiptHandle"]) for m in first]
    # a different attempt id is a new receive: the group is in flight, nothing comes
    assert receive(sqs.client, url, n=10, wait=0, ReceiveRequestAttemptId="attempt-2") == []


def test_fifo_dead_letter_queue_must_be_fifo(sqs):
    dlq = sqs.queue(kind="dlq")
    policy = f'{{"deadLetterTargetArn": "{sqs.arn(dlq)}", "maxReceiveCount": 2}}'
    expect_error(("InvalidParameterCombination", "InvalidParameterValue",
                  "InvalidAttributeValue"),
                 sqs.client.create_queue, QueueName=sqsutil.qname(fifo=True),
                 Attributes={"FifoQueue": "true", "RedrivePolicy": policy})


def test_standard_queue_accepts_a_message_group_id(sqs):
    """Fair queues (2025): a standard queue takes MessageGroupId as a tenant key."""
    url = sqs.queue()
    sqs.client.send_message(QueueUrl=url, MessageBody="tenant", MessageGroupId="tenant-1")
    assert receive_one(sqs.client, url)["Body"] == "tenant"


def test_batch_entry_without_dedup_id_fails_the_batch_without_content_dedup(sqs):
    url = sqs.queue(fifo=True)
    e = expect_error("InvalidParameterValue", sqs.client.send_message_batch, QueueUrl=url,
                     Entries=[{"Id": "a", "MessageBody": "x", "MessageGroupId": "g",
                               "MessageDeduplicationId": "d1"},
                              {"Id": "b", "MessageBody": "y", "MessageGroupId": "g"}])
    assert e.response["Error"]["Message"] == (
        "The queue should either have ContentBasedDeduplication enabled or "
        "MessageDeduplicationId provided explicitly")
    assert stays_empty(sqs.client, url, window=0.2)


@requires_switchboard_sqs("moto gives a duplicate a new MessageId; AWS answers with the "
                          "original's (the recordings issue 11 cites)")
def test_duplicate_is_answered_with_the_original_ids_and_this_requests_digests(sqs):
    """The JavaScript v3 SDK checks MD5OfMessageBody/MD5OfMessageAttributes against
    what it sent: a duplicate with a changed body gets the original's MessageId and
    SequenceNumber, but the digests of the request at hand (AWS)."""
    url = sqs.queue(fifo=True)
    first = send(sqs, url, "first body", dedup="same-key", MessageAttributes={
        "a": {"DataType": "String", "StringValue": "1"}})
    again = send(sqs, url, "changed body", dedup="same-key", MessageAttributes={
        "b": {"DataType": "Number", "StringValue": "2"}})
    assert again["MessageId"] == first["MessageId"]
    assert again["SequenceNumber"] == first["SequenceNumber"]
    assert again["MD5OfMessageBody"] == sqsutil.md5_hex(b"changed body")
    assert again["MD5OfMessageAttributes"] == sqsutil.md5_of_message_attributes(
        {"b": {"DataType": "Number", "StringValue": "2"}})


def test_purge_clears_the_deduplication_window(sqs):
    """After PurgeQueue the same MessageDeduplicationId is a new message (AWS)."""
    url = sqs.queue(fifo=True)
    first = send(sqs, url, "before purge", dedup="reused")
    sqs.client.purge_queue(QueueUrl=url)
    again = send(sqs, url, "after purge", dedup="reused")
    assert again["MessageId"] != first["MessageId"]
    assert receive_one(sqs.client, url)["Body"] == "after purge"
