"""Faithful fakes of Claude's two hosts: AWS bedrock-runtime (InvokeModel, event streams, SigV4 or
Bedrock API keys) and Anthropic's Messages API (x-api-key, SSE).

Each fake is an ``httpx.MockTransport`` handler (``fake.handle``) and, for SDKs that need a socket,
a tiny HTTP server on 127.0.0.1 (``serve(fake)``). They are validated by boto3 and the anthropic
SDK in test_fakes.py. Replies are scripted with ``fake.script.append(Reply(...))``; without a
script the fake answers "Hello from fake Claude".

Formats: /work/shared/reference/provider-wire-formats.md §5 (Bedrock) and Anthropic's SDK types.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import re
import struct
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from llm_factory_core.testing import serve_handler

# -- scripted replies --------------------------------------------------------------------------


@dataclass
class Reply:
    """A Claude message. ``pieces`` splits the first text block into stream deltas."""

    blocks: list[dict[str, Any]] = field(default_factory=lambda: [{"type": "text", "text": "Hello from fake Claude"}])
    stop_reason: str = "end_turn"
    usage: tuple[int, int] = (11, 7)
    cache: tuple[int, int] = (0, 0)
    """Prompt-cache tokens: (read, written), reported beside input_tokens."""
    pieces: list[str] | None = None
    fail_after: int | None = None
    """Streams only: after this many events send an in-stream error (``fail_code``)."""
    fail_code: str = "ThrottlingException"
    cut_after: int | None = None
    """Streams only: end the bytes after this many events (a cut connection)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def text(cls, text: str, **kw: Any) -> Reply:
        return cls(blocks=[{"type": "text", "text": text}], **kw)


@dataclass
class Fail:
    """An error reply; ``code`` is the Bedrock exception name or the Anthropic error type."""

    code: str
    message: str = "failed"
    headers: dict[str, str] = field(default_factory=dict)


def sign_thinking(text: str) -> str:
    """The fake's thinking signature: opaque to clients, but any change to the text breaks it
    (as Anthropic's does: "Invalid `signature` in `thinking` block")."""
    return base64.b64encode(hashlib.sha256(b"fake-claude-thinking:" + text.encode()).digest()).decode()


def signed_blocks(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**b, "signature": b.get("signature") or sign_thinking(b["thinking"])} if b["type"] == "thinking" else b
        for b in blocks
    ]


def cache_usage(reply: Reply) -> dict[str, int]:
    read, written = reply.cache
    return {"cache_read_input_tokens": read, "cache_creation_input_tokens": written} if read or written else {}


def message_json(reply: Reply, model: str, *, bedrock: bool) -> dict[str, Any]:
    return {
        "id": ("msg_bdrk_" if bedrock else "msg_") + uuid.uuid4().hex[:24],
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": signed_blocks(reply.blocks),
        "stop_reason": reply.stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": reply.usage[0], "output_tokens": reply.usage[1], **cache_usage(reply)},
        **reply.extra,
    }


