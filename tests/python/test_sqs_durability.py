"""What SQS state survives kill -9 beyond messages (Switchboard only: emulators keep
none of it): a message in flight stays invisible for the rest of its visibility
timeout and its receipt handle still deletes it; a FIFO deduplication id keeps
refusing repeats for the rest of its 5-minute window, also after the message was
deleted; a message move task that was running carries on."""

from __future__ import annotations

import time

import pytest

import sqsutil
from sqsutil import qname, receive_one, requires_switchboard_sqs
from test_sqs_switchboard import Private

pytestmark = requires_switchboard_sqs("kills and restarts the broker on its data directory")


@pytest.fixture
def private():
    p = Private()
    yield p
    p.close()


def test_in_flight_lease_and_receipt_handle_survive_sigkill(private):
    c = private.client
    url = c.create_queue(QueueName=qname("lease"))["QueueUrl"]
    c.send_message(QueueUrl=url, MessageBody="held")
    m = receive_one(c, url, VisibilityTimeout=60)
    private.restart(kill=True)
    c, url = private.client, private.url(url)
    # Still invisible: nobody else gets it after the restart.
    assert sqsutil.stays_empty(c, url, window=1.0)
    a = sqsutil.queue_attrs(c, url, "ApproximateNumberOfMessagesNotVisible")
    assert a == {"ApproximateNumberOfMessagesNotVisible": "1"}
    # The handle from before the crash still deletes it.
    c.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    a = sqsutil.queue_attrs(c, url, "ApproximateNumberOfMessagesNotVisible")
    assert a == {"ApproximateNumberOfMessagesNotVisible": "0"}


def test_visibility_change_survives_sigkill(private):
    c = private.client
    url = c.create_queue(QueueName=qname("extend"))["QueueUrl"]
    c.send_message(QueueUrl=url, MessageBody="x")
    m = receive_one(c, url, VisibilityTimeout=60)
    # Shortened to 1 s: after the restart it must come back soon, not in a minute.
    c.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"],
                                VisibilityTimeout=1)
    private.restart(kill=True)
    again = receive_one(private.client, private.url(url), timeout=10,
                        MessageSystemAttributeNames=["ApproximateReceiveCount"])
    assert again["Body"] == "x"
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"


def test_fifo_dedup_window_survives_sigkill_even_after_delete(private):
    c = private.client
    url = c.create_queue(QueueName=qname("dedup", fifo=True),
                         Attributes={"FifoQueue": "true"})["QueueUrl"]
    c.send_message(QueueUrl=url, MessageBody="once", MessageGroupId="g",
                   MessageDeduplicationId="d-1")
    m = receive_one(c, url)
    c.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    c.send_message(QueueUrl=url, MessageBody="pending", MessageGroupId="g",
                   MessageDeduplicationId="d-2")
    private.restart(kill=True)
    c, url = private.client, private.url(url)
    for d in ("d-1", "d-2"):
        c.send_message(QueueUrl=url, MessageBody="again", MessageGroupId="g",
                       MessageDeduplicationId=d)
    c.send_message(QueueUrl=url, MessageBody="new", MessageGroupId="g",
                   MessageDeduplicationId="d-3")
    got = sqsutil.receive_n(c, url, 2, timeout=5)
    assert [x["Body"] for x in got] == ["pending", "new"]
    for x in got:
        c.delete_message(QueueUrl=url, ReceiptHandle=x["ReceiptHandle"])
    assert sqsutil.stays_empty(c, url, window=0.5)


def test_a_purge_keeps_the_deduplication_window_empty_across_sigkill(private):
    c = private.client
    url = c.create_queue(QueueName=qname("purged", fifo=True),
                         Attributes={"FifoQueue": "true"})["QueueUrl"]
    c.send_message(QueueUrl=url, MessageBody="before", MessageGroupId="g",
                   MessageDeduplicationId="reused")
    m = receive_one(c, url)
    c.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    c.purge_queue(QueueUrl=url)
    # Killed before compaction could drop the old records: the restart must not
    # read the purged id back into the window.
    private.restart(kill=True)
    c, url = private.client, private.url(url)
    c.send_message(QueueUrl=url, MessageBody="after", MessageGroupId="g",
                   MessageDeduplicationId="reused")
    assert receive_one(c, url)["Body"] == "after"


def test_running_move_task_resumes_after_sigkill(private):
    c = private.client
    dlq = c.create_queue(QueueName=qname("dlq"))["QueueUrl"]
    dlq_arn = sqsutil.queue_attrs(c, dlq, "QueueArn")["QueueArn"]
    src = c.create_queue(QueueName=qname("src"), Attributes={
        "RedrivePolicy": f'{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"1"}}'})["QueueUrl"]
    dest = c.create_queue(QueueName=qname("dest"))["QueueUrl"]
    dest_arn = sqsutil.queue_attrs(c, dest, "QueueArn")["QueueArn"]
    for i in range(0, 20, 10):
        c.send_message_batch(QueueUrl=dlq, Entries=[
            {"Id": str(j), "MessageBody": f"m{i + j}"} for j in range(10)])
    c.start_message_move_task(SourceArn=dlq_arn, DestinationArn=dest_arn,
                              MaxNumberOfMessagesPerSecond=5)
    time.sleep(1.0)
    private.restart(kill=True)
    c, dest = private.client, private.url(dest)

    def done():
        [t] = c.list_message_move_tasks(SourceArn=dlq_arn)["Results"]
        return t["Status"] == "COMPLETED"

    sqsutil.wait_for(done, timeout=20, what="the move task to finish after the restart")
    bodies = set()
    deadline = time.monotonic() + 10
    while len(bodies) < 20 and time.monotonic() < deadline:
        for m in sqsutil.receive(c, dest, n=10):
            bodies.add(m["Body"])
            c.delete_message(QueueUrl=dest, ReceiptHandle=m["ReceiptHandle"])
    assert bodies == {f"m{i}" for i in range(20)}
    assert sqsutil.stays_empty(c, private.url(dlq), window=0.3)
