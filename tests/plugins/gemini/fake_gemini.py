"""A faithful fake of Google's Generative Language API (``generateContent`` and
``streamGenerateContent?alt=sse``), usable as an ``httpx.MockTransport`` handler and as a tiny
HTTP server on 127.0.0.1 for the official ``google-genai`` SDK (see test_fake_with_sdk.py, which
validates this fake against the SDK).

What it reproduces (provider-wire-formats.md §6): the ``x-goog-api-key`` check (400
``API_KEY_INVALID`` for a wrong key, 403 ``PERMISSION_DENIED`` without one); body validation
("Unknown name ... Cannot find field") accepting both the JSON (camelCase) and the proto
(snake_case) field names, as Google's proto3 JSON parser does and as the SDK relies on (it sends
``inlineData.mime_type`` and ``thinkingConfig.include_thoughts``); roles user/model only; SSE events
separated by ``\\r\\n\\r\\n`` with no ``[DONE]``; cumulative ``usageMetadata`` with
``thoughtsTokenCount``; function calls ending with ``finishReason: STOP`` and carrying a
``thoughtSignature`` that ``gemini-3*`` models require back on the next turn; a blocked prompt
(``promptFeedback``); error bodies ``{"error": {code, message, status, details}}`` with
``RetryInfo``; an error written raw (not ``data:``) into a 200 stream; Vertex AI's URL shape
with Bearer tokens (``tokens``); ``batchEmbedContents`` (``fake_embeddings``).

Today's models by name (``_model_rules``; each rule cites its source): Gemini 3 rejects a
current-turn function call without its thought signature (unless Google's documented skip value);
every model rejects ``thinkingLevel`` with ``thinkingBudget``; 2.5 rejects ``thinkingLevel``;
levels a model lacks, budgets outside a 2.5 model's range and ``thinkingBudget: 0`` on Pro
models are rejected; penalties are rejected by 2.5 and 3.x.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from llm_factory_core.testing import serve_handler

from .fake_embeddings import embeddings_reply
from .fake_rules import model_rules as _model_rules

__all__ = ["FakeGemini", "GeminiError", "Recorded", "Turn", "camel_body"]

VALID_KEY = "AIzaSy-fake-gemini-key-0001"

_TOP = {"contents", "systemInstruction", "generationConfig", "tools", "toolConfig", "safetySettings",
        "cachedContent", "labels"}  # fmt: skip
_GENERATION = {"temperature", "topP", "topK", "candidateCount", "maxOutputTokens", "stopSequences",
               "presencePenalty", "frequencyPenalty", "seed", "responseMimeType", "responseSchema",
               "responseJsonSchema", "responseLogprobs", "logprobs", "thinkingConfig",
               "responseModalities", "mediaResolution", "speechConfig"}  # fmt: skip
_THINKING = {"thinkingBudget", "includeThoughts", "thinkingLevel"}
_PART = {"text", "inlineData", "fileData", "functionCall", "functionResponse", "thought",
         "thoughtSignature", "executableCode", "codeExecutionResult", "videoMetadata"}  # fmt: skip
_CONTENT = {"role", "parts"}
_TOOL = {"functionDeclarations", "googleSearch", "codeExecution", "urlContext", "googleSearchRetrieval"}
_DECLARATION = {"name", "description", "parameters", "parametersJsonSchema", "response",
                "responseJsonSchema", "behavior"}  # fmt: skip
_PATH = re.compile(r"^/(v1beta|v1|v1alpha)/models/([^/:]+):(generateContent|streamGenerateContent)$")
_VERTEX_PATH = re.compile(
    r"^/(v1|v1beta1)/projects/([^/]+)/locations/([^/]+)/publishers/google/models/([^/:]+)"
    r":(generateContent|streamGenerateContent)$"
)
_EMBED_PATH = re.compile(r"^/(v1beta|v1|v1alpha)/models/([^/:]+):batchEmbedContents$")
TOOL_FAILURES = {"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"}


@dataclass
class GeminiError:
    """An error reply: HTTP status, canonical status, message, ``details``."""

    code: int
    status: str
    message: str
    details: list[dict[str, Any]] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}

    @classmethod
    def rate_limit(cls, retry_delay: str = "7s") -> GeminiError:
        return cls(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan.", [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
                {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                 "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay},
        ])  # fmt: skip

    @classmethod
    def invalid_key(cls) -> GeminiError:
        message = "API key not valid. Please pass a valid API key."
        return cls(400, "INVALID_ARGUMENT", message, [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
             "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
            {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
             "message": message},
        ])  # fmt: skip

    @classmethod
    def permission_denied(cls) -> GeminiError:
        return cls(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers.")

    @classmethod
    def invalid_argument(cls, message: str = "Request contains an invalid argument.") -> GeminiError:
        return cls(400, "INVALID_ARGUMENT", message)

    @classmethod
    def context_too_long(cls) -> GeminiError:
        return cls.invalid_argument(
            "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."
        )

    @classmethod
    def unauthenticated(cls) -> GeminiError:
        return cls(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
            "other valid authentication credential.",
        )

    @classmethod
    def not_found(cls, model: str) -> GeminiError:
        return cls(404, "NOT_FOUND", f"models/{model} is not found for API version v1beta.")

    @classmethod
    def unavailable(cls) -> GeminiError:
        return cls(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")

    @classmethod
    def internal(cls) -> GeminiError:
        return cls(500, "INTERNAL", "An internal error has occurred.")

    @classmethod
    def deadline(cls) -> GeminiError:
        return cls(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete.")


@dataclass
class Turn:
    """One model reply. ``text`` is streamed as ``pieces`` (or one piece); ``calls`` are
    ``(name, args)`` function calls; ``thoughts`` become a ``thought: true`` part."""

    text: str | None = None
    pieces: list[str] | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    thoughts: str | None = None
    finish: str = "STOP"
    finish_message: str | None = None
    usage: tuple[int, int, int] = (11, 7, 0)
    """prompt, candidates, thoughts token counts."""
    block_reason: str | None = None
    candidates: int = 1
    stream_error: GeminiError | None = None
    error_after: int = 1
    """With ``stream_error``: events sent before the raw error JSON."""


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


Reply = Turn | GeminiError


class FakeGemini:
    def __init__(self, *, keys: tuple[str, ...] = (VALID_KEY,), tokens: tuple[str, ...] = ()) -> None:
        self.keys = set(keys)
        self.tokens = set(tokens)
        """Vertex Bearer tokens accepted (``Authorization: Bearer ...``)."""
        self.requests: list[Recorded] = []
        self.issued_signatures: dict[str, str] = {}
        """function name -> the last signature the fake sent for it."""
        self.all_signatures: set[str] = set()
        """Every signature the fake issued (Gemini 3 accepts these back, and the skip value)."""
        self._queue: deque[Reply | Callable[[Recorded], Reply]] = deque()
        self.default: Reply | Callable[[Recorded], Reply] = Turn(text="Hello from the fake")
        self._calls = 0
        self._lock = threading.Lock()
        self.embedding_batches: list[int] = []
        """The number of requests in each ``batchEmbedContents`` call, in order."""
        self.embedding_usage = False
        """Add ``usageMetadata.promptTokenCount`` to embeddings replies (google-genai reads it)."""

    def add(self, *replies: Reply | Callable[[Recorded], Reply]) -> FakeGemini:
        self._queue.extend(replies)
        return self

    # -- the protocol ---------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], Iterator[bytes]]:
        """Status, headers and body pieces for one request (pure apart from recording)."""
        headers = {k.lower(): v for k, v in headers.items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        recorded = Recorded(method, path, query, headers, body)
        with self._lock:
            self.requests.append(recorded)
        match = _PATH.match(path)
        vertex = _VERTEX_PATH.match(path)
        if method == "POST" and (embed := _EMBED_PATH.match(path)):
            key = headers.get("x-goog-api-key") or query.get("key")
            if not key:
                return _error(GeminiError.permission_denied())
            if key not in self.keys:
                return _error(GeminiError.invalid_key())
            with self._lock:
                self.embedding_batches.append(
                    len(body["requests"]) if isinstance(body, dict) and isinstance(body.get("requests"), list) else 0
                )
                head = self._queue[0] if self._queue else None
                if isinstance(head, GeminiError):  # queued errors answer embeddings too; turns wait for chat
                    self._queue.popleft()
                    return _error(head)
            status, embedded = embeddings_reply(body, embed.group(2), usage=self.embedding_usage)
            return status, {"content-type": "application/json; charset=UTF-8"}, iter([_json(embedded)])
        if method != "POST" or not (match or vertex):
            return _error(GeminiError(404, "NOT_FOUND", f"Method not found: {path}"))
        model, verb = (match.group(2), match.group(3)) if match else (vertex.group(4), vertex.group(5))  # type: ignore[union-attr]
        stream = verb == "streamGenerateContent"
        bearer = headers.get("authorization", "")
        key = headers.get("x-goog-api-key") or query.get("key")
        if vertex and bearer:
            if bearer.removeprefix("Bearer ") not in self.tokens:
                return _error(GeminiError.unauthenticated())
        elif not key:
            return _error(GeminiError.permission_denied())
        elif key not in self.keys:
            return _error(GeminiError.invalid_key())
        if body is None:
            return _error(GeminiError.invalid_argument("Invalid JSON payload received."))
        body = camel_body(body)
        if problem := _validate(body, model) or _model_rules(body, model, self.all_signatures):
            return _error(GeminiError.invalid_argument(problem))
        with self._lock:
            reply = self._queue.popleft() if self._queue else self.default
        if callable(reply):
            reply = reply(recorded)
        if isinstance(reply, GeminiError):
            return _error(reply)
        responses = self._responses(reply, model, stream)
        if not stream:
            return 200, {"content-type": "application/json; charset=UTF-8"}, iter([_json(responses[-1])])
        return 200, {"content-type": "text/event-stream"}, self._sse(responses, reply)

    def _responses(self, turn: Turn, model: str, stream: bool) -> list[dict[str, Any]]:
        """The stream's partial responses (the last one alone when not streaming)."""
        prompt, out, thoughts = turn.usage
        base = {"modelVersion": model, "responseId": f"resp-{len(self.requests)}"}

        def usage(done: bool) -> dict[str, Any]:
            candidates = out if done else max(out - 1, 0)
            meta: dict[str, Any] = {
                "promptTokenCount": prompt,
                "candidatesTokenCount": candidates,
                "totalTokenCount": prompt + candidates + thoughts,
            }
            if thoughts:
                meta["thoughtsTokenCount"] = thoughts
            meta["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
            return meta

        if turn.block_reason:
            return [{**base, "promptFeedback": {"blockReason": turn.block_reason, "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]},
                "usageMetadata": {"promptTokenCount": prompt, "totalTokenCount": prompt}}]  # fmt: skip
        events: list[list[dict[str, Any]]] = []  # parts per event
        if turn.thoughts:
            events.append([{"text": turn.thoughts, "thought": True}])
        if turn.text is not None:
            pieces = turn.pieces if (stream and turn.pieces) else [turn.text]
            events += [[{"text": piece}] for piece in pieces]
        call_parts: list[dict[str, Any]] = []
        for name, args in turn.calls:
            self._calls += 1
            signature = base64.b64encode(f"sig-{name}-{self._calls}".encode()).decode()
            self.issued_signatures[name] = signature
            self.all_signatures.add(signature)
            # Gemini puts the signature on the first function call of a step only.
            part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
            if not call_parts:
                part["thoughtSignature"] = signature
            call_parts.append(part)
        if call_parts:
            events.append(call_parts)
        empty = not events and turn.finish in TOOL_FAILURES
        if not stream and events:
            events = [[part for parts in events for part in parts]]
        if not events:
            events = [[{"text": ""}]]
        responses = []
        for n, parts in enumerate(events):
            last = n == len(events) - 1
            candidates = []
            for c in range(turn.candidates):
                # A botched tool turn comes without content at all, only its finish reason.
                candidate: dict[str, Any] = (
                    {"index": c} if empty else {"content": {"parts": parts, "role": "model"}, "index": c}
                )
                if last:
                    candidate["finishReason"] = turn.finish
                    if turn.finish_message:
                        candidate["finishMessage"] = turn.finish_message
                    elif call_parts:
                        candidate["finishMessage"] = "Model generated function call(s)."
                    candidate["safetyRatings"] = [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]
                candidates.append(candidate)
            responses.append({**base, "candidates": candidates, "usageMetadata": usage(last)})
        return responses

    def _sse(self, responses: list[dict[str, Any]], turn: Turn) -> Iterator[bytes]:
        for n, response in enumerate(responses):
            if turn.stream_error is not None and n >= turn.error_after:
                break
            yield b"data: " + _json(response) + b"\r\n\r\n"
        if turn.stream_error is not None:
            # Not data:-prefixed, pretty-printed over several lines, as the SDK's parser expects.
            yield json.dumps(turn.stream_error.body(), indent=2).encode() + b"\n"

    # -- transports -----------------------------------------------------------------------------

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        """``httpx.MockTransport(fake)``."""
        raw = await request.aread()
        status, headers, pieces = self.handle(
            request.method, request.url.path, dict(request.url.params), dict(request.headers), raw
        )

        async def stream() -> AsyncIterator[bytes]:
            for piece in pieces:
                yield piece

        return httpx.Response(status, headers=headers, content=stream())

    def respond(self, request: httpx.Request) -> httpx.Response:
        """A synchronous reply with the whole body (for ``MockUpstream`` routes)."""
        status, headers, pieces = self.handle(
            request.method, request.url.path, dict(request.url.params), dict(request.headers), request.read()
        )
        return httpx.Response(status, headers=headers, content=b"".join(pieces))

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def serve(self) -> contextlib.AbstractContextManager[str]:
        """Run on 127.0.0.1 in a thread; yields the base URL (``http://127.0.0.1:PORT``)."""
        return serve_handler(self)


def _json(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


def _error(error: GeminiError) -> tuple[int, dict[str, str], Iterator[bytes]]:
    return error.code, {"content-type": "application/json; charset=UTF-8"}, iter([_json(error.body())])


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


# Which values of a message are messages themselves (their keys are field names); any other
# value (function args, schemas, responses) is free-form JSON and keeps its keys.
_NESTED: dict[str, dict[str, str]] = {
    "request": {"contents": "content", "systemInstruction": "content", "generationConfig": "generation",
                "tools": "tool", "toolConfig": "toolConfig", "safetySettings": "leaf"},
    "content": {"parts": "part"},
    "part": {"inlineData": "leaf", "fileData": "leaf", "functionCall": "leaf", "functionResponse": "functionResponse"},
    "functionResponse": {"parts": "functionResponsePart"},
    "functionResponsePart": {"inlineData": "leaf", "fileData": "leaf"},
    "generation": {"thinkingConfig": "leaf"},
    "tool": {"functionDeclarations": "declaration"},
    "toolConfig": {"functionCallingConfig": "leaf"},
}  # fmt: skip
_FREE = {"args", "response", "parameters", "parametersJsonSchema", "responseSchema", "responseJsonSchema"}


def camel_body(value: Any, kind: str = "request") -> Any:
    """The body with every field name in its JSON (camelCase) form, as Google reads it."""
    if isinstance(value, list):
        return [camel_body(item, kind) for item in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        name = _camel(key)
        child = None if name in _FREE else _NESTED.get(kind, {}).get(name)
        out[name] = camel_body(item, child) if child else item
    return out


def _unknown(obj: Any, allowed: set[str], where: str) -> str | None:
    if not isinstance(obj, dict):
        return f"Invalid value at '{where}': expected an object"
    for key in obj:
        if key not in allowed:
            return f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': Cannot find field."
    return None


def _validate(body: Any, model: str) -> str | None:
    """The first problem Google would report for this body, or None."""
    if problem := _unknown(body, _TOP, "request"):
        return problem
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    if "systemInstruction" in body and (problem := _content(body["systemInstruction"], "system_instruction")):
        return problem
    for i, content in enumerate(contents):
        if problem := _content(content, f"contents[{i}]"):
            return problem
        if content.get("role") not in ("user", "model"):
            return f"Please use a valid role: user, model. (contents[{i}])"
    config = body.get("generationConfig", {})
    if problem := _unknown(config, _GENERATION, "generation_config"):
        return problem
    if "thinkingConfig" in config and (problem := _unknown(config["thinkingConfig"], _THINKING, "thinking_config")):
        return problem
    for t, tool in enumerate(body.get("tools", [])):
        if problem := _unknown(tool, _TOOL, f"tools[{t}]"):
            return problem
        for d, declaration in enumerate(tool.get("functionDeclarations", [])):
            if problem := _unknown(declaration, _DECLARATION, f"tools[{t}].function_declarations[{d}]"):
                return problem
    tool_config = body.get("toolConfig", {})
    if problem := _unknown(tool_config, {"functionCallingConfig", "retrievalConfig"}, "tool_config"):
        return problem
    calling = tool_config.get("functionCallingConfig", {})
    if problem := _unknown(calling, {"mode", "allowedFunctionNames"}, "function_calling_config"):
        return problem
    if calling.get("mode", "AUTO") not in ("AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED"):
        return f"Invalid value at 'tool_config.function_calling_config.mode': {calling['mode']}"
    return None


def _content(content: Any, where: str) -> str | None:
    if problem := _unknown(content, _CONTENT, where):
        return problem
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        return f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty."
    for p, part in enumerate(parts):
        if problem := _unknown(part, _PART, f"{where}.parts[{p}]"):
            return problem
        if "inlineData" in part and (problem := _unknown(part["inlineData"], {"mimeType", "data"}, "inline_data")):
            return problem
        if "functionCall" in part and (
            problem := _unknown(part["functionCall"], {"id", "name", "args"}, "function_call")
        ):
            return problem
        if "functionResponse" in part:
            response = part["functionResponse"]
            if problem := _unknown(response, {"id", "name", "response", "parts"}, "function_response"):
                return problem
            for inner in response.get("parts", []):
                # FunctionResponsePart.file_data: "This field is not supported in Gemini API" (google-genai types).
                if problem := _unknown(inner, {"inlineData"}, "function_response.parts"):
                    return problem
        for media in ("inlineData", "fileData"):
            # Blob.mime_type / FileData.mime_type: "Required" (google-genai types, API reference).
            if media in part and not part[media].get("mimeType"):
                return f"* GenerateContentRequest.{where}.parts[{p}].{media}.mime_type: a mime type is required"
        if "thoughtSignature" in part and not _is_base64(part["thoughtSignature"]):
            return f"Invalid value at '{where}.parts[{p}].thought_signature' (TYPE_BYTES), Base64 decoding failed"
    return None


def _is_base64(value: Any) -> bool:
    """proto3 JSON ``bytes``: standard or URL-safe base64 (Google accepts both)."""
    if not isinstance(value, str):
        return False
    try:
        base64.b64decode(value.replace("-", "+").replace("_", "/") + "=" * (-len(value) % 4), validate=True)
    except ValueError:
        return False
    return True
