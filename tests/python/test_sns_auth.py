"""SNS on the shared port with ``[sqs] auth = "none"``: unsigned requests are SNS
when their form says `Version=2010-03-31` (or names an SNS action); signed ones by
their SigV4 service. A wrong signature for `sns` is refused in SNS's error shape."""

from __future__ import annotations

import botocore
import pytest
from botocore.exceptions import ClientError

import snsutil
import sqsutil
from sqsutil import requires_switchboard_sqs
from test_sqs_auth import private_broker  # noqa: F401  (fixture)

pytestmark = requires_switchboard_sqs("needs private Switchboards with their own config")


def test_unsigned_sns_requests_with_auth_none(private_broker):  # noqa: F811
    _, ep = private_broker('[sqs]\nauth = "none"\n')
    anon = snsutil.client(ep, signature_version=botocore.UNSIGNED)
    topic = anon.create_topic(Name=snsutil.tname("anon"))["TopicArn"]
    assert anon.publish(TopicArn=topic, Message="x")["MessageId"]
    r = sqsutil.raw_request(ep, "GET", "/?Action=ListTopics", sign_it=False)
    assert r.status == 200 and topic in r.text
    assert r.text.startswith(f'<ListTopicsResponse xmlns="{snsutil.XML_NS}">')


def test_bad_signature_is_an_sns_error(sqs_ep):
    bad = snsutil.client(sqsutil.Endpoint(url=sqs_ep.url, secret_key="wrong"))
    with pytest.raises(ClientError) as e:
        bad.list_topics()
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
