"""SNS FIFO topics as AWS has them: `.fifo` names with FifoTopic=true, MessageGroupId
and deduplication (explicit or content-based) on Publish and PublishBatch,
SequenceNumbers, fan-out to FIFO SQS queues in order per group with the group and
deduplication ids carried over, which queues may subscribe, the FIFO envelope,
MessageStructure=json and the publish size limit."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

import snsutil
import sqsutil
from sqsutil import receive_n, receive_one, requires_switchboard_sqs


def _err(call, **kw):
    with pytest.raises(ClientError) as e:
        call(**kw)
    r = e.value.response
    return r["Error"]["Code"], r["Error"]["Message"]


def _fifo_topic(sns, cbd=False):
    attrs = {"FifoTopic": "true"}
    if cbd:
        attrs["ContentBasedDeduplication"] = "true"
    return sns.topic(snsutil.tname("fifo") + ".fifo", Attributes=attrs)


def _fifo_queue(sqs, sns, topic, raw=True):
    url = sqs.queue(fifo=True, kind="snsfifo")
    sns.subscribe_queue(topic, sqs.arn(url), {"RawMessageDelivery": "true"} if raw else None)
    return url


def test_fifo_topic_attributes(sns):
    topic = _fifo_topic(sns, cbd=True)
    assert topic.endswith(".fifo")
    a = sns.client.get_topic_attributes(TopicArn=topic)["Attributes"]
    assert a["FifoTopic"] == "true"
    assert a["ContentBasedDeduplication"] == "true"
    # Idempotent, as for standard topics.
    assert sns.topic(topic.rsplit(":", 1)[1], Attributes={"FifoTopic": "true"}) == topic


def test_fifo_topic_shows_content_based_deduplication_false(sns):
    a = sns.client.get_topic_attributes(TopicArn=_fifo_topic(sns))["Attributes"]
    assert a["ContentBasedDeduplication"] == "false"


def test_fifo_names_and_fifo_topic_go_together(sns):
    name = snsutil.tname("fifo")
    code, msg = _err(sns.client.create_topic, Name=name + ".fifo")
    assert code == "InvalidParameter"
    code, msg = _err(sns.client.create_topic, Name=name, Attributes={"FifoTopic": "true"})
    assert code == "InvalidParameter"
    assert "Fifo Topic names must end with .fifo" in msg


@requires_switchboard_sqs("moto answers MissingParameter for the group (AWS: InvalidParameter)")
def test_publish_needs_group_and_deduplication(sns):
    topic = _fifo_topic(sns)
    code, msg = _err(sns.client.publish, TopicArn=topic, Message="m")
    assert (code, msg) == (
        "InvalidParameter",
        "Invalid parameter: The MessageGroupId parameter is required for FIFO topics")
    code, msg = _err(sns.client.publish, TopicArn=topic, Message="m", MessageGroupId="g")
    assert (code, msg) == (
        "InvalidParameter",
        "Invalid parameter: The topic should either have ContentBasedDeduplication enabled "
        "or MessageDeduplicationId provided explicitly")


def test_deduplication_id_on_a_standard_topic_is_refused(sns):
    code, msg = _err(sns.client.publish, TopicArn=sns.topic(), Message="m",
                     MessageDeduplicationId="d")
    assert code == "InvalidParameter"
    assert "MessageDeduplicationId" in msg


@requires_switchboard_sqs("moto answers Publish without a SequenceNumber")
def test_fan_out_keeps_order_per_group_and_numbers_increase(sns, sqs):
    topic = _fifo_topic(sns)
    url = _fifo_queue(sqs, sns, topic)
    seqs = []
    for i in range(12):
        r = sns.client.publish(TopicArn=topic, Message=f"{'ab'[i % 2]}{i}",
                               MessageGroupId="ab"[i % 2], MessageDeduplicationId=f"d{i}")
        assert len(r["SequenceNumber"]) == 20 and r["SequenceNumber"].isdigit()
        seqs.append(int(r["SequenceNumber"]))
    assert seqs == sorted(seqs) and len(set(seqs)) == 12
    got = []
    while len(got) < 12:
        ms = sqsutil.receive(sqs.client, url, n=10, wait=2, AttributeNames=["All"])
        assert ms, f"only {len(got)} arrived"
        for m in ms:
            got.append(m)
            sqs.client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    for g in "ab":
        mine = [m for m in got if m["Attributes"]["MessageGroupId"] == g]
        assert [m["Body"] for m in mine] == [f"{g}{i}" for i in range(12) if "ab"[i % 2] == g]
        assert [m["Attributes"]["MessageDeduplicationId"] for m in mine] == [
            f"d{i}" for i in range(12) if "ab"[i % 2] == g]


@requires_switchboard_sqs("moto does not deduplicate at the topic: the duplicate arrives")
def test_explicit_deduplication(sns, sqs):
    topic = _fifo_topic(sns)
    url = _fifo_queue(sqs, sns, topic)
    first = sns.client.publish(TopicArn=topic, Message="once", MessageGroupId="g",
                               MessageDeduplicationId="same")
    m = receive_one(sqs.client, url)
    assert m["Body"] == "once"
    sqs.client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    again = sns.client.publish(TopicArn=topic, Message="twice", MessageGroupId="g",
                               MessageDeduplicationId="same")
    assert sqsutil.stays_empty(sqs.client, url, window=1.5)
    # AWS answers a duplicate with the original's ids.
    assert again["MessageId"] == first["MessageId"]
    assert again["SequenceNumber"] == first["SequenceNumber"]


@requires_switchboard_sqs("moto passes no deduplication id on, so a FIFO queue without "
                          "ContentBasedDeduplication refuses the message")
def test_content_based_deduplication(sns, sqs):
    topic = _fifo_topic(sns, cbd=True)
    url = _fifo_queue(sqs, sns, topic)
    for body in ("same", "same", "other"):
        sns.client.publish(TopicArn=topic, Message=body, MessageGroupId="g")
    got = [m["Body"] for m in receive_n(sqs.client, url, 2, timeout=5)]
    assert sorted(got) == ["other", "same"]
    assert sqsutil.stays_empty(sqs.client, url, window=1.0)


def test_fifo_queue_cannot_subscribe_to_a_standard_topic(sns, sqs):
    url = sqs.queue(fifo=True, kind="snsfifo")
    code, msg = _err(sns.client.subscribe, TopicArn=sns.topic(), Protocol="sqs",
                     Endpoint=sqs.arn(url))
    assert code == "InvalidParameter"
    assert "FIFO SQS Queues can not be subscribed to standard SNS topics" in msg


def test_standard_queue_may_subscribe_to_a_fifo_topic(sns, sqs):
    """AWS lets standard queues subscribe to FIFO topics (without FIFO's order)."""
    topic = _fifo_topic(sns)
    url = sqs.queue(kind="snsstd")
    sns.subscribe_queue(topic, sqs.arn(url), {"RawMessageDelivery": "true"})
    sns.client.publish(TopicArn=topic, Message="to standard", MessageGroupId="g",
                       MessageDeduplicationId="d")
    assert receive_one(sqs.client, url)["Body"] == "to standard"


@requires_switchboard_sqs("moto's FIFO envelope has no SequenceNumber")
def test_fifo_envelope_has_a_sequence_number_and_no_signature(sns, sqs):
    topic = _fifo_topic(sns)
    url = _fifo_queue(sqs, sns, topic, raw=False)
    r = sns.client.publish(TopicArn=topic, Message="env", MessageGroupId="g",
                           MessageDeduplicationId="d", Subject="s")
    env = snsutil.envelope(receive_one(sqs.client, url))
    assert env["Type"] == "Notification"
    assert env["Message"] == "env" and env["Subject"] == "s"
    assert env["MessageId"] == r["MessageId"]
    assert env["SequenceNumber"] == r["SequenceNumber"]
    assert "Signature" not in env and "SigningCertURL" not in env


@requires_switchboard_sqs("moto leaves SequenceNumber out of PublishBatch's answer")
def test_publish_batch_fifo(sns, sqs):
    topic = _fifo_topic(sns)
    url = _fifo_queue(sqs, sns, topic)
    entries = [{"Id": f"e{i}", "Message": f"m{i}", "MessageGroupId": "g",
                "MessageDeduplicationId": f"d{i}"} for i in range(3)]
    r = sns.client.publish_batch(TopicArn=topic, PublishBatchRequestEntries=entries)
    assert [s["Id"] for s in r["Successful"]] == ["e0", "e1", "e2"]
    assert all(s["SequenceNumber"] for s in r["Successful"])
    assert r["Failed"] == []
    got = [m["Body"] for m in receive_n(sqs.client, url, 3, timeout=5)]
    assert got == ["m0", "m1", "m2"]
    code, msg = _err(sns.client.publish_batch, TopicArn=topic, PublishBatchRequestEntries=[
        {"Id": "a", "Message": "x", "MessageGroupId": "g", "MessageDeduplicationId": "x"},
        {"Id": "b", "Message": "y", "MessageDeduplicationId": "y"}])
    assert code == "InvalidParameter" and "MessageGroupId" in msg


def test_message_structure_json(sns, sqs):
    topic = sns.topic()
    url = sqs.queue(kind="snsjson")
    sns.subscribe_queue(topic, sqs.arn(url), {"RawMessageDelivery": "true"})
    for message, want in [
        ({"default": "for all", "sqs": "for sqs", "http": "for http"}, "for sqs"),
        ({"default": "for all", "email": "for email"}, "for all"),
    ]:
        sns.client.publish(TopicArn=topic, Message=json.dumps(message), MessageStructure="json")
        m = receive_one(sqs.client, url)
        assert m["Body"] == want
        sqs.client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


@requires_switchboard_sqs("moto takes a document without `default`, or no JSON at all")
def test_message_structure_json_is_checked(sns):
    topic = sns.topic()
    code, msg = _err(sns.client.publish, TopicArn=topic, Message=json.dumps({"sqs": "x"}),
                     MessageStructure="json")
    assert (code, msg) == ("InvalidParameter",
                           "Invalid parameter: Message Structure - No default entry in JSON "
                           "message body")
    code, msg = _err(sns.client.publish, TopicArn=topic, Message="not json",
                     MessageStructure="json")
    assert (code, msg) == ("InvalidParameter",
                           "Invalid parameter: Message Structure - JSON message body failed "
                           "to parse")


@requires_switchboard_sqs("moto fails ReceiveMessage (500) after it delivered the object")
def test_message_structure_ignores_keys_that_are_not_strings(sns, sqs):
    topic = sns.topic()
    url = sqs.queue(kind="snsjson")
    sns.subscribe_queue(topic, sqs.arn(url), {"RawMessageDelivery": "true"})
    sns.client.publish(TopicArn=topic, MessageStructure="json",
                       Message=json.dumps({"default": "for all", "sqs": {"not": "a string"}}))
    assert receive_one(sqs.client, url)["Body"] == "for all"


@requires_switchboard_sqs("moto takes a message over the limit once attributes are "
                          "counted")
def test_size_limit_counts_message_and_attributes(sns):
    topic = sns.topic()
    limit = 256 * 1024
    attrs = {"name": {"DataType": "String", "StringValue": "value"}}
    counted = len("name") + len("String") + len("value")
    sns.client.publish(TopicArn=topic, Message="x" * (limit - counted), MessageAttributes=attrs)
    code, msg = _err(sns.client.publish, TopicArn=topic, Message="x" * (limit - counted + 1),
                     MessageAttributes=attrs)
    assert (code, msg) == ("InvalidParameter", "Invalid parameter: Message too long")
    # MessageStructure=json counts the whole JSON document.
    big = json.dumps({"default": "d", "sqs": "x" * (limit - 20)})
    code, _ = _err(sns.client.publish, TopicArn=topic, Message=big, MessageStructure="json")
    assert code == "InvalidParameter"
    # PublishBatch counts all entries together.
    half = "x" * (limit // 2)
    code, msg = _err(sns.client.publish_batch, TopicArn=topic, PublishBatchRequestEntries=[
        {"Id": "a", "Message": half}, {"Id": "b", "Message": half + "x"}])
    assert (code, msg) == ("BatchRequestTooLong",
                           "The length of all the messages put together is more than the limit.")


@pytest.mark.skipif(sqsutil.aws_cli_command() is None,
                    reason="aws CLI not installed (pip install awscli)")
def test_cli_fifo_topic(sns, sqs):
    name = snsutil.tname("cli") + ".fifo"
    topic = sqsutil.aws_cli_json(sqs.ep, "sns", "create-topic", "--name", name, "--attributes",
                                 "FifoTopic=true")["TopicArn"]
    sns.topics.append(topic)
    url = _fifo_queue(sqs, sns, topic)
    out = sqsutil.aws_cli_json(sqs.ep, "sns", "publish", "--topic-arn", topic, "--message",
                               "from cli", "--message-group-id", "g",
                               "--message-deduplication-id", "d")
    assert out["MessageId"]
    if not sqsutil.is_sqs_external():  # moto answers without a SequenceNumber
        assert out["SequenceNumber"]
    assert receive_one(sqs.client, url)["Body"] == "from cli"
