"""The boto3 session and clients (made on first use), paging, waiting and DryRun checks.

    paginate(client, "describe_volumes", "Volumes[]")          # botocore's paginator, every page
    wait_until(fetch, done, status=…, timed_out=…, timeout=600, progress=print)
    session.waiter_verdict("instance_running", response)       # botocore's own acceptors

Waits poll with capped exponential backoff and report progress on each poll; where botocore
has a waiter for the state, its acceptors decide success and failure (see ``waiter_verdict``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..errors import Ec2kitError
from .errors import error_code, translating

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = [
    "FRESH_GRACE",
    "AwsSession",
    "Ec2Api",
    "Plan",
    "Progress",
    "error_code",
    "eventually",
    "not_yet",
    "paginate",
    "polls",
    "wait_until",
]

Progress = Callable[[str], None]
SANDBOX_SERVICES = ("ec2", "service-quotas", "ssm", "iam", "pricing")  # what the sandbox endpoint answers besides EC2
T = TypeVar("T")
# EC2 is eventually consistent: a just-created id may answer *.NotFound for a while (the EC2 developer
# guide's "Eventual consistency"; botocore's waiters retry it). That long, NotFound means "not yet".
FRESH_GRACE = 60.0


def not_yet(err: BaseException) -> bool:
    """True for an AWS ``*.NotFound`` error (``InvalidInstanceID.NotFound``, ``InvalidGroup.NotFound``, …)."""
    return error_code(err).endswith(".NotFound")


def eventually(call: Callable[[], T], *, grace: float = FRESH_GRACE) -> T:
    """``call()``, retried with backoff while it fails with ``*.NotFound`` for up to ``grace`` s.

    For calls naming an id ec2kit has just created (tag it, authorize a rule, attach a volume):
    EC2 may not know the id yet; after ``grace`` the NotFound is raised as it came.
    """
    failed: BaseException | None = None
    for _ in polls(grace):
        try:
            return call()
        except Exception as err:
            if not not_yet(err):
                raise
            failed = err
    if failed is None:  # a grace below zero: never tried
        return call()
    raise failed


def polls(timeout: float, *, first: float = 0.2, factor: float = 2.0, cap: float = 5.0) -> Iterator[float]:
    """Yield the seconds elapsed, sleeping with capped exponential backoff in between, until ``timeout``."""
    started, delay = time.monotonic(), first
    while (elapsed := time.monotonic() - started) <= timeout:
        yield elapsed
        time.sleep(delay)
        delay = min(delay * factor, cap)


def wait_until(
    fetch: Callable[[], T],
    done: Callable[[T], bool],
    *,
    status: Callable[[T], str],
    timed_out: Callable[[T], Ec2kitError],
    timeout: float,
    progress: Progress | None = None,
    slow: bool = False,
    fresh: float = FRESH_GRACE,
) -> T:
    """Call ``fetch`` until ``done`` says yes (``done`` raises to give up); ``progress("<status> (12 s)")`` in between.

    ``slow`` polls every 1 s growing to 15 s (images, snapshots) instead of 0.2 s growing to 5 s.
    For the first ``fresh`` seconds a ``*.NotFound`` from ``fetch`` means "not visible yet" (a
    just-created id, see :data:`FRESH_GRACE`) and is polled again; after that it is raised.
    """
    backoff = {"first": 1.0, "factor": 1.5, "cap": 15.0} if slow else {}
    last: T | None = None
    for elapsed in polls(timeout, **backoff):
        try:
            last = fetch()
        except Exception as err:
            if not not_yet(err) or elapsed > fresh:
                raise
            if progress:
                progress(f"just created, not visible yet ({elapsed:.0f} s)")
            continue
        if done(last):
            return last
        if progress:
            progress(f"{status(last)} ({elapsed:.0f} s)")
    if last is None:  # a timeout below zero: never looked
        last = fetch()
    raise timed_out(last)


def paginate(client: Any, operation: str, expression: str, **params: Any) -> list[Any]:
    """Every item the JMESPath ``expression`` selects across all pages of ``operation`` (botocore's paginator).

    ``paginate(ec2, "describe_instances", "Reservations[].Instances[]", Filters=[...])``
    """
    pages = client.get_paginator(operation).paginate(**params)
    return [item for item in pages.search(expression) if item is not None]


class Plan(Protocol):
    """What a verb would do, built before doing it: one EC2 call that DryRun can check."""

    @property
    def action(self) -> str:
        """The EC2 client method, e.g. ``run_instances``."""
        ...

    @property
    def params(self) -> dict[str, Any]:
        """Its parameters, exactly as DryRun sends them."""
        ...

    @property
    def purpose(self) -> str:
        """What it is for, in error messages: ``launch instance base``."""
        ...


class Ec2Api(Protocol):
    """What a function over EC2 needs: the region, the EC2 client, paging (an AwsSession, or the Cloud over one)."""

    @property
    def region(self) -> str:
        """The region's code."""
        ...

    @property
    def ec2(self) -> Any:
        """The boto3 EC2 client."""
        ...

    @property
    def session(self) -> Any:
        """The boto3 Session."""
        ...

    def paginate(self, operation: str, expression: str, **params: Any) -> list[Any]:
        """Every item ``expression`` selects across the pages of EC2 ``operation``."""
        ...


class AwsSession:
    """One boto3 session in one region; the EC2 client points at ``endpoint_url`` (the sandbox) when given.

    Every service of :mod:`ec2kit.aws` is given one (the Cloud makes it): it holds the clients, the
    listener told of every DescribeInstances answer, and nothing about any one concern.
    ``credentials`` is a dict of ``aws_access_key_id`` / ``aws_secret_access_key`` (/ ``aws_session_token``).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        endpoint_url: str | None = None,
        credentials: dict[str, str] | None = None,
        region: str | None = None,
    ) -> None:
        self.settings = settings
        self.endpoint_url = endpoint_url
        self._credentials = dict(credentials or {})
        self._region = region or settings.region
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        #: told of every DescribeInstances answer: (instances, complete) — complete when it listed all live ones
        self.on_instances: Callable[..., None] | None = None

    def saw(self, instances: list[Any], *, complete: bool = False) -> None:
        """Pass a DescribeInstances answer to ``on_instances`` (the host cache), if anyone listens."""
        if self.on_instances is not None:
            self.on_instances(instances, complete=complete)

    @property
    def session(self) -> Any:
        """The boto3 Session (profile from settings unless explicit credentials were given)."""
        if self._session is None:
            import boto3

            kwargs: dict[str, Any] = dict(self._credentials)
            if not kwargs and self.settings.profile:
                kwargs["profile_name"] = self.settings.profile
            if self._region:
                kwargs["region_name"] = self._region
            self._session = boto3.Session(botocore_session=self._botocore_session(kwargs.get("profile_name")), **kwargs)
        return self._session

    def _botocore_session(self, profile: str | None) -> Any:
        """The botocore session under boto3's, reading botocore's models through the cache (:mod:`.modelcache`)."""
        import botocore.session

        from ..settings import model_cache_enabled

        session = botocore.session.get_session()
        if model_cache_enabled():
            from .modelcache import cache_dir, data_loader

            if profile:  # boto3 sets it too; data_path may come from the profile's section of ~/.aws/config
                session.set_config_variable("profile", profile)
            loader = data_loader(session.get_config_variable("data_path"), cache_dir(self.settings.cache_dir))
            session.register_component("data_loader", loader)
        return session

    @property
    def region(self) -> str:
        """settings.region, else the profile's region, else us-east-1."""
        if not self._region:
            self._region = self.session.region_name or "us-east-1"
        return self._region

    def client(self, service: str) -> Any:
        """A cached boto3 client for ``service`` in this region (every service at the sandbox's endpoint)."""
        if service not in self._clients:
            from botocore.config import Config

            endpoint = self.endpoint_url if service in SANDBOX_SERVICES else None
            self._clients[service] = self.session.client(
                service,
                region_name=self.region,
                endpoint_url=endpoint,
                config=Config(
                    # AWS: adaptive mode also slows this client down while AWS throttles it (a sweep's threads share
                    # it); what still fails is waited out above (spotrun.transient). Sandbox: fail fast.
                    retries={"max_attempts": 2, "mode": "standard"} if endpoint else {"max_attempts": 8, "mode": "adaptive"},
                    connect_timeout=10,
                    read_timeout=60,
                ),
            )
        return self._clients[service]

    @property
    def ec2(self) -> Any:
        """The boto3 EC2 client (created on first use)."""
        return self.client("ec2")

    def paginate(self, operation: str, expression: str, **params: Any) -> list[Any]:
        """:func:`paginate` on the EC2 client."""
        return paginate(self.ec2, operation, expression, **params)

    def waiter_verdict(self, waiter: str, response: dict[str, Any]) -> str | None:
        """What botocore's EC2 waiter ``waiter`` makes of ``response``: "success", "failure", "retry" or None (not yet)."""
        for acceptor in self.ec2.get_waiter(waiter).config.acceptors:
            if acceptor.matcher_func(response):
                return str(acceptor.state)
        return None

    def check(self, plan: Plan) -> bool:
        """Ask EC2 with DryRun whether ``plan`` would succeed: True, else the translated reason it would not is raised."""
        with translating(plan.purpose):
            try:
                getattr(self.ec2, plan.action)(DryRun=True, **plan.params)
            except Exception as err:
                if error_code(err) == "DryRunOperation":
                    return True
                raise
        return True  # some servers ignore DryRun; the parameters were accepted
