"""SNS → HTTP endpoints: the confirmation handshake (SubscribeURL and
ConfirmSubscription), Notification POSTs with attributes and Subject, raw delivery,
signatures checked with ``cryptography`` against the certificate at SigningCertURL,
retries per DeliveryPolicy, the dead-letter queue after the retries, pending
deliveries across kill -9, and the UnsubscribeConfirmation.

The endpoint is an ``http.server`` of the test's own on a free loopback port
(``Receiver``). Against moto (``SWITCHBOARD_SQS_URL``), which confirms HTTP
subscriptions at once and sends no confirmation, the notification tests still run
(``confirmed`` steps over the handshake there); the rest are Switchboard's."""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, List, Optional

import pytest
from botocore.exceptions import ClientError

import snsutil
import sqsutil
from sqsutil import is_sqs_external, receive_one, requires_switchboard_sqs

NOTIFICATION_FIELDS = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
CONFIRMATION_FIELDS = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                       "TopicArn", "Type"]
# A retry policy short enough for a test: AWS's minimum delay is 1 s.
FAST = {"healthyRetryPolicy": {"minDelayTarget": 1, "maxDelayTarget": 1, "numRetries": 3,
                               "backoffFunction": "linear"}}


class Request:
    def __init__(self, headers: Dict[str, str], body: bytes, at: float):
        self.headers = headers
        self.body = body
        self.at = at
        self.status = 0

    @property
    def type(self) -> str:
        """The header AWS sends; moto sends none, so then the document's Type."""
        t = self.headers.get("x-amz-sns-message-type")
        if t is None:
            try:
                t = json.loads(self.body).get("Type", "")
            except (ValueError, AttributeError):
                t = ""
        return t

    def json(self) -> dict:
        return json.loads(self.body)


class TlsServer(ThreadingHTTPServer):
    """An https server: the handshake runs in the request's thread, so a client
    that gives up on the certificate does not hold up the accept loop."""

    def __init__(self, addr, handler, ctx: "ssl.SSLContext"):
        self.ctx = ctx
        self.handshake_errors: List[str] = []
        super().__init__(addr, handler)

    def finish_request(self, request, client_address):
        try:
            request = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.handshake_errors.append(str(e))
            return
        super().finish_request(request, client_address)


class Receiver:
    """An HTTP endpoint that records every POST. Notifications are answered with
    the statuses in ``statuses`` first (then ``status``); confirmations with 200.
    With ``tls`` (a server-side ``ssl.SSLContext``) it is an https endpoint."""

    def __init__(self, tls: "Optional[ssl.SSLContext]" = None):
        self.requests: List[Request] = []
        self.cond = threading.Condition()
        self.statuses: List[int] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                headers = {k.lower(): v for k, v in self.headers.items()}
                with outer.cond:
                    req = Request(headers, body, time.monotonic())
                    status = 200
                    if req.type == "Notification":
                        status = outer.statuses.pop(0) if outer.statuses else outer.status
                    req.status = status
                    outer.requests.append(req)
                    outer.cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        if tls is None:
            self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        else:
            self.server = TlsServer(("127.0.0.1", 0), Handler, tls)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}/sns-hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, pred: Callable[[Request], bool], timeout: float = 20.0,
             count: int = 1) -> List[Request]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [r for r in self.requests if pred(r)]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(r.type, r.body[:80]) for r in self.requests]
                    raise AssertionError(f"wanted {count} matching POSTs, got {len(got)}: {seen}")
                self.cond.wait(left)

    def of_type(self, t: str, timeout: float = 20.0, count: int = 1) -> List[Request]:
        return self.wait(lambda r: r.type == t, timeout, count)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def subscribe(sns_client, topic: str, url: str, **attributes) -> str:
    kw = {"TopicArn": topic, "Protocol": "http", "Endpoint": url, "ReturnSubscriptionArn": True}
    if attributes:
        kw["Attributes"] = {k: v if isinstance(v, str) else json.dumps(v)
                            for k, v in attributes.items()}
    return sns_client.subscribe(**kw)["SubscriptionArn"]


def confirmed(sns_client, topic: str, receiver: Receiver, **attributes) -> str:
    """An HTTP subscription, confirmed with ConfirmSubscription and the token the
    endpoint was sent (moto confirms at once and sends nothing)."""
    sub = subscribe(sns_client, topic, receiver.url, **attributes)
    if is_sqs_external():
        return sub
    [conf] = receiver.of_type("SubscriptionConfirmation")
    r = sns_client.confirm_subscription(TopicArn=topic, Token=conf.json()["Token"])
    assert r["SubscriptionArn"] == sub
    return sub


