"""OpenTelemetry spans for calls and their upstream attempts (the GenAI semantic conventions).

Off by default and then free: ``Router.tracing`` is None and the router's only cost is that check.
``LLMFactory.enable_tracing()`` turns it on (``opentelemetry-api``, the ``otel`` extra, is imported
only then). Spans, following https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/:

* one ``chat {model}`` span (INTERNAL) per call, covering every attempt, retry and fallback, as the
  conventions ask of a span for an operation retried automatically; ``gen_ai.request.model`` is
  the model name the caller asked for;
* one ``chat {upstream model}`` span (CLIENT) per upstream attempt, its child, with the provider,
  the upstream model, our ``llm_factory.deployment`` (a name, never a key), the attempt number and
  whether it is a failover; a failed attempt is marked as an error with ``error.type``.

The parent of a call's span is the current OpenTelemetry context (the gateway's request span, or
the application's own span). Prompts and replies are recorded (``gen_ai.input.messages`` /
``gen_ai.output.messages``) only with ``capture_content=True``. Attempts are observed through a
thin proxy over the providers, so the router keeps one code path whether tracing is on or off.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ._errors import ConfigurationError, ProviderError
from ._types import ChatCompletion, ChatCompletionChunk

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from ._deployment import Deployment
    from ._provider import Provider
    from ._router import CallInfo

__all__ = ["Tracing", "SCHEMA_URL"]

_T = TypeVar("_T")

SCHEMA_URL = "https://opentelemetry.io/schemas/1.37.0"
"""The semantic conventions version whose GenAI attribute names these spans use
(``gen_ai.provider.name`` replaced ``gen_ai.system`` there)."""

# Request parameters recorded as ``gen_ai.request.<name>``: numbers and flags, never text.
_REQUEST_PARAMS = (
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("max_completion_tokens", "gen_ai.request.max_tokens"),
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
    ("seed", "gen_ai.request.seed"),
    ("n", "gen_ai.request.choice.count"),
)


class Tracing:
    """Creates this factory's spans; set on ``Router.tracing`` by ``LLMFactory.enable_tracing``."""

    def __init__(
        self,
        deployments: Iterable[Deployment],
        tracer_provider: TracerProvider | None = None,
        *,
        capture_content: bool = False,
    ) -> None:
        try:
            from opentelemetry import context, trace
        except ImportError:
            raise ConfigurationError(
                "tracing needs the OpenTelemetry API: pip install 'llm-factory-core[otel]'"
            ) from None
        from . import __version__

        self._trace = trace
        self._context = context
        self.tracer: Tracer = trace.get_tracer(
            "llm_factory_core", __version__, tracer_provider=tracer_provider, schema_url=SCHEMA_URL
        )
        self.capture_content = capture_content
        """Record prompts and replies on spans (off: they often hold personal data)."""
        self.deployments = {d.name: d for d in deployments}
        self._by_deployment: dict[str, tuple[str, dict[str, Any]]] = {}

    # -- the router's two entry points ----------------------------------------------------------

    async def call(
        self,
        run: Callable[[Any, Mapping[str, Provider], Any, float | None, CallInfo | None], Awaitable[tuple[_T, str]]],
        request: Any,
        providers: Mapping[str, Provider],
        invoke: Any,
        timeout: float | None,
        info: CallInfo | None,
        operation: str,
        default_model: str | None,
    ) -> tuple[_T, str]:
        """``run(...)`` (the router's ``_call``) inside a call span, its attempts inside theirs."""
        from ._router import CallInfo

        info = info if info is not None else CallInfo()
        call = _Call(self, operation, request, default_model, info, stream=False)
        try:
            result = await run(request, call.providers(providers), invoke, timeout, info)
        except BaseException as exc:
            call.end(exc)
            raise
        call.end(None)
        return result

    async def stream(
        self,
        run: Callable[..., AsyncGenerator[ChatCompletionChunk, None]],
        request: Any,
        providers: Mapping[str, Provider],
        timeout: float | None,
        info: CallInfo | None,
        default_model: str | None,
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        """The router's stream inside a call span (started at the first read, in the reader's
        context), its attempts inside theirs."""
        from ._router import CallInfo

        info = info if info is not None else CallInfo()
        call = _Call(self, "chat", request, default_model, info, stream=True)
        chunks = run(request, call.providers(providers), timeout=timeout, info=info)
        error: BaseException | None = None
        try:
            async for chunk in chunks:
                yield chunk
        except BaseException as exc:
            error = exc
            raise
        finally:
            await chunks.aclose()
            call.end(error)  # GeneratorExit: the reader stopped early, marked as cancelled

    # -- attributes -----------------------------------------------------------------------------

    def deployment_attributes(self, deployment: Deployment) -> tuple[str, dict[str, Any]]:
        """The upstream model and what an attempt span says of its deployment (computed once)."""
        cached = self._by_deployment.get(deployment.name)
        if cached is None:
            model = deployment.settings.model or deployment.model_name
            attributes: dict[str, Any] = {
                "gen_ai.provider.name": provider_name(deployment),
                "gen_ai.request.model": model,
                "llm_factory.deployment": deployment.name,
                "llm_factory.model_name": deployment.model_name,
            }
            host, port = _server(deployment)
            if host:
                attributes["server.address"] = host
                if port:
                    attributes["server.port"] = port
            cached = self._by_deployment[deployment.name] = (model, attributes)
        return cached

    def request_attributes(self, request: Any) -> dict[str, Any]:
        attributes: dict[str, Any] = {}
        for field, name in _REQUEST_PARAMS:
            value = getattr(request, field, None)
            if isinstance(value, bool | int | float) and name not in attributes:
                attributes[name] = value
        if self.capture_content:
            messages = getattr(request, "messages", None)
            if messages is not None:
                from ._json import dumps as json_dumps

                attributes["gen_ai.input.messages"] = json_dumps(messages).decode()
        return attributes


class _Call:
    """One call: its span, the attempt in progress, and what the last good attempt answered."""

    __slots__ = ("_attempt", "_attempts", "_response", "info", "operation", "span", "stream", "tracing")

    def __init__(
        self, tracing: Tracing, operation: str, request: Any, default_model: str | None, info: CallInfo, stream: bool
    ) -> None:
        self.tracing = tracing
        self.info = info
        self.stream = stream
        self.operation = operation
        model = getattr(request, "model", None) or default_model or ""
        attributes = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": model,
            **tracing.request_attributes(request),
        }
        if stream:
            attributes["gen_ai.request.stream"] = True
        self.span: Span = tracing.tracer.start_span(
            f"{operation} {model}".strip(), kind=tracing._trace.SpanKind.INTERNAL, attributes=attributes
        )
        self._attempt: _Attempt | None = None
        self._attempts = 0
        self._response: dict[str, Any] = {}

    def providers(self, providers: Mapping[str, Provider]) -> Mapping[str, Provider]:
        return _TracedProviders(self, providers)

    def attempt(self, deployment: Deployment) -> _Attempt:
        self.settle()
        self._attempts += 1
        attempt = self._attempt = _Attempt(self, deployment, self._attempts, len(self.info.attempts))
        return attempt

    def settle(self, error: BaseException | None = None) -> None:
        """End the attempt left open by a failure, with the error the router recorded for it."""
        attempt = self._attempt
        if attempt is None:
            return
        self._attempt = None
        recorded = self.info.attempts
        if len(recorded) > attempt.failures_before:
            attempt.fail(recorded[attempt.failures_before].error)
        else:
            attempt.fail(attempt.error or error)

    def succeeded(self, attempt: _Attempt, response: dict[str, Any]) -> None:
        if self._attempt is attempt:
            self._attempt = None
        self._response = response

    def end(self, error: BaseException | None) -> None:
        self.settle(error)
        span = self.span
        span.set_attribute("llm_factory.attempts", self._attempts)
        deployment = self.info.deployment
        if deployment is not None:
            span.set_attribute("llm_factory.deployment", deployment.name)
            span.set_attribute("gen_ai.provider.name", provider_name(deployment))
        if self._response:
            span.set_attributes(self._response)
        if error is not None:
            _mark_error(self.tracing, span, error)
        span.end()


