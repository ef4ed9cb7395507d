"""The one place a botocore/boto3 error becomes an :mod:`ec2kit.errors` class.

``translate_client_error(err, action="launch instance base")`` says what happened and what
to do; ``@translated("launch instance {0}")`` applies it to everything a function raises, and
``with translating("..."):`` to a block. The exception classes stay in :mod:`ec2kit.errors`.
"""

from __future__ import annotations

import functools
import inspect
import re
import string
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from ..errors import (
    AlreadyExists,
    AwsError,
    ConfigError,
    CredentialsError,
    Ec2kitError,
    NotFound,
    QuotaExceeded,
    TimedOut,
    WrongState,
)
from .models import label
from .quota_table import QUOTA_MARKETS, limit_in, quota_error, quota_for

__all__ = [
    "error_code",
    "is_aws_exception",
    "quota_refused",
    "translate_client_error",
    "translate_code",
    "translated",
    "translating",
]

F = TypeVar("F", bound=Callable[..., Any])

_NOT_FOUND_KINDS = {
    "InvalidInstanceID": "instance",
    "InvalidAMIID": "image",
    "InvalidVolume": "volume",
    "InvalidSnapshot": "snapshot",
    "InvalidKeyPair": "key pair",
    "InvalidGroup": "security group",
    "InvalidSpotInstanceRequestID": "spot request",
}
_ID_RE = re.compile(r"\b(?:i|ami|vol|snap|sg|sir)-[0-9a-f]+\b")


def is_aws_exception(err: BaseException) -> bool:
    """True for the exceptions botocore and boto3 raise (checked by module: importing them is slow)."""
    return type(err).__module__.startswith(("botocore", "boto3"))


