#!/usr/bin/env python3
"""The cloud side (boto3): an SQS worker that reads the devices' telemetry from the
queue `telemetry`, which an IoT rule (here: a binding of the queue to the MQTT
topics `devices/+/telemetry`) fills, and keeps a per-device average. On AWS the
rule is an IoT Core rule with an SQS action; the worker is the same. boto3 finds
the endpoint in AWS_ENDPOINT_URL_SQS."""

import json
import sys
import time

import boto3

sqs = boto3.client("sqs")
url = sqs.get_queue_url(QueueName="telemetry")["QueueUrl"]
want = int(sys.argv[1])
seen = {}
t0 = time.monotonic()
while sum(len(v) for v in seen.values()) < want and time.monotonic() - t0 < 60:
    for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                 WaitTimeSeconds=2).get("Messages", []):
        r = json.loads(m["Body"])
        seen.setdefault(r["device"], []).append(r["temp"])
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
for dev in sorted(seen):
    print(json.dumps({"device": dev, "readings": len(seen[dev]),
                      "avg_temp": round(sum(seen[dev]) / len(seen[dev]), 2)}), flush=True)
