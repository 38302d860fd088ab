"""A fault-injecting fake OpenAI upstream on a real socket, for reliability tests in any CI.

    from llm_factory_core.testing import Fault, FaultyUpstream

    rules = {"primary": Fault.rate_limit(retry_after=1), "backup": Fault.ok()}
    with FaultyUpstream(rules) as upstream:
        config = ModelConfig(provider="openai", model_name="primary",
                             api_base=upstream.base_url, api_key="sk-test")
        ...
        assert upstream.count("primary") == 2

Each request's fault is chosen by the body's ``model``, else by its key (``Authorization: Bearer``
or Azure's ``api-key``), else ``default``. A rule is one fault or a list of faults served in
turn, per rule, the last repeating (``[Fault.server_error(500), Fault.ok()]``: 5xx once then
healthy).

Why a real server rather than ``httpx.MockTransport``: a TCP reset, a connection accepted and
never answered and a chunked body cut half-way are socket events only a socket produces; and a
socket is what the openai SDK, the llm-factory server (any event loop, any process) and users' own
services can talk to. It speaks just enough HTTP/1.1 for httpx and the SDK: keep-alive,
Content-Length and chunked bodies. It runs its own event loop in a daemon thread, so it serves
sync code, asyncio and trio alike, and a stalled client never stalls the server.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import struct
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any

from ._mock import openai_chunks, openai_completion

__all__ = ["Fault", "FaultyUpstream", "UpstreamRequest"]

DEFAULT_TEXT = "This is a complete reply from {model}, sent one word at a time."
"""The reply text; ``{model}`` becomes the requested model. Streams send one word per chunk."""

_MALFORMED_EVENT = b'data: {"id":"chatcmpl-broken","object":"chat.completion.chunk","choices":[{"del\n\n'


@dataclass(frozen=True, slots=True)
class Fault:
    """What the fake upstream does with one request. Build one with the class methods."""

    kind: str
    status: int = 200
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    text: str = DEFAULT_TEXT
    delay: float = 0.0
    """Seconds before the first byte of the body (``slow_first_token``)."""
    token_delay: float = 0.0
    """Seconds between stream events."""
    after_tokens: int = 0
    """Content tokens sent before a ``cut`` / ``stall`` / ``malformed_event``."""
    rst: bool = False
    """``cut`` with a TCP reset instead of a clean close."""
    seconds: float | None = None
    until: float | None = None
    during: Fault | None = None
    then: Fault | None = None

    # -- healthy -------------------------------------------------------------------------------

    @classmethod
    def ok(cls, text: str = DEFAULT_TEXT, *, token_delay: float = 0.0) -> Fault:
        """A healthy reply (a stream ends with ``[DONE]``), usage included."""
        return cls("ok", text=text, token_delay=token_delay)

    # -- error replies -------------------------------------------------------------------------

    @classmethod
    def error(
        cls, status: int, body: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None
    ) -> Fault:
        """Any error reply; ``body`` defaults to OpenAI's envelope for the status."""
        return cls("error", status=status, body=body or _error_body(status), headers=dict(headers or {}))

    def _named(self, kind: str) -> Fault:
        return Fault(kind, status=self.status, body=self.body, headers=self.headers)

    @classmethod
    def rate_limit(cls, retry_after: float | None = None, *, retry_after_ms: float | None = None) -> Fault:
        """429, with ``Retry-After`` (seconds) and/or ``retry-after-ms`` (Azure) when given."""
        headers = {}
        if retry_after is not None:
            headers["retry-after"] = _number(retry_after)
        if retry_after_ms is not None:
            headers["retry-after-ms"] = _number(retry_after_ms)
        body = {
            "error": {
                "message": "Rate limit reached for requests. Please try again later.",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }
        return cls("rate_limit", status=429, body=body, headers=headers)

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        """A 5xx reply in OpenAI's envelope."""
        return cls.error(status)._named("server_error")

    @classmethod
    def context_length(cls) -> Fault:
        """400 ``context_length_exceeded``, as OpenAI sends it."""
        body = {
            "error": {
                "message": "This model's maximum context length is 8192 tokens. However, your messages "
                "resulted in 9000 tokens. Please reduce the length of the messages.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        }
        return cls.error(400, body)._named("context_length")

    @classmethod
    def content_filter(cls) -> Fault:
        """400 ``content_filter``, as Azure OpenAI sends it for a filtered prompt."""
        body = {
            "error": {
                "message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
                "management policy. Please modify your prompt and retry.",
                "type": None,
                "param": "prompt",
                "code": "content_filter",
                "status": 400,
                "innererror": {
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": {
                        "hate": {"filtered": True, "severity": "high"},
                        "self_harm": {"filtered": False, "severity": "safe"},
                        "sexual": {"filtered": False, "severity": "safe"},
                        "violence": {"filtered": False, "severity": "safe"},
                    },
                },
            }
        }
        return cls.error(400, body)._named("content_filter")

    # -- connection faults ---------------------------------------------------------------------

    @classmethod
    def reset(cls) -> Fault:
        """Read the request, then reset the TCP connection (RST) before any response byte."""
        return cls("reset")

    @classmethod
    def hang(cls) -> Fault:
        """Accept and read the request, then never answer (until the client gives up)."""
        return cls("hang")

    @classmethod
    def slow_first_token(cls, delay: float, text: str = DEFAULT_TEXT) -> Fault:
        """A stream sends its headers at once and its first event after ``delay`` seconds; a
        non-streaming reply comes after ``delay`` seconds."""
        return cls("slow_first_token", delay=delay, text=text)

    @classmethod
    def cut(cls, after_tokens: int, *, reset: bool = False, text: str = DEFAULT_TEXT) -> Fault:
        """Close the connection mid-body: a stream after ``after_tokens`` content events, a JSON
        reply half-way. ``reset=True`` resets (RST) instead of closing (FIN)."""
        return cls("cut", after_tokens=after_tokens, rst=reset, text=text)

    @classmethod
    def stall(cls, after_tokens: int, text: str = DEFAULT_TEXT) -> Fault:
        """Stop sending, connection open: a stream after ``after_tokens`` content events, a JSON
        reply half-way."""
        return cls("stall", after_tokens=after_tokens, text=text)

    @classmethod
    def malformed_event(cls, after_tokens: int = 1, text: str = DEFAULT_TEXT) -> Fault:
        """A healthy stream with one unparseable event after ``after_tokens`` content events
        (non-streaming replies are healthy)."""
        return cls("malformed_event", after_tokens=after_tokens, text=text)

    @classmethod
    def no_done(cls, text: str = DEFAULT_TEXT) -> Fault:
        """A complete stream (finish reason, usage if asked) whose body ends without ``[DONE]``."""
        return cls("no_done", text=text)

    # -- time-dependent ------------------------------------------------------------------------

    @classmethod
    def down(cls, seconds: float, *, during: Fault | None = None, then: Fault | None = None) -> Fault:
        """Down for ``seconds`` from the first request this rule serves (``during``, default 503),
        then ``then`` (default healthy): a primary that flaps."""
        return cls("down", seconds=seconds, during=during or cls.server_error(503), then=then or cls.ok())

    @classmethod
    def down_until(cls, until: float, *, during: Fault | None = None, then: Fault | None = None) -> Fault:
        """Down until the ``time.monotonic()`` instant ``until``, then ``then``."""
        return cls("down", until=until, during=during or cls.server_error(503), then=then or cls.ok())

    def __repr__(self) -> str:
        defaults = Fault(self.kind)
        changed = [
            f"{name}={getattr(self, name)!r}"
            for name in ("status", "delay", "after_tokens", "rst", "seconds", "until", "during", "then")
            if getattr(self, name) != getattr(defaults, name)
        ]
        return f"Fault.{self.kind}({', '.join(changed)})"


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """One request the fake upstream received (keys are kept out of the repr)."""

    model: str | None
    rule: str | None
    """The rule that chose the fault (the model or the key), or None for the default."""
    fault: str
    """The kind of the fault served (``down`` resolved to what it served): ``ok``,
    ``rate_limit``, ``server_error``, ``reset``, ``hang``, ``cut``..."""
    stream: bool
    at: float
    """``time.monotonic()`` when the request had been read."""
    method: str = "POST"
    path: str = ""
    body: Any = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    key: str | None = field(default=None, repr=False)


class _RuleState:
    """A rule's faults and how far through them it is (stateful faults count per rule)."""

    __slots__ = ("calls", "faults", "started")

    def __init__(self, faults: Sequence[Fault]) -> None:
        if not faults:
            raise ValueError("a rule needs at least one Fault")
        self.faults = list(faults)
        self.calls = 0
        self.started: dict[int, float] = {}

    def next(self, now: float) -> Fault:
        index = min(self.calls, len(self.faults) - 1)
        self.calls += 1
        fault = self.faults[index]
        while fault.kind == "down":
            end = fault.until
            if end is None:
                end = self.started.setdefault(index, now) + (fault.seconds or 0.0)
            chosen = fault.during if now < end else fault.then
            assert chosen is not None
            fault = chosen
        return fault


class _Request:
    __slots__ = ("body", "headers", "method", "path")

    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        self.method, self.path, self.headers, self.body = method, path, headers, body


class _Abort(Exception):
    """The connection is finished (reset, cut or client gone); stop serving it."""


class FaultyUpstream:
    """A fake OpenAI-compatible upstream on ``127.0.0.1`` whose faults are chosen per request.

    ``with FaultyUpstream(rules) as upstream`` or ``async with``; ``upstream.base_url`` is the
    ``api_base`` to configure (``http://127.0.0.1:<port>/v1``). ``requests``, ``count()`` and
    ``open_connections`` are for assertions; ``set_rule`` and ``reset`` change it between steps.
    """

    def __init__(
        self,
        rules: Mapping[str, Fault | Sequence[Fault]] | None = None,
        *,
        default: Fault | Sequence[Fault] = Fault.ok(),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._lock = threading.Lock()
        self._rules: dict[str, _RuleState] = {}
        self._default_faults = _as_list(default)
        self._default = _RuleState(self._default_faults)
        for name, faults in (rules or {}).items():
            self.set_rule(name, faults)
        self._host, self._port = host, port
        self._requests: list[UpstreamRequest] = []
        self._connections = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- configuration and assertions ----------------------------------------------------------

    def set_rule(self, name: str, faults: Fault | Sequence[Fault]) -> None:
        """Set (or replace, starting afresh) the rule for a model name or key."""
        with self._lock:
            self._rules[name] = _RuleState(_as_list(faults))

    def reset(self) -> None:
        """Forget received requests and restart every rule's sequence and clock."""
        with self._lock:
            self._requests.clear()
            self._rules = {name: _RuleState(state.faults) for name, state in self._rules.items()}
            self._default = _RuleState(self._default_faults)

    @property
    def requests(self) -> list[UpstreamRequest]:
        with self._lock:
            return list(self._requests)

    def count(self, name: str | None = None, *, fault: str | None = None) -> int:
        """Requests for a model name or key (all when None), optionally of one fault kind."""
        return sum(
            1
            for r in self.requests
            if (name is None or name in (r.model, r.key, r.rule)) and (fault is None or r.fault == fault)
        )

    @property
    def open_connections(self) -> int:
        """Client connections currently open (for leak checks)."""
        return self._connections

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FaultyUpstream is not running; use it as a context manager")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI ``base_url`` / llm-factory ``api_base``."""
        return self.url + "/v1"

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"<FaultyUpstream {where} rules={sorted(self._rules)}>"

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> FaultyUpstream:
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._open())
            except BaseException as exc:
                failure.append(exc)
                loop.close()
                ready.set()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="faulty-upstream", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread = None
            raise RuntimeError(f"FaultyUpstream could not start: {failure[0]!r}") from failure[0]
        return self

    def stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._close(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            self._thread = self._loop = self._server = None

    def __enter__(self) -> FaultyUpstream:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> FaultyUpstream:
        import anyio.to_thread

        return await anyio.to_thread.run_sync(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        import anyio.to_thread

        await anyio.to_thread.run_sync(self.stop)

    async def _open(self) -> None:
        self._server = await asyncio.start_server(self._connection, self._host, self._port, limit=1 << 22)

    async def _close(self) -> None:
        assert self._server is not None
        self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        for _ in range(3):  # let closed transports run their connection_lost callbacks
            await asyncio.sleep(0)

    # -- HTTP ----------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._connections += 1
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                await self._dispatch(request, reader, writer)
                if request.headers.get("connection", "").lower() == "close":
                    break
        except (_Abort, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        except asyncio.CancelledError:
            pass  # the server is stopping
        finally:
            self._connections -= 1
            self._tasks.discard(task)
            if not writer.transport.is_closing():
                writer.transport.abort()

    async def _dispatch(self, request: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        path = request.path.split("?", 1)[0].rstrip("/")
        if request.method == "GET" and path.endswith("/models"):
            with self._lock:
                names = sorted(self._rules)
            data = [{"id": n, "object": "model", "created": 0, "owned_by": "faulty-upstream"} for n in names]
            return await _send_json(writer, 200, {"object": "list", "data": data})
        if request.method != "POST" or not path.endswith("/chat/completions"):
            return await _send_json(writer, 404, _error_body(404, f"no route for {request.method} {path}"))
        try:
            body = json.loads(request.body)
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return await _send_json(writer, 400, _error_body(400, "the body must be a JSON object with messages"))
        model = body.get("model") if isinstance(body.get("model"), str) else None
        key = _request_key(request.headers)
        fault, rule = self._choose(model, key)
        stream = bool(body.get("stream"))
        with self._lock:
            self._requests.append(
                UpstreamRequest(
                    model=model,
                    rule=rule,
                    fault=fault.kind,
                    stream=stream,
                    at=time.monotonic(),
                    method=request.method,
                    path=request.path,
                    body=body,
                    headers=request.headers,
                    key=key,
                )
            )
        reply = _Reply(fault, body, model or "fake-model", writer, reader)
        await reply.serve(stream)

    def _choose(self, model: str | None, key: str | None) -> tuple[Fault, str | None]:
        now = time.monotonic()
        with self._lock:
            for name in (model, key):
                if name is not None and name in self._rules:
                    return self._rules[name].next(now), name
            return self._default.next(now), None


class _Reply:
    """Serves one chat completion request according to its fault."""

    def __init__(
        self, fault: Fault, body: dict[str, Any], model: str, writer: asyncio.StreamWriter, reader: asyncio.StreamReader
    ) -> None:
        self.fault, self.body, self.model, self.writer, self.reader = fault, body, model, writer, reader
        text = fault.text.replace("{model}", model)
        self.tokens = re.findall(r"\S+\s*", text)
        self.text = text
        self.usage = (_count_words(body.get("messages")), len(self.tokens))
        self.id = "chatcmpl-" + uuid.uuid4().hex[:24]

    async def serve(self, stream: bool) -> None:
        fault = self.fault
        if fault.status >= 400:
            return await _send_json(self.writer, fault.status, fault.body or {}, fault.headers)
        if fault.kind == "reset":
            _reset(self.writer)
            raise _Abort
        if fault.kind == "hang":
            await self._wait_for_client()
        if stream:
            return await self._stream()
        data = json.dumps(openai_completion(self.text, model=self.model, usage=self.usage, id=self.id)).encode()
        if fault.kind == "slow_first_token":
            await asyncio.sleep(fault.delay)
        if fault.kind in ("cut", "stall"):
            await _write_head(self.writer, 200, {"content-type": "application/json", "content-length": str(len(data))})
            self.writer.write(data[: len(data) // 2])
            await self.writer.drain()
            return await self._break()
        await _send(self.writer, 200, data, {"content-type": "application/json"})

    async def _stream(self) -> None:
        fault = self.fault
        options = self.body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        events: list[bytes] = [
            b"data: " + json.dumps(e).encode() + b"\n\n"
            for e in openai_chunks(
                self.tokens, model=self.model, include_usage=include_usage, usage=self.usage, id=self.id
            )
        ]
        if fault.kind != "no_done":
            events.append(b"data: [DONE]\n\n")
        stop_at = 1 + fault.after_tokens  # the role event, then the content events
        if fault.kind == "malformed_event":
            events.insert(stop_at, _MALFORMED_EVENT)
        await _write_head(
            self.writer, 200, {"content-type": "text/event-stream; charset=utf-8", "transfer-encoding": "chunked"}
        )
        if fault.kind == "slow_first_token":
            await asyncio.sleep(fault.delay)
        for i, event in enumerate(events):
            if fault.kind in ("cut", "stall") and i >= stop_at:
                return await self._break()
            if fault.token_delay and i:
                await asyncio.sleep(fault.token_delay)
            self.writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await self.writer.drain()
        self.writer.write(b"0\r\n\r\n")
        await self.writer.drain()

    async def _break(self) -> None:
        if self.fault.kind == "stall":
            await self._wait_for_client()
        if self.fault.rst:
            _reset(self.writer)
        else:
            self.writer.close()
        raise _Abort

    async def _wait_for_client(self) -> None:
        """Say nothing until the client closes the connection (or the server stops)."""
        while await self.reader.read(65536):
            pass
        raise _Abort


# -- HTTP/1.1 helpers ---------------------------------------------------------------------------


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise
        return None  # the client closed an idle keep-alive connection
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    else:
        body = await reader.readexactly(int(headers.get("content-length") or 0))
    return _Request(method, target, headers, body)


async def _write_head(writer: asyncio.StreamWriter, status: int, headers: Mapping[str, str]) -> None:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
    all_headers = {"x-request-id": "req_" + uuid.uuid4().hex[:16], "connection": "keep-alive", **headers}
    lines += [f"{k}: {v}" for k, v in all_headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    await writer.drain()


async def _send(writer: asyncio.StreamWriter, status: int, data: bytes, headers: Mapping[str, str]) -> None:
    await _write_head(writer, status, {**headers, "content-length": str(len(data))})
    writer.write(data)
    await writer.drain()


async def _send_json(
    writer: asyncio.StreamWriter, status: int, data: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> None:
    await _send(writer, status, json.dumps(data).encode(), {"content-type": "application/json", **(headers or {})})


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# -- small pure helpers -------------------------------------------------------------------------


def _as_list(faults: Fault | Sequence[Fault]) -> list[Fault]:
    if isinstance(faults, Fault):
        return [faults]
    out = list(faults)
    if not all(isinstance(f, Fault) for f in out):
        raise TypeError("a rule is a Fault or a list of Faults")
    return out


def _request_key(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return headers.get("api-key") or None


def _count_words(messages: Any) -> int:
    words = 0
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            words += len(content.split())
        elif isinstance(content, list):
            words += sum(len(str(p.get("text", "")).split()) for p in content if isinstance(p, dict))
    return max(1, words)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _error_body(status: int, message: str | None = None) -> dict[str, Any]:
    """OpenAI's error envelope for a status."""
    kinds = {
        400: ("invalid_request_error", None),
        401: ("invalid_request_error", "invalid_api_key"),
        403: ("invalid_request_error", "unsupported_country_region_territory"),
        404: ("invalid_request_error", "model_not_found"),
        429: ("requests", "rate_limit_exceeded"),
        503: ("server_error", None),
    }
    err_type, code = kinds.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    if message is None:
        message = {
            500: "The server had an error while processing your request. Sorry about that!",
            503: "The engine is currently overloaded, please try again later.",
        }.get(status, f"HTTP {status} {HTTPStatus(status).phrase}")
    return {"error": {"message": message, "type": err_type, "param": None, "code": code}}