def stream_events(reply: Reply, model: str, *, bedrock: bool) -> list[dict[str, Any]]:
    """The Messages stream for a reply, in Anthropic's order."""
    message = message_json(reply, model, bedrock=bedrock)
    blocks = message["content"]
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": reply.usage[0], "output_tokens": 1, **cache_usage(reply)},
    }
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            events.append(
                {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
            )
            pieces = reply.pieces if (reply.pieces is not None and index == 0) else [block["text"]]
            events += [
                {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": p}}
                for p in pieces
            ]
        elif block["type"] == "tool_use":
            head = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            events.append({"type": "content_block_start", "index": index, "content_block": head})
            text = json.dumps(block["input"])
            half = len(text) // 2
            for part in (text[:half], text[half:]):
                events.append(
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": part},
                    }
                )
        elif block["type"] == "thinking":
            head = {"type": "thinking", "thinking": "", "signature": ""}
            events.append({"type": "content_block_start", "index": index, "content_block": head})
            text = block["thinking"]
            for part in (text[: len(text) // 2], text[len(text) // 2 :]):
                if part:
                    delta = {"type": "thinking_delta", "thinking": part}
                    events.append({"type": "content_block_delta", "index": index, "delta": delta})
            # The signature arrives last, just before the block's stop (anthropic-sdk-python
            # types/signature_delta.py; AWS "Thinking encryption").
            delta = {"type": "signature_delta", "signature": block["signature"]}
            events.append({"type": "content_block_delta", "index": index, "delta": delta})
        elif block["type"] == "redacted_thinking":
            events.append({"type": "content_block_start", "index": index, "content_block": dict(block)})
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": reply.usage[1]},
        }
    )
    stop: dict[str, Any] = {"type": "message_stop"}
    if bedrock:
        stop["amazon-bedrock-invocationMetrics"] = {
            "inputTokenCount": reply.usage[0],
            "outputTokenCount": reply.usage[1],
            "invocationLatency": 321,
            "firstByteLatency": 123,
        }
    events.append(stop)
    return events


# -- what today's models accept ----------------------------------------------------------------
# The fake's own table (not the plugin's), by model id: Anthropic ids and aliases, Bedrock ids,
# us./eu./global. profiles and inference-profile ARNs (the model is named in the last segment).


@dataclass(frozen=True)
class FakeModel:
    max_output: int
    thinking: tuple[str, ...] = ()
    """Accepted ``thinking.type`` values besides ``disabled``."""
    efforts: tuple[str, ...] = ()
    structured: bool = False
    one_sampler: bool = False


# Sources: platform.claude.com/docs/en/about-claude/models/overview (max output);
# .../build-with-claude/adaptive-thinking (Opus 4.6, Sonnet 4.6); .../build-with-claude/effort;
# .../build-with-claude/structured-outputs and docs.aws.amazon.com/bedrock/latest/userguide/
# structured-output.html (Haiku 4.5, Sonnet 4.5, Opus 4.5/4.6); one sampler:
# .../about-claude/models/migrating-to-claude-4 and BerriAI/litellm#15097 (Sonnet 4.5+, Opus 4.1+).
FAKE_MODELS: list[tuple[str, FakeModel]] = [
    (r"claude-opus-4-6", FakeModel(128_000, ("enabled", "adaptive"), ("low", "medium", "high", "max"), True, True)),
    (r"claude-sonnet-4-6", FakeModel(64_000, ("enabled", "adaptive"), ("low", "medium", "high"), True, True)),
    (r"claude-opus-4-5", FakeModel(64_000, ("enabled",), (), True, True)),
    (r"claude-sonnet-4-5", FakeModel(64_000, ("enabled",), (), True, True)),
    (r"claude-haiku-4-5", FakeModel(64_000, ("enabled",), (), True, True)),
    (r"claude-opus-4-1", FakeModel(32_000, ("enabled",), (), False, True)),
    (r"claude-3-7-sonnet", FakeModel(64_000, ("enabled",))),
    (r"claude-3-5-(?:sonnet|haiku)", FakeModel(8_192)),
    (r"claude-fake", FakeModel(8_192)),  # the SDK checks' stand-in
]
_BEDROCK_KEYS = {"anthropic_version", "anthropic_beta"}
_COMMON_KEYS = {
    "max_tokens", "messages", "system", "temperature", "top_p", "top_k", "stop_sequences", "tools",
    "tool_choice", "thinking", "output_config", "cache_control", "service_tier", "container",
    "context_management", "mcp_servers", "inference_geo",
}  # fmt: skip
_ANTHROPIC_KEYS = {"model", "stream", "metadata"}
THINKING_TOOL_USE = (
    "messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{found}`. When "
    "`thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the "
    "lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from "
    "previous turns. To avoid this requirement, disable `thinking`. Please consult our documentation at "
    "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
)
"""Anthropic's message, verbatim as reported on Anthropic, Bedrock and Vertex (anomalyco/opencode#3077,
mastra-ai/mastra#7799, deepset-ai/haystack-core-integrations#2146)."""
_THINKING_DOCS = (
    "Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
)


def fake_model(model: str) -> FakeModel | None:
    tail = model.rsplit("/", 1)[-1]
    for pattern, info in FAKE_MODELS:
        if re.search(pattern, tail):
            return info
    return None


def _blocks_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    return content if isinstance(content, list) else [{"type": "text", "text": content}]


def check_body(body: Any, model: str, *, bedrock: bool) -> str | None:
    """Anthropic's Messages validation as today's models apply it; None when valid."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    allowed = _COMMON_KEYS | (_BEDROCK_KEYS if bedrock else _ANTHROPIC_KEYS)
    for key in body:
        if key not in allowed:
            if bedrock:  # Bedrock's JSON-schema validation of the InvokeModel body
                return f"Malformed input request: #: extraneous key [{key}] is not permitted, please reformat input"
            return f"{key}: Extra inputs are not permitted"
    info = fake_model(model)
    if info is None:
        return f"The provided model identifier is invalid: {model}" if bedrock else f"model: {model}"
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    if body["max_tokens"] > info.max_output:
        return (
            f"max_tokens: {body['max_tokens']} > {info.max_output}, which is the maximum allowed number of "
            f"output tokens for {model}"
        )
    return (
        _check_sampling(body, info)
        or _check_thinking(body, info)
        or _check_output_config(body, info)
        or _check_messages(body)
        or _check_cache(body)
    )


def _check_sampling(body: dict[str, Any], info: FakeModel) -> str | None:
    if info.one_sampler and body.get("temperature") is not None and body.get("top_p") is not None:
        # Sonnet 4.5+/Opus 4.1+ (BerriAI/litellm#15097, browseros-ai/BrowserOS#208)
        return "`temperature` and `top_p` cannot both be specified for this model. Please use only one."
    for stop in body.get("stop_sequences") or []:
        # sourcegraph/cody#3549, BerriAI/litellm#3286 (any Claude)
        if not stop:
            return "stop_sequences: each stop sequence must be non-empty"
        if not stop.strip():
            return "stop_sequences: each stop sequence must contain non-whitespace"
    return None


def _check_thinking(body: dict[str, Any], info: FakeModel) -> str | None:
    thinking = body.get("thinking")
    if thinking is None or thinking.get("type") == "disabled":
        return None
    kind = thinking.get("type")
    if kind not in info.thinking:
        return f"thinking.type: '{kind}' thinking is not supported on this model"
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if budget >= body["max_tokens"]:
            return f"`max_tokens` must be greater than `thinking.budget_tokens`. {_THINKING_DOCS}#max-tokens"
    # extended-thinking#feature-compatibility
    if body.get("temperature") not in (None, 1, 1.0):
        return f"`temperature` may only be set to 1 when thinking is enabled or in use. {_THINKING_DOCS}"
    if body.get("top_k") is not None:
        return f"`top_k` must be unset when thinking is enabled. {_THINKING_DOCS}#feature-compatibility"
    if body.get("top_p") is not None and body["top_p"] < 0.95:
        return f"`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled. {_THINKING_DOCS}"
    if (body.get("tool_choice") or {}).get("type") in ("any", "tool"):
        # mastra-ai/mastra#7507, litellm PR #17129
        return "Thinking may not be enabled when tool_choice forces tool use."
    messages = body.get("messages") or []
    for i in range(len(messages) - 1, -1, -1):
        blocks = _blocks_of(messages[i])
        if messages[i].get("role") == "user":
            if any(b.get("type") != "tool_result" for b in blocks):
                break
            continue
        if any(b.get("type") == "tool_use" for b in blocks):
            if blocks[0].get("type") not in ("thinking", "redacted_thinking"):
                return THINKING_TOOL_USE.format(i=i, found=blocks[0].get("type"))
            break
    return None


def _check_output_config(body: dict[str, Any], info: FakeModel) -> str | None:
    config = body.get("output_config")
    if config is None:
        return None
    for key in config:
        if key not in ("effort", "format"):
            return f"output_config.{key}: Extra inputs are not permitted"
    effort = config.get("effort")
    if effort is not None and effort not in info.efforts:
        # effort: Opus 4.5+ / Sonnet 4.6 levels (anthropic-sdk-python types/output_config_param.py)
        return f"output_config.effort: '{effort}' is not supported by this model"
    fmt = config.get("format")
    if fmt is not None:
        if not info.structured:
            return "output_config.format: structured outputs are not supported on this model"
        if fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
            return "output_config.format: expected {type: json_schema, schema}"
    return None


def _check_messages(body: dict[str, Any]) -> str | None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    previous = None
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if role == previous:
            return "messages: roles must alternate between 'user' and 'assistant'"
        previous = role
        content = message.get("content")
        if isinstance(content, list):
            for j, block in enumerate(content):
                kind = block.get("type")
                if kind == "text" and not block.get("text"):
                    return "messages: text content blocks must be non-empty"
                if kind == "thinking" and block.get("signature") != sign_thinking(block.get("thinking", "")):
                    return f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
                if kind == "redacted_thinking" and not block.get("data"):
                    return f"messages.{i}.content.{j}.data: Field required"
        elif not isinstance(content, str) or not content:
            return f"messages.{i}.content: must be a non-empty string or list"
    last = messages[-1]
    if last["role"] == "assistant":
        content = last["content"]
        text = content if isinstance(content, str) else (content[-1].get("text") if content else "")
        if isinstance(text, str) and text != text.rstrip():
            return "final assistant content cannot end with trailing whitespace"
    return None


def _cache_markers(body: dict[str, Any]) -> list[Any]:
    found = [t.get("cache_control") for t in body.get("tools") or []]
    system = body.get("system")
    if isinstance(system, list):
        found += [b.get("cache_control") for b in system]
    for message in body.get("messages") or []:
        for block in _blocks_of(message):
            found.append(block.get("cache_control"))
            found += [b.get("cache_control") for b in block.get("content") or [] if isinstance(b, dict)]
    return [m for m in found if m is not None]


def _check_cache(body: dict[str, Any]) -> str | None:
    # platform.claude.com/docs/en/build-with-claude/prompt-caching: up to 4 breakpoints, ephemeral, 5m/1h
    markers = _cache_markers(body)
    if len(markers) > 4:
        return f"A maximum of 4 blocks with cache_control may be provided. Found {len(markers)}."
    for marker in markers:
        if marker.get("type") != "ephemeral" or marker.get("ttl", "5m") not in ("5m", "1h"):
            return "cache_control: Input tag does not match the expected tags ('ephemeral') or ttl ('5m', '1h')"
    return None


# -- the AWS event stream encoder (reference §5.6; round-tripped through botocore's decoder) ---


def _header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return struct.pack("!B", len(n)) + n + b"\x07" + struct.pack("!H", len(v)) + v


def encode_event(headers: dict[str, str], payload: bytes) -> bytes:
    hb = b"".join(_header(k, v) for k, v in headers.items())
    prelude = struct.pack("!II", 12 + len(hb) + len(payload) + 4, len(hb))
    prelude += struct.pack("!I", binascii.crc32(prelude) & 0xFFFFFFFF)
    msg = prelude + hb + payload
    return msg + struct.pack("!I", binascii.crc32(msg) & 0xFFFFFFFF)


def chunk_frame(event: dict[str, Any]) -> bytes:
    data = base64.b64encode(json.dumps(event).encode()).decode()
    payload = json.dumps({"bytes": data, "p": "abcdefghijklmnop"[: 1 + len(data) % 16]}).encode()
    return encode_event(
        {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}, payload
    )


def exception_frame(code: str, message: str) -> bytes:
    name = code[:1].lower() + code[1:]
    return encode_event(
        {":exception-type": name, ":content-type": "application/json", ":message-type": "exception"},
        json.dumps({"message": message}).encode(),
    )


# -- Bedrock -------------------------------------------------------------------------------------

BEDROCK_ERRORS = {
    "ValidationException": 400,
    "ServiceQuotaExceededException": 400,
    "AccessDeniedException": 403,
    "UnrecognizedClientException": 403,
    "InvalidSignatureException": 403,
    "ExpiredTokenException": 403,
    "ResourceNotFoundException": 404,
    "ModelTimeoutException": 408,
    "ModelErrorException": 424,
    "ThrottlingException": 429,
    "ModelNotReadyException": 429,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
}


class FakeBedrock:
    """bedrock-runtime's InvokeModel and InvokeModelWithResponseStream for Claude models."""

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        credentials: dict[str, tuple[str, str | None]] | None = None,
        bearer_tokens: set[str] | None = None,
    ) -> None:
        self.region = region
        self.credentials = credentials if credentials is not None else {}
        """access key id -> (secret key, session token or None)"""
        self.bearer_tokens = bearer_tokens if bearer_tokens is not None else set()
        self.script: deque[Reply | Fail] = deque()
        self.requests: list[httpx.Request] = []
        self.bodies: list[dict[str, Any]] = []

    # httpx.MockTransport handler
    def handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        return self.render(request, self.script.popleft() if self.script else Reply())

    def render(self, request: httpx.Request, reply: Reply | Fail) -> httpx.Response:
        if isinstance(reply, Fail):
            return self.error(reply.code, reply.message, reply.headers)
        path = request.url.raw_path.decode()
        parts = path.split("/")
        if len(parts) != 4 or parts[1] != "model" or parts[3] not in ("invoke", "invoke-with-response-stream"):
            return self.error("UnknownOperationException", f"no operation at {path}", status=404)
        denied = self.check_auth(request)
        if denied is not None:
            return self.error(*denied)
        self.requests.append(request)
        try:
            body = json.loads(request.content)
        except ValueError:
            return self.error(
                "ValidationException", "Malformed input request, please reformat your input and try again."
            )
        self.bodies.append(body)
        if body.get("anthropic_version") != "bedrock-2023-05-31":
            return self.error(
                "ValidationException", "Malformed input request: #: required key [anthropic_version] not found"
            )
        for forbidden in ("model", "stream"):
            if forbidden in body:
                return self.error(
                    "ValidationException", f"Malformed input request: #: extraneous key [{forbidden}] is not permitted"
                )
        model = unquote(parts[2])
        problem = check_body(body, model, bedrock=True)
        if problem:
            return self.error("ValidationException", problem)
        if parts[3] == "invoke":
            return self.invoke(reply, model)
        return self.invoke_stream(reply, model)

    def invoke(self, reply: Reply, model: str) -> httpx.Response:
        data = message_json(reply, model, bedrock=True)
        return httpx.Response(
            200,
            content=json.dumps(data).encode(),
            headers={
                "content-type": "application/json",
                "x-amzn-requestid": str(uuid.uuid4()),
                "x-amzn-bedrock-input-token-count": str(reply.usage[0]),
                "x-amzn-bedrock-output-token-count": str(reply.usage[1]),
                "x-amzn-bedrock-invocation-latency": "321",
            },
        )

    def invoke_stream(self, reply: Reply, model: str) -> httpx.Response:
        events = stream_events(reply, model, bedrock=True)
        frames = []
        for i, event in enumerate(events):
            if reply.fail_after is not None and i == reply.fail_after:
                frames.append(exception_frame(reply.fail_code, "Too many requests, please wait before trying again."))
                break
            if reply.cut_after is not None and i == reply.cut_after:
                break
            frames.append(chunk_frame(event))
        return httpx.Response(
            200,
            content=b"".join(frames),
            headers={
                "content-type": "application/vnd.amazon.eventstream",
                "x-amzn-bedrock-content-type": "application/json",
                "x-amzn-requestid": str(uuid.uuid4()),
            },
        )

    def error(
        self, code: str, message: str, headers: dict[str, str] | None = None, status: int | None = None
    ) -> httpx.Response:
        return httpx.Response(
            status or BEDROCK_ERRORS.get(code, 400),
            content=json.dumps({"message": message}).encode(),
            headers={
                "content-type": "application/json",
                "x-amzn-errortype": f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/",
                "x-amzn-requestid": str(uuid.uuid4()),
                **(headers or {}),
            },
        )

    def check_auth(self, request: httpx.Request) -> tuple[str, str] | None:
        """None when the request carries a known Bedrock API key or a valid SigV4 signature."""
        header = request.headers.get("authorization", "")
        if header.startswith("Bearer "):
            if header[7:] in self.bearer_tokens:
                return None
            return "UnrecognizedClientException", "Invalid API Key format: Must start with pre-defined prefix"
        if not header.startswith("AWS4-HMAC-SHA256 "):
            return "AccessDeniedException", "Authorization header requires 'Credential' parameter."
        problem = verify_sigv4(request, self.credentials, region=self.region, service="bedrock")
        return problem


