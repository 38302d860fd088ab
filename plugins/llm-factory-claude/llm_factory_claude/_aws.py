"""AWS plumbing on botocore: credentials (resolved lazily, refreshed off the event loop), SigV4
signing as an ``httpx.Auth`` flow, and the event stream's message headers (``_hosts`` decodes
the stream itself with botocore's ``EventStreamBuffer``).

botocore is used rather than hand-written signing and framing: it is what every AWS SDK for
Python uses, it resolves the whole credential chain (environment, shared files, SSO, assume-role,
credential_process, container and instance metadata) and it keeps up with AWS's changes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any

import anyio
import anyio.to_thread
import httpx
from botocore.auth import SigV4Auth as _BotocoreSigV4
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials
from botocore.eventstream import EventStreamMessage, ParserError
from botocore.exceptions import BotoCoreError, ClientError
from botocore.session import Session

__all__ = [
    "AwsCredentials",
    "CredentialsUnavailable",
    "ParserError",
    "SigV4Auth",
    "header_text",
    "scrub_sigv4",
    "sign_request",
]

_HIDDEN = "<hidden by llm-factory: it holds credentials>"


def _hide_signing_material(record: logging.LogRecord) -> bool:
    # botocore.auth logs the canonical request (the session token is a signed header), the
    # string to sign and the signature at DEBUG: keep the lines, drop what they carry.
    if isinstance(record.msg, str) and record.msg.startswith(("CanonicalRequest", "StringToSign", "Signature")):
        record.args = tuple(_HIDDEN for _ in record.args) if isinstance(record.args, tuple) else ()
        if not record.args and "%" not in record.msg:
            record.msg = record.msg.split(":", 1)[0] + ": " + _HIDDEN
    return True


logging.getLogger("botocore.auth").addFilter(_hide_signing_material)

SIGNING_NAME = "bedrock"
"""Bedrock Runtime signs as ``bedrock`` (service-2.json ``signingName``), not ``bedrock-runtime``."""


class CredentialsUnavailable(Exception):
    """No usable AWS credentials (the message says why; it never holds a secret)."""


Loader = Callable[[], tuple[Credentials | None, str | None]]


def _session_loader(profile: str | None) -> Loader:
    def load() -> tuple[Credentials | None, str | None]:
        # Blocking: reads files, may call SSO / STS / the instance metadata service.
        session = Session(profile=profile)
        return session.get_credentials(), session.get_config_variable("region")

    return load


class AwsCredentials:
    """One deployment's AWS identity.

    Static keys are used as given; a profile or the default chain is resolved through botocore on
    first use in a worker thread, and temporary credentials are refreshed in a worker thread when
    botocore says they are due, so the event loop never waits on a file, SSO or IMDS.
    """

    def __init__(
        self,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        token: str | None = None,
        profile: str | None = None,
        loader: Loader | None = None,
    ) -> None:
        self._static: ReadOnlyCredentials | None = None
        if access_key or secret_key:
            if not (access_key and secret_key):
                raise ValueError("aws_access_key_id and aws_secret_access_key must be given together")
            self._static = ReadOnlyCredentials(access_key, secret_key, token or None, None)
        self._load = loader or _session_loader(profile)
        self._profile = profile
        self._resolved: Credentials | None = None
        self.profile_region: str | None = None
        self._lock: anyio.Lock | None = None

    @property
    def is_static(self) -> bool:
        return self._static is not None

    def invalidate(self) -> None:
        """Forget resolved credentials (after the upstream rejected them): the next call resolves
        the chain again and picks up rotated or re-logged-in credentials."""
        self._resolved = None

    async def region(self) -> str | None:
        """The profile's region (``region`` in ~/.aws/config), loading the profile if needed."""
        if self._static is None and self._resolved is None:
            await self.frozen()
        return self.profile_region

    async def frozen(self) -> ReadOnlyCredentials:
        if self._static is not None:
            return self._static
        creds = self._resolved
        if creds is not None and not _refresh_due(creds):
            return creds.get_frozen_credentials()  # no I/O when nothing is due
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:  # one resolution at a time; the others reuse its result
            creds = self._resolved
            if creds is None:
                try:
                    creds, self.profile_region = await anyio.to_thread.run_sync(self._load)
                except (BotoCoreError, ClientError) as exc:
                    raise CredentialsUnavailable(_describe(exc, self._profile)) from None
                if creds is None:
                    raise CredentialsUnavailable(
                        "no AWS credentials found (set aws_access_key_id/aws_secret_access_key, "
                        "aws_profile, api_key, AWS_BEARER_TOKEN_BEDROCK or the AWS_* environment)"
                    )
                self._resolved = creds
            try:
                if _refresh_due(creds):
                    return await anyio.to_thread.run_sync(creds.get_frozen_credentials)
                return creds.get_frozen_credentials()
            except (BotoCoreError, ClientError) as exc:
                self._resolved = None
                raise CredentialsUnavailable(_describe(exc, self._profile)) from None


