"""An SNS topic seen from every protocol (Switchboard only: no SNS has MQTT or STOMP
subscribers). A topic is also the routing key `sns.<name>` on `amq.topic`: MQTT
clients subscribe to `sns/<name>`, STOMP clients to `/topic/sns.<name>`, and both
receive what Publish sends, attributes as MQTT 5 user properties and STOMP headers;
what they publish there reaches the topic's SQS subscribers in the SNS envelope,
through the subscriptions' filter policies."""

from __future__ import annotations

import json
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
import pytest

import snsutil
import sqsutil
from sqsutil import receive_one, requires_switchboard_sqs, stays_empty

pytestmark = requires_switchboard_sqs("SNS topics as MQTT and STOMP topics are Switchboard's own")


def mqtt5(ep):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sns-" + uuid.uuid4().hex[:8],
                    protocol=mqtt.MQTTv5)
    c.username_pw_set("guest", "guest")
    c.connect(ep.host, ep.port)
    c.loop_start()
    return c


def test_an_mqtt_subscriber_of_sns_name_gets_publish_with_attributes(sns, mqtt):
    topic = sns.topic()
    name = topic.rsplit(":", 1)[1]
    got = []
    c = mqtt5(mqtt)
    c.on_message = lambda _c, _u, m: got.append(m)
    c.subscribe(f"sns/{name}", qos=1)
    time.sleep(0.3)
    mid = sns.client.publish(TopicArn=topic, Message="to mqtt", MessageAttributes={
        "colour": {"DataType": "String", "StringValue": "green"}})["MessageId"]
    t0 = time.monotonic()
    while not got and time.monotonic() - t0 < 5:
        time.sleep(0.05)
    c.disconnect()
    c.loop_stop()
    assert got, "the MQTT subscriber got nothing"
    m = got[0]
    assert m.payload == b"to mqtt"
    assert m.topic == f"sns/{name}"
    props = dict(getattr(m.properties, "UserProperty", []) or [])
    assert props.get("colour") == "green"
    assert props.get("x-sns-message-id") == mid


def test_a_stomp_subscriber_of_topic_sns_name_gets_publish(sns, stomp_clients):
    topic = sns.topic()
    name = topic.rsplit(":", 1)[1]
    c = stomp_clients.connected()
    c.subscribe(f"/topic/sns.{name}")
    sns.client.publish(TopicArn=topic, Message="to stomp topic", MessageAttributes={
        "colour": {"DataType": "String", "StringValue": "blue"}})
    m = c.take(1)[0]
    assert m.body == "to stomp topic"
    assert m.headers["colour"] == "blue"


def test_an_mqtt_publish_to_the_topic_reaches_sqs_subscribers_in_the_envelope(sns, sqs, mqtt):
    topic = sns.topic()
    name = topic.rsplit(":", 1)[1]
    everything = sqs.queue(kind="sns-all")
    only_red = sqs.queue(kind="sns-red")
    sns.subscribe_queue(topic, sqs.arn(everything))
    sns.subscribe_queue(topic, sqs.arn(only_red),
                        {"FilterPolicy": json.dumps({"colour": ["red"]})})
    c = mqtt5(mqtt)
    for colour in ("red", "blue"):
        p = Properties(PacketTypes.PUBLISH)
        p.UserProperty = [("colour", colour)]
        info = c.publish(f"sns/{name}", f"{colour} from mqtt", qos=1, properties=p)
        info.wait_for_publish(timeout=5)
    c.disconnect()
    c.loop_stop()
    got = sorted(snsutil.envelope(m)["Message"]
                 for m in sqsutil.receive_n(sqs.client, everything, 2, timeout=5))
    assert got == ["blue from mqtt", "red from mqtt"]
    env = snsutil.envelope(receive_one(sqs.client, only_red))
    assert env["Type"] == "Notification"
    assert env["TopicArn"] == topic
    assert env["Message"] == "red from mqtt"
    assert env["MessageAttributes"]["colour"]["Value"] == "red"
    assert env["Signature"] and env["MessageId"]
    assert stays_empty(sqs.client, only_red, window=0.5), "the filter let blue through"


def test_a_stomp_send_to_the_topic_reaches_a_raw_sqs_subscriber(sns, sqs, stomp_clients):
    topic = sns.topic()
    name = topic.rsplit(":", 1)[1]
    url = sqs.queue(kind="sns-raw")
    sns.subscribe_queue(topic, sqs.arn(url), {"RawMessageDelivery": "true"})
    c = stomp_clients.connected()
    c.send(f"/topic/sns.{name}", "from stomp")
    assert receive_one(sqs.client, url)["Body"] == "from stomp"


@requires_switchboard_sqs("restarts a private broker")
def test_a_topic_missing_its_amq_topic_bindings_gets_them_back_at_start():
    """Topics made by an older version had no amq.topic bindings; a start binds
    every topic again, so MQTT and STOMP reach it."""
    import pika

    from conftest import start_switchboard, stop_switchboard

    b = start_switchboard()
    data = b.data_dir
    try:
        ep = sqsutil.endpoint_from_ports(b.ports)
        arn = snsutil.client(ep).create_topic(Name="old-topic")["TopicArn"]
        conn = b.connect()
        ch = conn.channel()
        # What an old version left: the topic's exchange without its bindings.
        ch.exchange_unbind("sns.old-topic", "amq.topic", routing_key="sns.old-topic")
        ch.exchange_unbind("amq.topic", "sns.old-topic", routing_key="")
        conn.close()
        from test_admin_api import Api
        api = Api(*b.ports["admin"])
        assert api.get("/api/exchanges/%2F/sns.old-topic/bindings/destination") == []
        assert api.get("/api/exchanges/%2F/sns.old-topic/bindings/source") == []
    finally:
        # Killed, not stopped: stopping removes the data directory.
        b.proc.kill()
        b.proc.wait()
    b = start_switchboard(data_dir=data)
    try:
        ep = sqsutil.endpoint_from_ports(b.ports)
        sqs = sqsutil.client(ep)
        url = sqs.create_queue(QueueName="old-topic-sub")["QueueUrl"]
        qarn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        snsutil.client(ep).subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn,
                                     Attributes={"RawMessageDelivery": "true"})
        conn = b.connect()
        conn.channel().basic_publish("amq.topic", "sns.old-topic", b"via amq.topic")
        conn.close()
        assert receive_one(sqs, url)["Body"] == "via amq.topic"
    finally:
        stop_switchboard(b)
