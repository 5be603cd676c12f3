"""knot's errors, rooted in Snakemake's WorkflowError, and their translation from
botocore and docker errors. Translate once, at the edge, with ``from exc``."""

from __future__ import annotations

import re

from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)
from snakemake_interface_common.exceptions import WorkflowError


class KnotError(WorkflowError):
    """Base of every error knot raises on purpose."""


class ConfigError(KnotError):
    """Bad settings or bad rule declarations, found before anything is created."""


class SettingError(ConfigError):
    """A setting names something that cannot be found (a stack, a region, an AWS
    profile). ``settings`` are the fields of ``ExecutorSettings`` involved, so that the
    ``knot`` command can say where each value came from (flag, variable, profile key)."""

    def __init__(self, message: str, *settings: str) -> None:
        super().__init__(message)
        self.settings = settings


class RuleError(KnotError):
    """A rule knot cannot run as written; the message names the rule and the fix."""


class AwsError(KnotError):
    """An AWS call failed."""


class DockerError(KnotError):
    """The Docker engine is unreachable or a build failed."""


class StagingError(KnotError):
    """A file the job should have produced is not in S3."""


NO_REGION = (
    "No AWS region is set{where}. Pass --knot-region, set AWS_REGION, or add 'region' to "
    "your ~/.aws/config profile."
)


def error_code(exc: ClientError) -> str:
    """The AWS error code of a ClientError ("AccessDenied", "404", ...); "" if none."""
    return exc.response.get("Error", {}).get("Code", "")


def error_message(exc: ClientError) -> str:
    """AWS's own message of a ClientError; "" if none."""
    return exc.response.get("Error", {}).get("Message", "")


_ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}
_BAD_CREDENTIALS = {
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
}


def aws_error(
    exc: Exception, doing: str, rule: str | None = None, service: str | None = None
) -> KnotError:
    """Turn a botocore exception raised while ``doing`` something into a KnotError
    that says what failed and what to do next. ``service`` is the IAM prefix of the
    client that raised it ("batch", "s3", ...), used to name a refused action."""
    where = f" for rule '{rule}'" if rule else ""
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return ConfigError(
            f"No AWS credentials found while {doing}{where}. Run 'aws configure', set "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE (--knot-profile), "
            "or use the local emulator with --knot-emulator."
        )
    if isinstance(exc, NoRegionError):
        return SettingError(NO_REGION.format(where=f" while {doing}{where}"), "region")
    if isinstance(exc, EndpointConnectionError):
        return AwsError(
            f"Could not reach the AWS endpoint while {doing}{where}: {exc}. Check the "
            "region name (--knot-region) and the endpoint URL (--knot-endpoint-url), "
            "and that the emulator is running if you use one ('knot emulator status')."
        )
    if isinstance(exc, ClientError):
        return _client_error(exc, doing, where, service)
    return AwsError(f"AWS call failed while {doing}{where}: {exc}")


def _client_error(exc: ClientError, doing: str, where: str, service: str | None) -> KnotError:
    code = error_code(exc)
    message = error_message(exc) or str(exc)
    action = exc.operation_name
    if code in _ACCESS_DENIED:
        return ConfigError(
            f"Permission denied while {doing}{where}: your AWS identity may not call "
            f"'{_iam_action(exc, service)}'. Add it to your IAM policy (see docs/iam-policy.json "
            f"in knot's repository). AWS said: {message}"
        )
    if code in _BAD_CREDENTIALS:
        return ConfigError(
            f"AWS rejected your credentials while {doing}{where} ({code}). Refresh them "
            "('aws sso login', or new access keys) and check --knot-profile."
        )
    return AwsError(f"AWS {action} failed while {doing}{where}: {code}: {message}")


_ACTION_IN_MESSAGE = re.compile(r"perform: ([a-z0-9-]+:[A-Za-z0-9]+)")


def _iam_action(exc: ClientError, service: str | None) -> str:
    """The IAM action that was refused, e.g. 'batch:SubmitJob'. AWS usually names it in
    the message; otherwise it is derived from the operation."""
    found = _ACTION_IN_MESSAGE.search(error_message(exc))
    if found:
        return found.group(1)
    return f"{service or '<service>'}:{exc.operation_name}"
