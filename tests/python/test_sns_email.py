"""SNS → email and email-json through an SMTP relay (``sns.smtp_relay``): the
confirmation mail and its link, notifications as mail (subject, text, unsubscribe
link), the signed JSON document as an email-json body, the refusals, and a mail
pending across kill -9 while the relay is down.

The relay is ``smtpsink.SmtpSink``, a small SMTP server of the test's own; each
test starts a Switchboard of its own pointed at it. Switchboard only: moto sends no
mail (it confirms email subscriptions at once and keeps nothing to read back)."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from typing import Dict, Optional

import pytest
from botocore.exceptions import ClientError

import snsutil
from smtpsink import SmtpSink
from sqsutil import requires_switchboard_sqs
from test_sns_http import verify

pytestmark = requires_switchboard_sqs("moto sends no mail")

ADDRESS = "alice@example.com"
CONFIRM_SUBJECT = "AWS Notification - Subscription Confirmation"


def relay_env(sink: SmtpSink) -> Dict[str, str]:
    return {"SWITCHBOARD_SNS__SMTP_RELAY": sink.relay,
            "SWITCHBOARD_SNS__SMTP_FROM": "sns@switchboard.test"}


@pytest.fixture
def sink():
    s = SmtpSink()
    yield s
    s.close()


@pytest.fixture
def mailer(sink):
    m = snsutil.Private(relay_env(sink))
    yield m
    m.close()


def to(addr: str):
    return lambda m: addr in m.rcpt_to


def link(text: str, action: str) -> str:
    [url] = re.findall(r"http://\S+\?Action=" + action + r"\S*", text)
    return url


def subscribe(c, topic: str, protocol: str, addr: str, **attributes) -> str:
    kw = {"TopicArn": topic, "Protocol": protocol, "Endpoint": addr,
          "ReturnSubscriptionArn": True}
    if attributes:
        kw["Attributes"] = attributes
    return c.subscribe(**kw)["SubscriptionArn"]


def pending(c, sub: str) -> str:
    return c.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]["PendingConfirmation"]


def test_email_needs_a_configured_relay(sns):
    topic = sns.topic()
    for protocol in ("email", "email-json"):
        with pytest.raises(ClientError) as e:
            sns.client.subscribe(TopicArn=topic, Protocol=protocol, Endpoint=ADDRESS)
        err = e.value.response["Error"]
        assert err["Code"] == "InvalidParameter"
        assert "sns.smtp_relay" in err["Message"]


def test_confirmation_mail_link_then_notifications(mailer, sink):
    c = mailer.client
    topic = c.create_topic(Name=snsutil.tname("mail"),
                           Attributes={"DisplayName": "Team News"})["TopicArn"]
    r = c.subscribe(TopicArn=topic, Protocol="email", Endpoint=ADDRESS)
    assert r["SubscriptionArn"] == "pending confirmation"
    [conf] = sink.wait(to(ADDRESS))
    assert conf.mail_from == "sns@switchboard.test" and conf.rcpt_to == [ADDRESS]
    msg = conf.message
    assert msg["Subject"] == CONFIRM_SUBJECT
    assert msg["From"].addresses[0].display_name == "Team News"
    assert msg["From"].addresses[0].addr_spec == "sns@switchboard.test"
    assert msg["To"].addresses[0].addr_spec == ADDRESS
    assert msg["Date"] and msg["Message-ID"]
    text = conf.text
    assert topic in text
    url = link(text, "ConfirmSubscription")
    assert url.startswith(mailer.ep.url + "/")
    [s] = c.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert (s["SubscriptionArn"], s["Protocol"], s["Endpoint"]) == (
        "PendingConfirmation", "email", ADDRESS)
    c.publish(TopicArn=topic, Message="before confirming")

    # Following the link, as a mail reader would, confirms.
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert "<SubscriptionArn>" + topic + ":" in resp.read().decode()
    [s] = c.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    sub = s["SubscriptionArn"]
    assert pending(c, sub) == "false"

    # Non-ASCII text, a line that starts with a dot and a long line survive the trip.
    body = "Hello Alice — café at 10.\n.hidden dot line\n" + "x" * 2000
    mid = c.publish(TopicArn=topic, Message=body, Subject="Weekly update")["MessageId"]
    [n] = sink.wait(lambda m: m.subject == "Weekly update")
    assert mid in n.message["Message-ID"]
    text = n.text
    assert text.startswith(body + "\n")
    unsubscribe = link(text, "Unsubscribe")
    assert unsubscribe.endswith("SubscriptionArn=" + sub)
    # No Subject: the topic's DisplayName.
    c.publish(TopicArn=topic, Message="second")
    [n2] = sink.wait(lambda m: m.subject == "Team News")
    assert n2.text.startswith("second\n")
    assert not sink.errors
    assert not [m for m in sink.mails if "before confirming" in m.text]

    # The footer's link unsubscribes.
    urllib.request.urlopen(unsubscribe, timeout=10).read()
    assert c.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] == []
    count = len(sink.mails)
    c.publish(TopicArn=topic, Message="nobody")
    time.sleep(1)
    assert len(sink.mails) == count
    # The relay was spoken to as RFC 5321 says.
    verbs = [line.split(":")[0].split(" ")[0] for line in sink.lines]
    assert verbs[:6] == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT", "EHLO"]
    assert "MAIL FROM:<sns@switchboard.test>" in sink.lines


def test_email_json_mails_the_signed_documents(mailer, sink):
    c = mailer.client
    topic = c.create_topic(Name=snsutil.tname("mail-json"),
                           Attributes={"SignatureVersion": "2"})["TopicArn"]
    sub = subscribe(c, topic, "email-json", "bob@example.com")
    [conf] = sink.wait(to("bob@example.com"))
    assert conf.subject == CONFIRM_SUBJECT
    doc = json.loads(conf.text)
    assert doc["Type"] == "SubscriptionConfirmation" and doc["TopicArn"] == topic
    verify(doc)
    assert c.confirm_subscription(TopicArn=topic, Token=doc["Token"])["SubscriptionArn"] == sub
    mid = c.publish(TopicArn=topic, Message="hello json",
                    MessageAttributes={"k": {"DataType": "String",
                                             "StringValue": "v"}})["MessageId"]
    [n] = sink.wait(lambda m: m.subject == "AWS Notification Message")
    doc = json.loads(n.text)
    assert (doc["Type"], doc["MessageId"], doc["Message"]) == ("Notification", mid, "hello json")
    assert doc["MessageAttributes"] == {"k": {"Type": "String", "Value": "v"}}
    assert doc["UnsubscribeURL"].endswith("SubscriptionArn=" + sub)
    assert doc["SignatureVersion"] == "2"
    verify(doc)
    # Even a 200 kB message: quoted-printable keeps every line short.
    c.publish(TopicArn=topic, Message="y" * 200_000, Subject="big")
    [big] = sink.wait(lambda m: m.subject == "big")
    assert json.loads(big.text)["Message"] == "y" * 200_000
    # MessageStructure=json: the `email-json` text when there is one, else `default`.
    for per, want in (({"default": "dflt", "email-json": "for mail"}, "for mail"),
                      ({"default": "dflt", "sqs": "for queues"}, "dflt")):
        subject = "structured " + want
        c.publish(TopicArn=topic, Message=json.dumps(per), MessageStructure="json",
                  Subject=subject)
        [m] = sink.wait(lambda m, s=subject: m.subject == s)
        assert json.loads(m.text)["Message"] == want
    assert not sink.errors


def test_email_refusals(mailer):
    c = mailer.client
    topic = c.create_topic(Name=snsutil.tname("mail-bad"))["TopicArn"]
    for protocol, endpoint, attrs in [
        ("email", "not-an-address", {}),
        ("email", "a@example.com>\r\nRCPT TO:<b@example.com", {}),
        ("email-json", "http://example.com/", {}),
        ("email", ADDRESS, {"RawMessageDelivery": "true"}),
        ("email", ADDRESS, {"DeliveryPolicy": json.dumps(
            {"healthyRetryPolicy": {"minDelayTarget": 1, "maxDelayTarget": 1,
                                    "numRetries": 1}})}),
    ]:
        with pytest.raises(ClientError) as e:
            subscribe(c, topic, protocol, endpoint, **attrs)
        assert e.value.response["Error"]["Code"] == "InvalidParameter", (protocol, endpoint)
    # A filter policy is fine, and so is subscribing the same address twice.
    a = subscribe(c, topic, "email", ADDRESS, FilterPolicy='{"k": ["v"]}')
    assert subscribe(c, topic, "email", ADDRESS) == a
    with pytest.raises(ClientError) as e:
        c.set_subscription_attributes(SubscriptionArn=a, AttributeName="RawMessageDelivery",
                                      AttributeValue="true")
    assert e.value.response["Error"]["Code"] == "InvalidParameter"


def test_pending_mail_survives_sigkill(sink):
    m = snsutil.Private(relay_env(sink))
    back: Optional[SmtpSink] = None
    try:
        c = m.client
        topic = c.create_topic(Name=snsutil.tname("mail-kill"))["TopicArn"]
        sub = subscribe(c, topic, "email", ADDRESS)
        [conf] = sink.wait(to(ADDRESS))
        urllib.request.urlopen(link(conf.text, "ConfirmSubscription"), timeout=10).read()
        assert pending(c, sub) == "false"
        # The relay goes down; the first attempt fails and its retry (AWS's
        # schedule for mail: 10 s later) is journaled before the kill.
        sink.close()
        mid = c.publish(TopicArn=topic, Message="kept across the kill")["MessageId"]
        time.sleep(2)
        m.kill_and_restart()
        back = SmtpSink(sink.port)
        got = back.wait(lambda x: "kept across the kill" in x.text, timeout=45)
        assert mid in got[0].message["Message-ID"]
        assert pending(m.client, sub) == "false"
    finally:
        if back is not None:
            back.close()
        m.close()
