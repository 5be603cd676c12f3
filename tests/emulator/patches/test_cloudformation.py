"""A stack update replaces a role's inline policies in the emulator, as on AWS (moto keeps
the old ones, so a job role would never gain a bucket another run added)."""

from __future__ import annotations

import json

import boto3
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.iam.models import iam_backends

from snakemake_executor_knot.emulator.patches.cloudformation import replace_inline_policies


def _document(bucket: str) -> dict:
    statement = {"Effect": "Allow", "Action": "s3:*", "Resource": f"arn:aws:s3:::{bucket}/*"}
    return {"Version": "2012-10-17", "Statement": [statement]}


def test_inline_policies_become_exactly_the_templates():
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        iam.create_role(RoleName="job", AssumeRolePolicyDocument=json.dumps(_document("x")))
        for name in ("s3", "stale"):
            iam.put_role_policy(
                RoleName="job", PolicyName=name, PolicyDocument=json.dumps(_document("old"))
            )
        role = iam_backends[DEFAULT_ACCOUNT_ID]["aws"].get_role("job")
        replace_inline_policies(
            role, [{"PolicyName": "s3", "PolicyDocument": _document("old-and-new")}]
        )
        assert iam.list_role_policies(RoleName="job")["PolicyNames"] == ["s3"]
        document = iam.get_role_policy(RoleName="job", PolicyName="s3")["PolicyDocument"]
        assert document["Statement"][0]["Resource"] == "arn:aws:s3:::old-and-new/*"