def error_code(err: BaseException) -> str:
    """The AWS error code of a botocore ClientError ("" for anything else)."""
    response = getattr(err, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def translate_client_error(err: BaseException, *, action: str, instance_type: str | None = None) -> Ec2kitError | None:
    """Turn a botocore error into an Ec2kitError saying what happened and what to do.

    ``action`` is what ec2kit was doing ("launch instance base"); ``instance_type``, when the call
    launches one, names the right vCPU quota in a quota error. Returns None for
    ``DryRunOperation``: that "error" means the call would have succeeded.
    """
    kind = type(err).__name__
    if kind in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"):
        return CredentialsError(
            f"No usable AWS credentials were found to {action}.",
            hint="Run `aws configure` (or set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), "
            "or try ec2kit without an account with EC2KIT_SANDBOX=1.",
        )
    if kind == "ProfileNotFound":
        return ConfigError(
            f"{err}.", hint="Check AWS_PROFILE / --profile against ~/.aws/config, or run `aws configure --profile NAME`."
        )
    if kind in ("TokenRetrievalError", "SSOTokenLoadError", "UnauthorizedSSOTokenError"):
        return CredentialsError(
            f"Your AWS login has expired, so ec2kit cannot {action}.", hint="Run `aws sso login` and try again."
        )
    if kind == "ParamValidationError":
        return ConfigError(
            f"A value ec2kit would send to AWS to {action} is invalid: {err}", hint="Check the names, sizes and types you gave."
        )
    if kind == "NoRegionError":
        return ConfigError(f"No AWS region is configured to {action}.", hint="Set AWS_REGION (e.g. us-east-1) or pass --region.")
    if kind in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"):
        return AwsError(
            f"Could not reach AWS to {action}: {err}.",
            code=kind,
            hint="Check your network connection and the region; if you use the local sandbox, check it is running.",
        )
    if kind == "WaiterError":
        last = getattr(err, "last_response", None) or {}
        if "Error" in last:
            return translate_code(last["Error"].get("Code", ""), last["Error"].get("Message", ""), action, instance_type)
        return TimedOut(
            f"Gave up waiting to {action}: {getattr(err, 'reason', err)}.",
            hint="Check the resource in the AWS console and retry.",
        )
    response = getattr(err, "response", None)
    if isinstance(response, dict) and "Error" in response:
        return translate_code(response["Error"].get("Code", ""), response["Error"].get("Message", ""), action, instance_type)
    return AwsError(f"AWS call failed while trying to {action}: {err}", code=kind)


def translate_code(code: str, message: str, action: str, instance_type: str | None = None) -> Ec2kitError | None:
    """An AWS error ``code`` and ``message`` (from a ClientError or a fleet's Errors) as an Ec2kitError; None for DryRunOperation."""
    said = f" AWS said: {message}" if message else ""
    if code == "DryRunOperation":
        return None
    if code.startswith("AuthFailure.ServiceLinkedRole"):  # e.g. …ServiceLinkedRoleCreationNotPermitted, in a fleet's Errors
        return CredentialsError(
            f"AWS could not {action}: spot instances need the service-linked role AWSServiceRoleForEC2Spot, which your "
            f"account does not have yet and your identity may not create ({code}).{said}",
            hint="Have someone allowed iam:CreateServiceLinkedRole create it once for the account: "
            "aws iam create-service-linked-role --aws-service-name spot.amazonaws.com",
        )
    if code.split(".")[0] in (
        "AuthFailure",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "MissingAuthenticationToken",
    ):
        return CredentialsError(
            f"AWS did not accept your credentials when trying to {action} ({code}).{said}",
            hint="Check the access key with `aws sts get-caller-identity` and the region; run `aws configure` if they are wrong.",
        )
    if code in ("ExpiredToken", "ExpiredTokenException", "RequestExpired"):
        return CredentialsError(
            f"Your AWS credentials or session have expired, so ec2kit cannot {action} ({code}).",
            hint="Refresh them (`aws sso login`, or new temporary keys) and check your clock is right.",
        )
    if code in ("UnauthorizedOperation", "AccessDenied", "AccessDeniedException"):
        hint = "Ask your AWS administrator for the EC2 permission this needs, or use another profile (AWS_PROFILE)."
        encoded = re.search(r"Encoded authorization failure message:\s*(\S+)", message or "")
        if encoded:
            hint += (
                " To see exactly which permission is missing, run: "
                f"aws sts decode-authorization-message --encoded-message {encoded.group(1)}"
            )
        return CredentialsError(f"Your AWS identity is not allowed to {action} ({code}).", hint=hint)
    if code in ("InsufficientInstanceCapacity", "InsufficientHostCapacity", "InsufficientCapacity"):
        return AwsError(
            f"AWS has no spare capacity right now to {action}.{said}",
            code=code,
            hint="Try another instance type (--type) or availability zone (--zone), or retry in a few minutes.",
        )
    if code in QUOTA_MARKETS:
        return quota_refused(code, message, action, instance_type)
    if code == "SpotMaxPriceTooLow":
        return AwsError(
            f"Your maximum spot price is below the current spot price, so AWS will not {action}.{said}",
            code=code,
            hint="Raise --max-price (see `inv prices FAMILY`) or leave it out to pay up to the on-demand price.",
        )
    if code in ("IncorrectInstanceState", "IncorrectState", "IncorrectSpotRequestState", "VolumeInUse", "InvalidSnapshot.InUse"):
        return WrongState(
            f"Cannot {action}: the resource is in the wrong state ({code}).{said}",
            hint="Check its state with `inv instances` / `inv volumes` and retry when it is ready.",
        )
    prefix = code.split(".")[0]
    if prefix in _NOT_FOUND_KINDS and (code.endswith("NotFound") or code.endswith("Malformed") or prefix == "InvalidAMIID"):
        kind = _NOT_FOUND_KINDS[prefix]
        ids = _ID_RE.findall(message or "")
        return NotFound(
            kind,
            ids[0] if ids else message or "?",
            hint=f"AWS does not know it ({code}) while trying to {action}; list what exists with `inv {kind.split()[0]}s`.",
        )
    if code in (
        "InvalidParameterValue",
        "InvalidParameterCombination",
        "InvalidParameter",
        "MissingParameter",
        "InvalidInstanceType",
        "Unsupported",
    ):
        return AwsError(
            f"AWS rejected a parameter when trying to {action} ({code}).{said}",
            code=code,
            hint="Check the instance type, zone, image and sizes you gave.",
        )
    if code.endswith(".Duplicate"):
        return AlreadyExists(
            f"Cannot {action}: it already exists ({code}).{said}", hint="Use the existing one or pick another name."
        )
    if code == "OptInRequired":
        return ConfigError(
            f"Your AWS account is not enabled for this region or service, so ec2kit cannot {action}.{said}",
            hint="Enable the region under Account > AWS Regions in the console, or use another region (--region).",
        )
    if code == "PendingVerification":
        return AwsError(
            f"AWS is still verifying your new account, so ec2kit cannot {action}.{said}",
            code=code,
            hint="This usually takes minutes to a few hours; AWS emails you when it is done.",
        )
    if code in ("RequestLimitExceeded", "Throttling", "ThrottlingException"):
        return AwsError(f"AWS is throttling requests, so ec2kit could not {action}.", code=code, hint="Wait a minute and retry.")
    return AwsError(f"AWS refused to {action} ({code or 'unknown error'}).{said}", code=code)


def quota_refused(code: str, message: str, action: str, instance_type: str | None, region: str = "") -> Ec2kitError:
    """AWS refused a launch for a vCPU quota: name the quota of the instance's family and market, and the request command.

    Without the instance type the family is unknown, so the message says how to find the quota instead of guessing.
    """
    market = QUOTA_MARKETS.get(code, "on-demand")
    quota = quota_for(instance_type, market) if instance_type else None
    if quota is None:
        return QuotaExceeded(
            f"Your account's {market} vCPU quota for this instance family does not allow you to {action} ({code})."
            + (f" AWS said: {message}" if message else ""),
            code=code,
            hint="Each family has its own quota (Standard, G and VT, P, …; spot and on-demand apart): find it with "
            "`aws service-quotas list-service-quotas --service-code ec2`, then ask for more with "
            "`aws service-quotas request-service-quota-increase`.",
        )
    return quota_error(
        quota,
        instance_type=instance_type or "",
        region=region,
        action=action,
        limit=limit_in(message),
        code=code,
        said=message,
    )


@contextmanager
def translating(action: str | Callable[[], str], *, instance_type: str | None = None) -> Iterator[None]:
    """Translate a botocore error raised in the block (``DryRunOperation`` passes through untouched).

    ``action`` may be a function, called only when there is an error to describe; ``instance_type``
    (of a launch) picks the vCPU quota a quota error names.
    """
    try:
        yield
    except Ec2kitError:
        raise
    except Exception as err:
        if not is_aws_exception(err):
            raise
        translated_err = translate_client_error(
            err, action=action if isinstance(action, str) else action(), instance_type=instance_type
        )
        if translated_err is None:
            raise
        raise translated_err from err


def translated(action: str) -> Callable[[F], F]:
    """Decorator: translate botocore errors raised by ``fn``.

    ``action`` says what the call was doing; ``{0}`` is its subject (the first argument after
    ``self``, else ``name=``; models and plans are named by :func:`~ec2kit.aws.models.label`),
    ``{family}`` and the like are arguments by name. ``@translated("launch instance {0}")``.
    """

    def wrap(fn: F) -> F:
        signature = inspect.signature(fn)
        is_method = next(iter(signature.parameters), "") == "self"

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with translating(lambda: _action(action, signature, is_method, args, kwargs)):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return wrap


def _action(action: str, signature: inspect.Signature, is_method: bool, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """``action`` with ``{0}`` and ``{name}`` filled from the call's arguments."""
    positional = args[1:] if is_method else args
    subject = positional[0] if positional else kwargs.get("name")
    if subject is None:
        action = action.replace(" {0}", "")
    try:
        named = signature.bind_partial(*args, **kwargs).arguments
    except TypeError:
        named = dict(kwargs)
    try:
        return string.Formatter().vformat(action, (label(subject),), named)
    except (KeyError, IndexError, AttributeError):
        return action
