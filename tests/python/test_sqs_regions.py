"""SQS regions: a queue belongs to the region its CreateQueue was signed for.
ListQueues and GetQueueUrl see only that region's queues, its QueueArn names that
region, and one name in two regions is two queues (boto3 clients of two regions and
the aws CLI with --region)."""

from __future__ import annotations

import dataclasses
from typing import Dict, List

import pika
import pytest

import sqsutil
from sqsutil import expect_error, qname, receive_one, requires_switchboard_sqs

NONEXISTENT = "AWS.SimpleQueueService.NonExistentQueue"
HOME = sqsutil.REGION  # us-east-1, Switchboard's default sqs.region
AWAY = "eu-west-1"


class Regions:
    """One ``sqsutil.Sqs`` (endpoint, client, queue factory) per region; each deletes
    the queues it created, through a client of its own region."""

    def __init__(self, ep: sqsutil.Endpoint):
        self.ep = ep
        self.by_region: Dict[str, sqsutil.Sqs] = {}

    def __getitem__(self, region: str) -> sqsutil.Sqs:
        if region not in self.by_region:
            ep = dataclasses.replace(self.ep, region=region)
            self.by_region[region] = sqsutil.Sqs(ep, sqsutil.client(ep))
        return self.by_region[region]

    def cleanup(self) -> None:
        for s in self.by_region.values():
            s.cleanup()


@pytest.fixture
def regions(sqs_ep):
    r = Regions(sqs_ep)
    yield r
    r.cleanup()


def listed(s: sqsutil.Sqs, prefix: str) -> List[str]:
    return s.client.list_queues(QueueNamePrefix=prefix).get("QueueUrls", [])


def test_queue_is_seen_only_in_its_region(regions):
    away, home = regions[AWAY], regions[HOME]
    name = qname("region")
    url = away.queue(name)
    assert listed(away, name) == [url]
    assert away.client.get_queue_url(QueueName=name)["QueueUrl"] == url
    assert listed(home, name) == []
    expect_error(NONEXISTENT, home.client.get_queue_url, QueueName=name, status=400)


def test_queue_arn_names_its_region(regions):
    for region in (AWAY, HOME):
        s = regions[region]
        name = qname("arn")
        url = s.queue(name)
        account = sqsutil.account_of(url)
        assert s.arn(url) == f"arn:aws:sqs:{region}:{account}:{name}"


def test_one_name_in_two_regions_is_two_queues(regions):
    away, home = regions[AWAY], regions[HOME]
    name = qname("twin")
    away_url = away.queue(name, VisibilityTimeout=17)
    home_url = home.queue(name)
    away.send(away_url, "in " + AWAY)
    home.send(home_url, "in " + HOME)
    assert away.attrs(away_url, "VisibilityTimeout") == {"VisibilityTimeout": "17"}
    assert home.attrs(home_url, "VisibilityTimeout") == {"VisibilityTimeout": "30"}
    assert receive_one(away.client, away_url)["Body"] == "in " + AWAY
    assert receive_one(home.client, home_url)["Body"] == "in " + HOME
    # Deleting one leaves the other.
    away.client.delete_queue(QueueUrl=away_url)
    expect_error(NONEXISTENT, away.client.get_queue_url, QueueName=name)
    assert home.client.get_queue_url(QueueName=name)["QueueUrl"] == home_url


def test_queue_url_of_one_region_names_no_queue_in_another(regions):
    away, home = regions[AWAY], regions[HOME]
    url = away.queue(qname("elsewhere"))
    expect_error(NONEXISTENT, home.client.send_message, QueueUrl=url, MessageBody="x")
    expect_error(NONEXISTENT, home.client.get_queue_attributes, QueueUrl=url,
                 AttributeNames=["All"])


def test_dead_letter_queue_in_the_same_region(regions):
    away = regions[AWAY]
    dlq = away.queue(qname("dlq"))
    src = away.queue(qname("src"), RedrivePolicy=(
        '{"deadLetterTargetArn": "%s", "maxReceiveCount": "1"}' % away.arn(dlq)))
    away.send(src, "doomed")
    m = receive_one(away.client, src, VisibilityTimeout=1)
    assert m["Body"] == "doomed"
    # The receive after its visibility ends moves it to the DLQ instead.
    assert sqsutil.stays_empty(away.client, src, window=2.5)
    dead = receive_one(away.client, dlq, timeout=5)
    assert dead["Body"] == "doomed"
    sources = away.client.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"]
    assert sources == [src]


