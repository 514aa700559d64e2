#!/usr/bin/env python3
"""Known answers for the SQS Query protocol translation (bridge/src/sqs/query.rs),
made and checked with botocore's own serializers and parsers. Not run by cargo.

    python3 bridge/tests/query/botocore_roundtrip.py gen
        Rewrites in/*.form + in/*.json (requests) and out/*.json (replies) beside
        this file. Each in/NAME.form is the exact form body botocore's
        QuerySerializer sends for some parameters, and in/NAME.json is the body its
        JSONSerializer sends for the same parameters: query.rs must turn the first
        into the second. out/*.json are JSON protocol replies for query.rs to render
        (their checked renderings, out/*.xml, go too: re-bless them as below).

    cargo test -p switchboard-bridge --lib -- --ignored write_query_samples
    python3 bridge/tests/query/botocore_roundtrip.py check [--bless] [target/query-samples]
        Parses every rendered NAME.xml with botocore's QueryParser and NAME.json
        (the reply it was rendered from) with botocore's JSONParser, and requires
        the same result: what an SDK on either protocol would hand its caller.
        With --bless, and only if all pass, copies the checked replies to out/NAME.xml,
        which a cargo test then holds query.rs to.

Models: the installed botocore (1.43.11 here) describes SQS with the JSON protocol only and
no longer carries the Query names (`locationName`: Attribute, MessageAttribute, Tag,
SendMessageBatchRequestEntry, ...), so the Query side uses a botocore model from when
SQS still spoke Query (botocore 1.34.22, stripped of its documentation):
sqs-2012-11-05.query-model.json beside this file. The JSON side uses the installed
botocore's own model. The two have the same members except ReceiveMessage's
MessageSystemAttributeNames (added after SQS moved to JSON); AWS's Smithy model gives
it the Query name `AttributeName`, the same as the older AttributeNames, so the
generated cases leave it out.
"""

import base64
import json
import pathlib
import sys

import botocore.loaders
import botocore.model
import botocore.parsers
import botocore.serialize
from botocore.awsrequest import AWSRequest

HERE = pathlib.Path(__file__).resolve().parent
QUERY_MODEL = botocore.model.ServiceModel(
    json.loads((HERE / "sqs-2012-11-05.query-model.json").read_text()), "sqs"
)
JSON_MODEL = botocore.model.ServiceModel(
    botocore.loaders.Loader().load_service_model("sqs", "service-2"), "sqs"
)

# Text that breaks naive form or XML handling: markup, entities, CDATA ends, CR (an
# XML parser turns a literal CR into LF), form delimiters, non-ASCII.
TRICKY = " <&>\"' ]]> +%=&;#? é ✓ 🦀\r\n\t\r."


def fill(shape, name, counter):
    """A value for every member of `shape`, each one different."""
    counter[0] += 1
    n = counter[0]
    t = shape.type_name
    if t == "structure":
        return {m: fill(s, m, counter) for m, s in shape.members.items()}
    if t == "list":
        return [fill(shape.member, name, counter) for _ in range(2)]
    if t == "map":
        return {
            f"{name}.k{n}-{i}&=": fill(shape.value, name, counter) for i in range(2)
        }
    if t in ("integer", "long"):
        return n * 1000003 if t == "long" else n
    if t == "boolean":
        return n % 2 == 0
    if t == "blob":
        return bytes((n * 37 + i) % 256 for i in range(40))
    return f"{name}-{n}{TRICKY}"


def attr(data_type, value):
    key = "BinaryValue" if data_type.startswith("Binary") else "StringValue"
    return {"DataType": data_type, key: value}


QUEUE = "http://127.0.0.1:9324/123456789012/orders"

