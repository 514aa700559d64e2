"""SQS queue management over the AWS JSON protocol (boto3): CreateQueue, GetQueueUrl,
ListQueues, DeleteQueue, Get/SetQueueAttributes, tags, permissions, and the JSON
protocol's error shape (``x-amzn-query-error``)."""

from __future__ import annotations

import json
import random
import string
import time

import pytest

import sqsutil
from sqsutil import expect_error, qname, requires_switchboard_sqs

NONEXISTENT = "AWS.SimpleQueueService.NonExistentQueue"

STANDARD_ATTRIBUTES = {
    "QueueArn", "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed", "CreatedTimestamp", "LastModifiedTimestamp",
    "VisibilityTimeout", "MaximumMessageSize", "MessageRetentionPeriod", "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds", "SqsManagedSseEnabled",
}
FIFO_ATTRIBUTES = {"FifoQueue", "ContentBasedDeduplication", "DeduplicationScope",
                   "FifoThroughputLimit"}


# ---------------------------------------------------------------------------------
# CreateQueue / GetQueueUrl


def test_create_queue_returns_url_ending_in_account_and_name(sqs):
    name = qname()
    url = sqs.queue(name)
    assert url.startswith(sqs.ep.url + "/"), url
    assert sqsutil.name_of(url) == name
    assert sqsutil.account_of(url).isdigit() and len(sqsutil.account_of(url)) == 12, url
    assert sqs.client.get_queue_url(QueueName=name)["QueueUrl"] == url


@requires_switchboard_sqs("moto's account is 123456789012 and its URLs name its own host; "
                          "the exact URL/ARN format is Switchboard's contract")
def test_queue_url_and_arn_format(sqs):
    name = qname()
    url = sqs.queue(name)
    assert url == f"{sqs.ep.url}/{sqsutil.SWITCHBOARD_ACCOUNT}/{name}"
    assert sqs.arn(url) == f"arn:aws:sqs:us-east-1:{sqsutil.SWITCHBOARD_ACCOUNT}:{name}"


@requires_switchboard_sqs("Switchboard contract: the QueueUrl is built from the Host header")
def test_queue_url_is_built_from_the_host_header(sqs):
    other = sqsutil.client(sqs.ep, endpoint_url=f"http://localhost:{sqs.ep.port}")
    name = qname()
    url = sqs.track(other.create_queue(QueueName=name)["QueueUrl"])
    assert url == f"http://localhost:{sqs.ep.port}/{sqsutil.SWITCHBOARD_ACCOUNT}/{name}"
    assert sqs.client.get_queue_url(QueueName=name)["QueueUrl"] == (
        f"{sqs.ep.url}/{sqsutil.SWITCHBOARD_ACCOUNT}/{name}")


def test_queue_arn_names_region_account_and_queue(sqs):
    name = qname()
    url = sqs.queue(name)
    assert sqs.arn(url) == f"arn:aws:sqs:us-east-1:{sqsutil.account_of(url)}:{name}"


def test_create_queue_is_idempotent_with_identical_attributes(sqs):
    name = qname()
    url = sqs.queue(name, VisibilityTimeout=5, DelaySeconds=2)
    again = sqs.client.create_queue(QueueName=name,
                                    Attributes={"VisibilityTimeout": "5", "DelaySeconds": "2"})
    assert again["QueueUrl"] == url
    assert sqs.attrs(url, "VisibilityTimeout")["VisibilityTimeout"] == "5"


def test_create_queue_with_different_attributes_is_refused(sqs):
    name = qname()
    sqs.queue(name, VisibilityTimeout=5)
    e = expect_error("QueueAlreadyExists", sqs.client.create_queue, QueueName=name,
                     Attributes={"VisibilityTimeout": "6"}, status=400)
    # the JSON protocol's error type, exposed by botocore next to the legacy code
    assert e.response["Error"].get("QueryErrorCode") == "QueueNameExists"
    assert sqsutil.query_error_header(e) == "QueueAlreadyExists;Sender"


@pytest.mark.parametrize("name", ["a", "A-b_C-9", "x" * 80], ids=["one", "mixed", "eighty"])
def test_valid_queue_names(sqs, name):
    # unique per run: a name can be reused only 60 s after its queue was deleted
    name = random.choice(string.ascii_letters) if name == "a" else (
        name + sqsutil.uid()[:4] if len(name) < 20 else name[:68] + sqsutil.uid())
    url = sqs.queue(name)
    assert sqsutil.name_of(url) == name


