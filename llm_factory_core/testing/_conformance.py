"""The conformance kit: the provider contract as tests a plugin's test module subclasses.

    from llm_factory_core.testing import ProviderConformance

    class TestAcmeConformance(ProviderConformance):
        provider_cls = AcmeProvider
        config = {"api_key": "sk-acme-test-key-0001", "api_base": "https://acme.test/v1"}

        def reply_text(self, request, text): ...          # the upstream's non-streamed reply
        def reply_stream(self, request, pieces): ...      # its streamed reply
        def reply_error(self, request, kind): ...         # an error reply of one kind, or None

What is checked: the outgoing request (the host of ``api_base``, the upstream model id, the stream
flag, the caller's request left untouched even across failover), replies and streams in OpenAI's
shape with usage, every finish reason, tool calls streamed and not, streams cut or failing before
and after their first token, every error class on chat and stream requests, failover, packaging
(the entry point is named after the provider key), and no secret in errors, reprs, status or logs.
Hooks and flags: ``ConformanceHooks`` (``_conformance_hooks``).
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from .._errors import (
    AllDeploymentsFailedError,
    BadRequestError,
    ConfigurationError,
    ProviderError,
    StreamInterruptedError,
)
from .._factory import LLMFactory
from .._types import ChatCompletion, ChatCompletionChunk
from ._conformance_hooks import ERROR_KINDS, ConformanceHooks
from ._mock import MockUpstream

__all__ = ["ERROR_KINDS", "ProviderConformance"]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
]


def _unwrap(error: BaseException) -> BaseException:
    if isinstance(error, AllDeploymentsFailedError) and error.last_error is not None:
        return error.last_error
    return error


class ProviderConformance(ConformanceHooks):
    """Subclass it in a test module (a class name starting with ``Test``): set ``provider_cls``
    and ``config``, implement ``reply_text``, ``reply_stream`` and ``reply_error``."""

    # -- chat ------------------------------------------------------------------------------------

    @pytest.mark.anyio
    async def test_chat_returns_openai_completion(self) -> None:
        """A reply in OpenAI's shape: text, role, ``stop``, an id, usage."""
        upstream = MockUpstream(lambda r: self.reply_text(r, "Hello from the fake"))
        async with self.factory(upstream) as factory:
            result = await factory.chat_async("Hi")
        assert isinstance(result, ChatCompletion)
        message = result.choices[0].message
        assert message.content == "Hello from the fake"
        assert message.role == "assistant"
        assert result.choices[0].finish_reason == "stop"
        wire = result.model_dump(exclude_none=True)
        assert wire["object"] == "chat.completion" and isinstance(wire["created"], int) and wire["id"]
        assert result.usage is not None, "a reply's usage must be reported"
        assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
        assert len(upstream.requests) == 1

    @pytest.mark.anyio
    async def test_the_request_goes_where_the_deployment_says(self) -> None:
        """The host of the configured ``api_base``, the upstream model id, no stream asked."""
        upstream = MockUpstream(lambda r: self.reply_text(r, "ok"))
        async with self.factory(upstream) as factory:
            await factory.chat_async("Hi")
        request = upstream.requests[0]
        api_base = self.config.get("api_base")
        if api_base:
            assert request.url.host == urlsplit(str(api_base)).hostname, (
                f"the configured api_base {api_base!r} was not used: the request went to {request.url}"
            )
        model = str(self.config.get("model", self.model_name))
        body = self.body_of(request)
        assert model in unquote(str(request.url)) or (isinstance(body, dict) and model in json.dumps(body)), (
            f"the upstream model id {model!r} is neither in the URL nor in the body"
        )
        assert not self.is_stream_request(request), "a non-streamed call asked the upstream for a stream"

    @pytest.mark.anyio
    async def test_the_callers_request_is_left_untouched(self) -> None:
        """Failover shares one request between attempts: a provider must not change it (both
        attempts send the same body, and the caller's messages and tools are as they were)."""
        calls: list[httpx.Request] = []

        def route(request: httpx.Request) -> httpx.Response:
            calls.append(request)
            return self.error_or_skip(request, "server") if len(calls) == 1 else self.reply_text(request, "ok")

        messages = json.loads(json.dumps(MESSAGES))
        tools = [json.loads(json.dumps(WEATHER_TOOL))] if self.tools else None
        before = json.dumps([messages, tools], sort_keys=True)
        upstream = MockUpstream(route)
        configs = [self.make_config(name="first"), self.make_config(name="second")]
        async with self.factory(upstream, configs, strategy="first_available") as factory:
            await factory.chat_async(messages, tools=tools, temperature=0.5, max_tokens=50)
        assert json.dumps([messages, tools], sort_keys=True) == before, "the caller's messages or tools changed"
        assert len(calls) == 2
        assert calls[0].content == calls[1].content, "the second attempt sent another body: the request was mutated"

    @pytest.mark.anyio
    @pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
    @pytest.mark.parametrize("reason", ["length", "content_filter"])
    async def test_finish_reasons(self, reason: str, stream: bool) -> None:
        """``length`` and ``content_filter`` endings keep their reason (never ``stop``)."""
        upstream = MockUpstream(lambda r: self._finish_or_skip(r, "Partial", reason, stream))
        async with self.factory(upstream) as factory:
            if stream:
                chunks = [c async for c in factory.stream_async("Hi")]
                finishes: list[str | None] = [
                    c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
                ]
            else:
                result = await factory.chat_async("Hi")
                finishes = [result.choices[0].finish_reason]
        assert finishes == [reason], f"a {reason!r} ending was reported as {finishes}"

    def _finish_or_skip(self, request: httpx.Request, text: str, reason: str, stream: bool) -> httpx.Response:
        reply = self.reply_finish(request, text, reason, stream)
        if reply is None:
            pytest.skip(f"{self.provider_cls.key}: reply_finish gives no {reason!r} ending")
        return reply

    @pytest.mark.anyio
    @pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
    async def test_tool_calls(self, stream: bool) -> None:
        """A tool call in OpenAI's shape (an id of at most 40 characters, the name, JSON arguments),
        finished with ``tool_calls``; streamed as OpenAI streams it."""
        if not self.tools:
            pytest.skip(f"{self.provider_cls.key} declares no tool support")
        arguments = {"city": "Paris"}

        def reply(request: httpx.Request) -> httpx.Response:
            out = self.reply_tool_call(request, "get_weather", arguments, stream)
            if out is None:
                pytest.skip(f"{self.provider_cls.key}: reply_tool_call is not implemented")
            return out

        upstream = MockUpstream(reply)
        finishes: list[str | None]
        async with self.factory(upstream) as factory:
            if stream:
                chunks = [c async for c in factory.stream_async(MESSAGES, tools=[WEATHER_TOOL])]
                calls = _assemble_tool_calls(chunks)
                finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
            else:
                result = await factory.chat_async(MESSAGES, tools=[WEATHER_TOOL])
                calls = [c.model_dump() for c in result.choices[0].message.tool_calls or []]
                finishes = [result.choices[0].finish_reason]
        assert len(calls) == 1, f"expected one tool call, got {calls}"
        call = calls[0]
        assert call["id"] and len(call["id"]) <= 40, f"tool-call id {call['id']!r} (OpenAI accepts at most 40 chars)"
        assert call["type"] == "function"
        assert call["function"]["name"] == "get_weather"
        assert json.loads(call["function"]["arguments"]) == arguments
        assert finishes == ["tool_calls"], f"a tool-use ending was reported as {finishes}"

    # -- streams ---------------------------------------------------------------------------------

    @pytest.mark.anyio
    async def test_stream_yields_openai_chunks(self) -> None:
        """Every piece in order, one id, one ``stop``, and a stream was asked upstream."""
        pieces = ["Hel", "lo", " world"]
        upstream = MockUpstream(lambda r: self.reply_stream(r, pieces))
        async with self.factory(upstream) as factory:
            chunks = [c async for c in factory.stream_async("Hi")]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "Hello world"
        assert len({c.id for c in chunks}) == 1, "every chunk of a stream carries the same id"
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finishes == ["stop"]
        assert all(c.object == "chat.completion.chunk" for c in chunks)
        assert self.is_stream_request(upstream.requests[0]), "a streamed call did not ask the upstream for a stream"

    @pytest.mark.anyio
    async def test_stream_usage_when_asked(self) -> None:
        """With ``stream_options.include_usage`` the last chunk has empty choices and the usage."""
        if not self.streaming_usage:
            pytest.skip(f"{self.provider_cls.key} declares no streaming usage")
        upstream = MockUpstream(lambda r: self.reply_stream(r, ["Hi", " there"]))
        async with self.factory(upstream) as factory:
            chunks = [c async for c in factory.stream_async("Hi", stream_options={"include_usage": True})]
        last = chunks[-1]
        assert last.usage is not None, "include_usage was asked: the last chunk must carry the usage"
        assert last.choices == [], "the usage chunk has empty choices"
        assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens

    @pytest.mark.anyio
    async def test_a_cut_stream_never_ends_quietly(self) -> None:
        """An upstream stream that stops halfway (no finish) raises; it never looks complete."""
        pieces = [f"word{i} " for i in range(12)]

        async def cut(request: httpx.Request) -> httpx.Response:
            whole = self.reply_stream(request, pieces)
            body = await whole.aread()
            headers = {k: v for k, v in whole.headers.items() if k.lower() not in ("content-length",)}
            return httpx.Response(whole.status_code, headers=headers, content=body[: len(body) // 2])

        upstream = MockUpstream(cut)
        received: list[ChatCompletionChunk] = []
        async with self.factory(upstream, num_retries=0) as factory:
            with pytest.raises((StreamInterruptedError, ProviderError, AllDeploymentsFailedError)):
                async for chunk in factory.stream_async("Hi"):
                    received.append(chunk)
        finishes = [c.choices[0].finish_reason for c in received if c.choices and c.choices[0].finish_reason]
        assert finishes == [], f"a cut stream reported a finish: {finishes}"

    @pytest.mark.anyio
    async def test_an_error_event_in_a_200_stream_is_an_error(self) -> None:
        """An upstream that answers 200 and then an error event fails (and fails over), never
        ends as an empty success."""

        def reply(request: httpx.Request) -> httpx.Response:
            out = self.reply_stream_error(request)
            if out is None:
                pytest.skip(f"{self.provider_cls.key}: reply_stream_error is not implemented")
            return out

        upstream = MockUpstream(reply)
        async with self.factory(upstream, num_retries=0) as factory:
            with pytest.raises((ProviderError, AllDeploymentsFailedError)) as info:
                async for _ in factory.stream_async("Hi"):
                    pass
        assert isinstance(_unwrap(info.value), ProviderError)

    @pytest.mark.anyio
    @pytest.mark.parametrize("kind", ["rate_limit", "auth", "server"])
    async def test_errors_on_streaming_requests_are_typed(self, kind: str) -> None:
        """An error status answering a stream request becomes the same typed error as for chat."""
        upstream = MockUpstream(lambda r: self.error_or_skip(r, kind))
        async with self.factory(upstream, num_retries=0) as factory:
            with pytest.raises((ProviderError, AllDeploymentsFailedError)) as info:
                async for _ in factory.stream_async("Hi"):
                    pass
        error = _unwrap(info.value)
        assert isinstance(error, ERROR_KINDS[kind]), f"{kind} on a stream became {type(error).__name__}"

    # -- errors and failover --------------------------------------------------------------------

    @pytest.mark.anyio
    @pytest.mark.parametrize("kind", sorted(ERROR_KINDS))
    async def test_errors_are_typed(self, kind: str) -> None:
        """Each error kind becomes its class, names the provider, honours a retry hint and shows no
        secret."""
        upstream = MockUpstream(lambda r: self.error_or_skip(r, kind))
        async with self.factory(upstream, num_retries=0) as factory:
            with pytest.raises((ProviderError, AllDeploymentsFailedError)) as info:
                await factory.chat_async("Hi")
        error = _unwrap(info.value)
        assert isinstance(error, ERROR_KINDS[kind]), f"{kind} became {type(error).__name__}"
        assert isinstance(error, ProviderError)
        assert error.provider == self.provider_cls.key
        if kind == "rate_limit" and self.rate_limit_retry_after is not None:
            assert error.retry_after == pytest.approx(self.rate_limit_retry_after, abs=1)
        for secret in self.secrets():
            assert secret not in str(error) and secret not in repr(error), "a secret is in the error"

    @pytest.mark.anyio
    async def test_fails_over_to_the_next_deployment(self) -> None:
        calls: list[int] = []

        def route(request: httpx.Request) -> httpx.Response:
            calls.append(1)
            if len(calls) == 1:
                return self.error_or_skip(request, "server")
            return self.reply_text(request, "from the second")

        upstream = MockUpstream(route)
        configs = [self.make_config(name="first"), self.make_config(name="second")]
        async with self.factory(upstream, configs, strategy="first_available") as factory:
            result = await factory.chat_async("Hi")
            assert result.choices[0].message.content == "from the second"
            failures = {s.name: s.failures for s in factory.status()}
        assert len(calls) == 2
        assert failures == {"first": 1, "second": 0}

    @pytest.mark.anyio
    async def test_bad_request_is_not_failed_over(self) -> None:
        upstream = MockUpstream(lambda r: self.error_or_skip(r, "bad_request"))
        configs = [self.make_config(name="first"), self.make_config(name="second")]
        async with self.factory(upstream, configs) as factory:
            with pytest.raises(BadRequestError):
                await factory.chat_async("Hi")
        assert len(upstream.requests) == 1

    # -- configuration, secrets, packaging ------------------------------------------------------

    def test_unknown_setting_is_a_clear_error(self) -> None:
        with pytest.raises(ConfigurationError, match="no_such_option"):
            LLMFactory([self.make_config(no_such_option=1)], registry=self.registry())

    def test_secrets_stay_out_of_status_and_repr(self) -> None:
        factory = LLMFactory([self.make_config()], registry=self.registry())
        try:
            text = repr(factory) + repr(factory.status()) + repr(factory.deployments) + repr(self.make_config())
            text += repr(factory.deployments[0].settings)
            for secret in self.secrets():
                assert secret not in text, "a secret is in a repr or the status"
        finally:
            factory.close()

    def test_the_provider_key_is_a_valid_name(self) -> None:
        key = self.provider_cls.key
        assert re.fullmatch(r"[a-z][a-z0-9_-]*", key), f"provider key {key!r}: use lowercase letters, digits, - or _"

    def test_the_entry_point_is_named_after_the_key(self) -> None:
        """Users configure ``provider: <key>``; the core imports the plugin by entry point name, so
        the two must be equal. Skipped when the plugin's distribution is not installed."""
        package = self.provider_cls.__module__.split(".")[0]
        if self.distribution is not None:
            try:
                dist = importlib.metadata.distribution(self.distribution)
            except importlib.metadata.PackageNotFoundError:
                pytest.skip(f"{self.distribution} is not installed")
            points = [ep for ep in dist.entry_points if ep.group == "llm_factory"]
            assert points, f"{self.distribution} declares no entry point in the 'llm_factory' group"
        else:
            group = importlib.metadata.entry_points(group="llm_factory")
            points = [ep for ep in group if ep.module.split(".")[0] == package]
            if not points:
                pytest.skip(f"no installed distribution has an 'llm_factory' entry point in {package!r}")
        key = self.provider_cls.key
        matching = [ep for ep in points if ep.name == key]
        assert matching, (
            f"provider key {key!r} has no entry point of that name (entry points: "
            f"{', '.join(ep.name for ep in points)}): name the entry point after the key"
        )


def _assemble_tool_calls(chunks: list[ChatCompletionChunk]) -> list[dict[str, Any]]:
    """Tool calls from stream deltas, as an OpenAI client assembles them (by index)."""
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        if not chunk.choices:
            continue
        for delta in chunk.choices[0].delta.tool_calls or []:
            call = calls.setdefault(
                delta.index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
            )
            if delta.id:
                call["id"] = delta.id
            if delta.function is not None:
                call["function"]["name"] += delta.function.name or ""
                call["function"]["arguments"] += delta.function.arguments or ""
    return [calls[i] for i in sorted(calls)]
