"""What the admin API lists beyond RabbitMQ's objects: MQTT persistent sessions and
retained messages, SQS queues with their attributes, SNS topics and
subscriptions (`/api/mqtt/…`, `/api/sqs/queues`, `/api/sns/…`)."""

from __future__ import annotations

import time
import uuid

import pytest

import support
from test_admin_api import Api, admin_addr

pytestmark = support.requires_switchboard("Switchboard's own lists")


@pytest.fixture
def api(broker) -> Api:
    return Api(*admin_addr(broker))


def find(api: Api, path: str, key: str, value: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in api.get(path) if r.get(key) == value]
        if rows or time.monotonic() > deadline:
            assert rows, f"no {key}={value} in {path}"
            return rows[0]
        time.sleep(0.1)


def test_mqtt_sessions_and_retained_messages(api, mqtt_clients):
    cid = f"catalog-{uuid.uuid4().hex[:8]}"
    topic = f"pytest/{uuid.uuid4().hex[:8]}/status"
    c = mqtt_clients(4, cid=cid, clean=False)
    c.connect()
    c.subscribe(topic + "/#", qos=1)
    c.publish(topic, b"online", qos=1, retain=True)
    row = find(api, "/api/mqtt/sessions", "client_id", cid)
    assert {"filter": topic + "/#", "qos": 1} in row["subscriptions"]
    assert row["queue"].endswith(cid) and row["vhost"] == "/"
    retained = find(api, "/api/mqtt/retained", "topic", topic)
    assert retained["payload_bytes"] == 6 and retained["qos"] == 1
    # Cleared like any retained message: an empty one.
    c.publish(topic, b"", qos=1, retain=True)
    deadline = time.monotonic() + 5
    while any(r["topic"] == topic for r in api.get("/api/mqtt/retained")):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    c.close()


def test_sqs_queues_with_attributes(api, sqs):
    url = sqs.queue(VisibilityTimeout=42)
    name = url.rsplit("/", 1)[1]
    sqs.client.send_message(QueueUrl=url, MessageBody="x")
    row = find(api, "/api/sqs/queues", "name", name)
    assert row["attributes"]["VisibilityTimeout"] == "42"
    assert row["attributes"]["ApproximateNumberOfMessages"] == "1"
    assert row["attributes"]["QueueArn"].endswith(":" + name)
    page = api.get(f"/api/sqs/queues?page=1&page_size=10&name={name}&columns=name,region")
    assert page["items"] == [{"name": name, "region": row["region"]}]


def test_sns_topics_and_subscriptions(api, sns, sqs):
    arn = sns.topic()
    name = arn.rsplit(":", 1)[1]
    q = sqs.queue()
    qarn = sqs.client.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    sub = sns.client.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn,
                               Attributes={"RawMessageDelivery": "true"},
                               ReturnSubscriptionArn=True)["SubscriptionArn"]
    topic = find(api, "/api/sns/topics", "name", name)
    assert topic["topic_arn"] == arn and topic["exchange"] == "sns." + name
    assert topic["subscriptions_confirmed"] == 1
    s = find(api, "/api/sns/subscriptions", "subscription_arn", sub)
    assert (s["protocol"], s["endpoint"], s["pending_confirmation"]) == ("sqs", qarn, False)
    assert s["attributes"]["RawMessageDelivery"] == "true"


def test_unknown_lists_are_404(api):
    assert api.call("GET", "/api/mqtt/nothing")[0] == 404
    assert api.call("GET", "/api/nothing/sessions")[0] == 404
