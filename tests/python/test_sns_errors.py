"""SNS errors as AWS answers them: NotFound (404) for an unknown topic,
InvalidParameter (400) for bad input and for protocols not delivered to yet, and the
XML error document itself."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

import snsutil
import sqsutil
from sqsutil import requires_switchboard_sqs

pytestmark = requires_switchboard_sqs("Switchboard's SNS wording and placeholders")


def _err(call, **kw):
    with pytest.raises(ClientError) as e:
        call(**kw)
    r = e.value.response
    return r["Error"]["Code"], r["Error"]["Message"], r["ResponseMetadata"]["HTTPStatusCode"]


def test_publish_to_an_unknown_topic_is_not_found(sns):
    arn = sns.topic().rsplit(":", 1)[0] + ":" + snsutil.tname("missing")
    assert _err(sns.client.publish, TopicArn=arn, Message="hi") == (
        "NotFound", "Topic does not exist", 404)


def test_bad_input_is_invalid_parameter(sns):
    topic = sns.topic()
    code, _, status = _err(sns.client.create_topic, Name="bad name!")
    assert (code, status) == ("InvalidParameter", 400)
    code, msg, _ = _err(sns.client.publish, TopicArn=topic, Message="")
    assert code == "InvalidParameter" and msg.startswith("Invalid parameter")
    code, _, _ = _err(sns.client.publish, TopicArn="not-an-arn", Message="x")
    assert code == "InvalidParameter"
    code, _, _ = _err(sns.client.publish, TopicArn=topic, Message="x" * (256 * 1024 + 1))
    assert code == "InvalidParameter"
    code, _, _ = _err(sns.client.subscribe, TopicArn=topic, Protocol="sqs",
                      Endpoint="arn:aws:sqs:us-east-1:000000000000:" + snsutil.tname("noq"))
    assert code == "InvalidParameter"
    # A `.fifo` name needs FifoTopic=true (test_sns_fifo.py has the FIFO topics).
    code, _, _ = _err(sns.client.create_topic, Name=snsutil.tname() + ".fifo")
    assert code == "InvalidParameter"


@pytest.mark.parametrize("protocol,endpoint", [
    ("sms", "+15555550100"),
    ("lambda", "arn:aws:lambda:us-east-1:000000000000:function:f"),
    ("application", "arn:aws:sns:us-east-1:000000000000:endpoint/GCM/app/0"),
    ("firehose", "arn:aws:firehose:us-east-1:000000000000:deliverystream/s"),
])
def test_other_protocols_are_refused(sns, protocol, endpoint):
    topic = sns.topic()
    code, msg, status = _err(sns.client.subscribe, TopicArn=topic, Protocol=protocol,
                             Endpoint=endpoint)
    assert (code, status) == ("InvalidParameter", 400)
    assert "protocol not supported" in msg


def test_https_endpoint_must_be_an_https_url(sns):
    topic = sns.topic()
    code, msg, status = _err(sns.client.subscribe, TopicArn=topic, Protocol="https",
                             Endpoint="http://example.com/")
    assert (code, status) == ("InvalidParameter", 400)
    assert "Endpoint" in msg


def test_http_endpoint_must_be_an_http_url(sns):
    topic = sns.topic()
    code, msg, _ = _err(sns.client.subscribe, TopicArn=topic, Protocol="http",
                        Endpoint="ftp://example.com/")
    assert code == "InvalidParameter"
    assert "Endpoint" in msg


def test_batch_limits(sns):
    topic = sns.topic()
    code, _, _ = _err(sns.client.publish_batch, TopicArn=topic, PublishBatchRequestEntries=[
        {"Id": f"e{i}", "Message": "m"} for i in range(11)])
    assert code == "TooManyEntriesInBatchRequest"
    code, _, _ = _err(sns.client.publish_batch, TopicArn=topic, PublishBatchRequestEntries=[
        {"Id": "same", "Message": "m"}, {"Id": "same", "Message": "m"}])
    assert code == "BatchEntryIdsNotDistinct"


def test_error_document_shape(sqs_ep):
    """Unsigned-looking but signed for `sns`: the reply is SNS's ErrorResponse."""
    r = sqsutil.raw_request(sqs_ep, "POST", "/", body=(
        b"Action=Publish&Version=2010-03-31&Message=hi&TopicArn="
        b"arn%3Aaws%3Asns%3Aus-east-1%3A000000000000%3Anope"),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        service="sns")
    assert r.status == 404
    body = r.body.decode()
    assert body.startswith(f'<ErrorResponse xmlns="{snsutil.XML_NS}"><Error><Type>Sender</Type>'
                           "<Code>NotFound</Code><Message>Topic does not exist</Message></Error>"
                           "<RequestId>")
