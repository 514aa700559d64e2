"""The aws CLI against SNS on the SQS listener: create-topic, subscribe an SQS
queue, publish, and the message arrives over sqs receive-message."""

from __future__ import annotations

import json

import pytest

import snsutil
import sqsutil
from sqsutil import aws_cli_json

pytestmark = pytest.mark.skipif(sqsutil.aws_cli_command() is None,
                                reason="aws CLI not installed (pip install awscli)")


def test_cli_create_topic_subscribe_publish(sns, sqs):
    name = snsutil.tname("cli")
    topic = aws_cli_json(sqs.ep, "sns", "create-topic", "--name", name)["TopicArn"]
    sns.topics.append(topic)
    assert topic.endswith(":" + name)
    url = sqs.queue(kind="sns-cli")
    sub = aws_cli_json(sqs.ep, "sns", "subscribe", "--topic-arn", topic, "--protocol", "sqs",
                       "--notification-endpoint", sqs.arn(url))["SubscriptionArn"]
    assert sub.startswith(topic + ":")
    out = aws_cli_json(sqs.ep, "sns", "publish", "--topic-arn", topic, "--message", "from cli")
    assert out["MessageId"]
    got = aws_cli_json(sqs.ep, "sqs", "receive-message", "--queue-url", url,
                       "--wait-time-seconds", "2")
    [m] = got["Messages"]
    env = json.loads(m["Body"])
    assert env["Message"] == "from cli"
    assert env["MessageId"] == out["MessageId"]
