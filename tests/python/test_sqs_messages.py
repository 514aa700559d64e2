"""SQS messages over the AWS JSON protocol (boto3): SendMessage (MD5s, attributes,
delays, size and character limits), SendMessageBatch, and what ReceiveMessage
returns (parameter validation, system and message attribute selection)."""

from __future__ import annotations

import time
import uuid

import pytest

import sqsutil
from sqsutil import check_md5s, expect_error, md5_hex, md5_of_message_attributes, receive_one
from sqsutil import requires_switchboard_sqs

MiB = 1_048_576
ATTRS = {
    "color": {"DataType": "String", "StringValue": "red"},
    "n": {"DataType": "Number", "StringValue": "42"},
    "raw": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xfe\xff"},
    "price": {"DataType": "Number.float", "StringValue": "1.50"},
    "label": {"DataType": "String.custom", "StringValue": "h\u00e9llo \u2603"},
}


# ---------------------------------------------------------------------------------
# MD5 digests


def test_md5_implementation_matches_published_vectors():
    """sqsutil's digest of message attributes (an independent implementation of AWS's
    algorithm) against vectors from AWS answers and the aws-md5-of-message-attributes
    package, so that the broker tests below check the broker, not the helper."""
    assert md5_hex("hello") == "5d41402abc4b2a76b9719d911017c592"
    vectors = [
        ({"color": {"DataType": "String", "StringValue": "red"}},
         "20ca9041878c8c65d5a4bf6eaf446c21"),
        ({"attribName1": {"DataType": "String", "StringValue": "attribValue 1"}},
         "19e27d4e946b072f3f58da80d94fd778"),
        ({"customNumberTypeAttrib": {"DataType": "Number.float",
                                     "StringValue": "4563442423554324324264524243.32543234"}},
         "9fe1b90bbd9965bdf77bac517c7d2495"),
        ({"binaryAttribute": {"DataType": "Binary", "BinaryValue": b"Hello binary world!"}},
         "31a92b15d92f8db860eda32aceb656c3"),
    ]
    for attrs, digest in vectors:
        assert md5_of_message_attributes(attrs) == digest
    merged = {k: v for attrs, _ in vectors[1:] for k, v in attrs.items()}
    assert md5_of_message_attributes(merged) == "c932db14a896c663f83c260297d594ff"


def test_send_returns_md5_of_body_and_a_message_id(sqs):
    url = sqs.queue()
    r = sqs.send(url, "hello")
    assert r["MD5OfMessageBody"] == "5d41402abc4b2a76b9719d911017c592"
    assert "MD5OfMessageAttributes" not in r
    uuid.UUID(r["MessageId"])  # AWS message ids are UUIDs
    m = receive_one(sqs.client, url)
    assert m["MessageId"] == r["MessageId"]
    assert m["Body"] == "hello"
    check_md5s(m)


def test_md5_of_a_string_attribute_matches_known_vector(sqs):
    url = sqs.queue()
    r = sqs.send(url, "hello", MessageAttributes={"color": ATTRS["color"]})
    assert r["MD5OfMessageAttributes"] == "20ca9041878c8c65d5a4bf6eaf446c21"


def test_attributes_of_every_type_round_trip_with_md5s(sqs):
    url = sqs.queue()
    r = sqs.send(url, "typed", MessageAttributes=ATTRS)
    assert r["MD5OfMessageAttributes"] == md5_of_message_attributes(ATTRS)
    m = receive_one(sqs.client, url, MessageAttributeNames=["All"])
    assert m["MessageAttributes"] == ATTRS
    assert m["MD5OfMessageAttributes"] == r["MD5OfMessageAttributes"]
    check_md5s(m)


def test_number_attributes_round_trip_exactly(sqs):
    """Number values are strings on the wire: "1.50" stays "1.50" (not 1.5), and a custom
    type label such as Number.float is kept."""
    url = sqs.queue()
    attrs = {"price": {"DataType": "Number.float", "StringValue": "1.50"},
             "big": {"DataType": "Number", "StringValue": "12345678901234567890.000"},
             "neg": {"DataType": "Number", "StringValue": "-0.0"}}
    r = sqs.send(url, "exact", MessageAttributes=attrs)
    m = receive_one(sqs.client, url, MessageAttributeNames=["All"])
    assert m["MessageAttributes"] == attrs
    assert m["MD5OfMessageAttributes"] == r["MD5OfMessageAttributes"]