class _Attempt:
    __slots__ = ("call", "error", "failures_before", "first_chunk", "span", "started")

    def __init__(self, call: _Call, deployment: Deployment, number: int, failures_before: int) -> None:
        self.call = call
        self.failures_before = failures_before
        self.error: BaseException | None = None
        self.first_chunk = False
        tracing = call.tracing
        model, attributes = tracing.deployment_attributes(deployment)
        attributes = {
            **attributes,
            "gen_ai.operation.name": call.operation,
            "llm_factory.attempt": number,
            "llm_factory.failover": number > 1,
        }
        if call.stream:
            attributes["gen_ai.request.stream"] = True
        parent = tracing._trace.set_span_in_context(call.span)
        self.span: Span = tracing.tracer.start_span(
            f"{call.operation} {model}",
            context=parent,
            kind=tracing._trace.SpanKind.CLIENT,
            attributes=attributes,
        )
        self.started = time.monotonic()

    def request(self, request: Any) -> None:
        self.span.set_attributes(self.call.tracing.request_attributes(request))

    def done(self, response: dict[str, Any]) -> None:
        self.span.set_attributes(response)
        self.span.end()
        self.call.succeeded(self, response)

    def fail(self, error: BaseException | None) -> None:
        if error is not None:
            _mark_error(self.call.tracing, self.span, error)
        self.span.end()


