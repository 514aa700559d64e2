#!/usr/bin/env python3
"""One worker of the autoscaled pool: long-polls the queue, "processes" a message by
sleeping --cost seconds, deletes it. A message whose body is `poison` raises: the
worker leaves it (it comes back after the visibility timeout, and after
maxReceiveCount receives SQS moves it to the DLQ). SIGTERM (scale-in) lets the
current message finish, then the worker exits. Prints `done <MessageId>` per
message, which the runner reads."""

import argparse
import signal
import sys
import time

import boto3
import botocore.config

p = argparse.ArgumentParser()
p.add_argument("--endpoint", required=True)
p.add_argument("--queue-url", required=True)
p.add_argument("--cost", type=float, default=0.2)
args = p.parse_args()

stopping = False


def on_term(sig, frame):
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, on_term)
sqs = boto3.session.Session().client(
    "sqs", endpoint_url=args.endpoint, region_name="us-east-1",
    aws_access_key_id="guest", aws_secret_access_key="guest",
    config=botocore.config.Config(retries={"total_max_attempts": 3, "mode": "standard"},
                                  read_timeout=30))
print("ready", flush=True)
while not stopping:
    r = sqs.receive_message(QueueUrl=args.queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1,
                            AttributeNames=["ApproximateReceiveCount"])
    for m in r.get("Messages", []):
        try:
            if m["Body"] == "poison":
                raise ValueError("cannot parse job")
            time.sleep(args.cost)
            sqs.delete_message(QueueUrl=args.queue_url, ReceiptHandle=m["ReceiptHandle"])
            print(f"done {m['MessageId']}", flush=True)
        except ValueError as e:
            n = m["Attributes"]["ApproximateReceiveCount"]
            print(f"failed {m['MessageId']} receive {n}: {e}", flush=True)
print("stopped", flush=True)
sys.exit(0)
