"""OpenTelemetry for the gateway: a SERVER span per chat completions request, continuing the
client's ``traceparent``, around the core's call and attempt spans (``llm_factory_core._tracing``);
exported with OTLP over HTTP when configured.

Configured by the YAML ``server: tracing:`` section or the standard OpenTelemetry environment
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``OTEL_TRACES_EXPORTER``,
``OTEL_SERVICE_NAME``, ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_TRACES_SAMPLER``, ``OTEL_SDK_DISABLED``).
Off when neither asks for it: then ``Gateway.tracing`` is None, nothing is imported, and the chat
endpoint pays one attribute check.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, model_validator

from llm_factory_core import ConfigurationError, LLMFactory

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = ["ServerTracing", "TracingSettings", "OVERHEAD_HEADER", "from_settings"]

log = logging.getLogger("llm_factory_server")

OVERHEAD_HEADER = b"x-llm-factory-overhead-ms"
TRACED = "llm_factory.traced"
"""Scope key set once the request span is open (the endpoint is entered twice: once to trace)."""

_INSTALL = "tracing needs OpenTelemetry's SDK and OTLP exporter: pip install 'llm-factory-server[otel]'"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class TracingSettings(BaseModel):
    """``server: tracing:``. As one variable, ``LLM_FACTORY_TRACING`` takes ``true`` / ``false``
    or an OTLP endpoint (which turns tracing on)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    """Unset: on when the OpenTelemetry environment names an exporter or OTLP endpoint."""
    endpoint: str | None = None
    """OTLP/HTTP collector base URL (``http://collector:4318``; ``/v1/traces`` is appended)."""
    service_name: str | None = None
    """``service.name`` of the spans; default ``OTEL_SERVICE_NAME``, else ``llm-factory-gateway``."""
    capture_content: bool = False
    """Record prompts and replies on spans (off: they often hold personal data)."""

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return {"enabled": value}
        if isinstance(value, str):
            word = value.strip().lower()
            if word in _TRUE | _FALSE:
                return {"enabled": word in _TRUE}
            if not word.startswith(("http://", "https://")):
                raise ValueError("expected true / false or an OTLP endpoint URL (http://collector:4318)")
            return {"enabled": True, "endpoint": value.strip()}
        return value


class ServerTracing:
    """The request span; the core's spans hang under it."""

    def __init__(
        self,
        factory: LLMFactory,
        tracer_provider: TracerProvider | None = None,
        *,
        capture_content: bool = False,
        owned: bool = False,
    ) -> None:
        from opentelemetry import context, propagate, trace

        from llm_factory_server import __version__

        self._trace = trace
        self._context = context
        self._propagate = propagate
        self.provider = tracer_provider
        self.owned = owned
        self.factory = factory
        self.tracer = trace.get_tracer("llm_factory_server", __version__, tracer_provider=tracer_provider)
        factory.enable_tracing(tracer_provider, capture_content=capture_content)

    async def serve(
        self, endpoint: Callable[[Any, Any, Any], Awaitable[None]], scope: dict[str, Any], receive: Any, send: Any
    ) -> None:
        """Run ``endpoint`` inside a SERVER span, a child of the client's ``traceparent`` if any."""
        carrier = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope["headers"]
            if k in (b"traceparent", b"tracestate", b"baggage")
        }
        parent = self._propagate.extract(carrier) if carrier else None
        attributes = {
            "http.request.method": "POST",
            "http.route": scope["path"],
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.version": scope.get("http_version", "1.1"),
        }
        span = self.tracer.start_span(
            f"POST {scope['path']}", context=parent, kind=self._trace.SpanKind.SERVER, attributes=attributes
        )
        scope[TRACED] = True

        async def traced_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                span.set_attribute("http.response.status_code", status)
                if status >= 500:  # HTTP server spans: only the server's own failures are errors
                    span.set_attribute("error.type", str(status))
                    span.set_status(self._trace.StatusCode.ERROR)
                for key, value in message.get("headers", ()):
                    if key == OVERHEAD_HEADER:
                        span.set_attribute("llm_factory.overhead_ms", float(value))
                    elif key == b"x-request-id":
                        span.set_attribute("llm_factory.request_id", value.decode("latin-1"))
            await send(message)

        token = self._context.attach(self._trace.set_span_in_context(span, parent))
        try:
            await endpoint(scope, receive, traced_send)
        finally:
            self._context.detach(token)
            span.end()

    async def aclose(self) -> None:
        if self.factory.router.tracing is not None:
            self.factory.disable_tracing()
        provider = self.provider
        if self.owned and provider is not None:
            import anyio

            # Flushes the last batch; the exporter's own timeout bounds it. Off the event loop.
            await anyio.to_thread.run_sync(provider.shutdown)  # type: ignore[attr-defined]


def from_settings(settings: TracingSettings, env: Mapping[str, str], factory: LLMFactory) -> ServerTracing | None:
    """The gateway's tracing as ``settings`` and the OpenTelemetry environment ask, or None (off)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true" or settings.enabled is False:
        return None
    exporters = [e.strip().lower() for e in env.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip()]
    env_endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if settings.endpoint is None and exporters == ["none"]:
        return None
    wanted = settings.enabled or settings.endpoint is not None or bool(exporters) or bool(env_endpoint)
    if not wanted:
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        raise ConfigurationError(_INSTALL) from None
    if settings.endpoint is None and not exporters and not env_endpoint:
        # ``enabled: true`` and nothing else: a host app that configured OpenTelemetry itself.
        log.info("tracing: spans go to the process's global OpenTelemetry tracer provider")
        return ServerTracing(factory, None, capture_content=settings.capture_content)
    span_exporters: list[Any] = []
    if settings.endpoint is not None:
        span_exporters.append(_otlp(settings.endpoint.rstrip("/").removesuffix("/v1/traces") + "/v1/traces"))
    for name in exporters or ["otlp"]:
        if name == "otlp" and settings.endpoint is None:
            _check_protocol(env)
            span_exporters.append(_otlp(None))  # endpoint, headers, timeout from the environment
        elif name == "console":
            span_exporters.append(ConsoleSpanExporter())
        elif name not in ("otlp", "none"):
            raise ConfigurationError(
                f"OTEL_TRACES_EXPORTER={name!r} is not supported by the gateway: use otlp (OTLP over HTTP), "
                f"console or none"
            )
    service = settings.service_name or env.get("OTEL_SERVICE_NAME") or "llm-factory-gateway"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    for exporter in span_exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    log.info("tracing: OpenTelemetry spans exported (service.name=%s)", service)
    return ServerTracing(factory, provider, capture_content=settings.capture_content, owned=True)


def _otlp(endpoint: str | None) -> Any:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise ConfigurationError(_INSTALL) from None
    return OTLPSpanExporter(endpoint=endpoint) if endpoint is not None else OTLPSpanExporter()


def _check_protocol(env: Mapping[str, str]) -> None:
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if protocol and protocol.strip() != "http/protobuf":
        raise ConfigurationError(
            f"OTLP protocol {protocol!r}: the gateway exports OTLP over HTTP (http/protobuf); point it at "
            f"the collector's HTTP port (4318) and unset OTEL_EXPORTER_OTLP_PROTOCOL"
        )