class _TracedProviders(Mapping[str, "Provider"]):
    """The router's providers; each lookup is one attempt (the router looks a provider up once
    per attempt) and hands back a provider whose calls are traced."""

    def __init__(self, call: _Call, providers: Mapping[str, Provider]) -> None:
        self._call = call
        self._providers = providers

    def __getitem__(self, name: str) -> Provider:
        provider = self._providers[name]
        attempt = self._call.attempt(self._call.tracing.deployments[name])
        return cast("Provider", _TracedProvider(provider, attempt))

    def __iter__(self) -> Iterator[str]:
        return iter(self._providers)

    def __len__(self) -> int:
        return len(self._providers)


class _TracedProvider:
    """A provider whose ``chat`` / ``stream`` / ``embed`` report to one attempt span."""

    def __init__(self, provider: Provider, attempt: _Attempt) -> None:
        self._provider = provider
        self._attempt = attempt

    def __getattr__(self, name: str) -> Any:
        return getattr(self._provider, name)

    async def chat(self, request: Any) -> ChatCompletion:
        attempt = self._attempt
        attempt.request(request)
        try:
            result = await self._provider.chat(request)
        except BaseException as exc:
            attempt.error = exc  # ended when the router has recorded its verdict (``_Call.settle``)
            raise
        attempt.done(_completion_attributes(result, attempt.call.tracing.capture_content))
        return result

    async def embed(self, request: Any) -> Any:
        attempt = self._attempt
        try:
            result = await self._provider.embed(request)
        except BaseException as exc:
            attempt.error = exc
            raise
        response: dict[str, Any] = {"gen_ai.response.model": result.model}
        tokens = getattr(result.usage, "prompt_tokens", None)
        if isinstance(tokens, int):
            response["gen_ai.usage.input_tokens"] = tokens
        attempt.done(response)
        return result

    async def stream(self, request: Any) -> AsyncGenerator[ChatCompletionChunk, None]:
        attempt = self._attempt
        attempt.request(request)
        capture = attempt.call.tracing.capture_content
        seen = _StreamSeen()
        upstream = self._provider.stream(request)
        try:
            async for chunk in upstream:
                if not attempt.first_chunk and chunk.has_content():
                    attempt.first_chunk = True
                    attempt.span.set_attribute(
                        "gen_ai.response.time_to_first_chunk", time.monotonic() - attempt.started
                    )
                seen.observe(chunk, capture)
                yield chunk
        except GeneratorExit:
            # Closed by the router before the end: a client that left, or a first-token limit
            # (then the router records the failure and ``settle`` marks the span).
            raise
        except BaseException as exc:
            attempt.error = exc
            raise
        else:
            attempt.done(seen.attributes(capture))
        finally:
            aclose = getattr(upstream, "aclose", None)
            if aclose is not None:
                await aclose()


