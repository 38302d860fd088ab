"""The two hosts of Claude: AWS Bedrock (InvokeModel) and Anthropic's Messages API.

Both take the same Messages body and send the same events; a host only knows its URL, its auth,
its few body additions, its stream framing and its error body.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from urllib.parse import quote

import httpx
from botocore.eventstream import EventStreamBuffer, EventStreamMessage

from llm_factory_core import AuthenticationError, ChatRequest, ProviderError, UpstreamConnectionError
from llm_factory_core.providers import ServerSentEvent, SSEReader, json_dumps, json_loads

from ._aws import AwsCredentials, ParserError, SigV4Auth, header_text
from ._errors import (
    Classified,
    classify_anthropic_error,
    classify_anthropic_payload,
    classify_bedrock_error,
    classify_bedrock_exception,
)
from ._settings import (
    ANTHROPIC_API_BASE,
    ANTHROPIC_VERSION,
    BEARER_ENV,
    BEDROCK_ANTHROPIC_VERSION,
    ClaudeSettings,
    auth_kind,
    bedrock_region,
)

__all__ = ["AnthropicHost", "BedrockHost", "EventReader", "Host", "request_betas"]

log = logging.getLogger("llm_factory_claude")

MakeError = Callable[[type[ProviderError], str, dict[str, Any]], ProviderError]


class Host:
    allow_image_urls: bool = False

    def __init__(self, settings: ClaudeSettings, make_error: MakeError) -> None:
        self.settings = settings
        self._make_error = make_error

    def raise_classified(self, classified: Classified) -> ProviderError:
        cls, message, kwargs = classified
        return self._make_error(cls, message, kwargs)

    async def url(self, *, stream: bool) -> str:
        raise NotImplementedError

    async def auth(self) -> httpx.Auth | None:
        return None

    def headers(self, *, stream: bool, betas: Sequence[str] = ()) -> dict[str, str]:
        """``betas``: the request's own ``anthropic_beta`` flags (beside the deployment's)."""
        raise NotImplementedError

    def finish_body(self, body: dict[str, Any], request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        raise NotImplementedError

    def classify(self, status: int, headers: httpx.Headers, body: bytes) -> Classified:
        raise NotImplementedError

    def reader(self, max_event: int) -> EventReader:
        """A per-read decoder of this host's stream into Claude's events (dicts)."""
        raise NotImplementedError

    def rejected_credentials(self) -> None:
        """Called after the upstream refused this deployment's credentials."""

    @property
    def secrets(self) -> list[str]:
        """Credentials found outside the settings (environment, credential chain), to mask."""
        return []


