"""OpenTelemetry spans from the router (GenAI semantic conventions), read back through the SDK's
in-memory exporter, over real sockets on every HTTP transport."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from llm_factory_core import BadRequestError, ConfigurationError, LLMFactory, ModelConfig
from llm_factory_core._tracing import Tracing
from llm_factory_core.testing import json_response, openai_chunks, openai_completion, serve_handler, sse_response

pytestmark = pytest.mark.anyio

PROMPT = "tell me the secret plan for Tuesday"
REPLY = "the reply text itself"
KEYS = {"a": "sk-a-upstream-secret-0001", "b": "sk-b-upstream-secret-0002"}

Behaviour = Callable[[httpx.Request], httpx.Response]


def error(status: int) -> Behaviour:
    body = {"error": {"message": "upstream trouble", "type": "server_error", "param": None, "code": None}}
    return lambda request: json_response(body, status)


def reply(request: httpx.Request) -> httpx.Response:
    if json.loads(request.content).get("stream"):
        return sse_response(openai_chunks(["the reply ", "text itself"], include_usage=True, usage=(11, 5)))
    return json_response(openai_completion(REPLY, usage=(11, 5)))


@contextmanager
def upstreams(**behaviours: list[Behaviour]) -> Iterator[str]:
    """Deployments by path prefix (``/a/v1``, ``/b/v1``) on one local server; each behaviour list
    is consumed in order, its last entry repeating."""

    def handle(request: httpx.Request) -> httpx.Response:
        queue = behaviours[request.url.path.split("/")[1]]
        return (queue.pop(0) if len(queue) > 1 else queue[0])(request)

    with serve_handler(handle) as base:
        yield base


def factory(base: str, transport: str, *hosts: str, **router: Any) -> LLMFactory:
    limits = {k: router.pop(k) for k in ("first_token_timeout",) if k in router}
    configs = [
        ModelConfig(
            provider="openai",
            model_name="gpt-4o",
            model="gpt-4o-2024-08-06",
            api_key=KEYS[h],
            api_base=f"{base}/{h}/v1",
            name=f"dep-{h}",
            **limits,
        )
        for h in hosts
    ]
    router.setdefault("strategy", "first_available")
    router.setdefault("num_retries", 0)
    router.setdefault("cooldown", 0.01)
    return LLMFactory(configs, transport=transport, **router)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    return tp


def by_kind(spans: tuple[ReadableSpan, ...]) -> tuple[ReadableSpan, list[ReadableSpan]]:
    calls = [s for s in spans if s.kind is SpanKind.INTERNAL]
    attempts = sorted((s for s in spans if s.kind is SpanKind.CLIENT), key=lambda s: s.start_time or 0)
    assert len(calls) == 1, spans
    return calls[0], attempts


def every_value(spans: tuple[ReadableSpan, ...]) -> str:
    parts = []
    for span in spans:
        parts.append(span.name)
        parts.extend(f"{k}={v}" for k, v in (span.attributes or {}).items())
        parts.append(str(span.status.description))
        parts.extend(str(e.attributes) for e in span.events)
    return "\n".join(parts)


async def test_a_call_and_its_attempt_follow_the_genai_conventions(
    http_transport: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with upstreams(a=[reply]) as base:
        async with factory(base, http_transport, "a") as f:
            f.enable_tracing(provider)
            await f.chat_async(PROMPT, max_tokens=50, temperature=0.2)
    call, attempts = by_kind(exporter.get_finished_spans())
    assert call.name == "chat gpt-4o"
    assert call.attributes is not None and attempts[0].attributes is not None
    attributes = dict(call.attributes)
    assert str(attributes.pop("gen_ai.response.id")).startswith("chatcmpl")
    assert attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.request.max_tokens": 50,
        "gen_ai.request.temperature": 0.2,
        "llm_factory.attempts": 1,
        "llm_factory.deployment": "dep-a",
        "gen_ai.provider.name": "openai",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 11,
        "gen_ai.usage.output_tokens": 5,
    }
    (attempt,) = attempts
    assert attempt.name == "chat gpt-4o-2024-08-06"
    assert attempt.parent is not None and attempt.parent.span_id == call.context.span_id
    assert attempt.context.trace_id == call.context.trace_id
    a = attempt.attributes
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-2024-08-06"
    assert a["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (11, 5)
    assert a["llm_factory.deployment"] == "dep-a" and a["llm_factory.attempt"] == 1
    assert a["llm_factory.failover"] is False
    assert a["server.address"] == "127.0.0.1" and isinstance(a["server.port"], int)
    assert a["gen_ai.request.max_tokens"] == 50
    assert attempt.status.status_code is StatusCode.UNSET and call.status.status_code is StatusCode.UNSET


async def test_a_failover_gives_two_attempt_spans_the_first_an_error(
    http_transport: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with upstreams(a=[error(503)], b=[reply]) as base:
        async with factory(base, http_transport, "a", "b") as f:
            f.enable_tracing(provider)
            await f.chat_async(PROMPT)
    call, (first, second) = by_kind(exporter.get_finished_spans())
    assert first.attributes is not None and second.attributes is not None and call.attributes is not None
    assert first.attributes["llm_factory.deployment"] == "dep-a"
    assert first.status.status_code is StatusCode.ERROR
    assert first.attributes["error.type"] == "ServerError"
    assert first.attributes["llm_factory.upstream_status"] == 503
    assert "gen_ai.response.id" not in first.attributes
    assert second.attributes["llm_factory.deployment"] == "dep-b"
    assert (second.attributes["llm_factory.attempt"], second.attributes["llm_factory.failover"]) == (2, True)
    assert second.status.status_code is StatusCode.UNSET and "error.type" not in second.attributes
    assert {first.parent.span_id, second.parent.span_id} == {call.context.span_id}  # type: ignore[union-attr]
    assert call.attributes["llm_factory.attempts"] == 2 and call.attributes["llm_factory.deployment"] == "dep-b"
    assert call.status.status_code is StatusCode.UNSET


async def test_a_request_error_marks_the_attempt_and_the_call(
    http_transport: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with upstreams(a=[error(400)], b=[reply]) as base:
        async with factory(base, http_transport, "a", "b") as f:
            f.enable_tracing(provider)
            with pytest.raises(BadRequestError):
                await f.chat_async(PROMPT)
    call, (attempt,) = by_kind(exporter.get_finished_spans())  # not failed over: the request is at fault
    for span in (call, attempt):
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes is not None and span.attributes["error.type"] == "BadRequestError"
    assert "upstream trouble" not in every_value(exporter.get_finished_spans())


async def test_streams_trace_the_attempt_to_its_end_with_usage_and_first_chunk_time(
    http_transport: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with upstreams(a=[error(502)], b=[reply]) as base:
        async with factory(base, http_transport, "a", "b") as f:
            f.enable_tracing(provider)
            stream = f.stream_async(PROMPT, stream_options={"include_usage": True})
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == REPLY
    call, (failed, good) = by_kind(exporter.get_finished_spans())
    assert call.attributes is not None and failed.attributes is not None and good.attributes is not None
    assert call.attributes["gen_ai.request.stream"] is True
    assert failed.status.status_code is StatusCode.ERROR and failed.attributes["error.type"] == "ServerError"
    assert good.attributes["gen_ai.request.stream"] is True
    assert good.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert (good.attributes["gen_ai.usage.input_tokens"], good.attributes["gen_ai.usage.output_tokens"]) == (11, 5)
    assert 0 <= good.attributes["gen_ai.response.time_to_first_chunk"] < 10  # type: ignore[operator]
    assert good.end_time is not None and call.end_time is not None and good.end_time <= call.end_time
    assert call.attributes["gen_ai.usage.output_tokens"] == 5 and call.attributes["llm_factory.attempts"] == 2


async def test_a_silent_stream_timing_out_is_an_attempt_with_the_timeout_error(
    http_transport: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async def silent(request: httpx.Request) -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            await asyncio.sleep(5)  # headers, then nothing: the first-token limit fires first
            yield b""

        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    with upstreams(a=[silent], b=[reply]) as base:
        async with factory(base, http_transport, "a", "b", first_token_timeout=0.2) as f:
            f.enable_tracing(provider)
            text = "".join([c.choices[0].delta.content or "" async for c in f.stream_async(PROMPT) if c.choices])
    assert text == REPLY
    call, (timed_out, good) = by_kind(exporter.get_finished_spans())
    assert timed_out.attributes is not None and good.attributes is not None
    assert timed_out.status.status_code is StatusCode.ERROR
    assert timed_out.attributes["error.type"] == "UpstreamTimeoutError"
    assert "llm_factory.cancelled" not in timed_out.attributes
    assert good.attributes["llm_factory.attempt"] == 2 and good.status.status_code is StatusCode.UNSET
    assert call.status.status_code is StatusCode.UNSET and (call.attributes or {})["llm_factory.attempts"] == 2


async def test_the_call_span_continues_the_callers_trace(
    http_transport: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = provider.get_tracer("the-app")
    with upstreams(a=[reply]) as base:
        async with factory(base, http_transport, "a") as f:
            f.enable_tracing(provider)
            with tracer.start_as_current_span("handle order") as outer:
                await f.chat_async(PROMPT)
    spans = exporter.get_finished_spans()
    call, (attempt,) = by_kind(tuple(s for s in spans if s.name != "handle order"))
    assert call.parent is not None and call.parent.span_id == outer.get_span_context().span_id
    assert attempt.context.trace_id == outer.get_span_context().trace_id


async def test_nothing_secret_or_prompt_like_by_default_and_content_only_when_asked(
    http_transport: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with upstreams(a=[error(500), reply], b=[reply]) as base:  # a fails once (its error text is checked too)
        async with factory(base, http_transport, "a", "b") as f:
            f.enable_tracing(provider)
            await f.chat_async(PROMPT)
            stream = f.stream_async(PROMPT)
            [c async for c in stream]
            quiet = every_value(exporter.get_finished_spans())
            exporter.clear()
            f.enable_tracing(provider, capture_content=True)
            await f.chat_async(PROMPT)
            loud = exporter.get_finished_spans()
    for secret in (*KEYS.values(), *(k[-8:] for k in KEYS.values())):
        assert secret not in quiet
    assert "error.type=ServerError" in quiet  # the failed attempt is there, its message is not
    assert PROMPT not in quiet and "reply" not in quiet and "Tuesday" not in quiet and "trouble" not in quiet
    assert "gen_ai.input.messages" not in quiet and "gen_ai.output.messages" not in quiet
    _, (attempt,) = by_kind(loud)
    assert attempt.attributes is not None
    assert PROMPT in str(attempt.attributes["gen_ai.input.messages"])
    output = json.loads(str(attempt.attributes["gen_ai.output.messages"]))
    assert output[0]["role"] == "assistant" and output[0]["parts"][0]["content"] == REPLY
    assert all(k not in every_value(loud) for k in KEYS.values())


async def test_off_by_default_and_off_again_creates_no_span(
    http_transport: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with upstreams(a=[reply]) as base:
        async with factory(base, http_transport, "a") as f:
            assert f.router.tracing is None
            await f.chat_async(PROMPT)
            f.enable_tracing(provider)
            await f.chat_async(PROMPT)
            assert len(exporter.get_finished_spans()) == 2
            f.disable_tracing()
            assert f.router.tracing is None
            await f.chat_async(PROMPT)
            stream = f.stream_async(PROMPT)
            [c async for c in stream]
    assert len(exporter.get_finished_spans()) == 2


async def test_a_stream_the_caller_abandons_ends_its_spans_without_an_error(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with upstreams(a=[reply]) as base:
        async with factory(base, "httpx", "a") as f:
            f.enable_tracing(provider)
            async with f.stream_async(PROMPT) as stream:
                async for _ in stream:
                    break
    call, (attempt,) = by_kind(exporter.get_finished_spans())
    assert call.status.status_code is StatusCode.UNSET and attempt.status.status_code is StatusCode.UNSET
    for span in (call, attempt):
        assert span.attributes is not None and "error.type" not in span.attributes
        assert span.attributes["llm_factory.cancelled"] is True


def test_without_the_api_installed_enabling_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ConfigurationError, match=r"llm-factory-core\[otel\]"):
        Tracing([])


@pytest.mark.parametrize(
    ("provider", "options", "expected"),
    [
        ("openai", {"api_key": "sk-test-0000"}, "openai"),
        ("openai", {"api_key": "k-0000", "api_base": "https://acme.openai.azure.com/openai/v1"}, "azure.ai.openai"),
        ("claude", {"api_key": "sk-ant-test-0000"}, "anthropic"),
        (
            "claude",
            {"aws_access_key_id": "AKIATEST", "aws_secret_access_key": "s" * 40, "aws_region": "us-east-1"},
            "aws.bedrock",
        ),
        ("gemini", {"api_key": "g-test-0000"}, "gcp.gemini"),
        ("gemini", {"vertex_project": "p", "vertex_location": "us-central1", "access_token": "t"}, "gcp.vertex_ai"),
        ("deepseek", {"api_key": "sk-test-0000"}, "deepseek"),
        ("qwen", {"api_key": "sk-test-0000"}, "qwen"),  # no well-known value: the provider key
    ],
)
def test_spans_name_the_service_a_deployment_reaches(provider: str, options: dict[str, Any], expected: str) -> None:
    from llm_factory_core._tracing import provider_name

    factory = LLMFactory([ModelConfig(provider=provider, model_name="m", model="upstream-model", **options)])
    (deployment,) = factory.router.groups["m"]
    assert provider_name(deployment) == expected
    factory.close()
