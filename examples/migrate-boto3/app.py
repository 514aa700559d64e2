#!/usr/bin/env python3
"""An order pipeline written for Amazon SQS with boto3, as it would run on AWS.
Nothing in it knows about Switchboard: boto3 finds its endpoint, region and
credentials in the environment (AWS_ENDPOINT_URL_SQS, AWS_DEFAULT_REGION,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), as on AWS it would find them in the
instance's profile.

    app.py setup            queues: orders (DLQ orders-dlq after 3 receives), invoices.fifo
    app.py produce N        N orders, in batches of 10, with message attributes
    app.py work NAME        long-polls orders until idle: "processes" each order,
                            sends an invoice to invoices.fifo (grouped by customer),
                            deletes the order; an order it cannot parse is left to the DLQ
    app.py invoices         reads invoices.fifo and prints a line per customer
"""

import json
import sys
import time

import boto3

sqs = boto3.client("sqs")


def url(name):
    return sqs.get_queue_url(QueueName=name)["QueueUrl"]


def setup():
    dlq = sqs.create_queue(QueueName="orders-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    sqs.create_queue(QueueName="orders", Attributes={
        "VisibilityTimeout": "2", "ReceiveMessageWaitTimeSeconds": "1",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})})
    sqs.create_queue(QueueName="invoices.fifo", Attributes={
        "FifoQueue": "true", "ContentBasedDeduplication": "true"})
    for q in sqs.list_queues()["QueueUrls"]:
        print("queue", q)


def produce(n):
    orders = url("orders")
    for start in range(0, n, 10):
        entries = []
        for i in range(start, min(n, start + 10)):
            body = json.dumps({"order": i, "customer": f"c{i % 5}", "amount": 10 + i % 7})
            if i == 3:
                body = "{not json"                    # a broken order
            entries.append({"Id": str(i), "MessageBody": body, "MessageAttributes": {
                "customer": {"DataType": "String", "StringValue": f"c{i % 5}"},
                "priority": {"DataType": "Number", "StringValue": str(i % 3)}}})
        r = sqs.send_message_batch(QueueUrl=orders, Entries=entries)
        if r.get("Failed"):
            sys.exit(f"send failed: {r['Failed']}")
    print(f"produced {n}")


def work(name):
    orders, invoices = url("orders"), url("invoices.fifo")
    done = failed = 0
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 8:
        r = sqs.receive_message(QueueUrl=orders, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                MessageAttributeNames=["All"], AttributeNames=["All"])
        for m in r.get("Messages", []):
            idle_since = time.monotonic()
            try:
                order = json.loads(m["Body"])
            except ValueError:
                failed += 1
                print(f"{name}: cannot parse {m['MessageId'][:8]} (receive "
                      f"{m['Attributes']['ApproximateReceiveCount']}), leaving it", flush=True)
                continue
            assert m["MessageAttributes"]["customer"]["StringValue"] == order["customer"]
            sqs.send_message(QueueUrl=invoices, MessageGroupId=order["customer"],
                             MessageBody=json.dumps({"order": order["order"],
                                                     "customer": order["customer"],
                                                     "total": order["amount"]}))
            sqs.delete_message(QueueUrl=orders, ReceiptHandle=m["ReceiptHandle"])
            done += 1
    print(f"{name}: processed {done}, failed {failed}", flush=True)


def invoices():
    q = url("invoices.fifo")
    per = {}
    while True:
        r = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        if not r.get("Messages"):
            break
        for m in r["Messages"]:
            inv = json.loads(m["Body"])
            per.setdefault(inv["customer"], {})[inv["order"]] = inv["total"]
            sqs.delete_message(QueueUrl=q, ReceiptHandle=m["ReceiptHandle"])
    for c in sorted(per):
        print(f"invoices {c}: {len(per[c])} orders, sum {sum(per[c].values())}")
    dlq = url("orders-dlq")
    a = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])
    print(f"orders-dlq: {a['Attributes']['ApproximateNumberOfMessages']} messages")


if __name__ == "__main__":
    cmd = sys.argv[1]
    {"setup": setup, "produce": lambda: produce(int(sys.argv[2])),
     "work": lambda: work(sys.argv[2]), "invoices": invoices}[cmd]()