# Requests a client really sends, beside the generated all-members ones.
REQUESTS = {
    "SendMessage--capture": {
        "QueueUrl": "http://127.0.0.1:5001/123456789012/orders",
        "MessageBody": "hello",
        "MessageAttributes": {"color": attr("String", "red")},
    },
    "SendMessage--fifo-binary": {
        "QueueUrl": QUEUE + ".fifo",
        "MessageBody": "line1\r\nline2 <x>&amp; ]]> 100% + more = 🦀",
        "DelaySeconds": 0,
        "MessageAttributes": {
            "img": attr("Binary", bytes(range(256))),
            "n": attr("Number", "-1.5e3"),
            "a.b-c_d": attr("String.custom", "x=1&y=2"),
        },
        "MessageSystemAttributes": {
            "AWSTraceHeader": attr("String", "Root=1-5759e988-bd862e3fe1be46a994272793")
        },
        "MessageDeduplicationId": "dedup-1",
        "MessageGroupId": "group-1",
    },
    "SendMessageBatch--twelve": {
        "QueueUrl": QUEUE,
        "Entries": [
            {
                "Id": f"m{i}",
                "MessageBody": f"body {i}",
                **({"DelaySeconds": i} if i % 3 == 0 else {}),
                **(
                    {
                        "MessageAttributes": {
                            f"k{j}": attr("Number", str(j)) for j in range(1, 13)
                        }
                    }
                    if i == 1
                    else {}
                ),
            }
            for i in range(1, 13)
        ],
    },
    "ReceiveMessage--all": {
        "QueueUrl": QUEUE,
        "AttributeNames": ["All"],
        "MessageAttributeNames": ["All"],
        "MaxNumberOfMessages": 10,
        "VisibilityTimeout": 0,
        "WaitTimeSeconds": 20,
    },
    "ReceiveMessage--capture": {
        "QueueUrl": "http://127.0.0.1:5001/123456789012/orders",
        "AttributeNames": ["ApproximateReceiveCount"],
        "MessageAttributeNames": ["All"],
    },
    "GetQueueAttributes--twelve": {
        "QueueUrl": QUEUE,
        "AttributeNames": [
            "VisibilityTimeout", "MaximumMessageSize", "MessageRetentionPeriod",
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
            "CreatedTimestamp", "LastModifiedTimestamp", "QueueArn",
            "ApproximateNumberOfMessagesDelayed", "DelaySeconds",
            "ReceiveMessageWaitTimeSeconds", "RedrivePolicy",
        ],
    },
    "CreateQueue--fifo": {
        "QueueName": "orders.fifo",
        "Attributes": {
            "FifoQueue": "true",
            "ContentBasedDeduplication": "true",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:dlq", "maxReceiveCount": "5"}
            ),
        },
        "tags": {"team": "payments", "cost-center": "42"},
    },
    "ListQueues--none": {},
    "ListQueues--prefix": {"QueueNamePrefix": "ord", "MaxResults": 1000},
    "GetQueueUrl--capture": {"QueueName": "nope"},
    "ChangeMessageVisibility--zero": {
        "QueueUrl": QUEUE,
        "ReceiptHandle": "AQEB+/=handle",
        "VisibilityTimeout": 0,
    },
    "UntagQueue--one": {"QueueUrl": QUEUE, "TagKeys": ["team"]},
}


def query_body(op_name, params):
    op = QUERY_MODEL.operation_model(op_name)
    req = botocore.serialize.QuerySerializer().serialize_to_request(params, op)
    # AWSRequest.prepare() is what turns the dict into the bytes botocore sends.
    return AWSRequest(method="POST", url="http://localhost/", data=req["body"]).prepare().body


def json_body(op_name, params):
    op = JSON_MODEL.operation_model(op_name)
    req = botocore.serialize.JSONSerializer().serialize_to_request(params, op)
    return json.loads(req["body"] or b"{}")


def write_json(path, value):
    path.write_text(json.dumps(value, indent=1, ensure_ascii=False, sort_keys=True) + "\n")


def gen():
    inputs, outputs = HERE / "in", HERE / "out"
    for d in (inputs, outputs):
        d.mkdir(exist_ok=True)
        for f in d.iterdir():
            f.unlink()
    requests = dict(REQUESTS)
    for op_name in QUERY_MODEL.operation_names:
        shape = QUERY_MODEL.operation_model(op_name).input_shape
        requests[f"{op_name}--all-members"] = fill(shape, op_name, [0])
    for name, params in sorted(requests.items()):
        op_name = name.split("--")[0]
        body = query_body(op_name, params)
        (inputs / f"{name}.form").write_text(body)
        write_json(inputs / f"{name}.json", json_body(op_name, params))

    replies = {
        "SendMessage--capture": {
            "MD5OfMessageBody": "5d41402abc4b2a76b9719d911017c592",
            "MD5OfMessageAttributes": "20ca9041878c8c65d5a4bf6eaf446c21",
            "MessageId": "3b5bfbb6-3d17-4327-b8ef-3041c4d10bb7",
        },
        "ReceiveMessage--capture": {
            "Messages": [
                {
                    "MessageId": "3b5bfbb6-3d17-4327-b8ef-3041c4d10bb7",
                    "ReceiptHandle": "pjuxgatnluqxmrybkswhmrtlwbwrvbghdbznmhzgiygvcnlwgytdpjhkwzjfzgcjwxlijhupgpwdqdlwsowdaizxixtfkcyflaxydrywrmqnllkswoqxeyugethvknibfvrabfnwmluhjchrinkgxkyosqcvcpvxalmlljzwsybhuhtapyxgkbdbz",
                    "MD5OfBody": "5d41402abc4b2a76b9719d911017c592",
                    "Body": "hello",
                    "Attributes": {"ApproximateReceiveCount": "1"},
                    "MD5OfMessageAttributes": "20ca9041878c8c65d5a4bf6eaf446c21",
                    "MessageAttributes": {"color": {"StringValue": "red", "DataType": "String"}},
                }
            ]
        },
        "ReceiveMessage--none": {},
        "ReceiveMessage--empty-list": {"Messages": []},
        "ReceiveMessage--binary": {
            "Messages": [
                {
                    "MessageId": "m-1",
                    "ReceiptHandle": "AQEB+/=",
                    "MD5OfBody": "0" * 32,
                    "Body": "a\r\nb\rc]]><![CDATA[x]]>&amp;",
                    "Attributes": {"SentTimestamp": "1764090863000", "SenderId": "AIDA"},
                    "MessageAttributes": {
                        "img": {"DataType": "Binary", "BinaryValue": base64.b64encode(bytes(range(256))).decode()},
                        "n": {"DataType": "Number", "StringValue": "42"},
                    },
                }
            ]
        },
        "SendMessageBatch--mixed": {
            "Successful": [{"Id": "a", "MessageId": "m-a", "MD5OfMessageBody": "1" * 32}],
            "Failed": [
                {"Id": "b", "SenderFault": True, "Code": "InvalidParameterValue", "Message": "Value <x> is bad"},
                {"Id": "c", "SenderFault": False, "Code": "InternalError"},
            ],
        },
        "ListQueues--none": {},
        "ListDeadLetterSourceQueues--empty": {"queueUrls": []},
    }
    for op_name in JSON_MODEL.operation_names:
        shape = JSON_MODEL.operation_model(op_name).output_shape
        replies[f"{op_name}--all-members"] = fill(shape, op_name, [0]) if shape else {}
    for name, value in sorted(replies.items()):
        # The JSON protocol's bytes for this reply: blobs become base64 text.
        op = JSON_MODEL.operation_model(name.split("--")[0])
        write_json(outputs / f"{name}.json", to_json_wire(op.output_shape, value))
    print(f"{len(requests)} requests, {len(replies)} replies")