class BedrockHost(Host):
    """``POST /model/{modelId}/invoke`` and ``/invoke-with-response-stream`` on bedrock-runtime."""

    def __init__(self, settings: ClaudeSettings, make_error: MakeError) -> None:
        super().__init__(settings, make_error)
        self.kind = auth_kind(settings)
        self._region = bedrock_region(settings)
        self._bearer: str | None = None
        self.credentials: AwsCredentials | None = None
        if self.kind == "bearer" and settings.api_key is not None:
            self._bearer = settings.api_key.get_secret_value()
        elif self.kind == "bearer_env":
            self._bearer = os.environ.get(BEARER_ENV, "")
        else:
            self.credentials = AwsCredentials(
                access_key=settings.aws_access_key_id,
                secret_key=settings.aws_secret_access_key.get_secret_value()
                if settings.aws_secret_access_key
                else None,
                token=settings.aws_session_token.get_secret_value() if settings.aws_session_token else None,
                profile=settings.aws_profile,
            )
        # The model id holds ':' (and '/' in ARNs): percent-encoded as botocore does; the signature
        # covers exactly this path, which httpx sends unchanged.
        self._path = "/model/" + quote(settings.model, safe="")
        self._auth: SigV4Auth | None = None

    @property
    def secrets(self) -> list[str]:
        found = [self._bearer] if self._bearer else []
        last = self._auth.last if self._auth is not None else None
        if last is not None:
            found += [v for v in (last.access_key, last.secret_key, last.token) if v]
        return found

    async def region(self) -> str:
        region = self._region
        if region is None and self.credentials is not None and not self.credentials.is_static:
            region = await self.credentials.region()
        if not region:
            raise self._make_error(
                AuthenticationError,
                "no AWS region for Bedrock: set aws_region (CLAUDE_AWS_REGION) or AWS_REGION",
                {},
            )
        self._region = region
        return region

    async def url(self, *, stream: bool) -> str:
        base = self.settings.api_base
        if not base:
            base = f"https://bedrock-runtime.{await self.region()}.amazonaws.com"
        return base + self._path + ("/invoke-with-response-stream" if stream else "/invoke")

    async def auth(self) -> httpx.Auth | None:
        if self.credentials is None:
            return None
        if self._auth is None:
            region = await self.region()

            def on_error(message: str) -> Exception:
                return self._make_error(AuthenticationError, message, {})

            self._auth = SigV4Auth(self.credentials, region, on_error)
        return self._auth

    def headers(self, *, stream: bool, betas: Sequence[str] = ()) -> dict[str, str]:
        headers = {"accept": "application/json"}
        if stream:
            headers = {"x-amzn-bedrock-accept": "application/json"}
        if self._bearer is not None:
            headers["authorization"] = f"Bearer {self._bearer}"
        if self.settings.guardrail_identifier:
            headers["x-amzn-bedrock-guardrailidentifier"] = self.settings.guardrail_identifier
            headers["x-amzn-bedrock-guardrailversion"] = self.settings.guardrail_version or "DRAFT"
        return headers

    def finish_body(self, body: dict[str, Any], request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        out = {"anthropic_version": self.settings.anthropic_version or BEDROCK_ANTHROPIC_VERSION, **body}
        betas = _merged_betas(self.settings.anthropic_beta, out.pop("anthropic_beta", None))
        if betas:  # Bedrock takes betas in the body, the deployment's and the request's own
            out["anthropic_beta"] = betas
        out.pop("model", None)
        out.pop("stream", None)
        return out

    def classify(self, status: int, headers: httpx.Headers, body: bytes) -> Classified:
        return classify_bedrock_error(status, headers, body)

    def rejected_credentials(self) -> None:
        if self.credentials is not None:
            self.credentials.invalidate()

    def reader(self, max_event: int) -> EventReader:
        return _BedrockEvents(self)


class EventReader(Protocol):
    """``feed`` each read of the body, then ``end``: each appends the Claude events it completes
    to ``out``; an error in the stream raises the provider's typed error (after the events before
    it are appended)."""

    def feed(self, piece: bytes, out: list[dict[str, Any]]) -> None: ...

    def end(self, out: list[dict[str, Any]]) -> None: ...


class _BedrockEvents:
    """Claude events from the ``chunk`` frames of an AWS event stream (botocore's decoder checks
    both CRCs); exception and error frames raise typed errors."""

    __slots__ = ("buffer", "host")

    def __init__(self, host: BedrockHost) -> None:
        self.host = host
        self.buffer = EventStreamBuffer()

    def feed(self, piece: bytes, out: list[dict[str, Any]]) -> None:
        self.buffer.add_data(piece)
        try:
            for message in self.buffer:
                if (event := self._event(message)) is not None:
                    out.append(event)
        except ParserError as exc:
            raise self.host._make_error(
                UpstreamConnectionError, f"corrupt event stream from Bedrock ({type(exc).__name__})", {}
            ) from None

    def end(self, out: list[dict[str, Any]]) -> None:
        pass  # a partial frame at the end is a cut stream: the caller sees no finish

    def _event(self, message: EventStreamMessage) -> dict[str, Any] | None:
        host = self.host
        kind = header_text(message, ":message-type")
        if kind == "exception":
            name = header_text(message, ":exception-type")
            raise host.raise_classified(classify_bedrock_exception(name, message.payload))
        if kind == "error":
            code = header_text(message, ":error-code")
            text = header_text(message, ":error-message") or code
            raise host.raise_classified(classify_bedrock_exception(code, json_bytes(text)))
        if header_text(message, ":event-type") != "chunk":
            return None
        event = _decode_chunk(message.payload)
        if event is None:
            log.warning("skipped a malformed Bedrock stream chunk")
        return event


def request_betas(body: dict[str, Any]) -> list[str]:
    """The request's own beta flags (the ``anthropic_beta`` extra, a list or a comma list)."""
    raw = body.get("anthropic_beta")
    items = raw.split(",") if isinstance(raw, str) else raw if isinstance(raw, list) else []
    return [str(b).strip() for b in items if str(b).strip()]


def _merged_betas(configured: Sequence[str] | None, given: Any) -> list[str]:
    extra = request_betas({"anthropic_beta": list(given) if isinstance(given, tuple) else given})
    merged = list(configured or [])
    merged += [b for b in extra if b not in merged]
    return merged


def json_bytes(message: str) -> bytes:
    return json_dumps({"message": message})


def _decode_chunk(payload: bytes) -> dict[str, Any] | None:
    try:
        wrapper = json_loads(payload)
        event = json_loads(base64.b64decode(wrapper["bytes"]))
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    return event if isinstance(event, dict) else None


class AnthropicHost(Host):
    """``POST {api_base}/v1/messages`` with ``x-api-key`` and ``anthropic-version``; SSE streams."""

    allow_image_urls = True

    def __init__(self, settings: ClaudeSettings, make_error: MakeError) -> None:
        super().__init__(settings, make_error)
        base = (settings.api_base or ANTHROPIC_API_BASE).rstrip("/")
        self._url = base + ("/messages" if base.endswith("/v1") else "/v1/messages")
        key = settings.api_key.get_secret_value() if settings.api_key else os.environ.get("ANTHROPIC_API_KEY", "")
        self._headers = {
            "accept": "application/json",
            "anthropic-version": settings.anthropic_version or ANTHROPIC_VERSION,
        }
        self._key = key
        if key:
            self._headers["x-api-key"] = key
        if settings.anthropic_beta:
            self._headers["anthropic-beta"] = ",".join(settings.anthropic_beta)

    @property
    def secrets(self) -> list[str]:
        return [self._key] if self._key else []

    async def url(self, *, stream: bool) -> str:
        return self._url

    def headers(self, *, stream: bool, betas: Sequence[str] = ()) -> dict[str, str]:
        if not betas:
            return self._headers
        merged = _merged_betas(self.settings.anthropic_beta, betas)
        return {**self._headers, "anthropic-beta": ",".join(merged)}

    def finish_body(self, body: dict[str, Any], request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        out = {"model": self.settings.model, **body}
        out.pop("anthropic_beta", None)  # a header on Anthropic's API (``headers``), never a body field
        if stream:
            out["stream"] = True
        if request.user and "metadata" not in out:
            out["metadata"] = {"user_id": request.user}
        return out

    def classify(self, status: int, headers: httpx.Headers, body: bytes) -> Classified:
        return classify_anthropic_error(status, headers, body)

    def reader(self, max_event: int) -> EventReader:
        return _AnthropicEvents(self, max_event)


class _AnthropicEvents:
    """Claude events from Anthropic's SSE stream; an ``error`` event raises a typed error."""

    __slots__ = ("host", "sse")

    def __init__(self, host: AnthropicHost, max_event: int) -> None:
        self.host = host
        self.sse = SSEReader(max_event)

    def feed(self, piece: bytes, out: list[dict[str, Any]]) -> None:
        self._events(self.sse.feed(piece), out)

    def end(self, out: list[dict[str, Any]]) -> None:
        self._events(self.sse.end(), out)

    def _events(self, found: list[ServerSentEvent], out: list[dict[str, Any]]) -> None:
        for sse in found:
            if not sse.data:
                continue
            try:
                event = json_loads(sse.data)
            except ValueError:
                log.warning("skipped a malformed Anthropic stream event")
                continue
            if not isinstance(event, dict):
                continue
            if event.get("type") == "error" or sse.event == "error":
                raise self.host.raise_classified(classify_anthropic_payload(event, None))
            out.append(event)
