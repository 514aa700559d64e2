"""SNS beyond the API (Switchboard only): topics and subscriptions survive a kill -9,
and a topic is the exchange `sns.<name>` that any AMQP queue can bind to, receiving
what Publish sends with the attributes as headers."""

from __future__ import annotations

import json

import pytest

import snsutil
import sqsutil
from sqsutil import receive_one, requires_switchboard_sqs
from test_sqs_switchboard import Private

pytestmark = requires_switchboard_sqs("kills the broker / binds AMQP queues to the topic")


@pytest.fixture
def private():
    p = Private()
    yield p
    p.close()


def test_topics_and_subscriptions_survive_sigkill(private):
    sns = snsutil.client(private.ep)
    topic = sns.create_topic(Name=snsutil.tname("durable"),
                             Tags=[{"Key": "k", "Value": "v"}])["TopicArn"]
    sns.set_topic_attributes(TopicArn=topic, AttributeName="DisplayName", AttributeValue="kept")
    url = private.client.create_queue(QueueName=sqsutil.qname("sns-durable"))["QueueUrl"]
    qarn = sqsutil.queue_attrs(private.client, url, "QueueArn")["QueueArn"]
    sub = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn,
                        Attributes={"RawMessageDelivery": "true"},
                        ReturnSubscriptionArn=True)["SubscriptionArn"]
    # Accepted means durable: the message is there after the kill too.
    sns.publish(TopicArn=topic, Message="before")
    private.restart(kill=True)
    sns = snsutil.client(private.ep)
    url = private.url(url)
    assert topic in [t["TopicArn"] for t in sns.list_topics()["Topics"]]
    assert sns.get_topic_attributes(TopicArn=topic)["Attributes"]["DisplayName"] == "kept"
    assert sns.list_tags_for_resource(ResourceArn=topic)["Tags"] == [{"Key": "k", "Value": "v"}]
    a = sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]
    assert a["RawMessageDelivery"] == "true"
    assert receive_one(private.client, url)["Body"] == "before"
    sns.publish(TopicArn=topic, Message="after")
    assert receive_one(private.client, url)["Body"] == "after"


def test_amqp_queue_bound_to_the_topic_exchange(sns, broker):
    name = snsutil.tname("amqp")
    topic = sns.topic(name)
    conn = broker.connect()
    try:
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(q, f"sns.{name}")
        mid = sns.client.publish(TopicArn=topic, Message="to amqp", Subject="s",
                                 MessageAttributes={
                                     "color": {"DataType": "String", "StringValue": "red"},
                                     "n": {"DataType": "Number", "StringValue": "5"}})["MessageId"]
        got = None
        for _ in range(50):
            method, props, body = ch.basic_get(q, auto_ack=True)
            if method:
                got = (props, body)
                break
            conn.sleep(0.1)
        assert got, "nothing reached the AMQP queue"
        props, body = got
        assert body == b"to amqp"
        h = props.headers
        assert h["color"] in ("red", b"red")
        assert h["n"] == 5
        assert h["x-sns-message-id"] in (mid, mid.encode())
        assert h["x-sns-topic-arn"] in (topic, topic.encode())
        assert h["x-sns-subject"] in ("s", b"s")
        assert h["x-sns-timestamp"]
        assert props.delivery_mode == 2
    finally:
        conn.close()


def test_envelope_via_the_sqs_query_protocol(sns, sqs):
    """An old SDK on SQS's Query protocol gets the same envelope in its XML Body."""
    topic = sns.topic()
    url = sqs.queue(kind="sns-query")
    sns.subscribe_queue(topic, sqs.arn(url))
    sns.client.publish(TopicArn=topic, Message="via query")
    r = sqs.query.call("ReceiveMessage", {"QueueUrl": url, "WaitTimeSeconds": "2"})
    env = json.loads(r.value("Body"))
    assert env["Message"] == "via query"
    assert env["Type"] == "Notification"


@requires_switchboard_sqs("an SNS topic as a core exchange is Switchboard's own")
def test_a_stomp_subscriber_of_the_topic_exchange_gets_publish(sns, stomp_clients):
    """An SNS topic is the exchange sns.<name>: a STOMP client subscribed to
    /exchange/sns.<name> receives what Publish sends, attributes as headers."""
    topic = sns.topic()
    name = topic.rsplit(":", 1)[1]
    c = stomp_clients.connected()
    c.subscribe(f"/exchange/sns.{name}")
    sns.client.publish(TopicArn=topic, Message="to stomp", MessageAttributes={
        "colour": {"DataType": "String", "StringValue": "green"}})
    m = c.take(1)[0]
    assert m.body == "to stomp"
    assert m.headers["colour"] == "green"
    # RabbitMQ's form for a message with a routing key: Publish routes with
    # `sns.<name>`, the key MQTT and STOMP topic subscribers match on amq.topic.
    assert m.headers["destination"] == f"/exchange/sns.{name}/sns.{name}"
