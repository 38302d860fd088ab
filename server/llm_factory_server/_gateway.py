"""The per-app state of the gateway: the factory, settings, client keys, metrics and the request log.

An app created by ``create_app`` holds one on ``app.state.llm_factory_gateway``; a host app that
mounts ``router`` gets one lazily, around ``app.state.llm_factory`` when set, else around a factory
found by the discovery rules.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Iterable
from typing import Any

from llm_factory_core import LLMFactory

from ._access import allowed_hosts
from ._discovery import HOW_TO_CONFIGURE, discover
from ._metrics import Metrics
from ._settings import ServerSettings, load_settings
from ._tracing import ServerTracing, from_settings
from .ops._operations import Operations

__all__ = ["Gateway", "gateway_for"]

log = logging.getLogger("llm_factory_server")
access_log = logging.getLogger("llm_factory_server.access")

STATE_ATTR = "llm_factory_gateway"
FACTORY_ATTR = "llm_factory"


class Gateway:
    def __init__(
        self,
        factory: LLMFactory,
        settings: ServerSettings | None = None,
        *,
        owns_factory: bool = False,
        source: str = "code",
    ) -> None:
        self.factory = factory
        self.settings = settings if settings is not None else load_settings(factory.config.server, os.environ)
        self.owns_factory = owns_factory
        self.source = source
        self.started = int(time.time())
        # Encoded once; compared in constant time against every key on each request.
        self._keys = [k.get_secret_value().encode() for k in self.settings.api_keys]
        self.ops = Operations(factory, self.settings)
        """Managed client keys, limits, budgets and usage records (``ops``)."""
        self.allowed_hosts = allowed_hosts(self.settings, self.open)
        """``Host`` values answered (None: any); see ``_access``."""
        self.metrics = Metrics(factory)
        self.metrics.own_collectors.append(self.ops.collector())
        self.metrics.registry.register(self.metrics.own_collectors[-1])
        self.tracing: ServerTracing | None = from_settings(self.settings.tracing, os.environ, factory)
        """OpenTelemetry request spans; None: off (see ``_tracing``)."""
        self.known_models = frozenset(factory.model_names)
        self.discovered: tuple[str | None, str | None] | None = None
        """``(config, env_file)`` as given to ``discover``: where a reload reads again (``_reload``)."""
        self._closed = False

    @classmethod
    def discover(
        cls,
        config: str | os.PathLike[str] | None = None,
        env_file: str | os.PathLike[str] | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> Gateway:
        found = discover(config, env_file)
        settings = load_settings(found.factory.config.server, found.env, source=found.source, overrides=overrides)
        gateway = cls(found.factory, settings, owns_factory=True, source=found.source)
        gateway.discovered = (os.fspath(config) if config else None, os.fspath(env_file) if env_file else None)
        return gateway

    # -- auth -----------------------------------------------------------------------------------

    @property
    def open(self) -> bool:
        return not self._keys and not self.ops.managed

    def authorized(self, presented: bytes | None) -> bool:
        if presented is None:
            return False
        ok = False
        for key in self._keys:  # no early exit: timing does not tell which key (or whether any) matched
            ok |= hmac.compare_digest(presented, key)
        return ok or self.ops.is_client_key(presented)

    # -- lifecycle ------------------------------------------------------------------------------

    def log_startup(self) -> None:
        models = self.factory.model_names
        if not models:
            log.warning(HOW_TO_CONFIGURE)
        else:
            log.info(
                "llm-factory gateway: %d deployment(s) serving %s (configuration: %s)",
                len(self.factory.deployments),
                ", ".join(models),
                self.source,
            )

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.metrics.close()
        await self.ops.aclose()
        if self.tracing is not None:
            await self.tracing.aclose()
        if self.owns_factory:
            await self.factory.aclose()
        else:  # not ours to close, but the pool it opened on this (ending) loop is
            await self.factory.release_loop()

    def models_hint(self) -> str | None:
        return None if self.factory.model_names else HOW_TO_CONFIGURE


def gateway_for(app: Any) -> Gateway:
    """The gateway of ``app``, created on first use for a host app that mounted the router."""
    state = app.state
    gateway: Gateway | None = getattr(state, STATE_ATTR, None)
    if gateway is None:
        factory: LLMFactory | None = getattr(state, FACTORY_ATTR, None)
        gateway = Gateway(factory, source="app.state.llm_factory") if factory is not None else Gateway.discover()
        setattr(state, STATE_ATTR, gateway)
        gateway.log_startup()
    return gateway


def loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None
