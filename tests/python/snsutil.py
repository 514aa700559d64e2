"""Amazon SNS helpers for the end-to-end suite (imported as ``snsutil``).

SNS shares the SQS HTTP listener (``sqsutil.Endpoint``): requests are told apart by
the SigV4 service ``sns``. ``client`` is a boto3 SNS client with no hidden retries;
``Sns`` is what the ``sns`` fixture hands a test: a client, ``topic()`` which
creates uniquely named topics and deletes them at teardown, and ``subscribe_queue``
which subscribes an SQS queue by its ARN.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import boto3
import botocore.config

import sqsutil
from sqsutil import Endpoint, uid

XML_NS = "http://sns.amazonaws.com/doc/2010-03-31/"
# The keys every SNS notification envelope has (sns_envelope.json, captured).
ENVELOPE_KEYS = ["Message", "MessageAttributes", "MessageId", "Signature", "SignatureVersion",
                 "SigningCertURL", "Timestamp", "TopicArn", "Type", "UnsubscribeURL"]


def client(ep: Endpoint, **config):
    cfg = botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"},
                                 connect_timeout=5, read_timeout=30, **config)
    return boto3.session.Session().client(
        "sns", endpoint_url=ep.url, region_name=ep.region,
        aws_access_key_id=ep.access_key, aws_secret_access_key=ep.secret_key, config=cfg)


def tname(kind: str = "t") -> str:
    return f"pytest-{kind}-{uid()}"


@dataclass
class Sns:
    ep: Endpoint
    client: Any
    topics: List[str] = field(default_factory=list)

    def topic(self, name: Optional[str] = None, **kw) -> str:
        arn = self.client.create_topic(Name=name or tname(), **kw)["TopicArn"]
        if arn not in self.topics:
            self.topics.append(arn)
        return arn

    def subscribe_queue(self, topic_arn: str, queue_arn: str,
                        attributes: Optional[Dict[str, str]] = None) -> str:
        kw: Dict[str, Any] = {"TopicArn": topic_arn, "Protocol": "sqs", "Endpoint": queue_arn,
                              "ReturnSubscriptionArn": True}
        if attributes:
            kw["Attributes"] = attributes
        return self.client.subscribe(**kw)["SubscriptionArn"]

    def cleanup(self) -> None:
        for arn in reversed(self.topics):
            try:
                self.client.delete_topic(TopicArn=arn)
            except Exception:
                pass
        self.topics.clear()


class Private:
    """A Switchboard of the test's own, started with ``env`` settings (e.g.
    ``SWITCHBOARD_SNS__SMTP_RELAY``) and restartable on its data directory."""

    def __init__(self, env: Dict[str, str]):
        from conftest import start_switchboard

        self.env = env
        self.b = start_switchboard(env=env)
        self._connect()

    def _connect(self) -> None:
        self.ep = sqsutil.endpoint_from_ports(self.b.ports)
        self.client = client(self.ep)

    def kill_and_restart(self) -> None:
        from conftest import start_switchboard

        self.b.proc.kill()
        self.b.proc.wait(timeout=10)
        self.b = start_switchboard(env=self.env, data_dir=self.b.data_dir)
        self._connect()

    def close(self) -> None:
        from conftest import stop_switchboard

        stop_switchboard(self.b)


def envelope(m: dict) -> dict:
    """The notification envelope an SQS message's body holds."""
    return json.loads(m["Body"])


__all__ = ["client", "tname", "Sns", "Private", "envelope", "ENVELOPE_KEYS", "sqsutil"]