@pytest.mark.parametrize("body", [
    "plain ascii",
    "tabs\tnew\nlines\r\nand carriage returns",
    "unicode: h\u00e9llo \u4e16\u754c \U0001f600 \ue000 \ufffd \U0010ffff",
    '{"json": [1, 2, {"x": null}], "xml": "<a b=\'c\'>&amp;</a>"}',
    " leading and trailing spaces ",
], ids=["ascii", "whitespace", "unicode", "json-xml", "spaces"])
def test_bodies_round_trip_exactly(sqs, body):
    url = sqs.queue()
    r = sqs.send(url, body)
    assert r["MD5OfMessageBody"] == md5_hex(body)
    m = receive_one(sqs.client, url)
    assert m["Body"] == body
    check_md5s(m)


@requires_switchboard_sqs("moto accepts any character in a body; AWS allows only #x9 #xA #xD "
                          "#x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF")
@pytest.mark.parametrize("bad", ["\x00", "\x08", "\x1f", "\ufffe", "\uffff"],
                         ids=["nul", "backspace", "unit-sep", "fffe", "ffff"])
def test_invalid_characters_are_refused(sqs, bad):
    url = sqs.queue()
    expect_error("InvalidMessageContents", sqs.client.send_message, QueueUrl=url,
                 MessageBody=f"before{bad}after", status=400)
    assert sqsutil.stays_empty(sqs.client, url, window=0.2)


# ---------------------------------------------------------------------------------
# Sizes


def test_body_of_exactly_the_default_maximum_is_accepted(sqs):
    url = sqs.queue()
    body = "x" * MiB
    r = sqs.send(url, body)
    assert r["MD5OfMessageBody"] == md5_hex(body)
    m = receive_one(sqs.client, url)
    assert len(m["Body"]) == MiB and m["MD5OfBody"] == md5_hex(body)


def test_body_over_the_default_maximum_is_refused(sqs):
    url = sqs.queue()
    expect_error("InvalidParameterValue", sqs.client.send_message, QueueUrl=url,
                 MessageBody="x" * (MiB + 1), status=400)


@requires_switchboard_sqs("moto counts characters, not UTF-8 bytes, and ignores attributes "
                          "when checking the size limit")
