"""Switchboard's own SQS contract, beyond AWS: an SQS queue is a core queue of vhost
``/`` shared with AMQP (headers <-> message attributes), and SQS state is durable
(queues, attributes, tags, messages, in-flight messages and deletions survive a
restart or a SIGKILL). These need the real broker; they skip against a reference
SQS server."""

from __future__ import annotations

import shutil
import time

import pika
import pytest

import sqsutil
from sqsutil import qname, receive_one, requires_switchboard_sqs

pytestmark = requires_switchboard_sqs("Switchboard-only: SQS queues shared with AMQP, "
                                      "durability across restarts")


# ---------------------------------------------------------------------------------
# AMQP <-> SQS


def test_amqp_publish_is_received_over_sqs_with_attributes(sqs, broker):
    name = qname("amqp-in")
    url = sqs.queue(name)
    conn = broker.connect()
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("", name, "from amqp \u00e9".encode("utf-8"), properties=pika.BasicProperties(
            headers={"color": "red", "n": 42, "raw": b"\x00\x01\xfe"}))
    finally:
        conn.close()
    m = receive_one(sqs.client, url, MessageAttributeNames=["All"])
    assert m["Body"] == "from amqp \u00e9"
    assert m["MessageAttributes"] == {
        "color": {"DataType": "String", "StringValue": "red"},
        "n": {"DataType": "Number", "StringValue": "42"},
        "raw": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xfe"},
    }
    sqsutil.check_md5s(m)
    sqs.client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def test_sqs_send_is_received_over_amqp_with_headers(sqs, broker):
    name = qname("amqp-out")
    url = sqs.queue(name)
    sqs.send(url, "from sqs", MessageAttributes={
        "color": {"DataType": "String", "StringValue": "red"},
        "n": {"DataType": "Number", "StringValue": "42"},
        "raw": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xfe"},
        "price": {"DataType": "Number.float", "StringValue": "1.50"},
    })
    conn = broker.connect()
    try:
        ch = conn.channel()
        deadline = time.monotonic() + 5
        method = None
        while method is None and time.monotonic() < deadline:
            method, props, body = ch.basic_get(name, auto_ack=True)
            if method is None:
                time.sleep(0.05)
        assert method is not None, "the SQS message never reached the AMQP consumer"
    finally:
        conn.close()
    assert body == b"from sqs"
    h = props.headers or {}
    assert h.get("color") in ("red", b"red"), h
    assert h.get("n") == 42 and isinstance(h.get("n"), int), h
    assert h.get("raw") == b"\x00\x01\xfe", h
    assert "price" in h, h


# ---------------------------------------------------------------------------------
# Durability


class Private:
    """A Switchboard of the test's own that can be restarted (or killed) on its data."""

    def __init__(self):
        from conftest import start_switchboard

        self._start = start_switchboard
        self.b = start_switchboard()
        self.data_dir = self.b.data_dir
        self._connect()

    def _connect(self) -> None:
        try:
            self.ep = sqsutil.endpoint_from_ports(self.b.ports)
        except BaseException:
            self.close()  # no SQS listener: do not leave the broker running
            raise
        self.client = sqsutil.client(self.ep)

    def restart(self, kill: bool) -> None:
        from conftest import _stop_process

        if kill:
            self.b.proc.kill()
            self.b.proc.wait(timeout=10)
        else:
            _stop_process(self.b.proc)
        self.b = self._start(data_dir=self.data_dir)
        self._connect()

    def url(self, url: str) -> str:
        """The same queue URL on the restarted broker's (new) port."""
        return f"{self.ep.url}/{url.split('/', 3)[3]}"

    def close(self) -> None:
        from conftest import _stop_process

        if self.b.proc is not None:
            _stop_process(self.b.proc)
        shutil.rmtree(self.data_dir, ignore_errors=True)


@pytest.fixture
def private():
    p = Private()
    yield p
    p.close()


def test_queue_its_url_attributes_and_messages_survive_a_restart(private):
    name = qname("durable")
    c = private.client
    url = c.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "17"},
                         tags={"team": "core"})["QueueUrl"]
    arn = sqsutil.queue_attrs(c, url, "QueueArn")["QueueArn"]
    c.send_message(QueueUrl=url, MessageBody="kept", MessageAttributes={
        "k": {"DataType": "String", "StringValue": "v"}})
    private.restart(kill=False)
    c = private.client
    new_url = c.get_queue_url(QueueName=name)["QueueUrl"]
    assert new_url == private.url(url)
    assert sqsutil.account_of(new_url) == sqsutil.SWITCHBOARD_ACCOUNT
    a = sqsutil.queue_attrs(c, new_url, "VisibilityTimeout", "QueueArn")
    assert a == {"VisibilityTimeout": "17", "QueueArn": arn}
    assert c.list_queue_tags(QueueUrl=new_url)["Tags"] == {"team": "core"}
    m = receive_one(c, new_url, MessageAttributeNames=["All"])
    assert m["Body"] == "kept"
    assert m["MessageAttributes"] == {"k": {"DataType": "String", "StringValue": "v"}}


def test_sigkill_keeps_deletes_and_returns_in_flight_messages(private):
    c = private.client
    url = c.create_queue(QueueName=qname("crash"))["QueueUrl"]
    c.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "23"})
    c.tag_queue(QueueUrl=url, Tags={"env": "crash-test"})
    for body in ("m1", "m2", "m3"):
        c.send_message(QueueUrl=url, MessageBody=body)
    in_flight = receive_one(c, url, VisibilityTimeout=2)  # received, not deleted
    deleted = receive_one(c, url, VisibilityTimeout=2)
    c.delete_message(QueueUrl=url, ReceiptHandle=deleted["ReceiptHandle"])
    waiting = ({"m1", "m2", "m3"} - {in_flight["Body"], deleted["Body"]}).pop()
    t_kill = time.monotonic()

    private.restart(kill=True)
    c = private.client
    url = private.url(url)
    assert sqsutil.queue_attrs(c, url, "VisibilityTimeout") == {"VisibilityTimeout": "23"}
    assert c.list_queue_tags(QueueUrl=url)["Tags"] == {"env": "crash-test"}
    back = sqsutil.receive_n(c, url, 2, timeout=2 + 6)
    assert sorted(m["Body"] for m in back) == sorted([in_flight["Body"], waiting]), back
    assert time.monotonic() - t_kill < 2 + 8
    assert sqsutil.stays_empty(c, url, window=0.5)  # the deleted one never comes back


def test_fair_queue_groups_keep_their_turns_after_a_crash(private):
    c = private.client
    url = c.create_queue(QueueName=qname("fair-crash"))["QueueUrl"]
    for start in range(0, 50, 10):
        c.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": f"noisy-{start + i}", "MessageGroupId": "noisy"}
            for i in range(10)])
    c.send_message(QueueUrl=url, MessageBody="quiet-0", MessageGroupId="quiet")
    c.send_message(QueueUrl=url, MessageBody="quiet-1", MessageGroupId="quiet")

    private.restart(kill=True)
    c = private.client
    url = private.url(url)
    first = sqsutil.receive_n(c, url, 10, MessageSystemAttributeNames=["MessageGroupId"])
    bodies = [m["Body"] for m in first]
    assert {"quiet-0", "quiet-1"} <= set(bodies), bodies
    assert {m["Attributes"]["MessageGroupId"] for m in first} == {"noisy", "quiet"}