class _StreamSeen:
    __slots__ = ("finish", "id", "model", "text", "usage")

    def __init__(self) -> None:
        self.id: str | None = None
        self.model: str | None = None
        self.finish: list[str] = []
        self.usage: tuple[int, int] | None = None
        self.text: list[str] = []

    def observe(self, chunk: ChatCompletionChunk, capture: bool) -> None:
        if self.id is None:
            self.id, self.model = chunk.id, chunk.model
        for choice in chunk.choices:
            if choice.finish_reason is not None:
                self.finish.append(str(choice.finish_reason))
            if capture and choice.delta.content:
                self.text.append(choice.delta.content)
        if chunk.usage is not None:
            self.usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)

    def attributes(self, capture: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.id:
            out["gen_ai.response.id"] = self.id
        if self.model:
            out["gen_ai.response.model"] = self.model
        if self.finish:
            out["gen_ai.response.finish_reasons"] = self.finish
        if self.usage is not None:
            out["gen_ai.usage.input_tokens"], out["gen_ai.usage.output_tokens"] = self.usage
        if capture:
            from ._json import dumps as json_dumps

            message = {"role": "assistant", "parts": [{"type": "text", "content": "".join(self.text)}]}
            out["gen_ai.output.messages"] = json_dumps([message]).decode()
        return out


def _completion_attributes(result: ChatCompletion, capture: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"gen_ai.response.id": result.id, "gen_ai.response.model": result.model}
    reasons = [str(c.finish_reason) for c in result.choices if c.finish_reason is not None]
    if reasons:
        out["gen_ai.response.finish_reasons"] = reasons
    usage = result.usage
    if usage is not None:
        out["gen_ai.usage.input_tokens"] = usage.prompt_tokens
        out["gen_ai.usage.output_tokens"] = usage.completion_tokens
    if capture:
        from ._json import dumps as json_dumps

        messages = [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": c.message.content or ""}],
                "finish_reason": str(c.finish_reason),
            }
            for c in result.choices
        ]
        out["gen_ai.output.messages"] = json_dumps(messages).decode()
    return out


def provider_name(deployment: Deployment) -> str:
    """``gen_ai.provider.name``: a plugin may name its well-known value (``otel_provider_name``,
    or ``otel_provider_name_for(settings)`` when one plugin reaches several services, as Claude on
    ``aws.bedrock`` or ``anthropic``); else the provider key."""
    try:
        name = deployment.provider_cls.otel_provider_name_for(deployment.settings)
    except Exception:  # a plugin's bug must not fail a traced call
        name = None
    return name if isinstance(name, str) and name else deployment.provider_key


def _server(deployment: Deployment) -> tuple[str | None, int | None]:
    # Host and port only: a URL's path, query or user part may carry a key (Gemini's ?key=).
    base = getattr(deployment.settings, "api_base", None) or deployment.provider_cls.default_api_base
    if not isinstance(base, str) or not base:
        return None, None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(base)
        return parts.hostname, parts.port
    except ValueError:
        return None, None


def _mark_error(tracing: Tracing, span: Span, error: BaseException) -> None:
    import asyncio

    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        # The caller went away (or the gateway shuts down): not the upstream's failure.
        span.set_attribute("llm_factory.cancelled", True)
        return
    # The conventions' error.type: a low-cardinality name, here the exception's class
    # (RateLimitError, UpstreamTimeoutError, ...). Never the message: upstream error messages may
    # quote the caller's input.
    error_type = type(error).__qualname__
    span.set_attribute("error.type", error_type)
    if isinstance(error, ProviderError):
        if error.status is not None:
            span.set_attribute("llm_factory.upstream_status", error.status)
        if error.code:
            span.set_attribute("llm_factory.error_code", str(error.code)[:64])
    span.set_status(tracing._trace.StatusCode.ERROR, error_type)