@pytest.mark.parametrize("case", ["multibyte", "with-attributes"])
def test_size_limit_counts_utf8_bytes_and_attributes(sqs, case):
    url = sqs.queue()
    if case == "multibyte":
        kw = {"MessageBody": "\u00e9" * (MiB // 2 + 1)}  # 2 bytes each: 1 MiB + 2 bytes
    else:
        kw = {"MessageBody": "x" * (MiB - 10),
              "MessageAttributes": {"pad": {"DataType": "String", "StringValue": "y" * 100}}}
    expect_error("InvalidParameterValue", sqs.client.send_message, QueueUrl=url, **kw)


def test_maximum_message_size_attribute_lowers_the_limit(sqs):
    url = sqs.queue(MaximumMessageSize=1024)
    sqs.send(url, "x" * 1024)
    expect_error("InvalidParameterValue", sqs.client.send_message, QueueUrl=url,
                 MessageBody="x" * 1025)
    sqs.client.set_queue_attributes(QueueUrl=url, Attributes={"MaximumMessageSize": "2048"})
    sqs.send(url, "x" * 2000)


# ---------------------------------------------------------------------------------
# Message attributes


def test_ten_message_attributes_are_accepted(sqs):
    url = sqs.queue()
    attrs = {f"a{i}": {"DataType": "String", "StringValue": str(i)} for i in range(10)}
    r = sqs.send(url, "ten", MessageAttributes=attrs)
    assert r["MD5OfMessageAttributes"] == md5_of_message_attributes(attrs)
    assert receive_one(sqs.client, url, MessageAttributeNames=["All"])["MessageAttributes"] == attrs


@requires_switchboard_sqs("moto accepts more than 10 message attributes")
def test_more_than_ten_message_attributes_are_refused(sqs):
    url = sqs.queue()
    attrs = {f"a{i}": {"DataType": "String", "StringValue": str(i)} for i in range(11)}
    expect_error("InvalidParameterValue", sqs.client.send_message, QueueUrl=url,
                 MessageBody="eleven", MessageAttributes=attrs, status=400)


def test_attribute_with_unknown_type_is_refused(sqs):
    url = sqs.queue()
    expect_error("InvalidParameterValue", sqs.client.send_message, QueueUrl=url, MessageBody="x",
                 MessageAttributes={"t": {"DataType": "Foo", "StringValue": "v"}})


def test_attribute_name_with_invalid_character_is_refused(sqs):
    url = sqs.queue()
    expect_error("InvalidParameterValue", sqs.client.send_message, QueueUrl=url, MessageBody="x",
                 MessageAttributes={"a b": {"DataType": "String", "StringValue": "v"}})


@requires_switchboard_sqs("moto does not check reserved prefixes, periods, Number values or "
                          "empty values in message attributes")
@pytest.mark.parametrize("name,attr", [
    ("AWS.x", {"DataType": "String", "StringValue": "v"}),
    ("amazon.x", {"DataType": "String", "StringValue": "v"}),
    (".lead", {"DataType": "String", "StringValue": "v"}),
    ("trail.", {"DataType": "String", "StringValue": "v"}),
    ("two..dots", {"DataType": "String", "StringValue": "v"}),
    ("n", {"DataType": "Number", "StringValue": "forty-two"}),
    ("e", {"DataType": "String", "StringValue": ""}),
], ids=["aws-prefix", "amazon-prefix", "leading-dot", "trailing-dot", "double-dot", "nan",
        "empty-value"])
def test_invalid_message_attributes_are_refused(sqs, name, attr):
    url = sqs.queue()
    expect_error("InvalidParameterValue", sqs.client.send_message, QueueUrl=url, MessageBody="x",
                 MessageAttributes={name: attr})


# ---------------------------------------------------------------------------------
# Delays


def test_per_message_delay(sqs):
    url = sqs.queue()
    t0 = time.monotonic()
    sqs.send(url, "delayed", DelaySeconds=2)
    assert sqsutil.stays_empty(sqs.client, url, window=1.0)
    assert sqs.attrs(url, "ApproximateNumberOfMessagesDelayed") == {
        "ApproximateNumberOfMessagesDelayed": "1"}
    m = receive_one(sqs.client, url, timeout=5)
    assert m["Body"] == "delayed"
    assert time.monotonic() - t0 >= 1.8


def test_queue_delay_applies_unless_the_message_overrides_it(sqs):
    url = sqs.queue(DelaySeconds=1)
    t0 = time.monotonic()
    sqs.send(url, "queue-delay")
    sqs.send(url, "no-delay", DelaySeconds=0)
    first = receive_one(sqs.client, url, timeout=0.5)
    assert first["Body"] == "no-delay"
    assert sqsutil.stays_empty(sqs.client, url, window=0.4)
    m = receive_one(sqs.client, url, timeout=5)
    assert m["Body"] == "queue-delay"
    assert time.monotonic() - t0 >= 0.8


def test_delay_over_900_seconds_is_refused(sqs):
    url = sqs.queue()
    expect_error("InvalidParameterValue", sqs.client.send_message, QueueUrl=url,
                 MessageBody="x", DelaySeconds=901)


# ---------------------------------------------------------------------------------
# SendMessageBatch


def test_send_batch_of_ten(sqs):
    url = sqs.queue()
    entries = [{"Id": f"m-{i}_x", "MessageBody": f"body {i}"} for i in range(10)]
    entries[3]["MessageAttributes"] = {"color": ATTRS["color"]}
    r = sqs.client.send_message_batch(QueueUrl=url, Entries=entries)
    assert r.get("Failed", []) == []
    ok = {e["Id"]: e for e in r["Successful"]}
    assert set(ok) == {e["Id"] for e in entries}
    for e in entries:
        assert ok[e["Id"]]["MD5OfMessageBody"] == md5_hex(e["MessageBody"])
    assert ok["m-3_x"]["MD5OfMessageAttributes"] == "20ca9041878c8c65d5a4bf6eaf446c21"
    got = sqsutil.receive_n(sqs.client, url, 10)
    assert sorted(m["Body"] for m in got) == sorted(e["MessageBody"] for e in entries)
    assert {m["MessageId"] for m in got} == {s["MessageId"] for s in r["Successful"]}


def test_batch_of_eleven_is_refused(sqs):
    url = sqs.queue()
    expect_error("AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
                 sqs.client.send_message_batch, QueueUrl=url,
                 Entries=[{"Id": str(i), "MessageBody": "x"} for i in range(11)], status=400)
    assert sqsutil.stays_empty(sqs.client, url, window=0.2)


def test_empty_batch_is_refused(sqs):
    url = sqs.queue()
    e = expect_error("AWS.SimpleQueueService.EmptyBatchRequest", sqs.client.send_message_batch,
                     QueueUrl=url, Entries=[], status=400)
    assert sqsutil.query_error_header(e) == "AWS.SimpleQueueService.EmptyBatchRequest;Sender"


def test_duplicate_batch_ids_are_refused(sqs):
    url = sqs.queue()
    expect_error("AWS.SimpleQueueService.BatchEntryIdsNotDistinct", sqs.client.send_message_batch,
                 QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "1"},
                                        {"Id": "a", "MessageBody": "2"}])
    assert sqsutil.stays_empty(sqs.client, url, window=0.2)


