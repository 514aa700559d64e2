"""SQS authentication: SigV4 signatures checked against the broker's users (access key
id = user name, secret = password), clock skew, unsigned requests, and the
``[sqs] auth = "none"`` setting.

The reference server (moto) accepts any signature, so nearly all of this is
Switchboard-only. Error codes are AWS's: a wrong secret gets SignatureDoesNotMatch
(403), an unknown key InvalidClientTokenId (403), no signature at all
MissingAuthenticationToken (403) (SQS API reference, Common Errors). A request
signed more than 15 minutes off is refused; AWS documents RequestExpired for that, but
what SQS actually answers (aws-sdk-go issue 487, aws-sdk-js issue 401) is
SignatureDoesNotMatch "Signature expired: ... is now earlier than ... (... - 15 min.)"
with HTTP 403, so both codes are accepted."""

from __future__ import annotations

import dataclasses
import datetime

import botocore
import botocore.auth
import botocore.config
import pytest

import sqsutil
from sqsutil import expect_error, qname, requires_switchboard_sqs

NO_AUTH = "moto does not verify signatures"


def _skewed(monkeypatch, minutes: float):
    real = botocore.auth.get_current_datetime
    monkeypatch.setattr(botocore.auth, "get_current_datetime",
                        lambda *a, **k: real(*a, **k) + datetime.timedelta(minutes=minutes))


def test_correct_credentials_work(sqs):
    url = sqs.queue()
    sqs.send(url, "signed")
    assert sqsutil.receive_one(sqs.client, url)["Body"] == "signed"


@requires_switchboard_sqs(NO_AUTH)
def test_wrong_secret_is_signature_does_not_match(sqs):
    bad = sqsutil.client(sqs.ep, secret_key="not-the-password")
    e = expect_error("SignatureDoesNotMatch", bad.list_queues, status=403)
    assert e.response["Error"].get("Type", "Sender") == "Sender"


@requires_switchboard_sqs(NO_AUTH)
def test_wrong_secret_cannot_send(sqs):
    url = sqs.queue()
    bad = sqsutil.client(sqs.ep, secret_key="not-the-password")
    expect_error("SignatureDoesNotMatch", bad.send_message, QueueUrl=url, MessageBody="x")
    assert sqsutil.stays_empty(sqs.client, url, window=0.2)


@requires_switchboard_sqs(NO_AUTH)
def test_unknown_access_key_is_invalid_client_token_id(sqs):
    bad = sqsutil.client(sqs.ep, access_key="nosuchuser", secret_key="whatever")
    expect_error("InvalidClientTokenId", bad.list_queues, status=403)


@requires_switchboard_sqs(NO_AUTH)
def test_unsigned_request_is_missing_authentication_token(sqs):
    anon = sqsutil.client(sqs.ep, signature_version=botocore.UNSIGNED)
    expect_error("MissingAuthenticationToken", anon.list_queues, status=403)


@requires_switchboard_sqs(NO_AUTH)
def test_unsigned_raw_request_is_refused(sqs):
    r = sqsutil.json_request(sqs.ep, "ListQueues", {}, sign_it=False)
    assert r.status == 403
    assert sqsutil.json_error_code(r) == "MissingAuthenticationToken", (r.headers, r.text)


@requires_switchboard_sqs(NO_AUTH)
@pytest.mark.parametrize("minutes", [-16, 16], ids=["16-min-late", "16-min-early"])
def test_request_signed_16_minutes_off_is_refused(sqs, monkeypatch, minutes):
    _skewed(monkeypatch, minutes)
    skewed = sqsutil.client(sqs.ep)
    e = expect_error(("SignatureDoesNotMatch", "RequestExpired"), skewed.list_queues)
    assert sqsutil.http_status(e) in (400, 403)


def test_request_signed_5_minutes_off_is_accepted(sqs, monkeypatch):
    _skewed(monkeypatch, -5)
    skewed = sqsutil.client(sqs.ep)
    skewed.list_queues(QueueNamePrefix="pytest-skew")


@requires_switchboard_sqs(NO_AUTH)
def test_raw_request_with_a_skewed_date_is_refused(sqs):
    when = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=16)
    r = sqsutil.json_request(sqs.ep, "ListQueues", {}, when=when)
    assert r.status in (400, 403)
    code = sqsutil.json_error_code(r)
    assert code in ("SignatureDoesNotMatch", "RequestExpired"), (r.headers, r.text)


@requires_switchboard_sqs(NO_AUTH)
def test_body_changed_after_signing_is_refused(sqs):
    """The signature covers the payload hash."""
    name = qname()
    signed_for = b'{"QueueName": "%s"}' % name.encode()
    sent = b'{"QueueName": "%s"}' % (name + "x").encode()
    headers = {"Content-Type": sqsutil.JSON_CONTENT_TYPE, "X-Amz-Target": "AmazonSQS.CreateQueue",
               "Host": sqs.ep.netloc}
    headers = sqsutil.sign(sqs.ep, "POST", sqs.ep.url + "/", signed_for, headers)
    r = sqsutil.raw_request(sqs.ep, "POST", "/", sent, headers, sign_it=False)
    assert r.status == 403, r.text
    assert sqsutil.json_error_code(r) == "SignatureDoesNotMatch", (r.headers, r.text)
    assert sqs.client.list_queues(QueueNamePrefix=name).get("QueueUrls", []) == []