def verify_sigv4(
    request: httpx.Request, credentials: dict[str, tuple[str, str | None]], *, region: str, service: str
) -> tuple[str, str] | None:
    """Recompute the request's SigV4 signature with botocore's signer, as AWS does server-side."""
    fields = dict(
        part.strip().split("=", 1) for part in request.headers["authorization"][len("AWS4-HMAC-SHA256 ") :].split(",")
    )
    access_key, date, scope_region, scope_service, terminator = fields["Credential"].split("/")
    if access_key not in credentials:
        return "UnrecognizedClientException", "The security token included in the request is invalid."
    secret, token = credentials[access_key]
    if (scope_region, scope_service, terminator) != (region, service, "aws4_request"):
        return (
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region/service: {fields['Credential']}",
        )
    amz_date = request.headers.get("x-amz-date", "")
    if amz_date[:8] != date:
        return (
            "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date",
        )
    if token is not None and request.headers.get("x-amz-security-token") != token:
        return "UnrecognizedClientException", "The security token included in the request is invalid."
    signed = fields["SignedHeaders"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        return "InvalidSignatureException", "host and x-amz-date must be signed"
    aws = AWSRequest(
        method=request.method,
        url=f"{request.url.scheme}://{request.headers['host']}{request.url.raw_path.decode()}",
        data=request.content,
        headers={name: request.headers[name] for name in signed},
    )
    aws.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(access_key, secret, token), service, region)
    canonical = signer.canonical_request(aws)
    expected = signer.signature(signer.string_to_sign(aws, canonical), aws)
    if signer.signed_headers(signer.headers_to_sign(aws)) != fields["SignedHeaders"] or expected != fields["Signature"]:
        # AWS echoes what it computed: the canonical request (signed headers with their values, the
        # session token among them) and the string to sign, after the first sentences.
        string_to_sign = signer.string_to_sign(aws, canonical)
        return (
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS "
            "Secret Access Key and signing method. Consult the service documentation for details.\n\n"
            f"The Canonical String for this request should have been\n'{canonical}'\n\n"
            f"The String-to-Sign should have been\n'{string_to_sign}'\n",
        )
    return None


