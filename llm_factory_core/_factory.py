"""``LLMFactory``: the library's entry point.

The core is async. Sync methods run it on one background event loop thread per factory (an anyio
blocking portal), so they work in scripts and inside code that already runs a loop (Jupyter, sync
FastAPI endpoints) and share one connection pool; no ``asyncio.run`` per call.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import aclosing
from types import TracebackType
from typing import Any

import anyio
import httpx
from anyio.from_thread import BlockingPortal
from pydantic import BaseModel, ValidationError

from ._config import FactoryConfig, ModelConfig, RouterSettings, build_deployments, format_validation_error
from ._deployment import Deployment
from ._embeddings import EmbeddingRequest, EmbeddingResponse
from ._errors import ConfigurationError, InvalidRequestError, LLMFactoryError
from ._health import HealthStore, wall_clock
from ._plugins import PluginRegistry, default_registry
from ._provider import Limits, Provider
from ._reload import ReloadResult, reload_factory
from ._request import ChatMessage, ChatRequest, to_messages
from ._router import CallInfo, Router, StateListener
from ._shared_state import health_for_state
from ._sources import config_from_env, load_env, load_yaml
from ._streams import AsyncChatStream, ChatStream
from ._transports import TransportChoice, new_client, transport_name
from ._types import ChatCompletion

STATE_ENV = "LLM_FACTORY_STATE"

__all__ = ["DeploymentStatus", "LLMFactory"]

Prompt = str | Sequence[ChatMessage | dict[str, Any]]


class DeploymentStatus(BaseModel):
    """One line of ``factory.status()``; keys appear masked only."""

    name: str
    provider: str
    model_name: str
    model: str
    api_base: str | None
    api_key: str
    state: str
    """``healthy``, ``cooldown`` or ``disabled``."""
    until: float | None
    """Wall-clock time the cooldown or disablement ends."""
    reason: str | None
    in_flight: int
    successes: int
    failures: int
    last_error: str | None
    avg_latency_ms: float | None
    weight: float
    priority: int


class _Runtime:
    """The client and provider instances bound to one event loop."""

    def __init__(self, client: httpx.AsyncClient, owns_client: bool, deployments: Sequence[Deployment], limits: Limits):
        self.client = client
        self.owns_client = owns_client
        self.providers: dict[str, Provider] = {
            d.name: d.provider_cls(d.settings, client=client, name=d.name, timeouts=d.timeouts, limits=limits)
            for d in deployments
        }
        self.closed = False
        self._closer: AsyncGenerator[None, None] | None = None

    def close_with_loop(self, forget: Callable[[_Runtime], None]) -> None:
        """Close this runtime when the running asyncio loop shuts down (``asyncio.run`` closes
        the async generators still open in its loop before it closes): a factory used across
        several ``asyncio.run`` calls leaves no unclosed aiohttp session behind."""
        if sys.get_asyncgen_hooks().firstiter is None:  # not an asyncio loop: nothing would call us
            return
        closer = self._until_loop_ends(forget)
        try:
            closer.asend(None).send(None)  # run to its first yield: the loop now tracks it
        except StopIteration:
            self._closer = closer

    async def _until_loop_ends(self, forget: Callable[[_Runtime], None]) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            self._closer = None
            forget(self)
            await self.aclose()

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        closer, self._closer = self._closer, None
        if closer is not None:
            await closer.aclose()
        for provider in self.providers.values():
            await provider.aclose()
        if self.owns_client:
            await self.client.aclose()


class LLMFactory:
    """One interface over every configured deployment.

    ``LLMFactory(config | [configs] | FactoryConfig, **router_options)``; ``router_options`` are
    ``RouterSettings`` fields (``strategy="random"``, ``num_retries=3``, ``fallbacks={...}``).
    ``transport`` / ``http_client`` inject the HTTP layer (tests use ``httpx.MockTransport``);
    ``transport="aiohttp" | "httpx" | "auto"`` picks a built-in one (default ``auto``, or
    ``$LLM_FACTORY_HTTP_TRANSPORT``: aiohttp when installed, several times cheaper per request).
    ``state="redis://..."`` (or the config's ``state:``, or ``$LLM_FACTORY_STATE``) shares health
    with every process using the same URL; the default keeps it in this process.
    """

    def __init__(
        self,
        config: ModelConfig | Sequence[ModelConfig] | FactoryConfig | Mapping[str, Any] | None = None,
        *,
        transport: httpx.AsyncBaseTransport | str | None = None,
        http_client: httpx.AsyncClient | None = None,
        health: HealthStore | None = None,
        state: str | None = None,
        registry: PluginRegistry | None = None,
        source: str = "configuration",
        **router_options: Any,
    ) -> None:
        self.config = _as_factory_config(config, router_options)
        self.registry = registry or default_registry()
        self.deployments = build_deployments(self.config.providers, self.registry, source)
        self.health: HealthStore = health or health_for_state(
            state or self.config.state or os.environ.get(STATE_ENV), self.config.router.cooldown_policy()
        )
        self.router = Router(self.deployments, self.config.router, self.registry, self.health)
        # A name is resolved now: an unknown one fails here, not on the first call.
        self._transport: TransportChoice = (
            transport_name(transport) if transport is None or isinstance(transport, str) else transport
        )
        self._http_client = http_client
        self._runtimes: weakref.WeakKeyDictionary[Any, _Runtime] = weakref.WeakKeyDictionary()
        self._portal: BlockingPortal | None = None
        self._portal_thread: threading.Thread | None = None
        self._portal_loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._closed = False

    # -- construction from files ----------------------------------------------------------------

    @classmethod
    def create(cls, env_file: str | os.PathLike[str] | None = None, **kwargs: Any) -> LLMFactory:
        """From environment variables, overlaid on ``env_file`` (default ``./.env`` if present)."""
        registry = kwargs.pop("registry", None) or default_registry()
        source = f"environment ({env_file})" if env_file else "environment"
        config = config_from_env(load_env(env_file), registry, source)
        return cls(config, registry=registry, source=source, **kwargs)

    @classmethod
    def create_from_config(
        cls, path: str | os.PathLike[str], *, env_file: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> LLMFactory:
        """From a YAML file with a ``providers:`` list; ``${VAR}`` reads the environment overlaid
        on ``env_file`` (default ``./.env`` if present)."""
        return cls(load_yaml(path, load_env(env_file)), source=str(path), **kwargs)

    # -- reload ---------------------------------------------------------------------------------

    def reload(
        self,
        config: ModelConfig | Sequence[ModelConfig] | FactoryConfig | Mapping[str, Any],
        *,
        source: str = "configuration",
    ) -> ReloadResult:
        """Serve ``config`` from now on without dropping a request: in-flight requests finish on
        the deployments they started with, unchanged deployments keep their health. Validated
        first: a bad configuration raises ``ConfigurationError`` and the current one stays. Call
        it on the event loop that serves this factory (see ``_reload``)."""
        return reload_factory(self, _as_factory_config(config, {}), source)

    def reload_from_config(
        self, path: str | os.PathLike[str], *, env_file: str | os.PathLike[str] | None = None
    ) -> ReloadResult:
        """``reload`` from a YAML file, read as ``create_from_config`` reads it."""
        return self.reload(load_yaml(path, load_env(env_file)), source=str(path))

    # -- info -----------------------------------------------------------------------------------

    @property
    def model_names(self) -> list[str]:
        return list(self.router.groups)

    def models(self) -> list[dict[str, Any]]:
        """One entry per model name, in configuration order, with its owner."""
        return [
            {"id": name, "owned_by": group[0].provider_cls.owned_by or group[0].provider_key}
            for name, group in self.router.groups.items()
        ]

    def status(self) -> list[DeploymentStatus]:
        out = []
        for d in self.deployments:
            stats = self.health.stats(d.name)
            cooling = self.health.available(d.name, time.monotonic()) is False
            state = "disabled" if stats.disabled_reason and cooling else ("cooldown" if cooling else "healthy")
            out.append(
                DeploymentStatus(
                    name=d.name,
                    provider=d.provider_key,
                    model_name=d.model_name,
                    model=d.settings.model,
                    api_base=_strip_query(d.provider_cls.display_api_base(d.settings)),
                    api_key=d.masked_key,
                    state=state,
                    until=wall_clock(stats.cooldown_until) if cooling else None,
                    reason=(stats.disabled_reason or stats.last_error) if cooling else None,
                    in_flight=stats.in_flight,
                    successes=stats.successes,
                    failures=stats.failures,
                    last_error=stats.last_error,
                    avg_latency_ms=round(stats.latency_ewma * 1000, 2) if stats.latency_ewma is not None else None,
                    weight=d.weight,
                    priority=d.priority,
                )
            )
        return out

    # -- requests -------------------------------------------------------------------------------

    def build_request(self, prompt: Prompt | ChatRequest, params: Mapping[str, Any], *, stream: bool) -> ChatRequest:
        if isinstance(prompt, ChatRequest):
            return (
                prompt.model_copy(update={"stream": stream, **params}) if params or prompt.stream != stream else prompt
            )
        if not isinstance(prompt, (str, list, tuple)):
            raise InvalidRequestError("prompt must be a string or a list of OpenAI messages", param="messages")
        try:
            return ChatRequest.model_validate({**params, "messages": to_messages(prompt), "stream": stream})
        except ValidationError as exc:
            raise InvalidRequestError(format_validation_error(exc, "request"), param=_first_loc(exc)) from None

    def _runtime(self) -> _Runtime:
        if self._closed:
            raise LLMFactoryError("this LLMFactory is closed")
        try:
            key: Any = asyncio.get_running_loop()
        except RuntimeError:  # another async library (trio): one runtime per thread
            key = threading.current_thread()
        runtime = self._runtimes.get(key)
        if runtime is None:
            if self._http_client is not None:
                runtime = _Runtime(self._http_client, False, self.deployments, self.config.router.limits())
            else:
                limits = self.config.router.limits()
                runtime = _Runtime(new_client(self._transport, limits), True, self.deployments, limits)
            self._runtimes[key] = runtime
            if isinstance(key, asyncio.AbstractEventLoop):
                runtime.close_with_loop(self._forget)
        return runtime

    def _forget(self, runtime: _Runtime) -> None:
        """``runtime``'s loop is ending: drop it (the next loop builds its own)."""
        key = asyncio.get_running_loop()
        if self._runtimes.get(key) is runtime:
            del self._runtimes[key]

    def providers(self) -> Mapping[str, Provider]:
        """Provider instances bound to the running event loop, by deployment name: what
        ``factory.router.chat`` / ``.stream`` take (integrations such as the server use these)."""
        return self._runtime().providers

    def add_state_listener(self, listener: StateListener) -> Callable[[], None]:
        """Call ``listener(deployment, state, reason, until)`` when one of this factory's
        deployments enters or leaves cooldown / disabled; returns a function that removes it."""
        self.router.listeners.append(listener)
        return lambda: self.router.listeners.remove(listener)

    def enable_tracing(self, tracer_provider: Any = None, *, capture_content: bool = False) -> None:
        """OpenTelemetry spans for every call and upstream attempt (``llm-factory-core[otel]``),
        through ``tracer_provider`` or the global one; ``capture_content`` also records prompts
        and replies. See ``_tracing`` for the spans and their attributes."""
        from ._tracing import Tracing

        self.router.tracing = Tracing(self.deployments, tracer_provider, capture_content=capture_content)

    def disable_tracing(self) -> None:
        self.router.tracing = None

    async def chat_async(
        self,
        prompt: Prompt | ChatRequest,
        *,
        model: str | None = None,
        load_balance_strategy: str | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> ChatCompletion:
        """Send a chat completion; ``params`` are OpenAI's (temperature, tools, ...) plus
        ``extra_body`` for provider-specific fields. ``timeout`` bounds the whole call."""
        request = self.build_request(prompt, _params(model, load_balance_strategy, params), stream=False)
        return await self.router.chat(request, self._runtime().providers, timeout=timeout)

    def stream_async(
        self,
        prompt: Prompt | ChatRequest,
        *,
        model: str | None = None,
        load_balance_strategy: str | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> AsyncChatStream:
        """``async for chunk in factory.stream_async(...)``: chunks in OpenAI's shape."""
        request = self.build_request(prompt, _params(model, load_balance_strategy, params), stream=True)
        self.router.resolve(request)  # unknown model or strategy fails here, not mid-iteration
        info = CallInfo()
        return AsyncChatStream(self._stream_gen(request, timeout, info), info)

    async def _stream_gen(self, request: ChatRequest, timeout: float | None, info: CallInfo) -> Any:
        upstream = self.router.stream(request, self._runtime().providers, timeout=timeout, info=info)
        async with aclosing(upstream):
            async for chunk in upstream:
                yield chunk

    def chat(self, prompt: Prompt | ChatRequest, **kwargs: Any) -> ChatCompletion:
        """Synchronous ``chat_async``; safe inside a running event loop."""
        portal = self._get_portal()
        return portal.call(lambda: self.chat_async(prompt, **kwargs))

    def stream(self, prompt: Prompt | ChatRequest, **kwargs: Any) -> ChatStream:
        """Synchronous ``stream_async``: ``for chunk in factory.stream(...)``; ``with`` closes it."""
        portal = self._get_portal()
        return ChatStream(portal, portal.call(lambda: _make_stream(self, prompt, kwargs)))

    async def embed_async(
        self,
        input: str | list[str] | EmbeddingRequest,
        *,
        model: str | None = None,
        load_balance_strategy: str | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> EmbeddingResponse:
        """Embeddings of ``input`` (a text or a list of texts) with the model's deployments, with
        the same balancing and failover as chat; ``params``: ``dimensions``, ``encoding_format``..."""
        if isinstance(input, EmbeddingRequest):
            request = input
        else:
            try:
                request = EmbeddingRequest.model_validate(
                    {**_params(model, load_balance_strategy, params), "input": input}
                )
            except ValidationError as exc:
                raise InvalidRequestError(format_validation_error(exc, "request"), param=_first_loc(exc)) from None
        result = await self.router.embed(request, self._runtime().providers, timeout=timeout)
        return result.packed(request.encoding_format)

    def embed(self, input: str | list[str] | EmbeddingRequest, **kwargs: Any) -> EmbeddingResponse:
        """Synchronous ``embed_async``."""
        portal = self._get_portal()
        return portal.call(lambda: self.embed_async(input, **kwargs))

    # -- event loop thread ----------------------------------------------------------------------

    def _get_portal(self) -> BlockingPortal:
        if self._closed:
            raise LLMFactoryError("this LLMFactory is closed")
        if threading.current_thread() is self._portal_thread:
            raise LLMFactoryError(
                "a sync method of LLMFactory was called from its own event loop thread; "
                "use the async methods (chat_async, stream_async) there"
            )
        with self._lock:
            if self._portal is None:
                self._portal, self._portal_thread, self._portal_loop = _start_portal()
            return self._portal

    # -- closing --------------------------------------------------------------------------------

    async def release_loop(self) -> None:
        """Close the connections this factory opened on the running event loop, and nothing else:
        for a host whose loop ends while the factory lives on (a server's lifespan). The factory
        stays usable; another loop gets fresh connections."""
        try:
            key: Any = asyncio.get_running_loop()
        except RuntimeError:
            key = threading.current_thread()
        runtime = self._runtimes.pop(key, None)
        if runtime is not None:
            await runtime.aclose()
        await _stop_health_task(self.health)

    async def aclose(self) -> None:
        """Close connections of the current loop's client (and the sync thread's)."""
        await self.release_loop()
        self._stop_portal()
        self._closed = True

    def close(self) -> None:
        """Close every connection and stop the background loop thread."""
        self._stop_portal()
        self._closed = True

    def _stop_portal(self) -> None:
        with self._lock:
            portal, thread, loop = self._portal, self._portal_thread, self._portal_loop
            self._portal = self._portal_thread = self._portal_loop = None
        if portal is None or thread is None or threading.current_thread() is thread:
            return
        runtime = self._runtimes.pop(loop, None) if loop is not None else None
        try:
            if runtime is not None:
                portal.call(runtime.aclose)
            portal.call(_stop_health_task, self.health)
            portal.call(portal.stop)
        except RuntimeError:  # the loop already stopped
            pass
        thread.join(timeout=5)

    def __enter__(self) -> LLMFactory:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> LLMFactory:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<LLMFactory models={self.model_names} deployments={len(self.deployments)}>"


async def _make_stream(factory: LLMFactory, prompt: Prompt | ChatRequest, kwargs: dict[str, Any]) -> AsyncChatStream:
    return factory.stream_async(prompt, **kwargs)


def _start_portal() -> tuple[BlockingPortal, threading.Thread, asyncio.AbstractEventLoop]:
    """A daemon thread running an event loop with a portal, so an unclosed factory never blocks
    interpreter exit (anyio's own portal thread is not a daemon)."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        box["loop"] = asyncio.get_running_loop()
        async with BlockingPortal() as portal:
            box["portal"] = portal
            ready.set()
            await portal.sleep_until_stopped()

    def run() -> None:
        try:
            anyio.run(serve)
        except BaseException as exc:  # pragma: no cover - surfaced to the waiting caller
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=run, name="llm-factory-loop", daemon=True)
    thread.start()
    ready.wait()
    if "error" in box:
        raise LLMFactoryError(f"could not start the event loop thread: {box['error']!r}")
    return box["portal"], thread, box["loop"]


def _strip_query(url: str | None) -> str | None:
    return url.split("?", 1)[0] if url else url


def _params(model: str | None, strategy: str | None, params: dict[str, Any]) -> dict[str, Any]:
    if model is not None:
        params["model"] = model
    if strategy is not None:
        params["load_balance_strategy"] = strategy
    return params


def _first_loc(exc: ValidationError) -> str | None:
    errors = exc.errors()
    return ".".join(str(p) for p in errors[0]["loc"]) if errors else None


def _as_factory_config(config: Any, router_options: dict[str, Any]) -> FactoryConfig:
    if config is None:
        cfg = FactoryConfig()
    elif isinstance(config, FactoryConfig):
        cfg = config
    elif isinstance(config, ModelConfig):
        cfg = FactoryConfig(providers=[config])
    elif isinstance(config, Mapping):
        try:
            cfg = FactoryConfig.model_validate(config)
        except ValidationError as exc:
            raise ConfigurationError(format_validation_error(exc, "configuration")) from None
    elif isinstance(config, Sequence) and not isinstance(config, (str, bytes)):
        items = list(config)
        bad = [i for i, c in enumerate(items) if not isinstance(c, ModelConfig)]
        if bad:
            raise ConfigurationError(
                f"configuration: item {bad[0]} is {type(items[bad[0]]).__name__}, expected ModelConfig"
            )
        cfg = FactoryConfig(providers=items)
    else:
        raise ConfigurationError(
            f"LLMFactory takes a ModelConfig, a list of them or a FactoryConfig, not {type(config).__name__}"
        )
    if router_options:
        try:
            router = RouterSettings.model_validate({**cfg.router.model_dump(), **router_options})
        except ValidationError as exc:
            raise ConfigurationError(format_validation_error(exc, "LLMFactory(...)")) from None
        cfg = cfg.model_copy(update={"router": router})
    return cfg


async def _stop_health_task(health: HealthStore) -> None:
    """A shared health store's background task (if any) stops with the factory."""
    closer = getattr(health, "aclose", None)
    if closer is not None:
        await closer()
