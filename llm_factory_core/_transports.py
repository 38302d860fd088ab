"""The HTTP client a factory builds: aiohttp under httpx's API when installed, else httpx's own."""

from __future__ import annotations

import os

import httpx

from ._errors import ConfigurationError

__all__ = ["TRANSPORTS", "TRANSPORT_ENV", "TransportChoice", "default_limits", "new_client", "transport_name"]


def default_limits() -> httpx.Limits:
    # Generous pool: a gateway holds many concurrent upstream streams; keep-alive saves TLS setups.
    return httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=30)


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


def new_client(choice: TransportChoice) -> httpx.AsyncClient:
    """The factory's own client (closing it closes its transport)."""
    if isinstance(choice, httpx.AsyncBaseTransport):
        return httpx.AsyncClient(transport=choice, limits=default_limits(), follow_redirects=False)
    if transport_name(choice) == "httpx":
        return httpx.AsyncClient(limits=default_limits(), follow_redirects=False)
    try:
        from ._aiohttp import AiohttpTransport
    except ImportError:
        raise ConfigurationError(
            "the aiohttp HTTP transport needs aiohttp: pip install 'llm-factory-core[fast]'"
        ) from None
    from ._provider import FAST_CLIENTS

    transport = AiohttpTransport(default_limits())
    client = httpx.AsyncClient(transport=transport, limits=default_limits(), follow_redirects=False)
    FAST_CLIENTS[client] = transport
    return client
