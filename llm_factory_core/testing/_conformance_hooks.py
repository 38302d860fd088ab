"""The conformance kit's plumbing: what a plugin supplies (hooks) and what the checks use.

The checks themselves are in ``_conformance`` (``ProviderConformance``). Usage:

    from llm_factory_core.testing import ProviderConformance

    class TestAcmeConformance(ProviderConformance):
        provider_cls = AcmeProvider
        config = {"api_key": "sk-acme-test-key-0001", "api_base": "https://acme.test/v1"}

        def reply_text(self, request, text): ...          # the upstream's non-streamed reply
        def reply_stream(self, request, pieces): ...      # its streamed reply
        def reply_error(self, request, kind): ...         # an error reply of one kind, or None

That is all a plugin must supply; the optional hooks below (finish reasons, tool calls, an error
inside a 200 stream) unlock more checks, and each check a plugin cannot feed is skipped with the
reason. Every check drives the provider through a real ``LLMFactory`` (routing, failover, health),
so what is checked is what users see: OpenAI shapes, typed errors, masked secrets.

The kit is a pytest plugin (``pip install 'llm-factory-core[testing]'``, entry point ``pytest11``):
pytest rewrites its assertions, so a failure shows what was expected and what came.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest

from .._config import ModelConfig
from .._errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilterError,
    ContextLengthError,
    InsufficientQuotaError,
    ProviderError,
    RateLimitError,
    ServerError,
)
from .._factory import LLMFactory
from .._plugins import PluginRegistry
from .._provider import Provider
from ..hookspecs import hookimpl
from ._mock import MockUpstream

__all__ = ["ERROR_KINDS", "ConformanceHooks"]

ERROR_KINDS: dict[str, type[ProviderError]] = {
    "rate_limit": RateLimitError,
    "auth": AuthenticationError,
    "quota": InsufficientQuotaError,
    "bad_request": BadRequestError,
    "context_length": ContextLengthError,
    "content_filter": ContentFilterError,
    "server": ServerError,
}
"""What ``reply_error(request, kind)`` is asked for, and the error class each must become."""


class ConformanceHooks:
    """What a plugin's conformance test sets and implements, and helpers for the checks."""

    provider_cls: ClassVar[type[Provider]]
    """The provider class under test."""
    config: ClassVar[dict[str, Any]] = {}
    """``ModelConfig`` fields for a working deployment besides ``provider`` and ``model_name``
    (``api_key``, ``api_base``, the plugin's own settings). When ``api_base`` is given, every
    request must go to its host."""
    model_name: ClassVar[str] = "test-model"
    """The model name callers use; the upstream id is ``config["model"]`` or this."""
    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    """Fields of ``config`` holding secrets: none may appear in errors, reprs, status or logs."""
    rate_limit_retry_after: ClassVar[float | None] = 7
    """The retry hint ``reply_error(..., "rate_limit")`` carries; None if the provider sends none."""
    streaming_usage: ClassVar[bool] = True
    """Whether the provider reports usage in a stream's last chunk when ``include_usage`` is asked."""
    tools: ClassVar[bool] = True
    """Whether the provider supports tool calls (``reply_tool_call`` feeds the checks)."""
    distribution: ClassVar[str | None] = None
    """The plugin's distribution name (``llm-factory-acme``): when installed, its entry point must
    be named after ``provider_cls.key``. None: found from the provider's package."""

    # -- what a plugin's test supplies -----------------------------------------------------------

    def reply_text(self, request: httpx.Request, text: str) -> httpx.Response:
        """Required: the upstream's non-streamed reply to ``request`` carrying ``text``, finished
        normally, with usage."""
        raise NotImplementedError

    def reply_stream(self, request: httpx.Request, pieces: list[str]) -> httpx.Response:
        """Required: the upstream's streamed reply carrying ``pieces`` as separate deltas, finished
        normally; with usage at the end when the request asked for it (``include_usage``)."""
        raise NotImplementedError

    def reply_error(self, request: httpx.Request, kind: str) -> httpx.Response | None:
        """Required: an error reply of ``kind`` (a key of ``ERROR_KINDS``; ``rate_limit`` with a
        retry hint of ``rate_limit_retry_after`` seconds), or None when the upstream has no such
        reply (the check is skipped)."""
        raise NotImplementedError

    def reply_finish(self, request: httpx.Request, text: str, reason: str, stream: bool) -> httpx.Response | None:
        """Optional: a reply carrying ``text`` that ended for ``reason`` (OpenAI's words:
        ``length``, ``content_filter``), in the upstream's own vocabulary; None if it has none."""
        return None

    def reply_tool_call(
        self, request: httpx.Request, name: str, arguments: dict[str, Any], stream: bool
    ) -> httpx.Response | None:
        """Optional: a reply calling tool ``name`` with ``arguments`` (finished for tool use)."""
        return None

    def reply_stream_error(self, request: httpx.Request) -> httpx.Response | None:
        """Optional: a 200 stream whose first event is an error (an overloaded upstream)."""
        return None

    def is_stream_request(self, request: httpx.Request) -> bool:
        """Whether ``request`` asks the upstream for a stream. The default understands a JSON
        ``"stream": true``, ``alt=sse`` and a path naming a stream (Gemini, Bedrock); override
        for other upstreams."""
        if "stream" in request.url.path.lower() or request.url.params.get("alt") == "sse":
            return True
        try:
            body = json.loads(request.content or b"null")
        except ValueError:
            return False
        if isinstance(body, dict):
            if body.get("stream") is True:
                return True
            parameters = body.get("parameters")
            if isinstance(parameters, dict) and parameters.get("incremental_output") is True:
                return True
        return bool(request.headers.get("x-dashscope-sse") == "enable")

    # -- helpers the checks use ------------------------------------------------------------------

    def registry(self) -> PluginRegistry:
        """A registry holding only the provider under test."""
        registry = PluginRegistry(entry_points=False)
        provider_cls = self.provider_cls

        class _Plugin:
            @hookimpl
            def llm_factory_register_providers(self, register: Any) -> None:
                register(provider_cls)

        registry.register(_Plugin(), origin="conformance")
        return registry

    def make_config(self, **overrides: Any) -> ModelConfig:
        """A deployment of the provider under test (``config`` plus ``overrides``)."""
        data = {"provider": self.provider_cls.key, "model_name": self.model_name, **self.config, **overrides}
        return ModelConfig.model_validate(data)

    def factory(self, upstream: MockUpstream, configs: list[ModelConfig] | None = None, **kw: Any) -> LLMFactory:
        """A factory over ``upstream`` (``httpx.MockTransport``), no cooldowns nor backoff."""
        kw.setdefault("cooldown", 0.0)
        kw.setdefault("retry_backoff", 0.0)
        return LLMFactory(configs or [self.make_config()], transport=upstream.transport, registry=self.registry(), **kw)

    def secrets(self) -> list[str]:
        """The secret values of ``config`` (``secret_fields``)."""
        out = []
        for field in self.secret_fields:
            value = self.config.get(field)
            if value:
                out.append(value.get_secret_value() if hasattr(value, "get_secret_value") else str(value))
        return out

    def error_or_skip(self, request: httpx.Request, kind: str) -> httpx.Response:
        """``reply_error(request, kind)``, or skip the check when the upstream has no such reply
        (also when an older ``reply_error`` does not know a kind added to the kit since)."""
        try:
            reply = self.reply_error(request, kind)
        except (KeyError, NotImplementedError):
            reply = None
        if reply is None:
            pytest.skip(f"{self.provider_cls.key}: reply_error gives no {kind!r} reply")
        return reply

    def body_of(self, request: httpx.Request) -> Any:
        try:
            return json.loads(request.content or b"null")
        except ValueError:
            return None

    # -- fixtures ----------------------------------------------------------------------------------

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture(autouse=True)
    def _no_secret_in_logs(self, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
        """Every check also checks that no secret reaches a log record, at any level."""
        caplog.set_level("DEBUG")
        yield
        secrets = self.secrets()
        for record in [*caplog.get_records("setup"), *caplog.get_records("call")]:
            line = record.getMessage() + (f"\n{record.exc_text}" if record.exc_text else "")
            for secret in secrets:
                assert secret not in line, f"a secret reached the log ({record.name}, {record.levelname})"