@pytest.mark.parametrize("name", ["x" * 81, "a.b", "a b", "a/b", "caf\u00e9", "a:b"],
                         ids=["81-chars", "dot", "space", "slash", "non-ascii", "colon"])
def test_invalid_queue_names_are_refused(sqs, name):
    expect_error("InvalidParameterValue", sqs.client.create_queue, QueueName=name, status=400)


def test_fifo_queue_name_must_end_in_fifo(sqs):
    expect_error("InvalidParameterValue", sqs.client.create_queue, QueueName=qname(),
                 Attributes={"FifoQueue": "true"})


def test_fifo_queue_name_may_have_75_characters_before_the_suffix(sqs):
    base = ("f" * 63) + sqsutil.uid()  # 75 characters
    url = sqs.queue(base + ".fifo", fifo=True)
    assert sqsutil.name_of(url) == base + ".fifo"


def test_fifo_queue_name_longer_than_80_is_refused(sqs):
    base = ("f" * 64) + sqsutil.uid()  # 76 characters + ".fifo" = 81
    expect_error("InvalidParameterValue", sqs.client.create_queue, QueueName=base + ".fifo",
                 Attributes={"FifoQueue": "true"})


@requires_switchboard_sqs("moto accepts a '.fifo' name for a standard queue; AWS allows the "
                          "suffix only with FifoQueue=true")
def test_fifo_suffix_without_fifo_attribute_is_refused(sqs):
    expect_error("InvalidParameterValue", sqs.client.create_queue, QueueName=qname(fifo=True))


@requires_switchboard_sqs("moto creates a standard queue given FifoQueue=false; AWS refuses "
                          "the attribute on a standard queue")
def test_standard_queue_with_fifo_queue_false_is_refused(sqs):
    """AWS knows FifoQueue only on FIFO queues: "false" on a standard queue is an
    unknown attribute (400 InvalidAttributeName "Unknown Attribute FifoQueue."), and
    no queue is created."""
    name = qname("fifo-false")
    e = expect_error("InvalidAttributeName", sqs.client.create_queue, QueueName=name,
                     Attributes={"FifoQueue": "false"}, status=400)
    assert e.response["Error"]["Message"] == "Unknown Attribute FifoQueue."
    expect_error(NONEXISTENT, sqs.client.get_queue_url, QueueName=name)


def test_get_queue_url_of_missing_queue(sqs):
    e = expect_error(NONEXISTENT, sqs.client.get_queue_url, QueueName=qname("missing"),
                     status=400)
    assert e.response["Error"]["QueryErrorCode"] == "QueueDoesNotExist"
    assert e.response["Error"]["Type"] == "Sender"
    assert sqsutil.query_error_header(e) == f"{NONEXISTENT};Sender"


def test_json_error_body_and_headers(sqs):
    r = sqsutil.json_request(sqs.ep, "GetQueueUrl", {"QueueName": qname("missing")})
    assert r.status == 400
    assert r.headers["x-amzn-query-error"] == f"{NONEXISTENT};Sender"
    assert r.headers["content-type"].startswith(sqsutil.JSON_CONTENT_TYPE)
    body = r.json()
    assert body["__type"].rsplit("#", 1)[-1] == "QueueDoesNotExist", body
    assert body.get("message") or body.get("Message"), body


def test_get_queue_url_with_own_account_id(sqs):
    name = qname()
    url = sqs.queue(name)
    got = sqs.client.get_queue_url(QueueName=name,
                                   QueueOwnerAWSAccountId=sqsutil.account_of(url))
    assert got["QueueUrl"] == url


# ---------------------------------------------------------------------------------
# ListQueues / DeleteQueue


def test_list_queues_with_prefix(sqs):
    prefix = f"pytest-ls{sqsutil.uid()}"
    urls = sorted(sqs.queue(f"{prefix}-{i}") for i in range(3))
    other = sqs.queue()
    got = sqs.client.list_queues(QueueNamePrefix=prefix)
    assert sorted(got["QueueUrls"]) == urls
    assert "NextToken" not in got
    assert other not in got["QueueUrls"]


def test_list_queues_prefix_matching_nothing(sqs):
    got = sqs.client.list_queues(QueueNamePrefix=f"pytest-none{sqsutil.uid()}")
    assert got.get("QueueUrls", []) == []


