"""Running the gateway with uvicorn: uvloop when installed, httptools with the connection limits of `_protocol`."""

from __future__ import annotations

import copy
import gc
import logging
import logging.config
import os
import shutil
import tempfile
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.config import LOGGING_CONFIG

from ._app import _build
from ._discovery import CONFIG_ENV, ENV_FILE_ENV
from ._gateway import Gateway, loopback
from ._log_output import LineFormatter
from ._metrics import MULTIPROC_ENV
from ._protocol import uvicorn_options
from ._reload import install_sighup_reload
from ._settings import ServerSettings

__all__ = ["serve", "worker_app"]

log = logging.getLogger("llm_factory_server")


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's own logging setup plus our loggers (uvicorn's access log is replaced by ours:
    one line per request with model, deployment, latency and tokens)."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["llm_factory"] = {"()": LineFormatter}
    config["handlers"]["llm_factory"] = {
        "formatter": "llm_factory",
        "class": "llm_factory_server._log_output.CoalescingStreamHandler",  # request lines written together
        "stream": "ext://sys.stderr",
    }
    for name in ("llm_factory_server", "llm_factory_core"):
        config["loggers"][name] = {"handlers": ["llm_factory"], "level": level.upper(), "propagate": False}
    return config


def open_gateway_warning(settings: ServerSettings) -> str | None:
    if settings.api_keys or loopback(settings.host):
        return None
    return (
        f"No client keys are configured and the gateway listens on {settings.host}: anyone who can "
        "reach it can spend your provider keys. Set LLM_FACTORY_API_KEYS (or server.api_keys in config.yaml). "
        "Until then it answers only the Host names in server.allowed_hosts (default: localhost, 127.0.0.1, ::1)."
    )


def serve(
    *,
    config: str | None = None,
    env_file: str | None = None,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    log_level: str = "info",
) -> None:
    """Find the configuration, then serve until SIGINT / SIGTERM (in-flight requests get
    ``server.shutdown_timeout`` seconds to finish; new connections are refused meanwhile)."""
    logging.config.dictConfig(log_config(log_level))
    _lean_log_records()
    gateway = Gateway.discover(config, env_file, {"host": host, "port": port, "workers": workers})
    settings = gateway.settings
    if (warning := open_gateway_warning(settings)) is not None:
        log.warning(warning)
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "auto",
        "access_log": False,
        "log_config": log_config(log_level),
        "timeout_graceful_shutdown": settings.shutdown_timeout,
        **uvicorn_options(settings),
    }
    if settings.workers == 1:
        app = _build(gateway)
        install_sighup_reload(app, gateway)  # with several workers uvicorn's supervisor owns SIGHUP
        _settle_heap()
        uvicorn.run(app, **common)
        return
    # Each worker process builds its own factory (connection pools are per process) from the same
    # configuration, passed on through the environment.
    gateway.factory.close()
    if config:
        os.environ[CONFIG_ENV] = os.path.abspath(config)
    if env_file:
        os.environ[ENV_FILE_ENV] = os.path.abspath(env_file)
    # prometheus-client's multiprocess mode: every worker writes its series to files here and any
    # worker's /metrics adds them all up, so a scrape answers for the whole gateway.
    own_dir = MULTIPROC_ENV not in os.environ
    if own_dir:
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="llm-factory-metrics-")
    try:
        uvicorn.run("llm_factory_server._serve:worker_app", factory=True, workers=settings.workers, **common)
    finally:
        if own_dir:
            shutil.rmtree(os.environ.pop(MULTIPROC_ENV), ignore_errors=True)


def worker_app() -> FastAPI:
    _lean_log_records()
    app = _build(Gateway.discover())
    _settle_heap()
    return app


def _lean_log_records() -> None:
    """The logging HOWTO's "Optimization" settings: the request log writes a record per request,
    and our formats never show the caller's file and line, the process (a ``getpid`` system call
    per record) or the thread, so they are not collected. Only in the gateway's own process."""
    logging.logProcesses = logging.logThreads = logging.logMultiprocessing = False
    logging._srcfile = None


def _settle_heap() -> None:
    """Move everything built at start-up (modules, models, the app) out of the garbage
    collector's sight, and collect the youngest generation every 20,000 allocations instead of
    700: with dozens of requests in flight the default runs a collection every few requests
    (a quarter more throughput at 64 concurrent requests; memory stays flat, see bench/)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