def test_aws_cli_region_flag_picks_the_region(sqs_ep):
    name = qname("cli-region")
    out = sqsutil.aws_cli_json(sqs_ep, "sqs", "create-queue", "--queue-name", name,
                               "--region", "eu-west-2")
    url = out["QueueUrl"]
    try:
        there = sqsutil.aws_cli_json(sqs_ep, "sqs", "list-queues", "--queue-name-prefix", name,
                                     "--region", "eu-west-2")
        assert there["QueueUrls"] == [url]
        here = sqsutil.aws_cli_json(sqs_ep, "sqs", "list-queues", "--queue-name-prefix", name,
                                    "--region", HOME)
        assert not (here or {}).get("QueueUrls")
        attrs = sqsutil.aws_cli_json(sqs_ep, "sqs", "get-queue-attributes", "--queue-url", url,
                                     "--attribute-names", "QueueArn", "--region", "eu-west-2")
        assert attrs["Attributes"]["QueueArn"].startswith("arn:aws:sqs:eu-west-2:")
    finally:
        sqsutil.aws_cli(sqs_ep, "sqs", "delete-queue", "--queue-url", url,
                        "--region", "eu-west-2")


@requires_switchboard_sqs("Switchboard's queue URLs and core queue names")
def test_other_regions_queues_are_core_queues_named_region_slash_name(regions, broker):
    away, home = regions[AWAY], regions[HOME]
    name = qname("core")
    away_url = away.queue(name)
    home_url = home.queue(name)
    # The configured region's URLs are as they always were; another region's name it.
    assert home_url == f"{home.ep.url}/{sqsutil.SWITCHBOARD_ACCOUNT}/{name}"
    assert away_url == f"{away.ep.url}/queue/{AWAY}/{sqsutil.SWITCHBOARD_ACCOUNT}/{name}"
    conn = broker.connect()
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(f"{AWAY}/{name}", passive=True)
        ch.basic_publish("", f"{AWAY}/{name}", b"over amqp, away",
                         properties=pika.BasicProperties(delivery_mode=2))
        ch.basic_publish("", name, b"over amqp, home",
                         properties=pika.BasicProperties(delivery_mode=2))
    finally:
        conn.close()
    assert receive_one(away.client, away_url)["Body"] == "over amqp, away"
    assert receive_one(home.client, home_url)["Body"] == "over amqp, home"


def test_query_request_to_the_queue_url_path_acts_in_its_region(regions):
    """Old SDKs POST Query requests to the queue URL itself, without QueueUrl."""
    away = regions[AWAY]
    url = away.queue(qname("query-path"), VisibilityTimeout=21)
    path = sqsutil.urllib.parse.urlsplit(url).path
    r = away.query.ok("GetQueueAttributes", {"AttributeName.1": "VisibilityTimeout"},
                      path=path)
    assert r.pairs() == {"VisibilityTimeout": "21"}


@requires_switchboard_sqs("moto accepts any region name in a signature")
def test_a_scope_naming_no_region_is_refused(sqs_ep):
    bad = sqsutil.client(dataclasses.replace(sqs_ep, region="Not-A-Region"))
    e = expect_error("SignatureDoesNotMatch", bad.list_queues, status=403)
    assert e.response["Error"]["Message"] == "Credential should be scoped to a valid region."


# ---------------------------------------------------------------------------------
# SNS follows the same rule: a topic belongs to the region of its CreateTopic.


@pytest.fixture
def sns_regions(sqs_ep):
    import snsutil

    made: Dict[str, "snsutil.Sns"] = {}

    def get(region: str) -> "snsutil.Sns":
        if region not in made:
            ep = dataclasses.replace(sqs_ep, region=region)
            made[region] = snsutil.Sns(ep, snsutil.client(ep))
        return made[region]

    yield get
    for s in made.values():
        s.cleanup()


def all_topics(client) -> List[str]:
    return [t["TopicArn"] for page in client.get_paginator("list_topics").paginate()
            for t in page.get("Topics", [])]


def test_sns_topic_belongs_to_its_region_and_delivers_there(regions, sns_regions):
    import snsutil

    away, home = sns_regions(AWAY), sns_regions(HOME)
    name = snsutil.tname("region")
    arn = away.topic(name)
    account = arn.split(":")[4]
    assert arn == f"arn:aws:sns:{AWAY}:{account}:{name}"
    assert arn in all_topics(away.client)
    assert not [t for t in all_topics(home.client) if t.endswith(":" + name)]
    # The same name at home is another topic.
    home_arn = home.topic(name)
    assert home_arn == f"arn:aws:sns:{HOME}:{account}:{name}"
    q = regions[AWAY].queue(qname("sns-away"))
    sub = away.subscribe_queue(arn, regions[AWAY].arn(q), {"RawMessageDelivery": "true"})
    assert sub.startswith(arn + ":")
    subs = away.client.list_subscriptions()["Subscriptions"]
    assert [s["SubscriptionArn"] for s in subs if s["TopicArn"] == arn] == [sub]
    assert not [s for s in home.client.list_subscriptions()["Subscriptions"]
                if s["TopicArn"] == arn]
    away.client.publish(TopicArn=arn, Message="to the away topic")
    home.client.publish(TopicArn=home_arn, Message="to the home topic")
    assert receive_one(regions[AWAY].client, q)["Body"] == "to the away topic"
    assert sqsutil.stays_empty(regions[AWAY].client, q, window=1.0)
