"""Who may call the gateway, decided the same way on every route.

* **Client keys**: one reading of ``Authorization: Bearer <key>`` / ``api-key: <key>`` /
  ``x-api-key: <key>`` (Anthropic's clients) for every route (chat, messages, models, status, docs,
  metrics): the raw header bytes, compared in constant time, the first of those three that is sent.
  Two ``Authorization`` (or two ``api-key``, or two ``x-api-key``) headers are refused rather than one of them picked
  (proxies and frameworks disagree on which one wins), and a key that is not printable ASCII is
  wrong without being compared (configured keys are printable ASCII, see ``ServerSettings``).
* **Host allow-list**: the open gateway (no client keys) answers only the host names in
  ``allowed_hosts`` (default: loopback names and the bind address), so a web page cannot reach it
  through DNS rebinding.
* **JSON only**: the open gateway refuses a POST that is not ``application/json``: a web page can
  send a form or ``text/plain`` POST to any address without asking (no CORS preflight), but not a
  JSON one.

Each check returns an ``ErrorReply`` (OpenAI's envelope) or None.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._errors import ErrorReply, simple
from ._settings import ServerSettings

__all__ = ["allowed_hosts", "check_access", "presented_key", "send_reply", "unauthorized"]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_WILDCARD_BINDS = ("", "0.0.0.0", "::")
_JSON = b"application/json"


def allowed_hosts(settings: ServerSettings, open_: bool) -> frozenset[bytes] | None:
    """The ``Host`` values (lower case, with or without port) answered; None: any."""
    hosts = settings.allowed_hosts
    if hosts is None:
        if not open_:
            return None
        hosts = [*LOOPBACK_NAMES]
        if settings.host.lower() not in _WILDCARD_BINDS:
            hosts.append(settings.host.lower())
    if "*" in hosts:
        return None
    return frozenset(h.encode("idna") if not h.isascii() else h.encode() for h in hosts)


def _host_ok(value: bytes | None, hosts: frozenset[bytes]) -> bool:
    if value is None:
        return False
    value = value.lower()
    if value in hosts:
        return True
    if value.startswith(b"["):  # [::1]:8000
        end = value.find(b"]")
        name = value[1:end] if end > 0 else value
    else:
        name = value.rsplit(b":", 1)[0] if value.count(b":") == 1 else value
    return name in hosts


def _printable(key: bytes) -> bool:
    return all(33 <= c < 127 for c in key)


def unauthorized(presented: bytes | None, message: str | None = None) -> ErrorReply:
    if message is None:
        if presented is None:
            message = (
                "Missing API key: send it as 'Authorization: Bearer <key>' (or an 'api-key' or 'x-api-key' header)."
            )
        else:
            message = "Incorrect API key provided."
    status, body, _ = simple(401, message, "invalid_request_error", "invalid_api_key")
    return status, body, [(b"www-authenticate", b"Bearer")]


def check_access(
    gateway: Any, headers: Iterable[tuple[bytes, bytes]], *, post: bool, key: bool = True
) -> ErrorReply | None:
    """Host, content type (open gateway, POST) and client key (``key``: the route needs one when
    keys are configured). ``gateway`` is a ``Gateway``."""
    hosts: frozenset[bytes] | None = gateway.allowed_hosts
    need_key = key and not gateway.open
    if hosts is None and not need_key and not (post and gateway.open):
        return None
    host = content_type = authorization = api_key = x_api_key = None
    twice: bytes | None = None
    for name, value in headers:
        if name == b"host":
            host = value
        elif name == b"content-type":
            content_type = value
        elif name == b"authorization":
            if authorization is not None:
                twice = b"Authorization"
            authorization = value
        elif name == b"api-key":
            if api_key is not None:
                twice = b"api-key"
            api_key = value
        elif name == b"x-api-key":
            if x_api_key is not None:
                twice = b"x-api-key"
            x_api_key = value
    if hosts is not None and not _host_ok(host, hosts):
        shown = "no Host header" if host is None else f"Host {host[:100].decode('latin-1')!r}"
        return simple(
            400,
            f"This gateway does not answer {shown}: without client keys it answers only the names in "
            "server.allowed_hosts (default: localhost, 127.0.0.1, ::1 and its bind address). Add the name "
            "clients use to server.allowed_hosts ('*' for any), or configure client keys (server.api_keys).",
            "invalid_request_error",
            "host_not_allowed",
        )
    if post and gateway.open and (content_type is None or content_type.split(b";", 1)[0].strip().lower() != _JSON):
        return simple(
            415,
            "The request body must be JSON: send 'Content-Type: application/json' (required while the gateway "
            "has no client keys, so that web pages cannot post to it).",
            "invalid_request_error",
            "unsupported_media_type",
        )
    if not need_key:
        return None
    if twice is not None:
        return unauthorized(None, f"Send the client key once: the request has more than one {twice.decode()} header.")
    presented = _key(authorization, api_key, x_api_key)
    if presented is not None and not _printable(presented):
        return unauthorized(presented)  # no configured key can match; not compared
    return None if gateway.authorized(presented) else unauthorized(presented)


def _key(authorization: bytes | None, api_key: bytes | None, x_api_key: bytes | None = None) -> bytes | None:
    if authorization is not None and authorization[:7].lower() == b"bearer ":
        return authorization[7:].strip()
    if api_key is not None:
        return api_key.strip()
    return x_api_key.strip() if x_api_key is not None else None


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The client key a request presents, read as ``check_access`` reads it (None when there is
    none, or when it is sent twice). For routes that need to know *which* key called (ownership
    of stored objects); ``check_access`` has already decided whether it is a valid one."""
    authorization = api_key = x_api_key = None
    for name, value in headers:
        if name == b"authorization":
            if authorization is not None:
                return None
            authorization = value
        elif name == b"api-key":
            if api_key is not None:
                return None
            api_key = value
        elif name == b"x-api-key":
            if x_api_key is not None:
                return None
            x_api_key = value
    return _key(authorization, api_key, x_api_key)


async def send_reply(send: Any, reply: ErrorReply) -> None:
    """Send an error reply on a raw ASGI connection."""
    status, body, extra = reply
    headers = [(b"content-type", _JSON), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
