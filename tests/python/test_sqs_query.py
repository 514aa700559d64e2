"""SQS over the AWS Query protocol: signed ``Action=...&Version=2012-11-05`` form bodies
(``sqsutil.QueryClient``), answers in XML in the ``http://queue.amazonaws.com/doc/
2012-11-05/`` namespace, errors as ``<ErrorResponse><Error><Type>Sender</Type><Code>...``.
Older SDKs and many tools still speak it; the JSON and Query protocols share queues."""

from __future__ import annotations

import base64

import pytest

import sqsutil
from sqsutil import flat_attributes, flat_list, flat_message_attributes, md5_hex
from sqsutil import md5_of_message_attributes, qname, requires_switchboard_sqs

NONEXISTENT = "AWS.SimpleQueueService.NonExistentQueue"


@pytest.fixture
def query(sqs):
    return sqs.query


def create(sqs, query, name=None, **attrs) -> str:
    name = name or qname()
    r = query.ok("CreateQueue", {"QueueName": name, **flat_attributes(attrs)})
    url = r.value("QueueUrl")
    assert url and sqsutil.name_of(url) == name
    return sqs.track(url)


def query_messages(r) -> list:
    """ReceiveMessage XML -> list of dicts shaped like boto3's."""
    out = []
    for m in r.all("Message"):
        kids = {sqsutil._local(c.tag): c for c in m}
        msg = {k: kids[k].text for k in ("MessageId", "ReceiptHandle", "MD5OfBody", "Body",
                                          "MD5OfMessageAttributes") if k in kids}
        attrs, mattrs = {}, {}
        for c in m:
            tag = sqsutil._local(c.tag)
            fields = {sqsutil._local(x.tag): x for x in c}
            if tag == "Attribute":
                attrs[fields["Name"].text] = fields["Value"].text
            elif tag == "MessageAttribute":
                v = {sqsutil._local(x.tag): x.text for x in fields["Value"]}
                val = {"DataType": v["DataType"]}
                if "BinaryValue" in v:
                    val["BinaryValue"] = base64.b64decode(v["BinaryValue"])
                else:
                    val["StringValue"] = v.get("StringValue") or ""
                mattrs[fields["Name"].text] = val
        if attrs:
            msg["Attributes"] = attrs
        if mattrs:
            msg["MessageAttributes"] = mattrs
        out.append(msg)
    return out


def test_create_get_url_list_delete(sqs, query):
    name = qname()
    url = create(sqs, query, name)
    assert query.ok("GetQueueUrl", {"QueueName": name}).value("QueueUrl") == url
    listed = query.ok("ListQueues", {"QueueNamePrefix": name}).values("QueueUrl")
    assert listed == [url]
    r = query.ok("DeleteQueue", {"QueueUrl": url})
    assert r.value("RequestId")
    sqsutil.wait_for(lambda: not query.ok("ListQueues", {"QueueNamePrefix": name})
                     .values("QueueUrl"), what="deletion")


def test_list_queues_pages(sqs, query):
    prefix = f"pytest-qp{sqsutil.uid()}"
    urls = {create(sqs, query, f"{prefix}-{i}") for i in range(3)}
    first = query.ok("ListQueues", {"QueueNamePrefix": prefix, "MaxResults": 2})
    assert len(first.values("QueueUrl")) == 2
    token = first.value("NextToken")
    assert token
    second = query.ok("ListQueues", {"QueueNamePrefix": prefix, "MaxResults": 2,
                                     "NextToken": token})
    assert set(first.values("QueueUrl") + second.values("QueueUrl")) == urls
    assert not second.value("NextToken")


def test_queue_attributes(sqs, query):
    url = create(sqs, query, VisibilityTimeout=7, DelaySeconds=1)
    all_attrs = query.ok("GetQueueAttributes", {"QueueUrl": url, "AttributeName.1": "All"}).pairs()
    assert all_attrs["VisibilityTimeout"] == "7" and all_attrs["DelaySeconds"] == "1"
    assert all_attrs["QueueArn"].endswith(":" + sqsutil.name_of(url))
    query.ok("SetQueueAttributes", {"QueueUrl": url, **flat_attributes({"VisibilityTimeout": 9})})
    got = query.ok("GetQueueAttributes", {"QueueUrl": url,
                                          **flat_list(["VisibilityTimeout", "DelaySeconds"],
                                                      "AttributeName")}).pairs()
    assert got == {"VisibilityTimeout": "9", "DelaySeconds": "1"}
    # the JSON protocol sees the same queue
    assert sqs.attrs(url, "VisibilityTimeout") == {"VisibilityTimeout": "9"}


