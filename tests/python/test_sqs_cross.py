"""SQS with the other protocols on one queue (Switchboard only): MQTT publishes reach
an SQS queue bound to amq.topic, STOMP SENDs to /queue/<sqs queue> are received over
SQS and SQS sends are consumed over STOMP, attributes ⇄ user properties and headers
included."""

from __future__ import annotations

import time

import paho.mqtt.client as paho
import stomp
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import sqsutil
from sqsutil import qname, receive_one, requires_switchboard_sqs

pytestmark = requires_switchboard_sqs("SQS queues are core queues only in Switchboard")


def test_mqtt_publish_reaches_an_sqs_queue_bound_to_amq_topic(sqs, broker):
    name = qname("mqtt-in")
    url = sqs.queue(name)
    conn = broker.connect()
    try:
        conn.channel().queue_bind(name, "amq.topic", routing_key="sensors.*.temp")
    finally:
        conn.close()
    host, port = broker.ports["mqtt"]
    c = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    c.username_pw_set("guest", "guest")
    c.connect(host, port)
    c.loop_start()
    try:
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("unit", "C")]
        c.publish("sensors/r1/temp", b"21.5", qos=1, properties=props).wait_for_publish(5)
    finally:
        c.loop_stop()
        c.disconnect()
    m = receive_one(sqs.client, url, MessageAttributeNames=["All"])
    assert m["Body"] == "21.5"
    assert m["MessageAttributes"]["unit"] == {"DataType": "String", "StringValue": "C"}
    sqsutil.check_md5s(m)


def _stomp(broker) -> stomp.Connection12:
    host, port = broker.ports["stomp"]
    c = stomp.Connection12([(host, port)])
    c.connect("guest", "guest", wait=True)
    return c


def test_stomp_send_to_an_sqs_queue_is_received_over_sqs(sqs, broker):
    name = qname("stomp-in")
    url = sqs.queue(name)
    c = _stomp(broker)
    try:
        c.send(f"/queue/{name}", "from stomp", headers={"color": "red", "persistent": "true"},
               receipt="r1")
        time.sleep(0.2)
    finally:
        c.disconnect()
    m = receive_one(sqs.client, url, MessageAttributeNames=["color"])
    assert m["Body"] == "from stomp"
    assert m["MessageAttributes"] == {"color": {"DataType": "String", "StringValue": "red"}}


def test_sqs_send_is_consumed_over_stomp(sqs, broker):
    name = qname("stomp-out")
    url = sqs.queue(name, VisibilityTimeout="5")
    sqs.send(url, "from sqs", MessageAttributes={
        "color": {"DataType": "String", "StringValue": "blue"}})
    got = []

    class Listener(stomp.ConnectionListener):
        def on_message(self, frame):
            got.append(frame)

    c = _stomp(broker)
    try:
        c.set_listener("", Listener())
        c.subscribe(f"/queue/{name}", id="1", ack="client-individual")
        sqsutil.wait_for(lambda: got, timeout=5, what="the MESSAGE frame")
        f = got[0]
        assert f.body == "from sqs"
        assert f.headers["color"] == "blue"
        c.ack(f.headers["ack"])
        time.sleep(0.2)
    finally:
        c.disconnect()
    assert sqsutil.queue_attrs(sqs.client, url, "ApproximateNumberOfMessages",
                               "ApproximateNumberOfMessagesNotVisible") == {
        "ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
