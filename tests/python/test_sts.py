"""STS GetCallerIdentity on the SQS/SNS port: SDK-based tools and fixtures call it
first to learn the account, and `aws sts get-caller-identity` is the sanity check
people type."""

from __future__ import annotations

import boto3
import botocore.config

import sqsutil
from sqsutil import requires_switchboard_sqs


@requires_switchboard_sqs("the STS answer is Switchboard's own (its users, its account)")
def test_boto3_get_caller_identity_names_the_signer(sqs_ep):
    sts = boto3.session.Session().client(
        "sts", endpoint_url=sqs_ep.url, region_name=sqs_ep.region,
        aws_access_key_id=sqs_ep.access_key, aws_secret_access_key=sqs_ep.secret_key,
        config=botocore.config.Config(retries={"total_max_attempts": 1}))
    me = sts.get_caller_identity()
    assert me["Account"] == "000000000000"
    assert me["Arn"] == f"arn:aws:iam::000000000000:user/{sqs_ep.access_key}"
    assert me["UserId"] == sqs_ep.access_key


@requires_switchboard_sqs("the STS answer is Switchboard's own (its users, its account)")
def test_cli_get_caller_identity(sqs_ep):
    me = sqsutil.aws_cli_json(sqs_ep, "sts", "get-caller-identity")
    assert me["Account"] == "000000000000"
    assert me["Arn"].endswith(f":user/{sqs_ep.access_key}")
