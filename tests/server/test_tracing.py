"""The gateway's OpenTelemetry spans: a SERVER span per request that continues the client's
``traceparent``, the core's call and attempt spans under it, nothing secret or prompt-like in any
attribute, OTLP export to a collector on 127.0.0.1, and nothing at all when tracing is off."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from llm_factory_core import ConfigurationError, LLMFactory, ModelConfig
from llm_factory_core.testing import json_response, openai_chunks, openai_completion, serve_handler, sse_response
from llm_factory_server import ServerSettings, create_app
from llm_factory_server._tracing import ServerTracing, TracingSettings, from_settings

from .helpers import ServerThread

UPSTREAM_KEYS = {"a": "sk-upstream-a-secret-1111", "b": "sk-upstream-b-secret-2222"}
CLIENT_KEY = "client-key-secret-0042"
PROMPT = "my account number is 99887766, what now?"
REPLY = "call the bank on Monday"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"

Behaviour = Callable[[httpx.Request], httpx.Response]


def failing(status: int) -> Behaviour:
    body = {"error": {"message": "upstream trouble", "type": "server_error", "param": None, "code": None}}
    return lambda request: json_response(body, status)


def answer(request: httpx.Request) -> httpx.Response:
    if json.loads(request.content).get("stream"):
        return sse_response(openai_chunks(["call the bank", " on Monday"], include_usage=True, usage=(7, 6)))
    return json_response(openai_completion(REPLY, usage=(7, 6)))


@contextmanager
def gateway(
    http_transport: str,
    provider: TracerProvider | None,
    *hosts: str,
    behaviours: dict[str, list[Behaviour]] | None = None,
    **settings: Any,
) -> Iterator[tuple[ServerThread, LLMFactory]]:
    """The gateway over upstreams ``/a/v1``, ``/b/v1`` on one local server, traced to ``provider``."""
    queues = behaviours or {}

    def handle(request: httpx.Request) -> httpx.Response:
        queue = queues.get(request.url.path.split("/")[1], [answer])
        return (queue.pop(0) if len(queue) > 1 else queue[0])(request)

    with serve_handler(handle) as base:
        configs = [
            ModelConfig(
                provider="openai",
                model_name="gpt-4o",
                model="gpt-4o-2024-08-06",
                api_key=UPSTREAM_KEYS[h],
                api_base=f"{base}/{h}/v1",
                name=f"dep-{h}",
            )
            for h in hosts or ("a",)
        ]
        factory = LLMFactory(configs, transport=http_transport, strategy="first_available", num_retries=0)
        app = create_app(factory, settings=ServerSettings(**settings))
        gw = app.state.llm_factory_gateway
        if provider is not None:
            gw.tracing = ServerTracing(factory, provider)
        server = ServerThread(app).start()
        try:
            yield server, factory
        finally:
            server.stop()
            factory.close()


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    return tp


def post(server: ServerThread, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=headers or {}, timeout=10)


def chat(stream: bool = False) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": PROMPT}], "stream": stream}


def kinds(spans: tuple[ReadableSpan, ...]) -> tuple[ReadableSpan, ReadableSpan, list[ReadableSpan]]:
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    (call,) = [s for s in spans if s.kind is SpanKind.INTERNAL]
    attempts = sorted((s for s in spans if s.kind is SpanKind.CLIENT), key=lambda s: s.start_time or 0)
    return server, call, attempts


def every_value(spans: tuple[ReadableSpan, ...]) -> str:
    return "\n".join(
        f"{s.name} {dict(s.attributes or {})} {s.status.description} {[e.attributes for e in s.events]}" for s in spans
    )


def test_the_gateway_continues_the_clients_trace(
    http_transport: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with gateway(http_transport, provider) as (server, _):
        reply = post(server, chat(), {"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN}-01", "x-request-id": "req-7"})
    assert reply.status_code == 200
    request, call, (attempt,) = kinds(exporter.get_finished_spans())
    assert request.name == "POST /v1/chat/completions"
    assert request.parent is not None and request.parent.is_remote
    assert f"{request.parent.span_id:016x}" == PARENT_SPAN
    assert {f"{s.context.trace_id:032x}" for s in (request, call, attempt)} == {TRACE_ID}
    assert call.parent is not None and call.parent.span_id == request.context.span_id
    assert attempt.parent is not None and attempt.parent.span_id == call.context.span_id
    attrs = request.attributes or {}
    assert attrs["http.request.method"] == "POST" and attrs["http.response.status_code"] == 200
    assert attrs["llm_factory.request_id"] == "req-7"
    assert attrs["llm_factory.overhead_ms"] == float(reply.headers["x-llm-factory-overhead-ms"])
    assert (call.attributes or {})["gen_ai.request.model"] == "gpt-4o"
    assert (attempt.attributes or {})["gen_ai.usage.output_tokens"] == 6


def test_without_a_traceparent_the_request_span_starts_a_trace(
    http_transport: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with gateway(http_transport, provider) as (server, _):
        assert post(server, chat()).status_code == 200
        assert post(server, {"model": "nope", "messages": [{"role": "user", "content": "x"}]}).status_code == 404
    spans = exporter.get_finished_spans()
    requests = [s for s in spans if s.kind is SpanKind.SERVER]
    assert len(requests) == 2 and all(s.parent is None for s in requests)
    assert len({s.context.trace_id for s in requests}) == 2
    missing = requests[1]
    assert (missing.attributes or {})["http.response.status_code"] == 404
    assert missing.status.status_code is StatusCode.UNSET  # a client error is not the server's failure


def test_a_stream_that_fails_over_gives_two_attempts_the_first_an_error(
    http_transport: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    behaviours = {"a": [failing(503)], "b": [answer]}
    with gateway(http_transport, provider, "a", "b", behaviours=behaviours) as (server, _):
        body = chat(stream=True) | {"stream_options": {"include_usage": True}}
        with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=10) as reply:
            text = b"".join(reply.iter_bytes()).decode()
            overhead = reply.headers["x-llm-factory-overhead-ms"]
    assert text.endswith("data: [DONE]\n\n")
    request, call, (first, second) = kinds(exporter.get_finished_spans())
    assert (first.attributes or {})["llm_factory.deployment"] == "dep-a"
    assert first.status.status_code is StatusCode.ERROR and (first.attributes or {})["error.type"] == "ServerError"
    assert (second.attributes or {})["llm_factory.deployment"] == "dep-b"
    assert (second.attributes or {})["llm_factory.failover"] is True
    assert (second.attributes or {})["gen_ai.response.finish_reasons"] == ("stop",)
    assert second.status.status_code is StatusCode.UNSET
    assert (call.attributes or {})["gen_ai.request.stream"] is True
    assert (request.attributes or {})["llm_factory.overhead_ms"] == float(overhead)
    assert request.end_time is not None and second.end_time is not None and second.end_time <= request.end_time


def test_no_key_prompt_or_reply_in_any_span(
    http_transport: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    behaviours = {"a": [failing(500)], "b": [answer]}
    with gateway(http_transport, provider, "a", "b", behaviours=behaviours, api_keys=[CLIENT_KEY]) as (server, _):
        auth = {"authorization": f"Bearer {CLIENT_KEY}"}
        assert post(server, chat(), auth).status_code == 200
        with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=chat(True), headers=auth) as reply:
            assert b"".join(reply.iter_bytes()).endswith(b"data: [DONE]\n\n")
        assert post(server, chat(), {"authorization": "Bearer wrong-key-guess"}).status_code == 401
    seen = every_value(exporter.get_finished_spans())
    for secret in (CLIENT_KEY, *UPSTREAM_KEYS.values(), "wrong-key-guess", *(k[-6:] for k in UPSTREAM_KEYS.values())):
        assert secret not in seen
    for words in (PROMPT, "99887766", REPLY, "Monday", "upstream trouble"):
        assert words not in seen
    assert "gen_ai.input.messages" not in seen and "gen_ai.output.messages" not in seen


def test_with_tracing_off_no_span_is_made(
    http_transport: str, monkeypatch: pytest.MonkeyPatch, exporter: InMemorySpanExporter
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("tracing code ran with tracing off")

    from llm_factory_core._tracing import Tracing

    monkeypatch.setattr(ServerTracing, "serve", refuse)
    monkeypatch.setattr(Tracing, "call", refuse)
    monkeypatch.setattr(Tracing, "stream", refuse)
    with gateway(http_transport, None) as (server, factory):
        assert server.server.config.app.state.llm_factory_gateway.tracing is None
        assert factory.router.tracing is None
        assert post(server, chat()).status_code == 200
        with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=chat(True)) as reply:
            assert b"".join(reply.iter_bytes()).endswith(b"data: [DONE]\n\n")
    assert exporter.get_finished_spans() == ()


# -- configuration and OTLP export ------------------------------------------------------------------


def _factory() -> LLMFactory:
    return LLMFactory(
        [ModelConfig(provider="openai", model_name="m", api_key="sk-x-0000", api_base="http://127.0.0.1:9/v1")]
    )


def test_off_unless_settings_or_the_opentelemetry_environment_ask() -> None:
    f = _factory()
    try:
        assert from_settings(TracingSettings(), {}, f) is None
        assert f.router.tracing is None
        assert from_settings(TracingSettings(), {"OTEL_TRACES_EXPORTER": "none"}, f) is None
        on = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
        assert from_settings(TracingSettings(enabled=False), on, f) is None
        assert from_settings(TracingSettings(), {**on, "OTEL_SDK_DISABLED": "true"}, f) is None
        tracing = from_settings(TracingSettings(), on, f)
        assert tracing is not None and tracing.owned and f.router.tracing is not None
        assert not f.router.tracing.capture_content
        anyio.run(tracing.aclose)
        assert f.router.tracing is None
        # enabled with nowhere to send: the process's global provider (a host app's); content on request
        hosted = from_settings(TracingSettings(enabled=True, capture_content=True), {}, f)
        assert hosted is not None and not hosted.owned and hosted.provider is None
        assert f.router.tracing is not None and f.router.tracing.capture_content
        anyio.run(hosted.aclose)
    finally:
        f.close()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", {"enabled": True, "endpoint": None}),
        ("off", {"enabled": False, "endpoint": None}),
        ("http://collector:4318", {"enabled": True, "endpoint": "http://collector:4318"}),
    ],
)
def test_one_variable_turns_it_on_or_names_the_collector(value: str, expected: dict[str, Any]) -> None:
    from llm_factory_server._settings import load_settings

    settings = load_settings({}, {"LLM_FACTORY_TRACING": value}).tracing
    assert settings.model_dump(include={"enabled", "endpoint"}) == expected


def test_bad_tracing_settings_say_what_is_expected() -> None:
    from llm_factory_server._settings import load_settings

    with pytest.raises(ConfigurationError, match=r"LLM_FACTORY_TRACING.*OTLP endpoint URL"):
        load_settings({}, {"LLM_FACTORY_TRACING": "collector:4318"})
    with pytest.raises(ConfigurationError, match=r"server\.tracing\.endpont: unknown field"):
        load_settings({"tracing": {"endpont": "http://x"}}, {})
    f = _factory()
    try:
        with pytest.raises(ConfigurationError, match="OTLP over HTTP"):
            from_settings(
                TracingSettings(enabled=True),
                {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
                f,
            )
        with pytest.raises(ConfigurationError, match="zipkin"):
            from_settings(TracingSettings(), {"OTEL_TRACES_EXPORTER": "zipkin"}, f)
    finally:
        f.close()


def test_spans_reach_an_otlp_collector_on_the_configured_endpoint(http_transport: str) -> None:
    received: list[ExportTraceServiceRequest] = []
    paths: list[str] = []

    def collector(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        message = ExportTraceServiceRequest()
        message.ParseFromString(request.content)
        received.append(message)
        return httpx.Response(200, content=b"", headers={"content-type": "application/x-protobuf"})

    with serve_handler(collector) as endpoint:
        tracing = {"endpoint": endpoint, "service_name": "gw-under-test"}
        with gateway(http_transport, None, tracing=tracing) as (server, _):
            headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN}-01"}
            assert post(server, chat(), headers).status_code == 200
        # stopping the gateway flushed the batch
    assert paths and set(paths) == {"/v1/traces"}
    spans = [
        (resource.resource, span)
        for message in received
        for resource in message.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    names = sorted(span.name for _, span in spans)
    assert names == ["POST /v1/chat/completions", "chat gpt-4o", "chat gpt-4o-2024-08-06"]
    assert {span.trace_id.hex() for _, span in spans} == {TRACE_ID}
    service = {a.value.string_value for r, _ in spans for a in r.attributes if a.key == "service.name"}
    assert service == {"gw-under-test"}
