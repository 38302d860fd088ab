"""A faithful fake of OpenAI and Azure OpenAI chat completions, as an ``httpx.MockTransport`` handler.

Routes (by path; any host):

* ``/openai/deployments/{deployment}/chat/completions?api-version=...``: Azure classic. ``api-version``
  is required (400 without it); key in ``api-key`` (or an Entra token as ``Authorization: Bearer``).
* ``/openai/v1/chat/completions``: Azure v1. Body ``model`` is the deployment; Bearer or ``api-key``.
* any other ``.../chat/completions`` (``/v1/chat/completions``, ``/chat/completions``): OpenAI or an
  OpenAI-compatible server; ``Authorization: Bearer`` (optional with ``require_key=False``, like Ollama).
* the same three with ``/embeddings`` instead of ``/chat/completions``: embeddings, same auth and
  ``api-version`` rules (``fake_embeddings``).

Wire shapes follow ../shared/reference/provider-wire-formats.md §1 and §2 (sources named there) and
are validated by ``test_fake_with_sdk.py``: the official ``openai`` SDK parses every reply and raises its
own error types for the error replies.

Today's models are modelled by name (the body ``model``; on Azure classic, the model the deployment
serves: ``deployment_models``, else the deployment's own name), each rule citing its source:
reasoning models (o-series, gpt-5*) refuse ``max_tokens`` and non-default sampling controls;
every model refuses history tool-call ids over 40 characters and message fields the API does not
define; Azure api-versions before 2024-09-01-preview refuse ``stream_options`` and
``max_completion_tokens``.

The handler is synchronous and answers with complete bodies, so the same fake serves the SDK's
``httpx.Client`` and the plugin's ``httpx.AsyncClient``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx

from .fake_embeddings import MAX_INPUTS, embeddings_problem, embeddings_reply

__all__ = ["FakeOpenAI", "RecordedRequest", "Reply", "TOOL_CALLS"]

_REASONING = re.compile(r"^(o[134]($|-)|gpt-5($|[-.])|codex-mini)")
_FIXED_SAMPLING = re.compile(r"^(o[134]($|-)|gpt-5($|-)|codex-mini)")
_CHAT_VARIANT = re.compile(r"-chat($|-)")
_MESSAGE_KEYS = {
    # openai-python types/chat/chat_completion_*_message_param.py
    "system": {"role", "content", "name"},
    "developer": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "name", "tool_calls", "refusal", "audio", "function_call"},
    "tool": {"role", "content", "tool_call_id"},
    "function": {"role", "content", "name"},
}
_TOOL_CALL_KEYS = {"id", "type", "function", "custom"}
_PART_KEYS = {
    # openai-python types/chat/chat_completion_content_part_*_param.py
    "text": {"type", "text", "prompt_cache_breakpoint"},
    "image_url": {"type", "image_url", "prompt_cache_breakpoint"},
    "input_audio": {"type", "input_audio", "prompt_cache_breakpoint"},
    "file": {"type", "file", "prompt_cache_breakpoint"},
    "refusal": {"type", "refusal"},
}

_AZURE_CLASSIC = re.compile(r"^(?P<prefix>.*)/openai/deployments/(?P<dep>[^/]+)/chat/completions$")
_AZURE_V1 = re.compile(r"^(?P<prefix>.*)/openai/v1/chat/completions$")
_AZURE_CLASSIC_EMBEDDINGS = re.compile(r"^(?P<prefix>.*)/openai/deployments/(?P<dep>[^/]+)/embeddings$")
_AZURE_V1_EMBEDDINGS = re.compile(r"^(?P<prefix>.*)/openai/v1/embeddings$")

SAFE_FILTER = {
    "hate": {"filtered": False, "severity": "safe"},
    "self_harm": {"filtered": False, "severity": "safe"},
    "sexual": {"filtered": False, "severity": "safe"},
    "violence": {"filtered": False, "severity": "safe"},
}
FILTERED = {**SAFE_FILTER, "violence": {"filtered": True, "severity": "high"}}
PROMPT_FILTER_RESULTS = [
    {
        "prompt_index": 0,
        "content_filter_results": {**SAFE_FILTER, "jailbreak": {"filtered": False, "detected": False}},
    }
]

TOOL_CALLS: list[dict[str, Any]] = [
    {"id": "call_weather_paris", "name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'},
    {"id": "call_time_paris", "name": "get_time", "arguments": '{"timezone": "Europe/Paris"}'},
]
"""The tool calls a ``tools`` reply makes (two: parallel calls must be assembled by index)."""


@dataclass
class Reply:
    """One scripted behaviour. ``kind``: ``text``, ``tools``, ``rate_limit``, ``auth``, ``quota``,
    ``bad_request``, ``invalid_prompt``, ``content_filter``, ``context_length``, ``server_error``,
    ``stream_error`` (a 200 stream with an error event after some content), ``stream_filtered`` (an
    Azure stream blocked by the async filter: ``finish_reason: content_filter`` on an annotation
    chunk)."""

    kind: str = "text"
    text: str | None = None
    pieces: list[str] | None = None
    retry_after: str | None = None
    retry_after_ms: str | None = None
    hint_only: bool = False
    """A 429 without Retry-After headers: only the message says how long to wait."""
    calls: list[dict[str, Any]] | None = None
    """A ``tools`` reply's calls (``{"id", "name", "arguments"}``) instead of ``TOOL_CALLS``."""
    finish: str | None = None
    """A ``text`` reply's finish reason instead of ``stop``: ``length`` (the token limit was hit) or
    ``content_filter`` (the completion was filtered: OpenAI's documented finish reasons; Azure also
    marks the choice's ``content_filter_results`` as filtered)."""


