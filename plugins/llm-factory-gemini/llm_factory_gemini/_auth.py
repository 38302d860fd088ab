"""Vertex AI Bearer tokens from google-auth, refreshed before they expire.

Access tokens last about an hour; a fixed one turns every call into a 401 after that (and a 401
disables the deployment). ``TokenSource`` holds google-auth credentials (Application Default
Credentials or a key file) and hands out their token:

- fresh (more than ``margin`` seconds left): returned at once, no lock, no await (the hot path);
- inside the margin but still valid: returned at once, and one background refresh is started;
- missing or expired: the request waits for the refresh.

Never more than one refresh is in flight (a lock around ``credentials.refresh``; who waits for it
re-checks the token instead of refreshing again). google-auth's refresh is blocking I/O, so it runs
on a worker thread, never on the event loop. Threads rather than loop tasks: a factory may be used
from several event loops (``asyncio.run`` more than once), and a thread belongs to none.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

import anyio.to_thread

__all__ = ["Credentials", "TokenError", "TokenSource", "load_credentials"]

log = logging.getLogger("llm_factory_gemini")

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


class Credentials(Protocol):
    """What is used of ``google.auth.credentials.Credentials``."""

    token: str | None
    expiry: dt.datetime | None

    def refresh(self, request: Any) -> None: ...


class TokenError(Exception):
    """The credentials could not produce a token (message safe to show: no token in it).
    ``transient``: the token endpoint could not be reached (try again), rather than refused."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def load_credentials(*, use_adc: bool, credentials_file: str | None) -> Credentials:
    """google-auth credentials for Vertex (cloud-platform scope). Blocking: call off the loop."""
    try:
        import google.auth
    except ImportError:
        raise TokenError(
            "use_adc / credentials_file need google-auth: pip install 'llm-factory-gemini[vertex]'"
        ) from None
    try:
        if credentials_file is not None:
            credentials, _ = google.auth.load_credentials_from_file(  # type: ignore[no-untyped-call]
                credentials_file, scopes=[CLOUD_PLATFORM]
            )
        else:
            credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM])
    except google.auth.exceptions.GoogleAuthError as exc:
        raise TokenError(f"Vertex credentials could not be loaded: {_first_line(exc)}") from None
    return credentials  # type: ignore[no-any-return]


def _default_request() -> Any:
    try:
        from google.auth.transport.requests import Request
    except ImportError:
        raise TokenError(
            "refreshing Vertex tokens needs google-auth with requests: pip install 'llm-factory-gemini[vertex]'"
        ) from None
    return Request()


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def _utc(moment: dt.datetime) -> dt.datetime:
    # google-auth keeps expiry as a naive UTC datetime.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


class TokenSource:
    """Bearer tokens of one deployment's credentials (see the module docstring)."""

    def __init__(
        self,
        loader: Callable[[], Credentials],
        *,
        margin: float = 300.0,
        request_factory: Callable[[], Any] = _default_request,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._loader = loader
        self._credentials: Credentials | None = None
        self.margin = dt.timedelta(seconds=margin)
        self._request_factory = request_factory
        self._request: Any = None  # one HTTP session for all refreshes, made on first use
        self._clock = clock
        self._lock = threading.Lock()
        self.refreshes = 0
        """How many refreshes ran (tests and status pages)."""

    def __repr__(self) -> str:
        return f"<TokenSource refreshes={self.refreshes}>"  # never the token

    def _left(self, credentials: Credentials) -> dt.timedelta | None:
        """Time the current token has left; None when there is no token. A token without expiry
        never expires (google-auth's convention)."""
        if not credentials.token:
            return None
        if credentials.expiry is None:
            return dt.timedelta.max
        return _utc(credentials.expiry) - self._clock()

    async def token(self) -> str:
        credentials = self._credentials
        if credentials is not None:
            left = self._left(credentials)
            if left is not None and left > self.margin:
                return str(credentials.token)
            if left is not None and left > dt.timedelta(0):
                self._refresh_in_background()
                return str(credentials.token)
        await anyio.to_thread.run_sync(self._refresh_if_needed)
        assert self._credentials is not None and self._credentials.token
        return str(self._credentials.token)

    def _refresh_in_background(self) -> None:
        if not self._lock.acquire(blocking=False):
            return  # a refresh is already in flight
        thread = threading.Thread(target=self._background, name="gemini-token-refresh", daemon=True)
        try:
            thread.start()
        except BaseException:
            self._lock.release()
            raise

    def _background(self) -> None:
        try:
            self._refresh_locked(only_if_stale=True)
        except TokenError as exc:
            log.warning(
                "background refresh of Vertex credentials failed (the current token is used until it expires): %s", exc
            )
        finally:
            self._lock.release()

    def _refresh_if_needed(self) -> None:
        with self._lock:  # waits for a refresh in flight, then re-checks
            self._refresh_locked(only_if_stale=False)

    def _refresh_locked(self, *, only_if_stale: bool) -> None:
        if self._credentials is None:
            self._credentials = self._loader()
        credentials = self._credentials
        left = self._left(credentials)
        threshold = self.margin if only_if_stale else dt.timedelta(0)
        if left is not None and left > threshold:
            return  # someone else refreshed meanwhile
        try:
            if self._request is None:
                self._request = self._request_factory()
            credentials.refresh(self._request)
        except TokenError:
            raise
        except Exception as exc:  # google.auth.exceptions.RefreshError, TransportError, ...
            transient = type(exc).__name__ == "TransportError"  # google.auth.exceptions.TransportError
            message = f"Vertex credentials could not be refreshed ({type(exc).__name__}): {_first_line(exc)}"
            raise TokenError(message, transient=transient) from None
        self.refreshes += 1
        if not credentials.token:
            raise TokenError("Vertex credentials refreshed without a token")
