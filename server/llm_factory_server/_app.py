"""The standalone gateway app: the API under ``/v1``, plus ``/health``, ``/ready`` and ``/metrics``."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from llm_factory_core import LLMFactory

from ._access import check_access, send_reply
from ._chat import ChatCompletions
from ._errors import error_body, simple
from ._gateway import STATE_ATTR, Gateway
from ._metrics import CONTENT_TYPE
from ._openapi import document_chat_completions
from ._routes import JSON, error_response, json_response, router
from ._settings import ServerSettings
from .ops._admin import create_admin_router
from .ui import USAGE_ATTR, create_ui_router

__all__ = ["create_app"]

log = logging.getLogger("llm_factory_server")

_STATUS_TYPES = {404: "not_found_error", 405: "invalid_request_error"}


def create_app(
    factory: LLMFactory | None = None,
    *,
    settings: ServerSettings | None = None,
    config: str | os.PathLike[str] | None = None,
    env_file: str | os.PathLike[str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> FastAPI:
    """The gateway app. With ``factory`` it serves that factory (and leaves closing it to you);
    without, it finds the configuration (``config``, ``LLM_FACTORY_CONFIG``, ``./config.yaml``,
    environment / ``env_file``) and owns the factory it builds."""
    if factory is not None:
        gateway = Gateway(factory, settings)
    else:
        gateway = Gateway.discover(config, env_file, overrides)
        if settings is not None:
            gateway = Gateway(gateway.factory, settings, owns_factory=True, source=gateway.source)
    return _build(gateway)


CHAT_PATH = "/v1/chat/completions"
_PROBES = ("/health", "/ready")


class _GatewayApp(FastAPI):
    """FastAPI, with ``POST /v1/chat/completions`` handed straight to its endpoint: Starlette's
    middleware stack and router cost more CPU than the rest of a proxied request's own work. The
    endpoint answers every error itself (OpenAI's envelope, 500 included), so nothing the stack
    would add is lost. An app someone added middleware to takes the ordinary path."""

    _chat = ChatCompletions()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if (
                path == CHAT_PATH
                and scope["method"] == "POST"
                and not scope.get("root_path")
                and not self.user_middleware
            ):
                scope["app"] = self
                await self._chat(scope, receive, send)  # it checks access itself, as in a host app
                return
            # Every other route but the probes: the Host allow-list and content-type rule of an
            # open gateway, and the client key for the docs, the schema and the metrics when keys
            # are configured (deployment names in metrics and the API's shape are not for
            # anonymous eyes). Probes come from orchestrators with any Host (a pod's IP) and say
            # nothing worth a rebinding attack.
            gateway: Gateway | None = getattr(self.state, STATE_ATTR, None)
            if gateway is not None and path not in _PROBES:
                keyed = path in (self.openapi_url, self.docs_url, self.redoc_url, "/docs/oauth2-redirect", "/metrics")
                denied = check_access(gateway, scope["headers"], post=scope["method"] == "POST", key=keyed)
                if denied is not None:
                    await send_reply(send, denied)
                    return
        await super().__call__(scope, receive, send)


def _build(gateway: Gateway) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway.log_startup()
        start_shared_state = getattr(gateway.factory.health, "start", None)
        if start_shared_state is not None:  # join the fleet now, not at this worker's first request
            start_shared_state()
        try:
            yield
        finally:
            await gateway.aclose()

    app = _GatewayApp(
        title="llm-factory gateway",
        summary="OpenAI-compatible gateway over many LLM providers",
        version=_version(),
        lifespan=lifespan,
    )
    setattr(app.state, STATE_ATTR, gateway)
    app.include_router(router, prefix="/v1")
    app.include_router(create_ui_router())  # the status page, /ui (its data routes check the key)
    app.include_router(create_admin_router())  # /admin/keys, /admin/usage (the admin key)
    gateway.ops.on_first_record = lambda: setattr(app.state, USAGE_ATTR, gateway.ops)  # the page's usage section
    document_chat_completions(app, CHAT_PATH)

    async def health(request: Request) -> Response:
        describe = getattr(gateway.factory.health, "describe", None)
        if describe is None:
            return Response(b'{"status":"ok"}', media_type=JSON)
        # Shared state (Redis) down is not unhealthy: requests go on with this process's own state.
        shared = describe()
        return json_response(
            {"status": "ok", "shared_state": {"kind": shared["kind"], "connected": shared["connected"]}}
        )

    async def ready(request: Request) -> Response:
        factory = gateway.factory
        if not factory.deployments:
            return json_response({"status": "not_ready", "reason": gateway.models_hint()}, 503)
        models = {m: False for m in factory.model_names}
        for s in factory.status():
            models[s.model_name] = models[s.model_name] or s.state == "healthy"
        return json_response({"status": "ready", "models": models})

    async def metrics(request: Request) -> Response:
        return Response(gateway.metrics.render(), media_type=CONTENT_TYPE)

    # Plain routes: no parameters to solve, and probes should be as cheap as possible.
    app.add_route("/health", health, methods=["GET"], include_in_schema=False)
    app.add_route("/ready", ready, methods=["GET"], include_in_schema=False)
    app.add_route("/metrics", metrics, methods=["GET"], include_in_schema=False)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            message = (
                f"Unknown route {request.method} {request.url.path}. This gateway serves "
                "/v1/chat/completions, /v1/responses, /v1/embeddings, /v1/models and /v1/providers/status."
            )
        else:
            message = str(exc.detail)
        status, body, _ = simple(exc.status_code, message, _STATUS_TYPES.get(exc.status_code, "invalid_request_error"))
        return Response(body, status_code=status, media_type=JSON, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        message = "; ".join(str(e.get("msg")) for e in exc.errors()[:5])
        return error_response(simple(400, f"Invalid request: {message}", "invalid_request_error"))

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        body = error_body("The gateway failed unexpectedly; see its log.", "server_error")
        return Response(body, status_code=500, media_type=JSON)

    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llm-factory-server")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"
