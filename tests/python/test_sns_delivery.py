"""SNS → SQS delivery: the notification envelope, raw delivery with attributes,
fan-out to two queues, Unsubscribe, PublishBatch, subscription attributes and the
filter policies evaluated by the core's binding filter."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from botocore.exceptions import ClientError

import sqsutil
from snsutil import ENVELOPE_KEYS, envelope
from sqsutil import receive_one, requires_switchboard_sqs

pytestmark = requires_switchboard_sqs("SNS runs on Switchboard's SQS listener")


def _queue(sqs, kind="sns"):
    url = sqs.queue(kind=kind)
    return url, sqs.arn(url)


def test_envelope_delivered_to_a_subscribed_queue(sns, sqs):
    topic = sns.topic()
    url, qarn = _queue(sqs)
    sub = sns.subscribe_queue(topic, qarn)
    assert sub.startswith(topic + ":")
    attrs = {"k": {"DataType": "String", "StringValue": "v"},
             "n": {"DataType": "Number", "StringValue": "42"},
             "b": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
             "a": {"DataType": "String.Array", "StringValue": '["x", 1]'}}
    mid = sns.client.publish(TopicArn=topic, Message="hi", Subject="subj",
                             MessageAttributes=attrs)["MessageId"]
    m = receive_one(sqs.client, url, MessageAttributeNames=["All"])
    env = envelope(m)
    assert set(ENVELOPE_KEYS) <= set(env), env.keys()
    assert list(env) == sorted(env)
    assert env["Type"] == "Notification"
    assert env["Message"] == "hi"
    assert env["Subject"] == "subj"
    assert env["MessageId"] == mid
    assert env["TopicArn"] == topic
    assert env["SignatureVersion"] == "1"
    assert env["Signature"]
    assert env["Timestamp"].endswith("Z") and len(env["Timestamp"]) == 24
    assert env["UnsubscribeURL"].endswith("/?Action=Unsubscribe&SubscriptionArn=" + sub)
    assert env["MessageAttributes"] == {
        "k": {"Type": "String", "Value": "v"},
        "n": {"Type": "Number", "Value": "42"},
        "b": {"Type": "Binary", "Value": base64.b64encode(b"\x00\x01").decode()},
        "a": {"Type": "String.Array", "Value": '["x", 1]'},
    }
    assert m["MD5OfBody"] == hashlib.md5(m["Body"].encode()).hexdigest()
    assert "MessageAttributes" not in m


def test_raw_delivery_keeps_body_and_attributes(sns, sqs):
    topic = sns.topic()
    url, qarn = _queue(sqs)
    sns.subscribe_queue(topic, qarn, {"RawMessageDelivery": "true"})
    sns.client.publish(TopicArn=topic, Message="raw body",
                       MessageAttributes={"color": {"DataType": "String", "StringValue": "red"},
                                          "n": {"DataType": "Number", "StringValue": "7"}})
    m = receive_one(sqs.client, url, MessageAttributeNames=["All"])
    assert m["Body"] == "raw body"
    assert m["MessageAttributes"] == {
        "color": {"DataType": "String", "StringValue": "red"},
        "n": {"DataType": "Number", "StringValue": "7"}}
    sqsutil.check_md5s(m)


def test_fan_out_to_two_queues(sns, sqs):
    topic = sns.topic()
    (u1, a1), (u2, a2) = _queue(sqs), _queue(sqs)
    sns.subscribe_queue(topic, a1)
    sns.subscribe_queue(topic, a2, {"RawMessageDelivery": "true"})
    sns.client.publish(TopicArn=topic, Message="both")
    assert envelope(receive_one(sqs.client, u1))["Message"] == "both"
    assert receive_one(sqs.client, u2)["Body"] == "both"
    subs = sns.client.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert sorted(s["Endpoint"] for s in subs) == sorted([a1, a2])
    assert all(s["Protocol"] == "sqs" and s["TopicArn"] == topic for s in subs)
    everything = [s["SubscriptionArn"] for s in sns.client.list_subscriptions()["Subscriptions"]]
    assert {s["SubscriptionArn"] for s in subs} <= set(everything)
    a = sns.client.get_topic_attributes(TopicArn=topic)["Attributes"]
    assert a["SubscriptionsConfirmed"] == "2"


def test_unsubscribe_stops_delivery(sns, sqs):
    topic = sns.topic()
    url, qarn = _queue(sqs)
    sub = sns.subscribe_queue(topic, qarn)
    # Subscribing again answers the same subscription.
    assert sns.subscribe_queue(topic, qarn) == sub
    sns.client.unsubscribe(SubscriptionArn=sub)
    sns.client.publish(TopicArn=topic, Message="nobody")
    assert sqsutil.stays_empty(sqs.client, url, window=1.0)
    assert sns.client.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] == []


def test_subscription_attributes(sns, sqs):
    topic = sns.topic()
    url, qarn = _queue(sqs)
    sub = sns.subscribe_queue(topic, qarn)
    a = sns.client.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]
    assert a["RawMessageDelivery"] == "false"
    assert a["Endpoint"] == qarn and a["TopicArn"] == topic and a["Protocol"] == "sqs"
    assert a["PendingConfirmation"] == "false"
    sns.client.set_subscription_attributes(SubscriptionArn=sub, AttributeName="RawMessageDelivery",
                                           AttributeValue="true")
    policy = json.dumps({"color": ["red"]})
    sns.client.set_subscription_attributes(SubscriptionArn=sub, AttributeName="FilterPolicy",
                                           AttributeValue=policy)
    a = sns.client.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]
    assert a["RawMessageDelivery"] == "true"
    assert json.loads(a["FilterPolicy"]) == {"color": ["red"]}
    assert a["FilterPolicyScope"] == "MessageAttributes"
    sns.client.publish(TopicArn=topic, Message="raw now",
                       MessageAttributes={"color": {"DataType": "String", "StringValue": "red"}})
    assert receive_one(sqs.client, url)["Body"] == "raw now"


def test_publish_batch_with_a_failed_entry(sns, sqs):
    topic = sns.topic()
    url, qarn = _queue(sqs)
    sns.subscribe_queue(topic, qarn, {"RawMessageDelivery": "true"})
    r = sns.client.publish_batch(TopicArn=topic, PublishBatchRequestEntries=[
        {"Id": "ok1", "Message": "one"},
        {"Id": "bad", "Message": "x", "Subject": ""},
        {"Id": "ok2", "Message": "two"},
    ])
    assert sorted(s["Id"] for s in r["Successful"]) == ["ok1", "ok2"]
    [f] = r["Failed"]
    assert f["Id"] == "bad" and f["SenderFault"] is True
    assert f["Code"] == "InvalidParameter"
    got = sorted(m["Body"] for m in sqsutil.receive_n(sqs.client, url, 2, timeout=5))
    assert got == ["one", "two"]
    # Too long counts the whole batch and fails it whole (AWS: BatchRequestTooLong).
    with pytest.raises(ClientError) as e:
        sns.client.publish_batch(TopicArn=topic, PublishBatchRequestEntries=[
            {"Id": "ok", "Message": "one"}, {"Id": "big", "Message": "x" * (256 * 1024)}])
    assert e.value.response["Error"]["Code"] == "BatchRequestTooLong"


def test_filter_policy_picks_the_queue(sns, sqs):
    topic = sns.topic()
    (u_all, a_all), (u_red, a_red) = _queue(sqs), _queue(sqs)
    sns.subscribe_queue(topic, a_all, {"RawMessageDelivery": "true"})
    sns.subscribe_queue(topic, a_red, {"RawMessageDelivery": "true",
                                       "FilterPolicy": json.dumps({"color": ["red"]})})
    for color in ("red", "blue"):
        sns.client.publish(TopicArn=topic, Message=color, MessageAttributes={
            "color": {"DataType": "String", "StringValue": color}})
    got_all = sorted(m["Body"] for m in sqsutil.receive_n(sqs.client, u_all, 2, timeout=5))
    assert got_all == ["blue", "red"]
    assert receive_one(sqs.client, u_red)["Body"] == "red"
    assert sqsutil.stays_empty(sqs.client, u_red, window=1.0)


def test_bad_filter_policy_is_refused(sns, sqs):
    from botocore.exceptions import ClientError

    topic = sns.topic()
    _, qarn = _queue(sqs)
    with pytest.raises(ClientError) as e:
        sns.subscribe_queue(topic, qarn, {"FilterPolicy": json.dumps({"color": "red"})})
    assert e.value.response["Error"]["Code"] == "InvalidParameter"
    assert e.value.response["Error"]["Message"].startswith("Invalid parameter: FilterPolicy: ")


def test_filter_policy_on_the_message_body(sns, sqs):
    """FilterPolicyScope MessageBody: the policy reads the JSON body's (nested) keys,
    with numeric ranges and prefixes, as AWS documents."""
    topic = sns.topic()
    url, arn = _queue(sqs)
    policy = {"order": {"total": [{"numeric": [">", 100]}], "sku": [{"prefix": "bk-"}]}}
    sns.subscribe_queue(topic, arn, {"RawMessageDelivery": "true",
                                     "FilterPolicyScope": "MessageBody",
                                     "FilterPolicy": json.dumps(policy)})
    bodies = [{"order": {"total": 250, "sku": "bk-1"}},
              {"order": {"total": 50, "sku": "bk-2"}},
              {"order": {"total": 300, "sku": "tv-3"}},
              "not json at all"]
    for b in bodies:
        sns.client.publish(TopicArn=topic, Message=b if isinstance(b, str) else json.dumps(b))
    got = receive_one(sqs.client, url)
    assert json.loads(got["Body"]) == bodies[0]
    assert sqsutil.stays_empty(sqs.client, url, window=1.0)
