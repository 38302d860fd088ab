"""The conformance kit a provider plugin's tests subclass.

    class TestAcmeConformance(ProviderConformance):
        provider_cls = AcmeProvider
        config = {"api_key": "sk-acme-test-key-0001", "api_base": "https://acme.test/v1"}

        def reply_text(self, request, text): ...        # the upstream's non-streaming reply
        def reply_stream(self, request, pieces): ...    # the upstream's streaming reply
        def reply_error(self, request, kind): ...       # an error reply, or None if n/a

Each test drives the provider through a real ``LLMFactory`` over ``httpx.MockTransport``, so the
contract checked is what users see: OpenAI shapes, typed errors, failover, masked secrets.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx
import pytest

from .._config import ModelConfig
from .._errors import (
    AllDeploymentsFailedError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ProviderError,
    RateLimitError,
    ServerError,
)
from .._factory import LLMFactory
from .._plugins import PluginRegistry
from .._provider import Provider
from .._types import ChatCompletion
from ._mock import MockUpstream

__all__ = ["ERROR_KINDS", "ProviderConformance"]

ERROR_KINDS: dict[str, type[ProviderError]] = {
    "rate_limit": RateLimitError,
    "auth": AuthenticationError,
    "bad_request": BadRequestError,
    "server": ServerError,
}


class ProviderConformance:
    provider_cls: ClassVar[type[Provider]]
    config: ClassVar[dict[str, Any]] = {}
    """ModelConfig fields for a working deployment (besides provider and model_name)."""
    model_name: ClassVar[str] = "test-model"
    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)

    # -- what a plugin's test supplies -----------------------------------------------------------

    def reply_text(self, request: httpx.Request, text: str) -> httpx.Response:
        raise NotImplementedError

    def reply_stream(self, request: httpx.Request, pieces: list[str]) -> httpx.Response:
        raise NotImplementedError

    def reply_error(self, request: httpx.Request, kind: str) -> httpx.Response | None:
        """An error reply of ``kind`` (rate_limit with a retry hint of ``rate_limit_retry_after``
        seconds, auth, bad_request, server); None when the provider has no such reply."""
        raise NotImplementedError

    rate_limit_retry_after: ClassVar[float | None] = 7
    """The retry hint ``reply_error(..., "rate_limit")`` carries; None if the provider sends none."""

    def _error_or_skip(self, request: httpx.Request, kind: str) -> httpx.Response:
        reply = self.reply_error(request, kind)
        if reply is None:
            pytest.skip(f"{self.provider_cls.key} has no {kind} reply")
        return reply

    # -- fixtures ----------------------------------------------------------------------------------

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    def registry(self) -> PluginRegistry:
        registry = PluginRegistry(entry_points=False)

        class _Plugin:
            @staticmethod
            def llm_factory_register_providers(register: Any) -> None:
                register(self.provider_cls)

        from ..hookspecs import hookimpl

        _Plugin.llm_factory_register_providers = hookimpl(_Plugin.llm_factory_register_providers)  # type: ignore[method-assign]
        registry.register(_Plugin, origin="conformance")
        return registry

    def make_config(self, **overrides: Any) -> ModelConfig:
        data = {"provider": self.provider_cls.key, "model_name": self.model_name, **self.config, **overrides}
        return ModelConfig.model_validate(data)

    def factory(self, upstream: MockUpstream, configs: list[ModelConfig] | None = None, **kw: Any) -> LLMFactory:
        kw.setdefault("cooldown", 0.0)
        kw.setdefault("retry_backoff", 0.0)
        return LLMFactory(configs or [self.make_config()], transport=upstream.transport, registry=self.registry(), **kw)

    def secrets(self) -> list[str]:
        out = []
        for field in self.secret_fields:
            value = self.config.get(field)
            if value:
                out.append(value.get_secret_value() if hasattr(value, "get_secret_value") else str(value))
        return out

    # -- the contract ------------------------------------------------------------------------------

    @pytest.mark.anyio
    async def test_chat_returns_openai_completion(self) -> None:
        upstream = MockUpstream(lambda r: self.reply_text(r, "Hello from the fake"))
        async with self.factory(upstream) as factory:
            result = await factory.chat_async("Hi")
        assert isinstance(result, ChatCompletion)
        assert result.choices[0].message.content == "Hello from the fake"
        assert result.choices[0].message.role == "assistant"
        assert result.choices[0].finish_reason == "stop"
        wire = result.model_dump(exclude_none=True)
        assert wire["object"] == "chat.completion" and isinstance(wire["created"], int) and wire["id"]
        assert len(upstream.requests) == 1

    @pytest.mark.anyio
    async def test_stream_yields_openai_chunks(self) -> None:
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

    @pytest.mark.anyio
    @pytest.mark.parametrize("kind", sorted(ERROR_KINDS))
    async def test_errors_are_typed(self, kind: str) -> None:
        upstream = MockUpstream(lambda r: self._error_or_skip(r, kind))
        async with self.factory(upstream, num_retries=0) as factory:
            with pytest.raises((ProviderError, AllDeploymentsFailedError)) as info:
                await factory.chat_async("Hi")
        error = info.value
        if isinstance(error, AllDeploymentsFailedError):
            assert error.last_error is not None
            error = error.last_error
        assert isinstance(error, ERROR_KINDS[kind]), f"{kind} became {type(error).__name__}"
        assert error.provider == self.provider_cls.key
        if kind == "rate_limit" and self.rate_limit_retry_after is not None:
            assert error.retry_after == pytest.approx(self.rate_limit_retry_after, abs=1)
        for secret in self.secrets():
            assert secret not in str(error) and secret not in repr(error)

    @pytest.mark.anyio
    async def test_fails_over_to_the_next_deployment(self) -> None:
        calls: list[int] = []

        def route(request: httpx.Request) -> httpx.Response:
            calls.append(1)
            if len(calls) == 1:
                reply = self.reply_error(request, "server")
                assert reply is not None
                return reply
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
        upstream = MockUpstream(lambda r: self._error_or_skip(r, "bad_request"))
        configs = [self.make_config(name="first"), self.make_config(name="second")]
        async with self.factory(upstream, configs) as factory:
            with pytest.raises(BadRequestError):
                await factory.chat_async("Hi")
        assert len(upstream.requests) == 1

    def test_unknown_setting_is_a_clear_error(self) -> None:
        with pytest.raises(ConfigurationError, match="no_such_option"):
            LLMFactory([self.make_config(no_such_option=1)], registry=self.registry())

    def test_secrets_stay_out_of_status_and_repr(self) -> None:
        factory = LLMFactory([self.make_config()], registry=self.registry())
        try:
            text = repr(factory) + repr(factory.status()) + repr(factory.deployments) + repr(self.make_config())
            text += repr(factory.deployments[0].settings)
            for secret in self.secrets():
                assert secret not in text
        finally:
            factory.close()