def _refresh_due(creds: Credentials) -> bool:
    return isinstance(creds, RefreshableCredentials) and bool(creds.refresh_needed())


def _describe(exc: Exception, profile: str | None) -> str:
    where = f"profile {profile!r}" if profile else "the default AWS credential chain"
    # botocore's messages name files, profiles and URLs, never secret values.
    return f"AWS credentials from {where} are unavailable: {type(exc).__name__}: {exc}"


_SIGNED = ("host", "content-type")


def _signed_header(name: str) -> bool:
    # As LiteLLM does: sign only what proxies leave alone; the rest of the headers are unsigned.
    name = name.lower()
    return name in _SIGNED or (name.startswith(("x-amz-", "x-amzn-")) and name != "x-amzn-trace-id")


def sign_request(request: httpx.Request, credentials: ReadOnlyCredentials, region: str) -> None:
    """Add SigV4 headers to an httpx request, signing exactly the URL and bytes it will send."""
    aws = AWSRequest(
        method=request.method,
        url=str(request.url),
        data=request.content,
        headers={k: v for k, v in request.headers.items() if _signed_header(k)},
    )
    for stale in ("authorization", "x-amz-date", "x-amz-security-token"):
        if stale in aws.headers:
            del aws.headers[stale]
    creds = Credentials(credentials.access_key, credentials.secret_key, credentials.token)
    _BotocoreSigV4(creds, SIGNING_NAME, region).add_auth(aws)
    for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
        value = aws.headers.get(name)
        if value is not None:
            request.headers[name] = value


class SigV4Auth(httpx.Auth):
    """SigV4 as an httpx auth flow, so requests go through the shared client unchanged.
    Credentials are awaited inside the flow (lazy, refreshed off the event loop)."""

    requires_request_body = True

    def __init__(
        self,
        credentials: AwsCredentials,
        region: str,
        on_error: Callable[[str], Exception] = RuntimeError,
    ) -> None:
        self.credentials = credentials
        self.region = region
        self._on_error = on_error
        self.last: ReadOnlyCredentials | None = None
        """The credentials of the latest signature (the provider masks them in errors)."""

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("SigV4Auth resolves credentials asynchronously; use an httpx.AsyncClient")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncIterator[httpx.Request]:  # type: ignore[override]
        try:
            frozen = await self.credentials.frozen()
        except CredentialsUnavailable as exc:
            raise self._on_error(str(exc)) from None
        self.last = frozen
        sign_request(request, frozen, self.region)
        yield request


def header_text(message: EventStreamMessage, name: str) -> str:
    value: Any = message.headers.get(name)
    return value.decode() if isinstance(value, bytes) else str(value or "")


_SIGNATURE_CODES = frozenset(
    {"SignatureDoesNotMatch", "InvalidSignatureException", "IncompleteSignature", "IncompleteSignatureException"}
)
# Linear patterns (no nested quantifiers): SigV4 material an upstream may echo.
_SIGV4 = re.compile(r"(Signature=|Credential=)[^\s,;'\"]+")
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA)[A-Z0-9]{12,124}\b")


def scrub_sigv4(message: str, code: str | None) -> str:
    """An AWS error message without signing material: a signature error's canonical request
    and string to sign are dropped (they list signed headers, the session token among them),
    ``Credential=``/``Signature=`` values and anything shaped like an access key id masked."""
    if code in _SIGNATURE_CODES:
        message = message.replace("\r\n", "\n")
        for marker in ("\n\n", "The Canonical String", "The String-to-Sign"):
            message = message.split(marker, 1)[0]
        message = message.strip() or str(code)
    message = _SIGV4.sub(r"\1****", message)
    return _ACCESS_KEY_ID.sub("****", message)