ATTRS = {"color": {"DataType": "String", "StringValue": "red"},
         "n": {"DataType": "Number", "StringValue": "42"},
         "raw": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"}}


def test_send_receive_delete(sqs, query):
    url = create(sqs, query)
    body = "h\u00e9llo & goodbye = 1+1\nnext line <tag/> \U0001f600"
    r = query.ok("SendMessage", {"QueueUrl": url, "MessageBody": body,
                                 **flat_message_attributes(ATTRS)})
    assert r.value("MD5OfMessageBody") == md5_hex(body)
    assert r.value("MD5OfMessageAttributes") == md5_of_message_attributes(ATTRS)
    msg_id = r.value("MessageId")
    r = query.ok("ReceiveMessage", {"QueueUrl": url, "AttributeName.1": "All",
                                    "MessageAttributeName.1": "All", "WaitTimeSeconds": 1})
    [m] = query_messages(r)
    assert m["MessageId"] == msg_id
    assert m["Body"] == body
    assert m["MD5OfBody"] == md5_hex(body)
    assert m["MessageAttributes"] == ATTRS
    assert m["MD5OfMessageAttributes"] == md5_of_message_attributes(ATTRS)
    assert m["Attributes"]["ApproximateReceiveCount"] == "1"
    query.ok("DeleteMessage", {"QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"]})
    assert sqs.attrs(url, "ApproximateNumberOfMessagesNotVisible") == {
        "ApproximateNumberOfMessagesNotVisible": "0"}


def test_empty_receive(sqs, query):
    url = create(sqs, query)
    r = query.ok("ReceiveMessage", {"QueueUrl": url})
    assert r.all("ReceiveMessageResult") and query_messages(r) == []


def test_requests_to_the_queue_url_path(sqs, query):
    """A request POSTed to the queue URL's path names the queue without QueueUrl."""
    url = create(sqs, query)
    path = "/" + url.split("/", 3)[3]
    query.ok("SendMessage", {"MessageBody": "via path"}, path=path)
    r = query.ok("ReceiveMessage", {"WaitTimeSeconds": 1}, path=path)
    assert [m["Body"] for m in query_messages(r)] == ["via path"]


def test_batches(sqs, query):
    url = create(sqs, query)
    entries = {}
    for i in range(3):
        entries[f"SendMessageBatchRequestEntry.{i + 1}.Id"] = f"e{i}"
        entries[f"SendMessageBatchRequestEntry.{i + 1}.MessageBody"] = f"batch {i}"
    r = query.ok("SendMessageBatch", {"QueueUrl": url, **entries})
    ok = r.all("SendMessageBatchResultEntry")
    assert len(ok) == 3 and not r.all("BatchResultErrorEntry")
    got = []
    for _ in range(10):
        got += query_messages(query.ok("ReceiveMessage", {
            "QueueUrl": url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 1}))
        if len(got) >= 3:
            break
    assert sorted(m["Body"] for m in got) == ["batch 0", "batch 1", "batch 2"]
    dels = {"QueueUrl": url}
    for i, m in enumerate(got):
        dels[f"DeleteMessageBatchRequestEntry.{i + 1}.Id"] = f"d{i}"
        dels[f"DeleteMessageBatchRequestEntry.{i + 1}.ReceiptHandle"] = m["ReceiptHandle"]
    dels[f"DeleteMessageBatchRequestEntry.{len(got) + 1}.Id"] = "bad"
    dels[f"DeleteMessageBatchRequestEntry.{len(got) + 1}.ReceiptHandle"] = "garbage"
    r = query.ok("DeleteMessageBatch", dels)
    assert len(r.all("DeleteMessageBatchResultEntry")) == 3
    [err] = r.all("BatchResultErrorEntry")
    fields = {sqsutil._local(c.tag): c.text for c in err}
    assert fields["Id"] == "bad" and fields["Code"] == "ReceiptHandleIsInvalid"
    assert fields["SenderFault"] == "true"


def test_change_visibility_and_purge(sqs, query):
    url = create(sqs, query)
    query.ok("SendMessage", {"QueueUrl": url, "MessageBody": "x"})
    [m] = query_messages(query.ok("ReceiveMessage", {"QueueUrl": url, "WaitTimeSeconds": 1,
                                                     "VisibilityTimeout": 30}))
    query.ok("ChangeMessageVisibility", {"QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"],
                                         "VisibilityTimeout": 0})
    [again] = query_messages(query.ok("ReceiveMessage", {"QueueUrl": url, "WaitTimeSeconds": 1}))
    assert again["MessageId"] == m["MessageId"]
    query.ok("PurgeQueue", {"QueueUrl": url})