@requires_switchboard_sqs(NO_AUTH)
def test_query_protocol_wrong_secret_error_xml(sqs):
    r = sqsutil.QueryClient(sqs.ep, secret_key="not-the-password").call("ListQueues")
    assert r.status == 403
    assert r.root_name == "ErrorResponse" and r.namespace == sqsutil.XML_NS, r.text
    assert r.error["Type"] == "Sender"
    assert r.error["Code"] == "SignatureDoesNotMatch"
    assert r.error["Message"]
    assert r.value("RequestId")


@requires_switchboard_sqs(NO_AUTH)
def test_query_protocol_unsigned_error_xml(sqs):
    r = sqsutil.QueryClient(sqs.ep).call("ListQueues", sign_it=False)
    assert r.status == 403
    assert r.error["Code"] == "MissingAuthenticationToken", r.text


# ---------------------------------------------------------------------------------
# Private brokers with their own configuration


@pytest.fixture
def private_broker(tmp_path):
    """Start a Switchboard with a config file; stop it at teardown."""
    from conftest import start_switchboard, stop_switchboard

    started = []

    def start(config: str):
        cfg = tmp_path / "switchboard.toml"
        cfg.write_text(config)
        b = start_switchboard(env={"SWITCHBOARD_CONFIG": str(cfg)})
        started.append(b)
        return b, sqsutil.endpoint_from_ports(b.ports)

    yield start
    for b in started:
        stop_switchboard(b)


@requires_switchboard_sqs("needs a private Switchboard with [sqs] auth = \"none\"")
def test_auth_none_accepts_unsigned_requests_and_any_keys(private_broker):
    _, ep = private_broker('[sqs]\nauth = "none"\n')
    anon = sqsutil.client(ep, signature_version=botocore.UNSIGNED)
    url = anon.create_queue(QueueName=qname())["QueueUrl"]
    anon.send_message(QueueUrl=url, MessageBody="anonymous")
    stranger = sqsutil.client(ep, access_key="nobody", secret_key="anything")
    assert sqsutil.receive_one(stranger, url)["Body"] == "anonymous"
    r = sqsutil.json_request(ep, "GetQueueUrl", {"QueueName": sqsutil.name_of(url)},
                             sign_it=False)
    assert r.status == 200 and r.json()["QueueUrl"] == url


@requires_switchboard_sqs("needs a private Switchboard with its own users")
def test_access_keys_are_the_configured_users(private_broker):
    _, ep = private_broker('[[users]]\nname = "app"\npassword = "s3cret"\n'
                           'loopback_only = false\n')
    app = sqsutil.client(ep, access_key="app", secret_key="s3cret")
    url = app.create_queue(QueueName=qname())["QueueUrl"]
    app.send_message(QueueUrl=url, MessageBody="as app")
    expect_error("SignatureDoesNotMatch",
                 sqsutil.client(ep, access_key="app", secret_key="wrong").list_queues)
    # guest is no longer a user once `users` is set
    expect_error("InvalidClientTokenId", sqsutil.client(ep).list_queues)


@requires_switchboard_sqs("needs a private Switchboard with [sqs] region set")
def test_unsigned_requests_act_in_the_configured_region(private_broker):
    _, ep = private_broker('[sqs]\nauth = "none"\nregion = "eu-central-1"\n')
    name = qname("unsigned-region")
    r = sqsutil.json_request(ep, "CreateQueue", {"QueueName": name}, sign_it=False)
    assert r.status == 200, r.text
    url = r.json()["QueueUrl"]
    assert url == f"{ep.url}/{sqsutil.SWITCHBOARD_ACCOUNT}/{name}"
    central = sqsutil.client(dataclasses.replace(ep, region="eu-central-1"))
    assert central.list_queues(QueueNamePrefix=name)["QueueUrls"] == [url]
    assert sqsutil.queue_attrs(central, url, "QueueArn")["QueueArn"] == (
        f"arn:aws:sqs:eu-central-1:{sqsutil.SWITCHBOARD_ACCOUNT}:{name}")
    # A client signing for us-east-1 has a queue of that name of its own.
    east = sqsutil.client(dataclasses.replace(ep, region="us-east-1"))
    assert "QueueUrls" not in east.list_queues(QueueNamePrefix=name)
    east_url = east.create_queue(QueueName=name)["QueueUrl"]
    assert east_url == f"{ep.url}/queue/us-east-1/{sqsutil.SWITCHBOARD_ACCOUNT}/{name}"
    east.send_message(QueueUrl=east_url, MessageBody="east")
    # Unsigned, the region a URL names is the region it acts in.
    r = sqsutil.json_request(ep, "ReceiveMessage", {"QueueUrl": east_url}, sign_it=False)
    assert [m["Body"] for m in r.json()["Messages"]] == ["east"]
    r = sqsutil.json_request(ep, "ReceiveMessage", {"QueueUrl": url}, sign_it=False)
    assert "Messages" not in r.json()