def verify(doc: dict) -> None:
    """Checks the signature as AWS documents it, with the certificate fetched
    from SigningCertURL."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    pem = urllib.request.urlopen(doc["SigningCertURL"], timeout=10).read()
    cert = x509.load_pem_x509_certificate(pem)
    fields = NOTIFICATION_FIELDS if doc["Type"] == "Notification" else CONFIRMATION_FIELDS
    text = "".join(f"{k}\n{doc[k]}\n" for k in fields if k in doc)
    digest = hashes.SHA1() if doc["SignatureVersion"] == "1" else hashes.SHA256()
    cert.public_key().verify(base64.b64decode(doc["Signature"]), text.encode(),
                             padding.PKCS1v15(), digest)


def sub_attrs(sns_client, sub: str) -> Dict[str, str]:
    return sns_client.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]


@requires_switchboard_sqs("moto confirms HTTP subscriptions at once and sends no "
                          "SubscriptionConfirmation")
def test_confirmation_post_and_subscribe_url(sns, receiver):
    topic = sns.topic()
    # Without ReturnSubscriptionArn a pending subscription has no ARN to show.
    r = sns.client.subscribe(TopicArn=topic, Protocol="http", Endpoint=receiver.url)
    assert r["SubscriptionArn"] == "pending confirmation"
    [conf] = receiver.of_type("SubscriptionConfirmation")
    h = conf.headers
    assert h["x-amz-sns-topic-arn"] == topic
    assert h["content-type"] == "text/plain; charset=UTF-8"
    assert h["user-agent"] == "Amazon Simple Notification Service Agent"
    doc = conf.json()
    assert h["x-amz-sns-message-id"] == doc["MessageId"]
    assert set(doc) == {"Type", "MessageId", "Token", "TopicArn", "Message", "SubscribeURL",
                        "Timestamp", "SignatureVersion", "Signature", "SigningCertURL"}
    assert doc["Type"] == "SubscriptionConfirmation" and doc["TopicArn"] == topic
    assert doc["SubscribeURL"].startswith(sns.ep.url + "/?Action=ConfirmSubscription&")
    verify(doc)
    [pending] = sns.client.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert pending["SubscriptionArn"] == "PendingConfirmation"
    a = sns.client.get_topic_attributes(TopicArn=topic)["Attributes"]
    assert (a["SubscriptionsPending"], a["SubscriptionsConfirmed"]) == ("1", "0")
    sns.client.publish(TopicArn=topic, Message="before confirming")
    # Visiting the SubscribeURL, unsigned, confirms (as a browser or curl would).
    with urllib.request.urlopen(doc["SubscribeURL"], timeout=10) as resp:
        xml = resp.read().decode()
    assert "<ConfirmSubscriptionResult><SubscriptionArn>" + topic + ":" in xml
    [s] = sns.client.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert s["SubscriptionArn"].startswith(topic + ":")
    a = sub_attrs(sns.client, s["SubscriptionArn"])
    assert a["PendingConfirmation"] == "false"
    assert a["ConfirmationWasAuthenticated"] == "false"
    a = sns.client.get_topic_attributes(TopicArn=topic)["Attributes"]
    assert (a["SubscriptionsPending"], a["SubscriptionsConfirmed"]) == ("0", "1")
    # Nothing published while pending is delivered.
    sns.client.publish(TopicArn=topic, Message="after")
    [n] = receiver.of_type("Notification")
    assert n.json()["Message"] == "after"
    time.sleep(0.5)
    assert len(receiver.of_type("Notification")) == 1


@requires_switchboard_sqs("moto confirms HTTP subscriptions at once")
def test_confirm_subscription_action_and_bad_tokens(sns, receiver):
    topic = sns.topic()
    sub = subscribe(sns.client, topic, receiver.url)
    assert sub_attrs(sns.client, sub)["PendingConfirmation"] == "true"
    [conf] = receiver.of_type("SubscriptionConfirmation")
    token = conf.json()["Token"]
    with pytest.raises(ClientError) as e:
        sns.client.confirm_subscription(TopicArn=topic, Token="0" * 64)
    assert e.value.response["Error"]["Code"] == "InvalidParameter"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as e:
        sns.client.confirm_subscription(TopicArn=topic + "-gone", Token=token)
    assert e.value.response["Error"]["Code"] == "NotFound"
    assert sns.client.confirm_subscription(TopicArn=topic, Token=token)["SubscriptionArn"] == sub
    # Confirming again answers the same subscription.
    assert sns.client.confirm_subscription(TopicArn=topic, Token=token)["SubscriptionArn"] == sub
    a = sub_attrs(sns.client, sub)
    assert a["PendingConfirmation"] == "false"
    assert a["ConfirmationWasAuthenticated"] == "true"
    policy = json.loads(a["EffectiveDeliveryPolicy"])
    assert policy["healthyRetryPolicy"]["numRetries"] == 3
    assert policy["healthyRetryPolicy"]["minDelayTarget"] == 20
    # Subscribing the same endpoint again answers the confirmed subscription.
    assert subscribe(sns.client, topic, receiver.url) == sub


@pytest.mark.parametrize("version", ["1", "2"])
def test_notification_with_subject_attributes_and_signature(sns, receiver, version):
    topic = sns.topic(Attributes={"SignatureVersion": version})
    sub = confirmed(sns.client, topic, receiver)
    mid = sns.client.publish(TopicArn=topic, Message="hello http", Subject="greeting",
                             MessageAttributes={
                                 "color": {"DataType": "String", "StringValue": "red"},
                                 "n": {"DataType": "Number", "StringValue": "7"}})["MessageId"]
    [n] = receiver.of_type("Notification")
    doc = n.json()
    assert doc["Type"] == "Notification"
    assert (doc["MessageId"], doc["TopicArn"]) == (mid, topic)
    assert (doc["Subject"], doc["Message"]) == ("greeting", "hello http")
    assert doc["Timestamp"].endswith("Z")
    assert "?Action=Unsubscribe&SubscriptionArn=" in doc["UnsubscribeURL"]
    assert n.headers["content-type"].startswith("text/plain")
    if not is_sqs_external():
        # moto leaves MessageAttributes out, sends only the content type, and always
        # signs with version 2 with a certificate that is not there to fetch; its
        # UnsubscribeURL names another subscription.
        assert doc["UnsubscribeURL"].endswith("SubscriptionArn=" + sub)
        assert doc["MessageAttributes"] == {"color": {"Type": "String", "Value": "red"},
                                            "n": {"Type": "Number", "Value": "7"}}
        assert n.headers["x-amz-sns-message-type"] == "Notification"
        assert n.headers["x-amz-sns-message-id"] == mid
        assert n.headers["x-amz-sns-topic-arn"] == topic
        assert n.headers["x-amz-sns-subscription-arn"] == sub
        assert n.headers["user-agent"] == "Amazon Simple Notification Service Agent"
        assert doc["SignatureVersion"] == version
        verify(doc)
        tampered = dict(doc, Message="changed")
        with pytest.raises(Exception):
            verify(tampered)


@requires_switchboard_sqs("moto POSTs the JSON document for raw subscriptions too")
def test_raw_delivery_posts_the_bare_message(sns, receiver):
    topic = sns.topic()
    confirmed(sns.client, topic, receiver, RawMessageDelivery="true")
    sns.client.publish(TopicArn=topic, Message="just this", Subject="ignored")
    [n] = receiver.of_type("Notification")
    assert n.body == b"just this"
    assert n.headers["x-amz-sns-rawdelivery"] == "true"


@requires_switchboard_sqs("moto does not retry HTTP deliveries")
def test_retries_follow_the_delivery_policy(sns, receiver):
    topic = sns.topic()
    receiver.statuses = [503, 503]
    sub = confirmed(sns.client, topic, receiver, DeliveryPolicy=FAST)
    assert json.loads(sub_attrs(sns.client, sub)["EffectiveDeliveryPolicy"])[
        "healthyRetryPolicy"]["minDelayTarget"] == 1
    mid = sns.client.publish(TopicArn=topic, Message="third time lucky")["MessageId"]
    tries = receiver.of_type("Notification", count=3, timeout=30)
    assert [t.json()["MessageId"] for t in tries] == [mid] * 3
    gaps = [b.at - a.at for a, b in zip(tries, tries[1:])]
    assert all(g >= 0.8 for g in gaps), gaps
    time.sleep(2)
    assert len(receiver.of_type("Notification")) == 3, "delivered, so not tried again"


@requires_switchboard_sqs("moto has no subscription RedrivePolicy for HTTP")
def test_dead_letter_queue_after_the_retries(sns, sqs, receiver):
    topic = sns.topic()
    dlq = sqs.queue(kind="sns-dlq")
    receiver.status = 500
    policy = {"healthyRetryPolicy": {"minDelayTarget": 1, "maxDelayTarget": 1,
                                     "numRetries": 1}}
    confirmed(sns.client, topic, receiver, DeliveryPolicy=policy,
              RedrivePolicy={"deadLetterTargetArn": sqs.arn(dlq)})
    mid = sns.client.publish(TopicArn=topic, Message="undeliverable")["MessageId"]
    receiver.of_type("Notification", count=2, timeout=30)
    m = receive_one(sqs.client, dlq, timeout=10)
    doc = json.loads(m["Body"])
    assert (doc["MessageId"], doc["Message"]) == (mid, "undeliverable")
    time.sleep(1.5)
    assert len(receiver.of_type("Notification")) == 2, "no attempt after the last retry"


@requires_switchboard_sqs("moto has no DeliveryPolicy checks")
def test_bad_delivery_policies_are_refused(sns, receiver):
    topic = sns.topic()
    for bad in ({"healthyRetryPolicy": {"minDelayTarget": 5, "maxDelayTarget": 1,
                                        "numRetries": 1}}, "not json"):
        with pytest.raises(ClientError) as e:
            subscribe(sns.client, topic, receiver.url, DeliveryPolicy=bad)
        assert e.value.response["Error"]["Code"] == "InvalidParameter"
    with pytest.raises(ClientError) as e:
        sns.client.set_topic_attributes(TopicArn=topic, AttributeName="SignatureVersion",
                                        AttributeValue="3")
    assert e.value.response["Error"]["Code"] == "InvalidParameter"


@requires_switchboard_sqs("moto sends no UnsubscribeConfirmation")
def test_unsubscribe_confirmation(sns, receiver):
    topic = sns.topic()
    sub = confirmed(sns.client, topic, receiver)
    sns.client.unsubscribe(SubscriptionArn=sub)
    [u] = receiver.of_type("UnsubscribeConfirmation")
    assert u.headers["x-amz-sns-subscription-arn"] == sub
    doc = u.json()
    assert doc["Type"] == "UnsubscribeConfirmation" and doc["TopicArn"] == topic
    assert sub in doc["Message"]
    verify(doc)
    sns.client.publish(TopicArn=topic, Message="nobody")
    time.sleep(1)
    assert not [r for r in receiver.requests if r.type == "Notification"]


@requires_switchboard_sqs("kills the broker")
def test_pending_deliveries_survive_sigkill(receiver):
    from test_sqs_switchboard import Private

    p = Private()
    try:
        c = snsutil.client(p.ep)
        topic = c.create_topic(Name=snsutil.tname("http-kill"))["TopicArn"]
        receiver.status = 503
        slow = {"healthyRetryPolicy": {"minDelayTarget": 2, "maxDelayTarget": 2,
                                       "numRetries": 20}}
        sub = confirmed(c, topic, receiver, DeliveryPolicy=slow)
        ids = [c.publish(TopicArn=topic, Message=f"m{i}")["MessageId"] for i in range(3)]
        receiver.of_type("Notification", count=3)
        p.restart(kill=True)
        receiver.status = 200
        c = snsutil.client(p.ep)
        assert sub_attrs(c, sub)["PendingConfirmation"] == "false"
        # A retry whose new time had not reached the disk at the kill comes back when
        # the delivery's first lease (30 s) ends.
        ok = receiver.wait(lambda r: r.type == "Notification" and r.status == 200, count=3,
                           timeout=45)
        assert {r.json()["MessageId"] for r in ok} == set(ids)
    finally:
        p.close()


@requires_switchboard_sqs("kills the broker")
def test_pending_confirmation_survives_sigkill(receiver):
    from test_sqs_switchboard import Private

    p = Private()
    try:
        c = snsutil.client(p.ep)
        topic = c.create_topic(Name=snsutil.tname("http-pending"))["TopicArn"]
        sub = subscribe(c, topic, receiver.url)
        [conf] = receiver.of_type("SubscriptionConfirmation")
        p.restart(kill=True)
        c = snsutil.client(p.ep)
        assert sub_attrs(c, sub)["PendingConfirmation"] == "true"
        assert c.confirm_subscription(TopicArn=topic,
                                      Token=conf.json()["Token"])["SubscriptionArn"] == sub
        c.publish(TopicArn=topic, Message="after restart")
        [n] = receiver.of_type("Notification")
        assert n.json()["Message"] == "after restart"
    finally:
        p.close()


@requires_switchboard_sqs("a topic as an AMQP exchange is Switchboard's own")
def test_an_amqp_publish_to_the_topic_reaches_an_http_subscriber_signed(sns, receiver, ch):
    import pika

    topic = sns.topic()
    name = topic.rsplit(":", 1)[1]
    sub = confirmed(sns.client, topic, receiver,
                    FilterPolicy=json.dumps({"colour": ["red"]}))
    for colour in ("blue", "red"):
        ch.basic_publish("amq.topic", f"sns.{name}", f"{colour} over amqp".encode(),
                         pika.BasicProperties(headers={"colour": colour}))
    [n] = receiver.of_type("Notification")
    doc = n.json()
    assert doc["Message"] == "red over amqp"
    assert doc["TopicArn"] == topic and doc["MessageId"]
    assert n.headers["x-amz-sns-message-id"] == doc["MessageId"]
    assert n.headers["x-amz-sns-subscription-arn"] == sub
    assert doc["MessageAttributes"]["colour"] == {"Type": "String", "Value": "red"}
    verify(doc)
    time.sleep(0.5)
    assert len(receiver.of_type("Notification")) == 1, "the filter let blue through"
