"""Microsoft Entra ID tokens for Azure OpenAI that are refreshed before they expire.

Entra access tokens live about 60-90 minutes; a static token turns every call into a 401 after
that, and a 401 disables the deployment for an hour. A ``TokenSource`` fetches a token from a
credential (anything with azure-identity's ``get_token(*scopes) -> AccessToken`` protocol, sync or
async: ``DefaultAzureCredential``, ``ManagedIdentityCredential``...) or from a token-provider
callable (openai-python's ``azure_ad_token_provider`` shape: ``() -> str``, sync or async), keeps
it until ``REFRESH_MARGIN`` seconds before ``expires_on``, and then:

- while the cached token is still valid, requests use it and one background refresh runs;
- when no valid token is left, requests wait for the one refresh in flight (never several).

A sync credential or provider runs in a worker thread (azure-identity's sync credentials do
blocking network I/O), never on the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread

__all__ = ["COGNITIVE_SERVICES_SCOPE", "REFRESH_MARGIN", "TokenSource", "from_credential", "from_provider", "now"]

log = logging.getLogger("llm_factory_openai.entra")

COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"
"""The scope Azure OpenAI tokens are issued for (openai-python and Azure's docs use it)."""
REFRESH_MARGIN = 300.0
"""Refresh this many seconds before a token expires (azure-identity's own default margin)."""

Fetch = Callable[[], Awaitable[tuple[str, float | None]]]
"""Returns a token and when it expires (epoch seconds), or None when that is unknown."""


def now() -> float:
    """The clock tokens are compared with (epoch seconds, like ``AccessToken.expires_on``)."""
    return time.time()


async def _call(function: Callable[..., Any], *args: Any) -> Any:
    """Run a sync callable in a worker thread; await an async one (or an awaitable result)."""
    if inspect.iscoroutinefunction(function):
        return await function(*args)
    result = await anyio.to_thread.run_sync(lambda: function(*args))
    if inspect.isawaitable(result):
        result = await result
    return result


def from_credential(credential: Any, scope: str = COGNITIVE_SERVICES_SCOPE) -> Fetch:
    """A fetch function over an azure-identity style credential (``get_token(scope)``)."""
    get_token = getattr(credential, "get_token", None)
    if not callable(get_token):
        raise ValueError(
            f"azure_credential must have get_token(scope) -> AccessToken (azure-identity's protocol), "
            f"got {type(credential).__name__}"
        )

    async def fetch() -> tuple[str, float | None]:
        return _token_and_expiry(await _call(get_token, scope), "azure_credential.get_token")

    return fetch


def from_provider(provider: Callable[[], Any]) -> Fetch:
    """A fetch function over a token-provider callable returning a token string (openai-python's
    ``azure_ad_token_provider``) or an ``AccessToken``-like object."""

    async def fetch() -> tuple[str, float | None]:
        return _token_and_expiry(await _call(provider), "azure_ad_token_provider")

    return fetch


def _token_and_expiry(value: Any, source: str) -> tuple[str, float | None]:
    token: Any = value if isinstance(value, str) else getattr(value, "token", None)
    if not isinstance(token, str) or not token:
        raise ValueError(f"{source} returned {type(value).__name__}, not a token string or an AccessToken")
    expires: Any = None if isinstance(value, str) else getattr(value, "expires_on", None)
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        expires = _jwt_expiry(token)
    return token, float(expires) if expires is not None else None


def _jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (Entra tokens are JWTs), read without verifying it: only to know
    when to refresh. None for an opaque token."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    return float(exp) if isinstance(exp, int | float) else None


class TokenSource:
    """A cached Entra token, refreshed before expiry with at most one refresh in flight.

    A token whose expiry is unknown (an opaque string from a provider callable) is fetched for
    every request, as openai-python does with ``azure_ad_token_provider``; concurrent requests
    still share one fetch."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        margin: float = REFRESH_MARGIN,
        on_token: Callable[[str], None] | None = None,
    ) -> None:
        self._fetch = fetch
        self._margin = margin
        self._on_token = on_token
        self._token: str | None = None
        self._expires: float | None = None
        self._refreshing: asyncio.Task[str] | None = None
        self.refreshes = 0
        """How many fetches were started (for tests and status)."""

    async def token(self) -> str:
        token, expires = self._token, self._expires
        if token is not None and expires is not None:
            left = expires - now()
            if left > self._margin:
                return token  # the hot path: no await, no lock
            if left > 0:
                self._refresh()  # in the background; this request keeps the still-valid token
                return token
        return await asyncio.shield(self._refresh())

    def _refresh(self) -> asyncio.Task[str]:
        task = self._refreshing
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            return task
        task = asyncio.get_running_loop().create_task(self._run())
        task.add_done_callback(_consume)
        self._refreshing = task
        return task

    async def _run(self) -> str:
        self.refreshes += 1
        token, expires = await self._fetch()
        if self._on_token is not None:
            self._on_token(token)  # registered as a secret before it can appear anywhere
        self._token, self._expires = token, expires
        return token


def _consume(task: asyncio.Task[str]) -> None:
    """A failed background refresh is logged (the next request retries); one awaited by a request
    raises there."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("Entra ID token refresh failed: %s", type(task.exception()).__name__)
