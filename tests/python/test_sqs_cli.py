"""The aws CLI (v1 from PyPI, which shares botocore with boto3) against the SQS
endpoint: ``aws --endpoint-url URL sqs ...`` with guest credentials in the environment
and no ``~/.aws`` of the developer's in play (``sqsutil.aws_cli``)."""

from __future__ import annotations

import json

import pytest

import sqsutil
from sqsutil import aws_cli, aws_cli_json, md5_hex, md5_of_message_attributes, qname

pytestmark = pytest.mark.skipif(sqsutil.aws_cli_command() is None,
                                reason="aws CLI not installed (pip install awscli)")


def test_cli_queue_lifecycle(sqs):
    name = qname("cli")
    out = aws_cli_json(sqs.ep, "sqs", "create-queue", "--queue-name", name,
                       "--attributes", "VisibilityTimeout=45,DelaySeconds=0")
    url = sqs.track(out["QueueUrl"])
    assert sqsutil.name_of(url) == name
    listed = aws_cli_json(sqs.ep, "sqs", "list-queues", "--queue-name-prefix", name)
    assert listed["QueueUrls"] == [url]
    attrs = aws_cli_json(sqs.ep, "sqs", "get-queue-attributes", "--queue-url", url,
                         "--attribute-names", "All")["Attributes"]
    assert attrs["VisibilityTimeout"] == "45"
    assert attrs["QueueArn"].endswith(":" + name)
    assert aws_cli_json(sqs.ep, "sqs", "delete-queue", "--queue-url", url) is None
    sqsutil.wait_for(lambda: not sqs.client.list_queues(QueueNamePrefix=name).get("QueueUrls"),
                     what="deletion")


def test_cli_send_receive_delete(sqs):
    url = sqs.queue(kind="cli")
    attrs = {"color": {"DataType": "String", "StringValue": "red"}}
    sent = aws_cli_json(sqs.ep, "sqs", "send-message", "--queue-url", url,
                        "--message-body", "hello from the cli",
                        "--message-attributes", json.dumps(attrs))
    assert sent["MD5OfMessageBody"] == md5_hex("hello from the cli")
    assert sent["MD5OfMessageAttributes"] == md5_of_message_attributes(attrs)
    got = aws_cli_json(sqs.ep, "sqs", "receive-message", "--queue-url", url,
                       "--wait-time-seconds", "2", "--attribute-names", "All",
                       "--message-attribute-names", "All")
    [m] = got["Messages"]
    assert m["Body"] == "hello from the cli"
    assert m["MessageId"] == sent["MessageId"]
    assert m["MD5OfBody"] == sent["MD5OfMessageBody"]
    assert m["MessageAttributes"] == attrs
    assert m["Attributes"]["ApproximateReceiveCount"] == "1"
    assert aws_cli_json(sqs.ep, "sqs", "delete-message", "--queue-url", url,
                        "--receipt-handle", m["ReceiptHandle"]) is None
    assert sqs.attrs(url, "ApproximateNumberOfMessagesNotVisible") == {
        "ApproximateNumberOfMessagesNotVisible": "0"}


def test_cli_reports_a_missing_queue(sqs):
    r = aws_cli(sqs.ep, "sqs", "get-queue-url", "--queue-name", qname("missing"))
    assert r.returncode != 0
    assert "AWS.SimpleQueueService.NonExistentQueue" in r.stderr, r.stderr
