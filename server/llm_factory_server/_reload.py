"""Reloading the gateway's configuration without dropping a request: ``SIGHUP`` (one worker) and
``POST /admin/reload`` (the admin key).

The configuration is read again from where it was found at start-up (the config file, or the
environment and .env), validated, and handed to ``LLMFactory.reload``: new deployments join, removed
ones drain their in-flight requests, unchanged ones keep their health; a bad file is rejected with
its error logged (and returned by the endpoint) and the running configuration stays. The
``server:`` section (listen address, keys, limits) is read at start only: a change there is logged
as needing a restart.

With ``workers > 1``, uvicorn's supervisor owns ``SIGHUP``: it replaces the workers one at a time,
each reading the configuration afresh, and the old ones finish their requests first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from llm_factory_core import ConfigurationError, FactoryConfig, ReloadResult, load_env
from llm_factory_core._sources import config_from_env, load_yaml

from ._discovery import CONFIG_ENV, ENV_FILE_ENV
from ._gateway import Gateway

__all__ = ["admin_reload", "install_sighup_reload", "reload_gateway"]

log = logging.getLogger("llm_factory_server")


def _read(gateway: Gateway) -> tuple[FactoryConfig, str]:
    """The configuration from where ``Gateway.discover`` found it (the same rules, read again)."""
    found = gateway.discovered
    if found is None:
        raise ConfigurationError(
            "this gateway was given its factory in code, so there is no configuration to read again: "
            "call factory.reload(...) instead"
        )
    config, env_file = found
    env_file = env_file or os.environ.get(ENV_FILE_ENV) or None
    env = load_env(env_file)
    path = config or env.get(CONFIG_ENV) or None
    if path is None and Path("config.yaml").is_file():
        path = "config.yaml"
    if path is not None:
        yaml_env_file = env_file or (".env" if Path(".env").is_file() else None)
        return load_yaml(path, load_env(yaml_env_file)), str(path)
    return config_from_env(env, gateway.factory.registry, "environment"), "environment"


def reload_gateway(gateway: Gateway) -> ReloadResult:
    """Read the configuration again and serve it; ``ConfigurationError`` (nothing changed) when
    it cannot be read or is invalid. Runs on the gateway's event loop."""
    config, source = _read(gateway)
    factory = gateway.factory
    if config.server != factory.config.server:
        log.warning("configuration reload: the server section changed; it applies at the next restart")
    config = config.model_copy(update={"server": factory.config.server})
    result = factory.reload(config, source=source)
    gateway.known_models = frozenset(factory.model_names)
    # Metric labels and usage attribution: the new names join; removed ones stay known while they drain.
    gateway.metrics._known_models.update(factory.model_names)
    gateway.ops.recorder.deployments.update({d.name: (d.provider_key, d.settings.model) for d in factory.deployments})
    return result


def _on_sighup(gateway: Gateway) -> None:
    try:
        result = reload_gateway(gateway)
    except ConfigurationError as exc:
        log.error("configuration reload rejected, the running configuration stays:\n%s", exc)
        return
    except Exception:  # a reload must never take the gateway down
        log.exception("configuration reload failed, the running configuration stays")
        return
    log.info("configuration reloaded on SIGHUP: %s", result.summary())


def install_sighup_reload(app: Any, gateway: Gateway) -> None:
    """Reload on ``SIGHUP`` while ``app`` runs (its lifespan adds and removes the handler).
    Only where signals can be handled: the main thread of a Unix process."""
    if not hasattr(signal, "SIGHUP"):  # pragma: no cover - Windows
        return
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, _on_sighup, gateway)
            installed = True
        except (RuntimeError, ValueError):  # not the main thread (an embedding host): no signals
            installed = False
        try:
            async with inner(app_) as state:
                yield state
        finally:
            if installed:
                loop.remove_signal_handler(signal.SIGHUP)

    app.router.lifespan_context = lifespan


def admin_reload(gateway: Gateway) -> Any:
    """``POST /admin/reload``: 200 with what changed, or 400 with the configuration's error
    (the running configuration stays)."""
    from fastapi.responses import JSONResponse

    try:
        result = reload_gateway(gateway)
    except ConfigurationError as exc:
        log.error("configuration reload rejected, the running configuration stays:\n%s", exc)
        body = {"error": {"message": f"configuration rejected, nothing changed: {exc}", "type": "invalid_request_error",
                          "param": None, "code": "invalid_configuration"}}  # fmt: skip
        return JSONResponse(body, status_code=400)
    log.info("configuration reloaded (POST /admin/reload): %s", result.summary())
    return JSONResponse(
        {
            "reloaded": True,
            "added": result.added,
            "removed": result.removed,
            "changed": result.changed,
            "unchanged": result.unchanged,
        }
    )