# -- Anthropic -----------------------------------------------------------------------------------

ANTHROPIC_ERRORS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


COUNT_PATH = "/v1/messages/count_tokens"
COUNT_KEYS = {
    "model", "messages", "system", "tools", "tool_choice", "thinking", "output_config", "cache_control",
    "mcp_servers", "context_management",
}  # fmt: skip


def fake_token_count(body: dict[str, Any]) -> int:
    """The fake's own count: a fixed function of the prompt (a test can tell it from an estimate)."""
    prompt = {k: body.get(k) for k in ("system", "messages", "tools")}
    return len(json.dumps(prompt, sort_keys=True)) // 3 + 7


class FakeAnthropic:
    """Anthropic's ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``."""

    def __init__(self, *, api_keys: set[str] | None = None) -> None:
        self.api_keys = api_keys if api_keys is not None else {"sk-ant-test-key-0001"}
        self.script: deque[Reply | Fail] = deque()
        self.requests: list[httpx.Request] = []
        self.bodies: list[dict[str, Any]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        return self.render(request, self.script.popleft() if self.script else Reply())

    def render(self, request: httpx.Request, reply: Reply | Fail) -> httpx.Response:
        if isinstance(reply, Fail):
            return self.error(reply.code, reply.message, reply.headers)
        if request.method != "POST" or request.url.path not in ("/v1/messages", COUNT_PATH):
            return self.error("not_found_error", f"Not found: {request.url.path}")
        # The documented x-api-key header, or a bearer token (how anthropic-python 2.x sends keys).
        bearer = request.headers.get("authorization", "")
        key = request.headers.get("x-api-key") or (bearer[7:] if bearer.startswith("Bearer ") else None)
        if key not in self.api_keys:
            return self.error("authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return self.error("invalid_request_error", "anthropic-version: header is required")
        self.requests.append(request)
        try:
            body = json.loads(request.content)
        except ValueError:
            return self.error("invalid_request_error", "There was an issue with the request body")
        self.bodies.append(body)
        if request.url.path == COUNT_PATH:
            return self.count_tokens(body)
        problem = "model: Field required" if not body.get("model") else check_body(body, body["model"], bedrock=False)
        if problem:
            return self.error("invalid_request_error", problem)
        if body.get("stream"):
            return self.stream(reply, body["model"])
        return httpx.Response(
            200,
            content=json.dumps(message_json(reply, body["model"], bedrock=False)).encode(),
            headers={"content-type": "application/json", "request-id": "req_" + uuid.uuid4().hex[:20]},
        )

    def count_tokens(self, body: dict[str, Any]) -> httpx.Response:
        """``POST /v1/messages/count_tokens``: the prompt's fields only (sampling fields such as
        max_tokens are refused), answered ``{"input_tokens": n}`` (docs.claude.com/en/api/
        messages-count-tokens; anthropic-sdk-python types/message_count_tokens_params.py and
        message_tokens_count.py)."""
        for key in body:
            if key not in COUNT_KEYS:
                return self.error("invalid_request_error", f"{key}: Extra inputs are not permitted")
        if not body.get("model"):
            return self.error("invalid_request_error", "model: Field required")
        problem = _check_messages(body) or _check_cache(body)
        if problem:
            return self.error("invalid_request_error", problem)
        return httpx.Response(200, json={"input_tokens": fake_token_count(body)})

    def stream(self, reply: Reply, model: str) -> httpx.Response:
        events = stream_events(reply, model, bedrock=False)
        events.insert(1, {"type": "ping"})
        out = []
        for i, event in enumerate(events):
            if reply.fail_after is not None and i == reply.fail_after:
                error = {"type": "error", "error": {"type": reply.fail_code, "message": "Overloaded"}}
                out.append(f"event: error\ndata: {json.dumps(error)}\n\n")
                break
            if reply.cut_after is not None and i == reply.cut_after:
                break
            out.append(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n")
        return httpx.Response(
            200,
            content="".join(out).encode(),
            headers={"content-type": "text/event-stream; charset=utf-8", "request-id": "req_" + uuid.uuid4().hex[:20]},
        )

    def error(self, kind: str, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
        body = {
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": "req_" + uuid.uuid4().hex[:20],
        }
        return httpx.Response(
            ANTHROPIC_ERRORS.get(kind, 400),
            content=json.dumps(body).encode(),
            headers={"content-type": "application/json", **(headers or {})},
        )


# -- a socket for SDKs ---------------------------------------------------------------------------


def serve(fake: FakeBedrock | FakeAnthropic) -> contextlib.AbstractContextManager[str]:
    """Run ``fake.handle`` as an HTTP server on 127.0.0.1; yields its base URL."""
    return serve_handler(fake.handle)