def test_list_queues_pages_with_max_results_and_next_token(sqs):
    prefix = f"pytest-pg{sqsutil.uid()}"
    urls = {sqs.queue(f"{prefix}-{i}") for i in range(5)}
    seen = []
    page = sqs.client.list_queues(QueueNamePrefix=prefix, MaxResults=2)
    pages = 1
    while True:
        assert 1 <= len(page["QueueUrls"]) <= 2
        seen += page["QueueUrls"]
        token = page.get("NextToken")
        if not token:
            break
        page = sqs.client.list_queues(QueueNamePrefix=prefix, MaxResults=2, NextToken=token)
        pages += 1
        assert pages <= 5
    assert pages == 3
    assert sorted(seen) == sorted(urls)


def test_delete_queue(sqs):
    name = qname()
    url = sqs.queue(name)
    sqs.send(url)
    sqs.client.delete_queue(QueueUrl=url)

    def gone():
        try:
            sqs.client.get_queue_url(QueueName=name)
            return False
        except sqsutil.ClientError as e:
            assert sqsutil.error_code(e) == NONEXISTENT
            return True

    sqsutil.wait_for(gone, timeout=5, what="the deleted queue to disappear")
    assert url not in sqs.client.list_queues(QueueNamePrefix=name).get("QueueUrls", [])


def test_delete_missing_queue(sqs):
    url = sqs.queue()
    sqs.client.delete_queue(QueueUrl=url)
    sqsutil.wait_for(lambda: not sqs.client.list_queues(
        QueueNamePrefix=sqsutil.name_of(url)).get("QueueUrls"), what="deletion")
    expect_error(NONEXISTENT, sqs.client.delete_queue, QueueUrl=url)


def test_operations_on_missing_queue_fail(sqs):
    url = sqs.queue()
    sqs.client.delete_queue(QueueUrl=url)
    sqsutil.wait_for(lambda: not sqs.client.list_queues(
        QueueNamePrefix=sqsutil.name_of(url)).get("QueueUrls"), what="deletion")
    expect_error(NONEXISTENT, sqs.client.send_message, QueueUrl=url, MessageBody="x")
    expect_error(NONEXISTENT, sqs.client.receive_message, QueueUrl=url)
    expect_error(NONEXISTENT, sqs.client.get_queue_attributes, QueueUrl=url,
                 AttributeNames=["All"])


# ---------------------------------------------------------------------------------
# GetQueueAttributes


def test_all_attributes_of_a_new_standard_queue(sqs):
    t0 = time.time()
    name = qname()
    url = sqs.queue(name)
    t1 = time.time()
    a = sqs.attrs(url, "All")
    assert STANDARD_ATTRIBUTES <= set(a), sorted(a)
    assert not (FIFO_ATTRIBUTES | {"Policy", "RedrivePolicy", "RedriveAllowPolicy"}) & set(a), a
    assert a["VisibilityTimeout"] == "30"
    assert a["MaximumMessageSize"] == str(sqsutil.DEFAULT_MAXIMUM_MESSAGE_SIZE)
    assert a["MessageRetentionPeriod"] == "345600"
    assert a["DelaySeconds"] == "0"
    assert a["ReceiveMessageWaitTimeSeconds"] == "0"
    assert a["ApproximateNumberOfMessages"] == "0"
    assert a["ApproximateNumberOfMessagesNotVisible"] == "0"
    assert a["ApproximateNumberOfMessagesDelayed"] == "0"
    assert a["SqsManagedSseEnabled"] == "true"
    assert a["QueueArn"] == f"arn:aws:sqs:us-east-1:{sqsutil.account_of(url)}:{name}"
    for ts in ("CreatedTimestamp", "LastModifiedTimestamp"):
        assert t0 - 5 <= float(a[ts]) <= t1 + 5, (ts, a[ts])


@requires_switchboard_sqs("moto reports CreatedTimestamp/LastModifiedTimestamp as fractional "
                          "seconds; AWS gives whole epoch seconds")
def test_timestamps_are_whole_epoch_seconds_and_set_updates_last_modified(sqs):
    url = sqs.queue()
    a = sqs.attrs(url, "CreatedTimestamp", "LastModifiedTimestamp")
    assert a["CreatedTimestamp"].isdigit() and a["LastModifiedTimestamp"].isdigit(), a
    time.sleep(1.1)
    sqs.client.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "7"})
    b = sqs.attrs(url, "CreatedTimestamp", "LastModifiedTimestamp")
    assert b["CreatedTimestamp"] == a["CreatedTimestamp"]
    assert int(b["LastModifiedTimestamp"]) > int(a["LastModifiedTimestamp"])


