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


def _statements(sns, arn):
    import json
    policy = sns.client.get_topic_attributes(TopicArn=arn)["Attributes"]["Policy"]
    return {s["Sid"]: s for s in json.loads(policy)["Statement"]}


def test_add_and_remove_permission_edit_the_policy(sns):
    arn = sns.topic()
    sns.client.add_permission(TopicArn=arn, Label="pub", AWSAccountId=["111122223333"],
                              ActionName=["Publish"])
    sns.client.add_permission(TopicArn=arn, Label="two",
                              AWSAccountId=["111122223333", "444455556666"],
                              ActionName=["Subscribe", "Receive"])
    st = _statements(sns, arn)
    assert st["pub"]["Effect"] == "Allow"
    assert st["pub"]["Action"] == "SNS:Publish"
    assert st["pub"]["Principal"] == {"AWS": "arn:aws:iam::111122223333:root"}
    assert st["pub"]["Resource"] == arn
    assert st["two"]["Action"] == ["SNS:Subscribe", "SNS:Receive"]
    assert len(st["two"]["Principal"]["AWS"]) == 2
    # The default statement stays.
    assert len(st) == 3
    sns.client.remove_permission(TopicArn=arn, Label="pub")
    assert set(_statements(sns, arn)) == set(st) - {"pub"}
    # Removing a label that is not there succeeds.
    sns.client.remove_permission(TopicArn=arn, Label="pub")


def test_add_permission_refuses_a_repeated_label_and_unknown_actions(sns):
    arn = sns.topic()
    sns.client.add_permission(TopicArn=arn, Label="x", AWSAccountId=["111122223333"],
                              ActionName=["Publish"])
    for label, action in (("x", "Publish"), ("y", "Bogus")):
        with pytest.raises(ClientError) as e:
            sns.client.add_permission(TopicArn=arn, Label=label,
                                      AWSAccountId=["111122223333"], ActionName=[action])
        assert e.value.response["Error"]["Code"] == "InvalidParameter"
    assert set(_statements(sns, arn)) == {"__default_statement_ID", "x"}
    with pytest.raises(ClientError) as e:
        sns.client.add_permission(TopicArn=arn + "-gone", Label="z",
                                  AWSAccountId=["111122223333"], ActionName=["Publish"])
    assert e.value.response["Error"]["Code"] == "NotFound"
