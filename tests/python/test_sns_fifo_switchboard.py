"""SNS FIFO beyond what moto can check (Switchboard only): the topic's deduplication
window survives kill -9, and message archiving and replay (ArchivePolicy on the
topic, ReplayPolicy on a subscription, ReplayStatus, BeginningArchiveTime)."""

from __future__ import annotations

import datetime
import json
import time

import pytest
from botocore.exceptions import ClientError

import snsutil
import sqsutil
from sqsutil import receive_n, receive_one, requires_switchboard_sqs
from test_sqs_switchboard import Private

pytestmark = requires_switchboard_sqs("moto keeps no dedup window across a kill and has no "
                                      "archive or replay")


@pytest.fixture
def private():
    p = Private()
    yield p
    p.close()


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def test_deduplication_survives_sigkill(private):
    sns = snsutil.client(private.ep)
    topic = sns.create_topic(Name=snsutil.tname("dedup") + ".fifo",
                             Attributes={"FifoTopic": "true"})["TopicArn"]
    url = private.client.create_queue(QueueName=sqsutil.qname("dedup", fifo=True),
                                      Attributes={"FifoQueue": "true"})["QueueUrl"]
    qarn = sqsutil.queue_attrs(private.client, url, "QueueArn")["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn,
                  Attributes={"RawMessageDelivery": "true"})
    first = sns.publish(TopicArn=topic, Message="before", MessageGroupId="g",
                        MessageDeduplicationId="kept")
    private.restart(kill=True)
    sns = snsutil.client(private.ep)
    url = private.url(url)
    m = receive_one(private.client, url)
    assert m["Body"] == "before"
    private.client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    again = sns.publish(TopicArn=topic, Message="after", MessageGroupId="g",
                        MessageDeduplicationId="kept")
    # The window and the original's ids came back from the journal.
    assert again["MessageId"] == first["MessageId"]
    assert again["SequenceNumber"] == first["SequenceNumber"]
    assert sqsutil.stays_empty(private.client, url, window=1.5)
    later = sns.publish(TopicArn=topic, Message="new", MessageGroupId="g",
                        MessageDeduplicationId="fresh")
    assert int(later["SequenceNumber"]) > int(first["SequenceNumber"])
    assert receive_one(private.client, url)["Body"] == "new"


def _archived_topic(sns):
    return sns.topic(snsutil.tname("arch") + ".fifo", Attributes={
        "FifoTopic": "true", "ContentBasedDeduplication": "true",
        "ArchivePolicy": json.dumps({"MessageRetentionPeriod": "7"})})


def _wait_status(sns, sub, want, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        a = sns.client.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]
        if a.get("ReplayStatus") == want or time.monotonic() > deadline:
            return a
        time.sleep(0.2)


def test_archive_policy_attributes(sns):
    topic = _archived_topic(sns)
    a = sns.client.get_topic_attributes(TopicArn=topic)["Attributes"]
    assert json.loads(a["ArchivePolicy"]) == {"MessageRetentionPeriod": "7"}
    begin = datetime.datetime.strptime(a["BeginningArchiveTime"], "%Y-%m-%dT%H:%M:%S.%fZ")
    age = datetime.datetime.utcnow() - begin
    assert datetime.timedelta(0) <= age < datetime.timedelta(minutes=1)
    for bad in ({"MessageRetentionPeriod": "0"}, {"MessageRetentionPeriod": "366"},
                {"Nope": "1"}):
        with pytest.raises(ClientError) as e:
            sns.client.set_topic_attributes(TopicArn=topic, AttributeName="ArchivePolicy",
                                            AttributeValue=json.dumps(bad))
        assert e.value.response["Error"]["Code"] == "InvalidParameter"
    with pytest.raises(ClientError) as e:
        sns.topic(Attributes={"ArchivePolicy": json.dumps({"MessageRetentionPeriod": "1"})})
    assert e.value.response["Error"]["Code"] == "InvalidParameter"