def to_json_wire(shape, value):
    if shape is None:
        return value
    t = shape.type_name
    if t == "structure":
        return {k: to_json_wire(shape.members[k], v) for k, v in value.items()}
    if t == "list":
        return [to_json_wire(shape.member, v) for v in value]
    if t == "map":
        return {k: to_json_wire(shape.value, v) for k, v in value.items()}
    if t == "blob" and isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def prune(v):
    if isinstance(v, dict):
        pruned = {k: prune(x) for k, x in v.items()}
        return {k: x for k, x in pruned.items() if x not in ([], {}, None)}
    if isinstance(v, list):
        return [prune(x) for x in v]
    return v


def check(samples, bless):
    samples = pathlib.Path(samples)
    xmls = sorted(samples.glob("*.xml"))
    if not xmls:
        sys.exit(f"no samples in {samples}: run the write_query_samples test first")
    failures = 0
    for xml in xmls:
        name = xml.stem
        expected = json.loads(xml.with_suffix(".json").read_text())
        body = xml.read_bytes()
        if name.startswith("error--"):
            got = botocore.parsers.QueryParser().parse(
                {"body": body, "headers": {}, "status_code": 400}, None
            )
            want = {"Error": expected["Error"], "ResponseMetadata": {"RequestId": expected["RequestId"]}}
        else:
            op_name = name.split("--")[0]
            query_op = QUERY_MODEL.operation_model(op_name)
            got = botocore.parsers.QueryParser().parse(
                {"body": body, "headers": {}, "status_code": 200}, query_op.output_shape
            )
            want = botocore.parsers.JSONParser().parse(
                {"body": json.dumps(expected["output"]).encode(), "headers": {}, "status_code": 200},
                JSON_MODEL.operation_model(op_name).output_shape,
            )
            want.pop("ResponseMetadata", None)
            want["ResponseMetadata"] = {"RequestId": expected["RequestId"]}
        got.get("ResponseMetadata", {}).pop("HTTPStatusCode", None)
        got.get("ResponseMetadata", {}).pop("HTTPHeaders", None)
        # Query has no way to say "empty list" or "empty map": AWS leaves them out.
        got, want = prune(got), prune(want)
        if got != want:
            failures += 1
            print(f"FAIL {name}\n  query parser: {got!r}\n  json parser:  {want!r}")
    print(f"{len(xmls) - failures} passed, {failures} failed")
    if failures:
        sys.exit(1)
    if bless:
        for xml in xmls:
            if not xml.stem.startswith("error--"):
                (HERE / "out" / xml.name).write_bytes(xml.read_bytes())
        print(f"blessed into {HERE / 'out'}")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "gen":
        gen()
    elif len(sys.argv) >= 2 and sys.argv[1] == "check":
        args = sys.argv[2:]
        bless = "--bless" in args
        args = [a for a in args if a != "--bless"]
        check(args[0] if args else HERE.parents[2] / "target" / "query-samples", bless)
    else:
        sys.exit(__doc__)
