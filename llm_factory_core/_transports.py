"""The HTTP client a factory builds: the fast transport under httpx's API when installed (the core's
HTTP/1.1 client on httptools, aiohttp's session for proxies; see ``_aiohttp``), else httpx's own.

One pool serves every deployment, so it is capped per origin where the transport can (aiohttp's
``limit_per_host``; httpx's pool has none, and there the pool-wait timeout each request carries,
``Limits.pool_timeout``, is what keeps a hanging upstream from stalling every other one forever).
"""

from __future__ import annotations

import os

import httpx

from ._errors import ConfigurationError
from ._provider import Limits

__all__ = ["TRANSPORTS", "TRANSPORT_ENV", "TransportChoice", "default_limits", "new_client", "transport_name"]


def default_limits(limits: Limits | None = None) -> httpx.Limits:
    # Generous pool: a gateway holds many concurrent upstream streams; keep-alive saves TLS setups.
    total = (limits or Limits()).max_connections
    return httpx.Limits(max_connections=total, max_keepalive_connections=min(200, total), keepalive_expiry=30)


TRANSPORT_ENV = "LLM_FACTORY_HTTP_TRANSPORT"
TRANSPORTS = ("auto", "aiohttp", "httpx")
TransportChoice = httpx.AsyncBaseTransport | str | None


def transport_name(choice: TransportChoice) -> str:
    """``aiohttp`` or ``httpx`` for a named choice: the argument, else ``$LLM_FACTORY_HTTP_TRANSPORT``,
    else ``auto``: aiohttp when installed (the ``fast`` extra), httpx's own transport otherwise."""
    name = choice if isinstance(choice, str) else os.environ.get(TRANSPORT_ENV, "auto")
    name = name.strip().lower() or "auto"
    if name not in TRANSPORTS:
        raise ConfigurationError(
            f"HTTP transport {name!r} is not one of {', '.join(TRANSPORTS)} "
            f"(LLMFactory(transport=...) or ${TRANSPORT_ENV})"
        )
    if name == "auto":
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            return "httpx"
        return "aiohttp"
    return name


def new_client(choice: TransportChoice, limits: Limits | None = None) -> httpx.AsyncClient:
    """The factory's own client (closing it closes its transport), its pool sized by ``limits``."""
    limits = limits or Limits()
    pool = default_limits(limits)
    if isinstance(choice, httpx.AsyncBaseTransport):
        return httpx.AsyncClient(transport=choice, limits=pool, follow_redirects=False)
    if transport_name(choice) == "httpx":
        return httpx.AsyncClient(limits=pool, follow_redirects=False)
    try:
        from ._aiohttp import AiohttpTransport
    except ImportError:
        raise ConfigurationError(
            "the aiohttp HTTP transport needs aiohttp: pip install 'llm-factory-core[fast]'"
        ) from None
    from ._provider import FAST_CLIENTS

    transport = AiohttpTransport(pool, max_connections_per_host=limits.max_connections_per_host)
    client = httpx.AsyncClient(transport=transport, limits=pool, follow_redirects=False)
    FAST_CLIENTS[client] = transport
    return client
