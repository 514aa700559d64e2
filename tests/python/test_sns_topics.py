"""SNS topics over boto3: create (idempotent, with attributes and tags), list with
paging, get/set attributes, tags, delete."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

import sqsutil
from snsutil import tname


def test_create_is_idempotent_and_listed(sns):
    name = tname()
    arn = sns.topic(name)
    assert arn.startswith("arn:aws:sns:") and arn.endswith(":" + name)
    assert sns.topic(name) == arn
    arns = [t["TopicArn"] for t in sns.client.list_topics()["Topics"]]
    assert arns.count(arn) == 1


def test_list_topics_pages_by_100(sns):
    mine = {sns.topic(tname("page")) for _ in range(105)}
    seen, token, pages = [], None, 0
    while True:
        r = sns.client.list_topics(**({"NextToken": token} if token else {}))
        pages += 1
        assert len(r["Topics"]) <= 100
        seen += [t["TopicArn"] for t in r["Topics"]]
        token = r.get("NextToken")
        if not token:
            break
    assert pages >= 2
    assert mine <= set(seen)
    assert len(seen) == len(set(seen))


def test_attributes_get_and_set(sns):
    arn = sns.topic(Attributes={"DisplayName": "first"})
    a = sns.client.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert a["TopicArn"] == arn
    assert a["DisplayName"] == "first"
    assert a["SubscriptionsConfirmed"] == "0"
    assert a["SubscriptionsPending"] == "0"
    assert a["Owner"]
    assert '"Statement"' in a["Policy"]
    assert "EffectiveDeliveryPolicy" in a
    sns.client.set_topic_attributes(TopicArn=arn, AttributeName="DisplayName",
                                    AttributeValue="second")
    a = sns.client.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert a["DisplayName"] == "second"


@sqsutil.requires_switchboard_sqs("moto stores any attribute name; AWS answers "
                                  "InvalidParameter")
def test_unknown_topic_attribute_is_refused(sns):
    arn = sns.topic()
    with pytest.raises(ClientError) as e:
        sns.client.set_topic_attributes(TopicArn=arn, AttributeName="Bogus",
                                        AttributeValue="x")
    assert e.value.response["Error"]["Code"] == "InvalidParameter"


def test_tags(sns):
    arn = sns.topic(Tags=[{"Key": "team", "Value": "a"}])
    sns.client.tag_resource(ResourceArn=arn, Tags=[{"Key": "env", "Value": "dev"}])
    tags = sns.client.list_tags_for_resource(ResourceArn=arn)["Tags"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("env", "dev"), ("team", "a")]
    sns.client.untag_resource(ResourceArn=arn, TagKeys=["team"])
    tags = sns.client.list_tags_for_resource(ResourceArn=arn)["Tags"]
    assert tags == [{"Key": "env", "Value": "dev"}]


def test_delete_topic(sns):
    arn = sns.topic()
    sns.client.delete_topic(TopicArn=arn)
    arns = [t["TopicArn"] for t in sns.client.list_topics()["Topics"]]
    assert arn not in arns
    with pytest.raises(ClientError) as e:
        sns.client.get_topic_attributes(TopicArn=arn)
    assert e.value.response["Error"]["Code"] == "NotFound"
    # Deleting again succeeds, as on AWS.
    sns.client.delete_topic(TopicArn=arn)
