"""SNS → https endpoints: the confirmation and notifications over TLS to a local
endpoint whose certificate comes from a CA the test makes (with ``cryptography``)
and hands the broker in ``sns.https_ca_file``; an endpoint with a certificate no
trusted CA issued gets nothing; ``sns.https_insecure`` delivers to it anyway.

Switchboard only: these start brokers of their own with those settings."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
import time
from pathlib import Path
from typing import Tuple

import pytest

import snsutil
from sqsutil import requires_switchboard_sqs
from test_sns_http import Receiver, verify

pytestmark = requires_switchboard_sqs("starts brokers of its own with TLS settings")


def _name(cn: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca_and_server(tmp: Path, tag: str) -> Tuple[Path, ssl.SSLContext]:
    """A CA (its PEM written to ``tmp``) and a server context whose certificate
    it issued for 127.0.0.1 and localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = datetime.datetime.now(datetime.timezone.utc)
    span = (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=1))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder()
          .subject_name(_name(f"test CA {tag}")).issuer_name(_name(f"test CA {tag}"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(span[0]).not_valid_after(span[1])
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(_name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(span[0]).not_valid_after(span[1])
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    ca_file = tmp / f"ca-{tag}.pem"
    ca_file.write_bytes(ca.public_bytes(pem))
    chain = tmp / f"server-{tag}.pem"
    chain.write_bytes(leaf.public_bytes(pem))
    key_file = tmp / f"server-{tag}.key"
    key_file.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(chain, key_file)
    return ca_file, ctx


@pytest.fixture(scope="module")
def certs():
    with tempfile.TemporaryDirectory(prefix="sns-https-") as d:
        trusted = make_ca_and_server(Path(d), "trusted")
        untrusted = make_ca_and_server(Path(d), "untrusted")
        yield trusted, untrusted


def subscribe(c, topic: str, url: str) -> str:
    return c.subscribe(TopicArn=topic, Protocol="https", Endpoint=url,
                       ReturnSubscriptionArn=True)["SubscriptionArn"]


def test_https_delivery_verifies_the_endpoint(certs):
    (ca_file, ctx), (_, other_ctx) = certs
    good, bad = Receiver(tls=ctx), Receiver(tls=other_ctx)
    m = snsutil.Private({"SWITCHBOARD_SNS__HTTPS_CA_FILE": str(ca_file)})
    try:
        c = m.client
        topic = c.create_topic(Name=snsutil.tname("https"))["TopicArn"]
        # An http URL is not an https endpoint.
        with pytest.raises(Exception):
            subscribe(c, topic, good.url.replace("https:", "http:"))
        sub = subscribe(c, topic, good.url)
        [conf] = good.of_type("SubscriptionConfirmation", timeout=30)
        verify(conf.json())
        assert c.confirm_subscription(TopicArn=topic,
                                      Token=conf.json()["Token"])["SubscriptionArn"] == sub
        a = c.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]
        assert (a["Protocol"], a["PendingConfirmation"]) == ("https", "false")
        assert "EffectiveDeliveryPolicy" in a
        mid = c.publish(TopicArn=topic, Message="over tls", Subject="s")["MessageId"]
        [n] = good.of_type("Notification")
        doc = n.json()
        assert (doc["MessageId"], doc["Message"], doc["Subject"]) == (mid, "over tls", "s")
        assert n.headers["x-amz-sns-subscription-arn"] == sub
        verify(doc)

        # A certificate from a CA the broker does not trust: the handshake fails,
        # nothing is POSTed (the confirmation is tried 3 times, 2 s apart).
        subscribe(c, topic, bad.url)
        deadline = time.monotonic() + 20
        while not bad.server.handshake_errors and time.monotonic() < deadline:
            time.sleep(0.2)
        assert bad.server.handshake_errors, "the broker never tried the endpoint"
        time.sleep(1)
        assert bad.requests == []
    finally:
        m.close()
        good.close()
        bad.close()


def test_https_insecure_accepts_any_certificate(certs):
    _, (_, other_ctx) = certs
    r = Receiver(tls=other_ctx)
    m = snsutil.Private({"SWITCHBOARD_SNS__HTTPS_INSECURE": "true"})
    try:
        c = m.client
        topic = c.create_topic(Name=snsutil.tname("https-insecure"))["TopicArn"]
        subscribe(c, topic, r.url)
        [conf] = r.of_type("SubscriptionConfirmation", timeout=30)
        assert conf.json()["TopicArn"] == topic
    finally:
        m.close()
        r.close()
