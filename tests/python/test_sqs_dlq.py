"""SQS dead-letter queues: RedrivePolicy (maxReceiveCount), what a dead-lettered message
keeps, ListDeadLetterSourceQueues, RedriveAllowPolicy, and message move tasks
(StartMessageMoveTask, ListMessageMoveTasks, CancelMessageMoveTask)."""

from __future__ import annotations

import json
import time

import sqsutil
from sqsutil import expect_error, receive, receive_one, requires_switchboard_sqs, stays_empty

NO_MOVE_TASKS = "moto does not implement message move tasks (StartMessageMoveTask answers 500)"


def redrive(arn: str, max_receives: int = 2) -> str:
    return json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": max_receives})


def dlq_pair(sqs, max_receives: int = 2, **src_attrs):
    """A DLQ and a source queue redriving into it (VisibilityTimeout 1 by default)."""
    dlq = sqs.queue(kind="dlq")
    src_attrs.setdefault("VisibilityTimeout", 1)
    src = sqs.queue(kind="src", RedrivePolicy=redrive(sqs.arn(dlq), max_receives), **src_attrs)
    return src, dlq


def dead_letter(sqs, src, dlq, count: int, max_receives: int, timeout: float = 10.0):
    """Receive every message of ``src`` ``max_receives`` times, letting each receive's
    1 s visibility expire, until ``count`` messages sit in ``dlq``. Returns the ids
    received from the source."""
    ids = set()
    for _ in range(max_receives):
        got = sqsutil.receive_n(sqs.client, src, count, timeout=5, VisibilityTimeout=1)
        assert len(got) == count, got
        ids |= {m["MessageId"] for m in got}
        time.sleep(1.2)

    def moved():
        # a further receive must not deliver them again: it moves them instead
        assert receive(sqs.client, src, n=10, wait=0) == []
        a = sqs.attrs(dlq, "ApproximateNumberOfMessages")
        return a["ApproximateNumberOfMessages"] == str(count)

    sqsutil.wait_for(moved, timeout=timeout, interval=0.2, what=f"{count} dead-lettered messages")
    return ids


# ---------------------------------------------------------------------------------
# Redrive


ATTRS = {"color": {"DataType": "String", "StringValue": "red"},
         "raw": {"DataType": "Binary", "BinaryValue": b"\x00\xff"}}