@pytest.mark.parametrize("attr,value", [
    ("VisibilityTimeout", "30"), ("MaximumMessageSize", "1048576"),
    ("MessageRetentionPeriod", "345600"), ("DelaySeconds", "0"),
    ("ReceiveMessageWaitTimeSeconds", "0"), ("ApproximateNumberOfMessages", "0"),
    ("ApproximateNumberOfMessagesNotVisible", "0"), ("ApproximateNumberOfMessagesDelayed", "0"),
    ("SqsManagedSseEnabled", "true"),
])
def test_each_standard_attribute_alone(sqs, attr, value):
    url = sqs.queue()
    assert sqs.attrs(url, attr) == {attr: value}


@pytest.mark.parametrize("attr", ["CreatedTimestamp", "LastModifiedTimestamp", "QueueArn"])
def test_each_computed_attribute_alone(sqs, attr):
    url = sqs.queue()
    got = sqs.attrs(url, attr)
    assert list(got) == [attr] and got[attr]


@pytest.mark.parametrize("attr", ["Policy", "RedrivePolicy"])
def test_unset_policies_are_absent(sqs, attr):
    url = sqs.queue()
    assert sqs.attrs(url, attr) == {}


@requires_switchboard_sqs("moto does not know the RedriveAllowPolicy attribute "
                          "(InvalidAttributeName)")
def test_redrive_allow_policy_is_absent_until_set(sqs):
    url = sqs.queue()
    assert sqs.attrs(url, "RedriveAllowPolicy") == {}
    policy = {"redrivePermission": "denyAll"}
    sqs.client.set_queue_attributes(QueueUrl=url,
                                    Attributes={"RedriveAllowPolicy": json.dumps(policy)})
    got = sqs.attrs(url, "RedriveAllowPolicy")["RedriveAllowPolicy"]
    assert json.loads(got) == policy


def test_get_attributes_without_names_returns_nothing(sqs):
    url = sqs.queue()
    got = sqs.client.get_queue_attributes(QueueUrl=url)
    assert got.get("Attributes", {}) == {}


def test_unknown_attribute_name_is_refused(sqs):
    url = sqs.queue()
    expect_error("InvalidAttributeName", sqs.client.get_queue_attributes, QueueUrl=url,
                 AttributeNames=["Bogus"], status=400)


def test_all_attributes_of_a_fifo_queue(sqs):
    url = sqs.queue(fifo=True)
    a = sqs.attrs(url, "All")
    assert STANDARD_ATTRIBUTES | FIFO_ATTRIBUTES <= set(a), sorted(a)
    assert a["FifoQueue"] == "true"
    assert a["ContentBasedDeduplication"] == "false"
    assert a["DeduplicationScope"] == "queue"
    assert a["FifoThroughputLimit"] == "perQueue"


def test_fifo_high_throughput_attributes(sqs):
    url = sqs.queue(fifo=True, ContentBasedDeduplication="true",
                    DeduplicationScope="messageGroup", FifoThroughputLimit="perMessageGroupId")
    a = sqs.attrs(url, "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit")
    assert a == {"ContentBasedDeduplication": "true", "DeduplicationScope": "messageGroup",
                 "FifoThroughputLimit": "perMessageGroupId"}