@pytest.mark.parametrize("bad_id", ["a.b", "a b", "x" * 81, "a/b"],
                         ids=["dot", "space", "81-chars", "slash"])
def test_invalid_batch_ids_are_refused(sqs, bad_id):
    url = sqs.queue()
    expect_error("AWS.SimpleQueueService.InvalidBatchEntryId", sqs.client.send_message_batch,
                 QueueUrl=url, Entries=[{"Id": "ok", "MessageBody": "1"},
                                        {"Id": bad_id, "MessageBody": "2"}])


def test_batch_over_one_mebibyte_in_total_is_refused(sqs):
    url = sqs.queue()
    expect_error("AWS.SimpleQueueService.BatchRequestTooLong", sqs.client.send_message_batch,
                 QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "x" * 600_000},
                                        {"Id": "b", "MessageBody": "y" * 600_000}])


def test_batch_partial_failure_on_an_invalid_delay(sqs):
    url = sqs.queue()
    r = sqs.client.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "good1", "MessageBody": "one"},
        {"Id": "bad", "MessageBody": "two", "DelaySeconds": 1800},
        {"Id": "good2", "MessageBody": "three"}])
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert sorted(s["Id"] for s in r["Successful"]) == ["good1", "good2"]
    [f] = r["Failed"]
    assert f["Id"] == "bad" and f["SenderFault"] is True
    assert f["Code"] == "InvalidParameterValue"
    got = sqsutil.receive_n(sqs.client, url, 2)
    assert sorted(m["Body"] for m in got) == ["one", "three"]


@requires_switchboard_sqs("moto accepts invalid characters in a body")
def test_batch_partial_failure_on_an_invalid_body(sqs):
    url = sqs.queue()
    r = sqs.client.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "good", "MessageBody": "fine"},
        {"Id": "bad", "MessageBody": "nul \x00 inside"}])
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert [s["Id"] for s in r["Successful"]] == ["good"]
    [f] = r["Failed"]
    assert (f["Id"], f["SenderFault"], f["Code"]) == ("bad", True, "InvalidMessageContents")
    assert [m["Body"] for m in sqsutil.receive_n(sqs.client, url, 2, timeout=1)] == ["fine"]


# ---------------------------------------------------------------------------------
# ReceiveMessage parameters


@pytest.mark.parametrize("kw", [{"MaxNumberOfMessages": 0}, {"MaxNumberOfMessages": 11},
                                {"WaitTimeSeconds": 21}, {"WaitTimeSeconds": -1},
                                {"VisibilityTimeout": 43201}],
                         ids=["max-0", "max-11", "wait-21", "wait-neg", "vt-43201"])
def test_receive_parameter_out_of_range_is_refused(sqs, kw):
    url = sqs.queue()
    expect_error("InvalidParameterValue", sqs.client.receive_message, QueueUrl=url, **kw,
                 status=400)


def test_receive_returns_at_most_max_number_of_messages(sqs):
    url = sqs.queue()
    for i in range(5):
        sqs.send(url, f"m{i}")
    # the default MaxNumberOfMessages is 1 (long polling, so that one is sure to come)
    seen = sqs.client.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
    assert len(seen) == 1
    deadline = time.monotonic() + 5
    while len(seen) < 5 and time.monotonic() < deadline:
        batch = sqsutil.receive(sqs.client, url, n=3, wait=1)
        assert len(batch) <= 3
        seen += batch
    assert sorted(m["Body"] for m in seen) == [f"m{i}" for i in range(5)]


def test_receive_on_empty_queue_returns_no_messages(sqs):
    url = sqs.queue()
    r = sqs.client.receive_message(QueueUrl=url)
    assert r.get("Messages", []) == []