def test_message_moves_to_the_dlq_after_max_receive_count(sqs):
    src, dlq = dlq_pair(sqs, max_receives=2)
    sent = sqs.send(src, "poison", MessageAttributes=ATTRS)
    first = receive_one(sqs.client, src, MessageSystemAttributeNames=["All"])
    assert first["Attributes"]["ApproximateReceiveCount"] == "1"
    time.sleep(1.2)
    second = receive_one(sqs.client, src, timeout=3, MessageSystemAttributeNames=["All"])
    assert second["Attributes"]["ApproximateReceiveCount"] == "2"
    time.sleep(1.2)
    # the third receive does not deliver it: the message has gone to the DLQ
    assert stays_empty(sqs.client, src, window=0.5)
    m = receive_one(sqs.client, dlq, timeout=5, MessageAttributeNames=["All"],
                    MessageSystemAttributeNames=["All"])
    assert m["Body"] == "poison"
    assert m["MessageId"] == sent["MessageId"]
    assert m["MessageAttributes"] == ATTRS
    assert m["MD5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    sqsutil.check_md5s(m)
    # the enqueue timestamp is kept (retention counts from the original send)
    assert m["Attributes"]["SentTimestamp"] == first["Attributes"]["SentTimestamp"]


@requires_switchboard_sqs("moto does not set the DeadLetterQueueSourceArn system attribute")
def test_dead_lettered_message_names_its_source_queue(sqs):
    src, dlq = dlq_pair(sqs, max_receives=1)
    sqs.send(src, "from src")
    dead_letter(sqs, src, dlq, 1, 1)
    m = receive_one(sqs.client, dlq, VisibilityTimeout=0, MessageSystemAttributeNames=["All"])
    assert m["Attributes"]["DeadLetterQueueSourceArn"] == sqs.arn(src)
    m = receive_one(sqs.client, dlq, timeout=5, VisibilityTimeout=0,
                    MessageSystemAttributeNames=["DeadLetterQueueSourceArn"])
    assert m["Attributes"] == {"DeadLetterQueueSourceArn": sqs.arn(src)}


def test_deleted_message_is_not_dead_lettered(sqs):
    src, dlq = dlq_pair(sqs, max_receives=1)
    sqs.send(src, "handled")
    m = receive_one(sqs.client, src)
    sqs.client.delete_message(QueueUrl=src, ReceiptHandle=m["ReceiptHandle"])
    time.sleep(1.2)
    assert stays_empty(sqs.client, src, window=0.3)
    assert stays_empty(sqs.client, dlq, window=0.3)


def test_redrive_policy_attribute(sqs):
    src, dlq = dlq_pair(sqs, max_receives=3)
    policy = json.loads(sqs.attrs(src, "RedrivePolicy")["RedrivePolicy"])
    assert policy["deadLetterTargetArn"] == sqs.arn(dlq)
    assert int(policy["maxReceiveCount"]) == 3
    assert "RedrivePolicy" in sqs.attrs(src, "All")
    # an empty value removes the policy
    sqs.client.set_queue_attributes(QueueUrl=src, Attributes={"RedrivePolicy": ""})
    assert sqs.attrs(src, "RedrivePolicy") == {}


def test_redrive_policy_set_later_takes_effect(sqs):
    dlq = sqs.queue(kind="dlq")
    src = sqs.queue(kind="src", VisibilityTimeout=1)
    sqs.client.set_queue_attributes(QueueUrl=src,
                                    Attributes={"RedrivePolicy": redrive(sqs.arn(dlq), 1)})
    sqs.send(src, "later policy")
    dead_letter(sqs, src, dlq, 1, 1)
    assert receive_one(sqs.client, dlq)["Body"] == "later policy"


def test_redrive_policy_without_max_receive_count_is_refused(sqs):
    dlq = sqs.queue(kind="dlq")
    src = sqs.queue(kind="src")
    expect_error("InvalidParameterValue", sqs.client.set_queue_attributes, QueueUrl=src,
                 Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": sqs.arn(dlq)})})


@requires_switchboard_sqs("moto answers NonExistentQueue (or accepts) where AWS refuses a "
                          "malformed deadLetterTargetArn with InvalidParameterValue")
def test_redrive_policy_with_invalid_target_arn_is_refused(sqs):
    src = sqs.queue(kind="src")
    expect_error("InvalidParameterValue", sqs.client.set_queue_attributes, QueueUrl=src,
                 Attributes={"RedrivePolicy": json.dumps(
                     {"deadLetterTargetArn": "dummy", "maxReceiveCount": 42})}, status=400)


def test_list_dead_letter_source_queues(sqs):
    dlq = sqs.queue(kind="dlq")
    policy = redrive(sqs.arn(dlq), 5)
    srcs = sorted(sqs.queue(kind=f"src{i}", RedrivePolicy=policy) for i in range(2))
    unrelated = sqs.queue(kind="other")
    got = sqs.client.list_dead_letter_source_queues(QueueUrl=dlq)
    assert sorted(got["queueUrls"]) == srcs
    empty = sqs.client.list_dead_letter_source_queues(QueueUrl=unrelated)
    assert empty.get("queueUrls", []) == []


# ---------------------------------------------------------------------------------
# RedriveAllowPolicy


@requires_switchboard_sqs("moto stores RedriveAllowPolicy without enforcing it")
def test_redrive_allow_policy_deny_all(sqs):
    dlq = sqs.queue(kind="dlq", RedriveAllowPolicy=json.dumps({"redrivePermission": "denyAll"}))
    src = sqs.queue(kind="src")
    expect_error(("InvalidParameterValue", "InvalidAttributeValue"),
                 sqs.client.set_queue_attributes, QueueUrl=src,
                 Attributes={"RedrivePolicy": redrive(sqs.arn(dlq))}, status=400)
    assert sqs.attrs(src, "RedrivePolicy") == {}


@requires_switchboard_sqs("moto stores RedriveAllowPolicy without enforcing it")
def test_redrive_allow_policy_by_queue(sqs):
    allowed = sqs.queue(kind="src-ok")
    denied = sqs.queue(kind="src-no")
    dlq = sqs.queue(kind="dlq", RedriveAllowPolicy=json.dumps(
        {"redrivePermission": "byQueue", "sourceQueueArns": [sqs.arn(allowed)]}))
    sqs.client.set_queue_attributes(QueueUrl=allowed,
                                    Attributes={"RedrivePolicy": redrive(sqs.arn(dlq))})
    expect_error(("InvalidParameterValue", "InvalidAttributeValue"),
                 sqs.client.set_queue_attributes, QueueUrl=denied,
                 Attributes={"RedrivePolicy": redrive(sqs.arn(dlq))})


# ---------------------------------------------------------------------------------
# Message move tasks


@requires_switchboard_sqs(NO_MOVE_TASKS)
def test_move_task_redrives_back_to_the_source(sqs):
    src, dlq = dlq_pair(sqs, max_receives=1)
    bodies = [f"redrive-{i}" for i in range(3)]
    for b in bodies:
        sqs.send(src, b)
    dead_letter(sqs, src, dlq, 3, 1)
    dlq_arn = sqs.arn(dlq)
    t0 = int(time.time() * 1000)
    handle = sqs.client.start_message_move_task(SourceArn=dlq_arn)["TaskHandle"]
    assert handle

    def done():
        [task] = sqs.client.list_message_move_tasks(SourceArn=dlq_arn)["Results"]
        return task if task["Status"] == "COMPLETED" else None

    task = sqsutil.wait_for(done, timeout=15, interval=0.2, what="the move task to complete")
    assert task["SourceArn"] == dlq_arn
    assert task["ApproximateNumberOfMessagesMoved"] == 3
    assert task["ApproximateNumberOfMessagesToMove"] == 3
    assert "TaskHandle" not in task  # only RUNNING tasks show their handle
    assert "DestinationArn" not in task  # none was given
    assert t0 - 5000 <= int(task["StartedTimestamp"]) <= int(time.time() * 1000) + 5000
    got = sqsutil.receive_n(sqs.client, src, 3, timeout=5, VisibilityTimeout=30)
    assert sorted(m["Body"] for m in got) == bodies
    assert stays_empty(sqs.client, dlq, window=0.3)


@requires_switchboard_sqs(NO_MOVE_TASKS)
def test_move_task_to_an_explicit_destination_and_cancel(sqs):
    dlq = sqs.queue(kind="dlq")
    sqs.queue(kind="src", RedrivePolicy=redrive(sqs.arn(dlq)))  # makes it a DLQ
    dest = sqs.queue(kind="dest")
    total = 20
    for i in range(0, total, 10):
        sqs.client.send_message_batch(QueueUrl=dlq, Entries=[
            {"Id": str(j), "MessageBody": f"m{i + j}"} for j in range(10)])
    dlq_arn, dest_arn = sqs.arn(dlq), sqs.arn(dest)
    handle = sqs.client.start_message_move_task(
        SourceArn=dlq_arn, DestinationArn=dest_arn, MaxNumberOfMessagesPerSecond=1)["TaskHandle"]
    [running] = sqs.client.list_message_move_tasks(SourceArn=dlq_arn)["Results"]
    assert running["Status"] == "RUNNING"
    assert running["TaskHandle"] == handle
    assert running["DestinationArn"] == dest_arn
    assert running["MaxNumberOfMessagesPerSecond"] == 1
    # only one active task per source queue
    expect_error("InvalidParameterValue", sqs.client.start_message_move_task, SourceArn=dlq_arn)

    cancel = sqs.client.cancel_message_move_task(TaskHandle=handle)
    assert 0 <= cancel["ApproximateNumberOfMessagesMoved"] < total

    def cancelled():
        [task] = sqs.client.list_message_move_tasks(SourceArn=dlq_arn)["Results"]
        return task if task["Status"] == "CANCELLED" else None

    task = sqsutil.wait_for(cancelled, timeout=10, interval=0.2, what="the task to be cancelled")
    moved = task["ApproximateNumberOfMessagesMoved"]
    assert moved < total
    assert task["ApproximateNumberOfMessagesToMove"] == total

    def counts():
        a = sqs.attrs(dlq, "ApproximateNumberOfMessages")["ApproximateNumberOfMessages"]
        b = sqs.attrs(dest, "ApproximateNumberOfMessages")["ApproximateNumberOfMessages"]
        return (int(a), int(b)) if int(a) + int(b) == total else None

    left, arrived = sqsutil.wait_for(counts, timeout=5, what="all messages accounted for")
    assert arrived == moved and left == total - moved


@requires_switchboard_sqs(NO_MOVE_TASKS)
def test_move_task_source_must_be_a_dead_letter_queue(sqs):
    plain = sqs.queue()
    e = expect_error("InvalidParameterValue", sqs.client.start_message_move_task,
                     SourceArn=sqs.arn(plain), status=400)
    assert "Dead Letter Queue" in e.response["Error"]["Message"]


@requires_switchboard_sqs(NO_MOVE_TASKS)
def test_move_task_destination_must_exist(sqs):
    dlq = sqs.queue(kind="dlq")
    sqs.queue(kind="src", RedrivePolicy=redrive(sqs.arn(dlq)))
    missing = sqs.arn(dlq).rsplit(":", 1)[0] + ":" + sqsutil.qname("missing")
    expect_error("ResourceNotFoundException", sqs.client.start_message_move_task,
                 SourceArn=sqs.arn(dlq), DestinationArn=missing, status=404)


@requires_switchboard_sqs(NO_MOVE_TASKS)
def test_cancel_with_an_invalid_task_handle(sqs):
    expect_error("InvalidParameterValue", sqs.client.cancel_message_move_task,
                 TaskHandle="not-a-task-handle", status=400)


@requires_switchboard_sqs(NO_MOVE_TASKS)
def test_list_move_tasks_of_a_queue_without_tasks(sqs):
    dlq = sqs.queue(kind="dlq")
    sqs.queue(kind="src", RedrivePolicy=redrive(sqs.arn(dlq)))
    got = sqs.client.list_message_move_tasks(SourceArn=sqs.arn(dlq))
    assert got.get("Results", []) == []
