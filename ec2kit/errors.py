"""Every error ec2kit raises on purpose, each named for its outcome.

Each carries a message a person can act on: what happened, which file, step
or resource, and what to do. The command line prints ``str(error)`` as one
paragraph and exits non-zero; it never shows a traceback for these.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class Ec2kitError(Exception):
    """Base class: an expected failure with a message for a person."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class ConfigError(Ec2kitError):
    """Bad settings, credentials or command-line arguments."""


class CredentialsError(ConfigError):
    """No usable AWS credentials (missing, expired, or not allowed)."""


class NotFound(Ec2kitError):
    """A named instance, image, volume, snapshot, recipe or run does not exist."""

    def __init__(self, kind: str, name: str, candidates: Iterable[str] = (), *, hint: str | None = None) -> None:
        self.kind, self.name = kind, name
        close = difflib.get_close_matches(name, sorted(set(candidates)), n=3, cutoff=0.5)
        msg = f"No {kind} named '{name}'."
        if close:
            msg += " Did you mean " + ", ".join(f"'{c}'" for c in close) + "?"
        super().__init__(msg, hint=hint)


class Terminated(NotFound):
    """The named instance exists only as a terminated one (callers that look for live ones see NotFound)."""

    def __init__(self, label: str, name: str, *, hint: str | None = None) -> None:
        super().__init__("instance", name, hint=hint)
        self.message = f"Instance {label} was terminated; a terminated instance cannot be used again."


class AlreadyExists(Ec2kitError):
    """A resource with that name already exists (names must be unique)."""


class AwsError(Ec2kitError):
    """AWS refused a call: capacity, quota, permissions, bad ids…"""

    def __init__(self, message: str, *, code: str = "", hint: str | None = None) -> None:
        self.code = code
        super().__init__(message, hint=hint)


class WrongState(Ec2kitError):
    """A resource is in the wrong state for the operation (e.g. running, not stopped)."""


class TimedOut(Ec2kitError):
    """A bounded wait ran out."""


class RemoteError(Ec2kitError):
    """An SSH connection or remote command failed."""


class HostKeyMismatch(RemoteError):
    """An instance presented a host key different from the one pinned for it."""


class AuthFailed(RemoteError):
    """The host answered but refused our key (wrong key pair or login user)."""


class UnexpectedExit(RemoteError):
    """A remote command exited non-zero: shows the command, exit code and output tail."""

    def __init__(self, command: str, exit_code: int, output: str, *, host: str = "", tail: int = 20) -> None:
        self.command, self.exit_code, self.output, self.host = command, exit_code, output, host
        lines = output.rstrip().splitlines()[-tail:]
        where = f" on {host}" if host else ""
        msg = f"Command failed{where} with exit code {exit_code}: {command}"
        if lines:
            msg += "\n--- last lines of output ---\n" + "\n".join(lines)
        super().__init__(msg)


class RecipeError(Ec2kitError):
    """A recipe is malformed: TOML syntax, unknown keys, undefined variables, cycles."""


class StepFailed(Ec2kitError):
    """A recipe step failed on a host."""


class SandboxError(Ec2kitError):
    """The local sandbox cannot do what was asked (or could not start)."""


class RunError(Ec2kitError):
    """A spot run failed or was interrupted beyond its retries."""


class QuotaExceeded(AwsError):
    """A launch would pass (or passed) a Service Quotas vCPU limit of the account."""


class NoCapacity(AwsError):
    """AWS had no capacity in any of the pools (instance type × zone × market) tried."""
