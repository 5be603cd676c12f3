"""Bad credentials, regions and permissions give a ConfigError that says what to do, before
any AWS call is made."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from snakemake_executor_knot.aws.clients import make_clients
from snakemake_executor_knot.config.settings import KnotConfig
from snakemake_executor_knot.errors import AwsError, ConfigError, aws_error


@pytest.fixture
def no_credentials(aws_env, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_no_credentials_names_the_fix(no_credentials):
    with pytest.raises(ConfigError, match="No AWS credentials found.*aws configure"):
        make_clients(KnotConfig())


def test_unknown_region_is_refused(aws_env):
    with pytest.raises(ConfigError, match="region 'mars-north-1' does not exist"):
        make_clients(KnotConfig(region="mars-north-1"))


def test_missing_region_names_the_flag(aws_env, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    with pytest.raises(ConfigError, match="--knot-region"):
        make_clients(KnotConfig())


def test_aws_region_is_honoured_before_aws_default_region(aws_env, monkeypatch):
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert make_clients(KnotConfig()).region == "eu-west-1"
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert make_clients(KnotConfig()).region == "eu-west-1"
    assert make_clients(KnotConfig(region="us-west-2")).region == "us-west-2"


def test_unknown_profile_is_refused(aws_env):
    with pytest.raises(ConfigError, match="profile 'nobody'"):
        make_clients(KnotConfig(profile="nobody"))


def test_emulator_not_running(aws_env):
    with pytest.raises(ConfigError, match="knot emulator start"):
        make_clients(KnotConfig(emulator=True))


def test_valid_settings_make_clients_without_calls(aws_env):
    clients = make_clients(KnotConfig(region="eu-west-1"))
    assert clients.region == "eu-west-1"
    assert clients.calls == {}


def _client_error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def test_access_denied_names_the_action_from_the_message():
    exc = _client_error(
        "AccessDeniedException",
        "User: arn:aws:iam::1:user/x is not authorized to perform: batch:SubmitJob on ...",
        "SubmitJob",
    )
    err = aws_error(exc, "submitting jobs", rule="fit", service="batch")
    assert isinstance(err, ConfigError)
    assert "'batch:SubmitJob'" in str(err) and "rule 'fit'" in str(err)
    assert "iam-policy.json" in str(err)


def test_access_denied_without_action_in_message_uses_the_service():
    err = aws_error(_client_error("AccessDenied", "Access Denied", "PutObject"), "x", service="s3")
    assert "'s3:PutObject'" in str(err)


def test_expired_credentials_say_refresh():
    err = aws_error(_client_error("ExpiredToken", "expired", "DescribeJobs"), "polling")
    assert isinstance(err, ConfigError) and "Refresh them" in str(err)


def test_unreachable_endpoint_mentions_region_and_emulator():
    err = aws_error(EndpointConnectionError(endpoint_url="https://x"), "creating the stack")
    assert isinstance(err, AwsError) and "knot emulator status" in str(err)