def test_approximate_counts_follow_messages(sqs):
    url = sqs.queue()
    for i in range(3):
        sqs.send(url, f"m{i}")
    sqs.send(url, "later", DelaySeconds=60)
    got = sqsutil.receive_n(sqs.client, url, 1, VisibilityTimeout=60)
    assert len(got) == 1

    def counts():
        a = sqs.attrs(url, "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                      "ApproximateNumberOfMessagesDelayed")
        return a if a == {"ApproximateNumberOfMessages": "2",
                          "ApproximateNumberOfMessagesNotVisible": "1",
                          "ApproximateNumberOfMessagesDelayed": "1"} else None

    sqsutil.wait_for(counts, timeout=5, what="approximate counts 2/1/1")


# ---------------------------------------------------------------------------------
# SetQueueAttributes


@pytest.mark.parametrize("attr,value", [
    ("VisibilityTimeout", "0"), ("VisibilityTimeout", "43200"),
    ("MaximumMessageSize", "1024"), ("MaximumMessageSize", "1048576"),
    ("MessageRetentionPeriod", "60"), ("MessageRetentionPeriod", "1209600"),
    ("DelaySeconds", "900"), ("ReceiveMessageWaitTimeSeconds", "20"),
])
def test_set_attribute_boundary_values(sqs, attr, value):
    url = sqs.queue()
    sqs.client.set_queue_attributes(QueueUrl=url, Attributes={attr: value})
    assert sqs.attrs(url, attr) == {attr: value}


INVALID_VALUES = [
    ("VisibilityTimeout", "43201"), ("VisibilityTimeout", "-1"), ("VisibilityTimeout", "abc"),
    ("MaximumMessageSize", "1023"), ("MaximumMessageSize", "1048577"),
    ("MessageRetentionPeriod", "59"), ("MessageRetentionPeriod", "1209601"),
    ("DelaySeconds", "901"), ("ReceiveMessageWaitTimeSeconds", "21"),
]


@requires_switchboard_sqs("moto does not range-check SetQueueAttributes values (it stores "
                          "43201 or 59 as given, and answers 500 to a non-number)")
@pytest.mark.parametrize("attr,value", INVALID_VALUES)
def test_set_invalid_attribute_value_is_refused(sqs, attr, value):
    url = sqs.queue()
    expect_error("InvalidAttributeValue", sqs.client.set_queue_attributes, QueueUrl=url,
                 Attributes={attr: value}, status=400)


@requires_switchboard_sqs("moto does not range-check CreateQueue attribute values")
@pytest.mark.parametrize("attr,value", [("VisibilityTimeout", "43201"),
                                        ("MessageRetentionPeriod", "59"),
                                        ("DelaySeconds", "901")])
def test_create_with_invalid_attribute_value_is_refused(sqs, attr, value):
    expect_error("InvalidAttributeValue", sqs.client.create_queue, QueueName=qname(),
                 Attributes={attr: value}, status=400)


@requires_switchboard_sqs("moto stores any attribute name SetQueueAttributes is given")
def test_set_unknown_attribute_name_is_refused(sqs):
    url = sqs.queue()
    expect_error("InvalidAttributeName", sqs.client.set_queue_attributes, QueueUrl=url,
                 Attributes={"Bogus": "1"}, status=400)


@requires_switchboard_sqs("moto lets SetQueueAttributes change FifoQueue (it even turns a "
                          "standard queue into a FIFO one)")
def test_queue_type_cannot_be_changed(sqs):
    """AWS: InvalidAttributeName "Unknown Attribute FifoQueue." on a standard queue;
    InvalidAttributeValue "... Modifying queue type is not supported." on a FIFO queue."""
    std = sqs.queue()
    expect_error("InvalidAttributeName", sqs.client.set_queue_attributes, QueueUrl=std,
                 Attributes={"FifoQueue": "true"})
    fifo = sqs.queue(fifo=True)
    expect_error("InvalidAttributeValue", sqs.client.set_queue_attributes, QueueUrl=fifo,
                 Attributes={"FifoQueue": "false"})
    assert sqs.attrs(fifo, "FifoQueue") == {"FifoQueue": "true"}


def test_set_several_attributes_at_once(sqs):
    url = sqs.queue()
    new = {"VisibilityTimeout": "17", "DelaySeconds": "3", "ReceiveMessageWaitTimeSeconds": "2",
           "MaximumMessageSize": "2048", "MessageRetentionPeriod": "3600"}
    sqs.client.set_queue_attributes(QueueUrl=url, Attributes=new)
    assert sqs.attrs(url, *new) == new


def test_policy_attribute_round_trips(sqs):
    url = sqs.queue()
    arn = sqs.arn(url)
    policy = {"Version": "2012-10-17", "Statement": [{
        "Sid": "s1", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
        "Action": "SQS:SendMessage", "Resource": arn}]}
    sqs.client.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    got = json.loads(sqs.attrs(url, "Policy")["Policy"])
    assert got["Statement"] == policy["Statement"]


# ---------------------------------------------------------------------------------
# Tags, permissions


def test_tag_list_untag(sqs):
    url = sqs.queue(tags={"team": "core"})
    assert sqs.client.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "core"}
    sqs.client.tag_queue(QueueUrl=url, Tags={"env": "test", "team": "infra"})
    assert sqs.client.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "infra", "env": "test"}
    sqs.client.untag_queue(QueueUrl=url, TagKeys=["team", "absent"])
    assert sqs.client.list_queue_tags(QueueUrl=url)["Tags"] == {"env": "test"}
    sqs.client.untag_queue(QueueUrl=url, TagKeys=["env"])
    assert sqs.client.list_queue_tags(QueueUrl=url).get("Tags", {}) == {}