def test_tags(sqs, query):
    url = create(sqs, query)
    query.ok("TagQueue", {"QueueUrl": url, "Tag.1.Key": "team", "Tag.1.Value": "core",
                          "Tag.2.Key": "env", "Tag.2.Value": "test"})
    r = query.ok("ListQueueTags", {"QueueUrl": url})
    assert r.pairs("Tag", "Key", "Value") == {"team": "core", "env": "test"}
    query.ok("UntagQueue", {"QueueUrl": url, "TagKey.1": "team"})
    assert query.ok("ListQueueTags", {"QueueUrl": url}).pairs("Tag", "Key", "Value") == {
        "env": "test"}


def test_json_and_query_share_messages(sqs, query):
    url = create(sqs, query)
    query.ok("SendMessage", {"QueueUrl": url, "MessageBody": "query to json",
                             **flat_message_attributes({"k": ATTRS["color"]})})
    m = sqsutil.receive_one(sqs.client, url, MessageAttributeNames=["All"])
    assert m["Body"] == "query to json"
    assert m["MessageAttributes"] == {"k": ATTRS["color"]}
    sqs.send(url, "json to query")
    got = query_messages(query.ok("ReceiveMessage", {"QueueUrl": url, "WaitTimeSeconds": 1}))
    assert [x["Body"] for x in got] == ["json to query"]


# ---------------------------------------------------------------------------------
# Errors


def test_nonexistent_queue_error_xml(sqs, query):
    r = query.call("GetQueueUrl", {"QueueName": qname("missing")})
    assert r.status == 400
    assert r.root_name == "ErrorResponse" and r.namespace == sqsutil.XML_NS, r.text
    assert r.error["Type"] == "Sender"
    assert r.error["Code"] == NONEXISTENT
    assert r.error["Message"].startswith("The specified queue does not exist")
    assert r.value("RequestId")
    assert r.headers["content-type"].startswith(("text/xml", "application/xml"))


def test_deleted_queue_error_xml(sqs, query):
    url = create(sqs, query)
    sqs.client.delete_queue(QueueUrl=url)
    sqsutil.wait_for(lambda: query.call("GetQueueAttributes", {
        "QueueUrl": url, "AttributeName.1": "QueueArn"}).status == 400, what="deletion")
    r = query.call("SendMessage", {"QueueUrl": url, "MessageBody": "x"})
    assert r.status == 400 and r.error["Code"] == NONEXISTENT


def test_invalid_attribute_name_error_xml(sqs, query):
    url = create(sqs, query)
    r = query.call("GetQueueAttributes", {"QueueUrl": url, "AttributeName.1": "Foobar"})
    assert r.status == 400
    assert r.error["Type"] == "Sender" and r.error["Code"] == "InvalidAttributeName"


def test_batch_error_xml(sqs, query):
    url = create(sqs, query)
    entries = {}
    for i in range(11):
        entries[f"SendMessageBatchRequestEntry.{i + 1}.Id"] = f"e{i}"
        entries[f"SendMessageBatchRequestEntry.{i + 1}.MessageBody"] = "x"
    r = query.call("SendMessageBatch", {"QueueUrl": url, **entries})
    assert r.status == 400
    assert r.error["Code"] == "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"


def test_queue_already_exists_error_xml(sqs, query):
    name = qname()
    create(sqs, query, name, VisibilityTimeout=5)
    r = query.call("CreateQueue", {"QueueName": name, **flat_attributes({"VisibilityTimeout": 6})})
    assert r.status == 400 and r.error["Code"] == "QueueAlreadyExists"


@requires_switchboard_sqs("moto answers an unknown Action with HTTP 500")
def test_unknown_action_error_xml(sqs, query):
    url = create(sqs, query)
    r = query.call("FooBar", {"QueueUrl": url})
    assert r.status == 400
    assert r.error["Type"] == "Sender" and r.error["Code"] == "InvalidAction", r.text


@requires_switchboard_sqs("moto answers a missing MessageBody with HTTP 500")
def test_missing_parameter_error_xml(sqs, query):
    url = create(sqs, query)
    r = query.call("SendMessage", {"QueueUrl": url})
    assert r.status == 400
    assert r.error["Code"] == "MissingParameter", r.text
    assert "MessageBody" in r.error["Message"]
