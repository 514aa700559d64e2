"""SQS as part of the broker (Switchboard only): per-user secret keys next to the
password, and the resource alarm answering publishers with a retryable 503 instead
of dropping anything."""

from __future__ import annotations

import dataclasses
import signal

import sqsutil
from sqsutil import expect_error, qname, requires_switchboard_sqs
from test_sqs_auth import private_broker  # noqa: F401  (fixture)

pytestmark = requires_switchboard_sqs("configures a private Switchboard")


def test_a_users_secret_key_and_password_both_sign(private_broker):  # noqa: F811
    _, ep = private_broker('[[users]]\nname = "app"\npassword = "pw"\n'
                           'secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"\n')
    by_key = sqsutil.client(ep, access_key="app",
                            secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    url = by_key.create_queue(QueueName=qname())["QueueUrl"]
    by_password = sqsutil.client(ep, access_key="app", secret_key="pw")
    by_password.send_message(QueueUrl=url, MessageBody="x")
    expect_error("SignatureDoesNotMatch",
                 sqsutil.client(ep, access_key="app", secret_key="neither").list_queues)


def test_disk_alarm_refuses_sends_with_503_until_cleared(private_broker, tmp_path):  # noqa: F811
    b, ep = private_broker("[limits]\ndisk_free_limit = 9000000000000000000\n")
    c = sqsutil.client(ep)  # one attempt per call: the 503 is not retried away
    url = c.create_queue(QueueName=qname())["QueueUrl"]
    e = expect_error("ServiceUnavailable", c.send_message, QueueUrl=url, MessageBody="held",
                     status=503)
    assert "disk" in e.response["Error"]["Message"].lower()
    # Receiving and deleting keep working during the alarm.
    assert sqsutil.receive(c, url) == []
    (tmp_path / "switchboard.toml").write_text("[limits]\ndisk_free_limit = 0\n")
    b.proc.send_signal(signal.SIGHUP)
    sqsutil.wait_for(lambda: _sends(c, url), timeout=10, what="the alarm to clear")
    assert sqsutil.receive_one(c, url)["Body"] == "after"


def _sends(c, url) -> bool:
    try:
        c.send_message(QueueUrl=url, MessageBody="after")
        return True
    except c.exceptions.ClientError:
        return False


def test_configured_account_region_and_base_url(private_broker):  # noqa: F811
    _, ep = private_broker('[sqs]\naccount_id = "123456789012"\nregion = "eu-west-1"\n'
                           'base_url = "http://sqs.example.test:4566"\n')
    # A client of the configured region: its queues keep the plain URL.
    c = sqsutil.client(dataclasses.replace(ep, region="eu-west-1"))
    name = qname()
    url = c.create_queue(QueueName=name)["QueueUrl"]
    assert url == f"http://sqs.example.test:4566/123456789012/{name}"
    arn = sqsutil.queue_attrs(c, url, "QueueArn")["QueueArn"]
    assert arn == f"arn:aws:sqs:eu-west-1:123456789012:{name}"
    # The URL names the queue; the request still goes to the real endpoint.
    c.send_message(QueueUrl=url, MessageBody="via configured url")
    assert sqsutil.receive_one(c, url)["Body"] == "via configured url"