def test_tags_of_missing_queue(sqs):
    url = sqs.queue()
    sqs.client.delete_queue(QueueUrl=url)
    sqsutil.wait_for(lambda: not sqs.client.list_queues(
        QueueNamePrefix=sqsutil.name_of(url)).get("QueueUrls"), what="deletion")
    expect_error(NONEXISTENT, sqs.client.list_queue_tags, QueueUrl=url)


def test_add_and_remove_permission_edit_the_policy(sqs):
    url = sqs.queue()
    arn = sqs.arn(url)
    sqs.client.add_permission(QueueUrl=url, Label="AliceSend", AWSAccountIds=["111122223333"],
                              Actions=["SendMessage"])
    sqs.client.add_permission(QueueUrl=url, Label="BobAll",
                              AWSAccountIds=["444455556666", "777788889999"],
                              Actions=["ReceiveMessage", "DeleteMessage"])
    policy = json.loads(sqs.attrs(url, "Policy")["Policy"])
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert set(by_sid) == {"AliceSend", "BobAll"}
    alice = by_sid["AliceSend"]
    assert alice["Effect"] == "Allow"
    assert alice["Principal"] == {"AWS": "arn:aws:iam::111122223333:root"}
    assert alice["Action"] in ("SQS:SendMessage", ["SQS:SendMessage"])
    assert alice["Resource"] == arn
    bob = by_sid["BobAll"]
    assert sorted(bob["Principal"]["AWS"]) == ["arn:aws:iam::444455556666:root",
                                               "arn:aws:iam::777788889999:root"]
    assert sorted(bob["Action"]) == ["SQS:DeleteMessage", "SQS:ReceiveMessage"]

    sqs.client.remove_permission(QueueUrl=url, Label="AliceSend")
    left = sqs.attrs(url, "Policy").get("Policy")
    sids = [s["Sid"] for s in json.loads(left)["Statement"]] if left else []
    assert sids == ["BobAll"]
    sqs.client.remove_permission(QueueUrl=url, Label="BobAll")
    left = sqs.attrs(url, "Policy").get("Policy")
    assert not left or json.loads(left).get("Statement") == []


def test_add_permission_with_an_existing_label_is_refused(sqs):
    url = sqs.queue()
    sqs.client.add_permission(QueueUrl=url, Label="L", AWSAccountIds=["111122223333"],
                              Actions=["SendMessage"])
    expect_error("InvalidParameterValue", sqs.client.add_permission, QueueUrl=url, Label="L",
                 AWSAccountIds=["111122223333"], Actions=["ReceiveMessage"])


def test_add_permission_allows_at_most_seven_actions(sqs):
    url = sqs.queue()
    actions = ["SendMessage", "ReceiveMessage", "DeleteMessage", "ChangeMessageVisibility",
               "GetQueueAttributes", "GetQueueUrl", "PurgeQueue", "ListDeadLetterSourceQueues"]
    e = expect_error("OverLimit", sqs.client.add_permission, QueueUrl=url, Label="Many",
                     AWSAccountIds=["111122223333"], Actions=actions)
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert e.response["Error"]["Message"] == "8 Actions were found, maximum allowed is 7."


@pytest.mark.parametrize("action", ["AddPermission", "DeleteQueue", "NotAnAction"])
def test_add_permission_refuses_owner_only_and_unknown_actions(sqs, action):
    url = sqs.queue()
    e = expect_error("InvalidParameterValue", sqs.client.add_permission, QueueUrl=url,
                     Label="Owner", AWSAccountIds=["111122223333"], Actions=[action])
    assert e.response["Error"]["Message"].startswith(f"Value SQS:{action} for parameter ActionName")


def test_remove_unknown_permission_label_is_refused(sqs):
    url = sqs.queue()
    expect_error("InvalidParameterValue", sqs.client.remove_permission, QueueUrl=url,
                 Label="NoSuchLabel")
