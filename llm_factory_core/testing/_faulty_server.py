"""``FaultyUpstream``: a fault-injecting fake OpenAI upstream on a real socket, for reliability
tests in any CI. The faults themselves (and the rules choosing them) are in ``_faults``.

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
from collections import deque
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from types import TracebackType
from typing import Any

from ._faults import Fault, UpstreamRequest, _as_list, _error_body, _RuleState
from ._mock import openai_chunks, openai_completion

__all__ = ["FaultyUpstream"]

_MALFORMED_EVENT = b'data: {"id":"chatcmpl-broken","object":"chat.completion.chunk","choices":[{"del\n\n'


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
        keep_requests: int | None = None,
    ) -> None:
        """``keep_requests``: remember only the latest that many requests (long soak runs);
        ``total_requests`` still counts them all."""
        self._lock = threading.Lock()
        self._rules: dict[str, _RuleState] = {}
        self._default_faults = _as_list(default)
        self._default = _RuleState(self._default_faults)
        for name, faults in (rules or {}).items():
            self.set_rule(name, faults)
        self._host, self._port = host, port
        self._requests: deque[UpstreamRequest] = deque(maxlen=keep_requests)
        self._total = 0
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
            self._total = 0
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
    def total_requests(self) -> int:
        """Every chat request received since the start (or ``reset``), kept or not."""
        return self._total

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
            self._total += 1
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