@dataclass
class RecordedRequest:
    """What the fake saw of one request."""

    method: str
    url: httpx.URL
    route: str
    """``azure``, ``azure-v1`` or ``openai``."""
    headers: httpx.Headers
    body: Any
    deployment: str | None = None
    key: str | None = None
    """The credential found (``api-key`` header or Bearer token)."""
    auth_header: str | None = None
    """``api-key`` or ``authorization``: where the credential was."""

    @property
    def path(self) -> str:
        return self.url.path

    @property
    def query(self) -> dict[str, str]:
        return dict(self.url.params)

    @property
    def host(self) -> str:
        return self.url.host


@dataclass
class FakeOpenAI:
    """Call it with an ``httpx.Request`` (or use ``.transport``). Replies come from ``queue`` first,
    then ``default``. ``invalid_keys`` answer 401 whatever is queued (a revoked key)."""

    text: str = "Hello from the fake!"
    pieces: list[str] | None = None
    """How a streamed text is cut; default: in pieces of 4 characters."""
    model: str = "gpt-4o-2024-11-20"
    """The model id replies report (Azure reports the deployment's underlying model)."""
    require_key: bool = True
    invalid_keys: set[str] = field(default_factory=set)
    async_filter: bool = False
    """Azure's asynchronous filter mode: annotation chunks without a delta, one after the finish."""
    deployment_models: dict[str, str] = field(default_factory=dict)
    """Azure deployment name -> the model it serves (the rules follow the model, as on Azure)."""
    strict_messages: bool = True
    """Reject message fields OpenAI does not define, as OpenAI and Azure do (False: a lenient
    OpenAI-compatible server such as vLLM, which ignores them)."""
    max_embedding_inputs: int = MAX_INPUTS
    """Inputs one embeddings request may hold (2048 on OpenAI and Azure)."""
    default: Reply = field(default_factory=Reply)
    queue: deque[Reply] = field(default_factory=deque)
    embedding_batches: list[int] = field(default_factory=list)
    """The number of inputs of each embeddings request, in order."""
    requests: list[RecordedRequest] = field(default_factory=list)

    def push(self, kind: str, *, times: int = 1, **options: Any) -> FakeOpenAI:
        for _ in range(times):
            self.queue.append(Reply(kind, **options))
        return self

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    # -- routing --------------------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        path = request.url.path
        route: str | None
        deployment = None
        embeddings = path.endswith("/embeddings")
        if m := _AZURE_CLASSIC.match(path) or _AZURE_CLASSIC_EMBEDDINGS.match(path):
            route, deployment = "azure", m.group("dep")
        elif _AZURE_V1.match(path) or _AZURE_V1_EMBEDDINGS.match(path):
            route = "azure-v1"
        elif path.endswith("/chat/completions") or embeddings:
            route = "openai"
        else:
            route = None
        try:
            body = json.loads(request.content) if request.content else None
        except ValueError:
            body = None
        key, auth_header = _credential(request, route)
        self.requests.append(
            RecordedRequest(
                request.method,
                request.url,
                route or "unknown",
                request.headers,
                body,
                deployment,
                key,
                auth_header,
            )
        )
        azure = route in ("azure", "azure-v1")
        if route is None or request.method != "POST":
            return _json({"error": {"code": "404", "message": "Resource not found"}}, 404)
        if route == "azure" and not request.url.params.get("api-version"):
            return _json(
                {
                    "error": {
                        "code": "MissingApiVersionParameter",
                        "message": ("The api-version query parameter (?api-version=) is required for all requests."),
                    }
                },
                400,
            )
        if (key is None and (self.require_key or azure)) or (key is not None and key in self.invalid_keys):
            return self._auth_error(azure, key)
        if embeddings:
            return self._embeddings(body, route, deployment)
        problem = _validate_body(body, needs_model=route != "azure")
        if problem:
            return _json(
                {"error": {"message": problem, "type": "invalid_request_error", "param": None, "code": None}},
                400,
            )
        assert isinstance(body, dict)  # _validate_body refused anything else
        if route == "azure":
            model = self.deployment_models.get(deployment or "", deployment or "")
        else:
            model = self.deployment_models.get(str(body.get("model")), str(body.get("model")))
        rejected = (
            _old_api_version(body, request.url.params.get("api-version") if route == "azure" else None)
            or _model_rules(body, model)
            or _tool_call_ids(body)
            or (_unknown_fields(body, azure=route == "azure") if self.strict_messages else None)
        )
        if rejected is not None:
            return rejected
        reply = self.queue.popleft() if self.queue else self.default
        stream = bool(body.get("stream"))
        if reply.kind in ("text", "tools"):
            if stream:
                return self._stream(reply, body, azure)
            return _json(self._completion(reply, azure))
        if reply.kind in ("stream_error", "stream_filtered"):
            return self._stream(reply, body, azure)
        return self._error(reply, azure, body)

    # -- embeddings -----------------------------------------------------------------------------

    def _embeddings(self, body: Any, route: str, deployment: str | None) -> httpx.Response:
        """``POST .../embeddings`` (rules in ``fake_embeddings``). Queued error replies answer it as
        they answer chat; queued ``text`` / ``tools`` replies are for chat and stay queued."""
        azure = route in ("azure", "azure-v1")
        if route != "azure" and not (isinstance(body, dict) and body.get("model")):
            return _bad_request("you must provide a model parameter", None, None)
        if route == "azure":
            model = self.deployment_models.get(deployment or "", deployment or "")
        else:
            model = self.deployment_models.get(str(body.get("model")), str(body.get("model")))
        self.embedding_batches.append(
            len(body["input"]) if isinstance(body, dict) and isinstance(body.get("input"), list) else 1
        )
        if self.queue and self.queue[0].kind not in ("text", "tools", "stream_error", "stream_filtered"):
            return self._error(self.queue.popleft(), azure, body if isinstance(body, dict) else {})
        problem = embeddings_problem(body, model, self.max_embedding_inputs)
        if problem is not None:
            return _bad_request(problem[0], problem[1], None)
        assert isinstance(body, dict)
        return _json(embeddings_reply(body, model))

    # -- replies --------------------------------------------------------------------------------

    def _text(self, reply: Reply) -> str:
        return reply.text if reply.text is not None else self.text

    def _completion(self, reply: Reply, azure: bool) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self._text(reply), "refusal": None}
        finish = "stop"
        if reply.kind == "tools":
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for c in reply.calls or TOOL_CALLS
            ]
            finish = "tool_calls"
        finish = reply.finish or finish
        choice: dict[str, Any] = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        data: dict[str, Any] = {
            "id": "chatcmpl-" + uuid.uuid4().hex[:24],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "system_fingerprint": "fp_fake0001",
            "choices": [choice],
            "usage": {
                "prompt_tokens": 9,
                "completion_tokens": 12,
                "total_tokens": 21,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
            },
        }
        if azure:
            data["prompt_filter_results"] = PROMPT_FILTER_RESULTS
            choice["content_filter_results"] = FILTERED if finish == "content_filter" else SAFE_FILTER
        else:
            data["service_tier"] = "default"
            message["annotations"] = []
        return data

    def _stream(self, reply: Reply, body: dict[str, Any], azure: bool) -> httpx.Response:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        cid = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())
        events: list[dict[str, Any]] = []

        def chunk(
            delta: dict[str, Any], finish: str | None = None, filters: dict[str, Any] | None = None
        ) -> dict[str, Any]:
            choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            if azure:
                choice["content_filter_results"] = filters if filters is not None else SAFE_FILTER
            data: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.model,
                "system_fingerprint": "fp_fake0001",
                "choices": [choice],
            }
            if include_usage:
                data["usage"] = None
            return data

        def annotation(finish: str | None, filters: dict[str, Any]) -> dict[str, Any]:
            # Azure's asynchronous filter: empty identity, a choice with no delta.
            return {
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": finish,
                        "content_filter_results": filters,
                        "content_filter_offsets": {"check_offset": 0, "start_offset": 0, "end_offset": 40},
                    }
                ],
                "created": 0,
                "id": "",
                "model": "",
                "object": "",
            }

        if azure:
            events.append(
                {
                    "choices": [],
                    "created": 0,
                    "id": "",
                    "model": "",
                    "object": "",
                    "prompt_filter_results": PROMPT_FILTER_RESULTS,
                }
            )
        events.append(
            chunk(
                {"role": "assistant", "content": "" if reply.kind != "tools" else None, "refusal": None},
                filters={},
            )
        )
        finish = "stop"
        if reply.kind == "tools":
            for i, call in enumerate(reply.calls or TOOL_CALLS):
                first = {
                    "index": i,
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": ""},
                }
                events.append(chunk({"tool_calls": [first]}))
                args = call["arguments"]
                for j in range(0, len(args), 7):
                    events.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": args[j : j + 7]}}]}))
            finish = "tool_calls"
        else:
            for piece in self._pieces(reply):
                events.append(chunk({"content": piece}))
                if azure and self.async_filter:
                    events.append(annotation(None, SAFE_FILTER))
        if reply.kind == "stream_error":
            events.append(
                {
                    "error": {
                        "message": "The server had an error while processing your request.",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                }
            )
            return _sse(events, done=False)
        if reply.kind == "stream_filtered":
            events.append(
                annotation("content_filter", {"protected_material_text": {"detected": True, "filtered": True}})
            )
            return _sse(events)
        events.append(chunk({}, reply.finish or finish, FILTERED if reply.finish == "content_filter" else None))
        if azure and self.async_filter:
            events.append(annotation(None, SAFE_FILTER))  # may arrive after the finish chunk
        if include_usage:
            events.append(
                {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": self.model,
                    "system_fingerprint": "fp_fake0001",
                    "choices": [],
                    "usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21},
                }
            )
        return _sse(events)

    def _pieces(self, reply: Reply) -> list[str]:
        if reply.pieces is not None:
            return reply.pieces
        if self.pieces is not None and reply.text is None:
            return self.pieces
        text = self._text(reply)
        return [text[i : i + 4] for i in range(0, len(text), 4)]

    def _auth_error(self, azure: bool, key: str | None) -> httpx.Response:
        if azure:
            message = (
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
                "valid key for an active subscription and use a correct regional API endpoint "
                "for your resource."
            )
            return _json({"error": {"code": "401", "message": message}}, 401)
        shown = f"{key[:3]}***{key[-4:]}" if key else ""
        message = (
            f"Incorrect API key provided: {shown}. You can find your API key at https://platform.openai.com/account/api-keys."
            if key
            else "You didn't provide an API key. You need to provide your API key in an Authorization "
            "header using Bearer auth."
        )
        return _json(
            {
                "error": {
                    "message": message,
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }
            },
            401,
        )

    def _error(self, reply: Reply, azure: bool, body: dict[str, Any]) -> httpx.Response:
        kind = reply.kind
        if kind == "auth":
            return self._auth_error(azure, "sk-revoked-key-0000")
        if kind == "rate_limit":
            # Header presence varies on real 429s: ``hint_only`` leaves only the message's hint.
            seconds = reply.retry_after or "6"
            headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-remaining-tokens": "0"}
            if not reply.hint_only:
                headers["retry-after"] = seconds
            if reply.retry_after_ms is not None:
                headers["retry-after-ms"] = reply.retry_after_ms
            if azure:
                message = (
                    "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
                    "2024-10-21 have "
                    "exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after "
                    f"{seconds} seconds. Please go here: https://aka.ms/oai/quotaincrease if you would "
                    "like to "
                    "further increase the default rate limit."
                )
                return _json({"error": {"code": "429", "message": message}}, 429, headers)
            message = (
                f"Rate limit reached for {body.get('model')} in organization org-fake "
                "on tokens per min (TPM): "
                f"Limit 30000, Used 30000, Requested 120. Please try again in {seconds}s."
            )
            return _json(
                {
                    "error": {
                        "message": message,
                        "type": "tokens",
                        "param": None,
                        "code": "rate_limit_exceeded",
                    }
                },
                429,
                headers,
            )
        if kind == "quota":
            # OpenAI's reply when the account is out of credit: a 429 that waiting does not fix
            # (OpenAI error-codes guide, "429 - You exceeded your current quota").
            message = (
                "You exceeded your current quota, please check your plan and billing details. For more "
                "information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors."
            )
            error = {"message": message, "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}
            return _json({"error": error}, 429)
        if kind == "bad_request":
            return _bad_request(
                "Invalid value for 'temperature': expected a number between 0 and 2.", "temperature", "invalid_value"
            )
        if kind == "invalid_prompt":
            # OpenAI's safety check on reasoning models: 400 code invalid_prompt
            # (BeehiveInnovations/pal-mcp-server#178, lobehub/lobehub#9101).
            message = (
                "Invalid prompt: your prompt was flagged as potentially violating our usage policy. Please try "
                "again with a different prompt: https://platform.openai.com/docs/guides/reasoning#advice-on-prompting"
            )
            return _bad_request(message, None, "invalid_prompt")
        if kind == "content_filter":
            filters = {
                "hate": {"filtered": True, "severity": "high"},
                "jailbreak": {"filtered": False, "detected": False},
                "self_harm": {"filtered": False, "severity": "safe"},
                "sexual": {"filtered": False, "severity": "safe"},
                "violence": {"filtered": True, "severity": "medium"},
            }
            message = (
                "The response was filtered due to the prompt triggering Azure OpenAI's content "
                "management policy. "
                "Please modify your prompt and retry."
            )
            error = {
                "message": message,
                "type": None,
                "param": "prompt",
                "code": "content_filter",
                "status": 400,
                "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": filters},
            }
            return _json({"error": error}, 400)
        if kind == "context_length":
            message = (
                "This model's maximum context length is 128000 tokens. However, your messages resulted in "
                "130412 tokens. Please reduce the length of the messages."
            )
            error = {
                "message": message,
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
            if azure:
                error["status"] = 400
            return _json({"error": error}, 400)
        if kind == "server_error":
            if azure:
                return _json(
                    {
                        "error": {
                            "code": "InternalServerError",
                            "message": (
                                "The service is temporarily unable to process your request. Please try again later."
                            ),
                            "status": 500,
                        }
                    },
                    500,
                )
            return _json(
                {
                    "error": {
                        "message": "The server had an error while processing your request. Sorry about that!",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                },
                500,
            )
        raise AssertionError(f"FakeOpenAI: unknown reply kind {kind!r}")


def _credential(request: httpx.Request, route: str | None) -> tuple[str | None, str | None]:
    if route in ("azure", "azure-v1") and request.headers.get("api-key"):
        return request.headers["api-key"], "api-key"
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer ") and auth[7:].strip():
        return auth[7:].strip(), "authorization"
    return None, None


def _validate_body(body: Any, *, needs_model: bool) -> str | None:
    """The checks the real services make that a client could get wrong."""
    if not isinstance(body, dict):
        return "We could not parse the JSON body of your request."
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "Missing required parameter: 'messages'."
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in (
            "system",
            "developer",
            "user",
            "assistant",
            "tool",
            "function",
        ):
            return f"Invalid value for 'messages[{i}].role'."
    if needs_model and not body.get("model"):
        return "you must provide a model parameter"
    if body.get("stream_options") is not None and not body.get("stream"):
        return "The 'stream_options' parameter is only allowed when 'stream' is enabled."
    return None


def _bad_request(message: str, param: str | None, code: str | None) -> httpx.Response:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    return _json({"error": error}, 400)


def _old_api_version(body: dict[str, Any], version: str | None) -> httpx.Response | None:
    """Azure api-versions before 2024-09-01-preview predate ``stream_options`` and
    ``max_completion_tokens`` (Azure OpenAI API version lifecycle, "Changes between
    2024-09-01-preview and 2024-08-01-preview"): 400 ``Unrecognized request argument supplied:
    stream_options`` (openai/openai-python#1469, agno-agi/agno#1066)."""
    if not version or version[:10] >= "2024-09-01":
        return None
    for name in ("stream_options", "max_completion_tokens"):
        if name in body:
            return _bad_request(f"Unrecognized request argument supplied: {name}", None, None)
    return None


def _model_rules(body: dict[str, Any], model: str) -> httpx.Response | None:
    """What today's reasoning models refuse (the same replies on api.openai.com and Azure)."""
    name = model.lower().rsplit("/", 1)[-1]
    if not _REASONING.match(name):
        return None
    if "max_tokens" in body:
        # openai-python completion_create_params.py: max_tokens "is not compatible with o-series
        # models"; the live reply for gpt-5.x and o-series (BerriAI/litellm#13432, nashsu/llm_wiki#610).
        return _bad_request(
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
            "max_tokens",
            "unsupported_parameter",
        )
    if _CHAT_VARIANT.search(name):
        return None  # gpt-5-chat-latest takes sampling controls (BerriAI/litellm#13781)
    # o-series and gpt-5/-mini/-nano: only the default; gpt-5.1+: only with reasoning_effort "none"
    # (OpenAI reasoning guide "limitations", latest-model guide; vercel/ai#10932, johny-b/llmcomp#69).
    fixed = bool(_FIXED_SAMPLING.match(name)) or body.get("reasoning_effort") != "none"
    for param in ("temperature", "top_p"):
        value = body.get(param)
        if fixed and value is not None and value != 1:
            # OpenHands#4131 (o1-mini), QwenLM/qwen-code#921 (gpt-5-mini): code unsupported_value.
            return _bad_request(
                f"Unsupported value: '{param}' does not support {value} with this model. "
                "Only the default (1) value is supported.",
                param,
                "unsupported_value",
            )
    unsupported = ["presence_penalty", "frequency_penalty", "logit_bias"]
    if fixed:
        unsupported += ["logprobs", "top_logprobs"]
    for param in unsupported:
        value = body.get(param)
        if value is not None and value not in (0, False):
            # Azure reasoning-models guide, "Not supported" (the reply follows max_tokens' form).
            return _bad_request(
                f"Unsupported parameter: '{param}' is not supported with this model.",
                param,
                "unsupported_parameter",
            )
    return None


def _tool_call_ids(body: dict[str, Any]) -> httpx.Response | None:
    """History tool-call ids are at most 40 characters (camel-ai/camel#2215, microsoft/autogen#6377,
    Portkey-AI/gateway#1062 on Azure): code ``string_above_max_length``."""
    for i, m in enumerate(body["messages"]):
        places = [(f"messages[{i}].tool_calls[{j}].id", c.get("id")) for j, c in enumerate(m.get("tool_calls") or [])]
        places.append((f"messages[{i}].tool_call_id", m.get("tool_call_id")))
        for param, value in places:
            if isinstance(value, str) and len(value) > 40:
                return _bad_request(
                    f"Invalid '{param}': string too long. Expected a string with maximum length 40, "
                    f"but got a string with length {len(value)} instead.",
                    param,
                    "string_above_max_length",
                )
    return None


def _unknown_fields(body: dict[str, Any], *, azure: bool) -> httpx.Response | None:
    """Message fields OpenAI does not define: 400 ``Unknown parameter: 'messages[1].content[1].file.data'.``
    (code ``unknown_parameter``; pydantic/pydantic-ai, FastGPT#1253 for ``tool_calls[0].index``).
    Azure's classic API words it as a schema error: ``Additional properties are not allowed
    ('reasoning' was unexpected) - 'messages.2'``."""
    for i, m in enumerate(body["messages"]):
        found: list[tuple[str, str]] = [(f"messages[{i}].{k}", k) for k in m if k not in _MESSAGE_KEYS[m["role"]]]
        for j, call in enumerate(m.get("tool_calls") or []):
            found += [(f"messages[{i}].tool_calls[{j}].{k}", k) for k in call if k not in _TOOL_CALL_KEYS]
        content = m.get("content")
        for j, part in enumerate(content if isinstance(content, list) else []):
            allowed = _PART_KEYS.get(part.get("type"))
            if allowed is None:
                return _bad_request(
                    f"Invalid value: '{part.get('type')}'. Supported values are: 'text', 'image_url', "
                    "'input_audio', 'refusal', and 'file'.",
                    f"messages[{i}].content[{j}].type",
                    "invalid_value",
                )
            found += [(f"messages[{i}].content[{j}].{k}", k) for k in part if k not in allowed]
        if found:
            param, key = found[0]
            if azure:
                return _bad_request(
                    f"Additional properties are not allowed ('{key}' was unexpected) - 'messages.{i}'", None, None
                )
            return _bad_request(f"Unknown parameter: '{param}'.", param, "unknown_parameter")
    return None


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps(data, ensure_ascii=False).encode(),
        headers={"content-type": "application/json", "x-request-id": uuid.uuid4().hex, **(headers or {})},
    )


def _sse(events: list[dict[str, Any]], *, done: bool = True) -> httpx.Response:
    text = "".join(f"data: {json.dumps(e, ensure_ascii=False, separators=(',', ':'))}\n\n" for e in events)
    if done:
        text += "data: [DONE]\n\n"
    return httpx.Response(200, content=text.encode(), headers={"content-type": "text/event-stream; charset=utf-8"})