def test_replay_from_a_timestamp_in_order(sns, sqs):
    topic = _archived_topic(sns)
    live = sqs.queue(fifo=True, kind="live")
    sns.subscribe_queue(topic, sqs.arn(live), {"RawMessageDelivery": "true"})
    sns.client.publish(TopicArn=topic, Message="old", MessageGroupId="g")
    time.sleep(0.05)
    start = time.time()
    time.sleep(0.05)
    ids = [sns.client.publish(TopicArn=topic, Message=f"r{i}", MessageGroupId="g")["MessageId"]
           for i in range(5)]
    assert len(receive_n(sqs.client, live, 6, timeout=5)) == 6
    # A new subscriber replays what was archived from `start` on, in order, with the
    # original MessageIds and the Replayed flag.
    url = sqs.queue(fifo=True, kind="replay")
    policy = json.dumps({"PointType": "Timestamp", "StartingPoint": _iso(start)})
    sub = sns.subscribe_queue(topic, sqs.arn(url), {"ReplayPolicy": policy})
    got = []
    while len(got) < 5:
        ms = sqsutil.receive(sqs.client, url, n=10, wait=2)
        assert ms, f"only {len(got)} replayed"
        for m in ms:
            got.append(snsutil.envelope(m))
            sqs.client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert [e["Message"] for e in got] == [f"r{i}" for i in range(5)]
    assert [e["MessageId"] for e in got] == ids
    assert all(e["Replayed"] is True for e in got)
    a = _wait_status(sns, sub, "Completed")
    assert a["ReplayStatus"] == "Completed"
    assert json.loads(a["ReplayPolicy"])["StartingPoint"] == _iso(start)
    # The archive still holds everything: a second replay, with an end, gets a part.
    url2 = sqs.queue(fifo=True, kind="replay2")
    sub2 = sns.subscribe_queue(topic, sqs.arn(url2), {"RawMessageDelivery": "true"})
    assert sqsutil.stays_empty(sqs.client, url2, window=0.5)
    sns.client.set_subscription_attributes(
        SubscriptionArn=sub2, AttributeName="ReplayPolicy",
        AttributeValue=json.dumps({"PointType": "Timestamp", "StartingPoint": _iso(start - 60),
                                   "EndingPoint": _iso(start)}))
    assert receive_one(sqs.client, url2)["Body"] == "old"
    assert sqsutil.stays_empty(sqs.client, url2, window=1.0)
    assert _wait_status(sns, sub2, "Completed")["ReplayStatus"] == "Completed"


def test_replay_applies_the_subscription_filter_policy(sns, sqs):
    topic = _archived_topic(sns)
    start = time.time()
    time.sleep(0.05)
    for i, kind in enumerate(["order", "refund", "order", "audit"]):
        sns.client.publish(TopicArn=topic, Message=f"{kind}{i}", MessageGroupId="g",
                           MessageAttributes={"kind": {"DataType": "String",
                                                       "StringValue": kind}})
    url = sqs.queue(fifo=True, kind="replayf")
    policy = json.dumps({"PointType": "Timestamp", "StartingPoint": _iso(start)})
    sns.subscribe_queue(topic, sqs.arn(url), {
        "ReplayPolicy": policy, "RawMessageDelivery": "true",
        "FilterPolicy": json.dumps({"kind": ["order", "audit"]})})
    got = []
    deadline = time.monotonic() + 10
    while len(got) < 3 and time.monotonic() < deadline:
        for m in sqsutil.receive(sqs.client, url, n=10, wait=1):
            got.append(m["Body"])
            sqs.client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert got == ["order0", "order2", "audit3"]
    assert sqsutil.stays_empty(sqs.client, url, window=1.0)


def test_replay_policy_needs_an_archive_and_a_valid_document(sns, sqs):
    topic = sns.topic(snsutil.tname("noarch") + ".fifo", Attributes={"FifoTopic": "true"})
    url = sqs.queue(fifo=True, kind="noarch")
    policy = json.dumps({"PointType": "Timestamp", "StartingPoint": _iso(time.time() - 60)})
    with pytest.raises(ClientError) as e:
        sns.subscribe_queue(topic, sqs.arn(url), {"ReplayPolicy": policy})
    assert e.value.response["Error"]["Code"] == "InvalidParameter"
    assert sns.client.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] == []
    archived = _archived_topic(sns)
    for bad in ({"PointType": "Sequence", "StartingPoint": _iso(time.time())},
                {"PointType": "Timestamp", "StartingPoint": "yesterday"},
                {"PointType": "Timestamp"}):
        with pytest.raises(ClientError) as e:
            sns.subscribe_queue(archived, sqs.arn(url), {"ReplayPolicy": json.dumps(bad)})
        assert e.value.response["Error"]["Code"] == "InvalidParameter"