def test_system_attributes_all(sqs):
    url = sqs.queue()
    t0 = int(time.time() * 1000)
    sqs.send(url, "sys")
    m = receive_one(sqs.client, url, MessageSystemAttributeNames=["All"])
    t1 = int(time.time() * 1000)
    a = m["Attributes"]
    assert {"SenderId", "SentTimestamp", "ApproximateReceiveCount",
            "ApproximateFirstReceiveTimestamp"} <= set(a), a
    assert not {"MessageGroupId", "MessageDeduplicationId", "SequenceNumber"} & set(a), a
    assert a["ApproximateReceiveCount"] == "1"
    assert a["SenderId"]
    assert t0 - 2000 <= int(a["SentTimestamp"]) <= t1 + 2000
    assert int(a["SentTimestamp"]) <= int(a["ApproximateFirstReceiveTimestamp"]) <= t1 + 2000


@pytest.mark.parametrize("param", ["MessageSystemAttributeNames", "AttributeNames"])
def test_system_attributes_by_name(sqs, param):
    url = sqs.queue()
    sqs.send(url, "sys")
    m = receive_one(sqs.client, url, **{param: ["SentTimestamp", "ApproximateReceiveCount"]})
    assert set(m["Attributes"]) == {"SentTimestamp", "ApproximateReceiveCount"}


def test_no_system_attributes_unless_asked(sqs):
    url = sqs.queue()
    sqs.send(url, "plain")
    assert "Attributes" not in receive_one(sqs.client, url)


NAMED = {
    "foo.a": {"DataType": "String", "StringValue": "1"},
    "foo.b": {"DataType": "Number", "StringValue": "2"},
    "other": {"DataType": "Binary", "BinaryValue": b"3"},
}


@pytest.mark.parametrize("names,expected", [
    (None, []),
    (["All"], ["foo.a", "foo.b", "other"]),
    ([".*"], ["foo.a", "foo.b", "other"]),
    (["foo.*"], ["foo.a", "foo.b"]),
    (["other"], ["other"]),
    (["foo.b", "other"], ["foo.b", "other"]),
    (["absent"], []),
], ids=["none", "All", "dot-star", "prefix", "one", "two", "absent"])
def test_message_attribute_selection(sqs, names, expected):
    url = sqs.queue()
    sqs.send(url, "sel", MessageAttributes=NAMED)
    kw = {"MessageAttributeNames": names} if names is not None else {}
    m = receive_one(sqs.client, url, **kw)
    assert sorted(m.get("MessageAttributes", {})) == expected
    check_md5s(m)  # the digest covers the returned attributes only


@pytest.mark.parametrize("selector,expected", [
    pytest.param(["*"], {"Hello", "Help.Me", "Other"}, marks=requires_switchboard_sqs(
        "moto selects nothing with '*'; AWS selects every attribute")),
    ([".*"], {"Hello", "Help.Me", "Other"}),
    (["All"], {"Hello", "Help.Me", "Other"}),
    (["Hel.*"], {"Hello", "Help.Me"}),
    (["Other"], {"Other"}),
])
def test_message_attribute_names_select_by_wildcard_and_prefix(sqs, selector, expected):
    url = sqs.queue()
    attrs = {n: {"DataType": "String", "StringValue": n} for n in ("Hello", "Help.Me", "Other")}
    sqs.client.send_message(QueueUrl=url, MessageBody="b", MessageAttributes=attrs)
    m = receive_one(sqs.client, url, MessageAttributeNames=selector)
    assert set(m.get("MessageAttributes", {})) == expected


def test_batch_size_is_checked_before_any_entry(sqs):
    """One entry of 1 MiB + 1 byte: the whole request is too long (400
    BatchRequestTooLong), not a failed entry beside a sent one."""
    url = sqs.queue()
    e = expect_error("AWS.SimpleQueueService.BatchRequestTooLong", sqs.client.send_message_batch,
                     QueueUrl=url, Entries=[{"Id": "big", "MessageBody": "x" * 1048577},
                                            {"Id": "small", "MessageBody": "y"}])
    assert e.response["Error"]["Message"] == (
        "Batch requests cannot be longer than 1048576 bytes. You have sent 1048578 bytes.")
    assert sqsutil.stays_empty(sqs.client, url, window=0.2)


def test_standard_queue_returns_the_message_group_id(sqs):
    """Fair queues (2025): a standard queue accepts a MessageGroupId and returns it
    as a system attribute (no deduplication id, no sequence number)."""
    url = sqs.queue()
    sqs.client.send_message(QueueUrl=url, MessageBody="tenant a", MessageGroupId="tenant-a")
    m = receive_one(sqs.client, url, MessageSystemAttributeNames=["All"])
    assert m["Attributes"]["MessageGroupId"] == "tenant-a"
    assert not {"MessageDeduplicationId", "SequenceNumber"} & set(m["Attributes"])
