"""A fast fake OpenAI upstream for benchmarks: a raw asyncio protocol speaking HTTP/1.1 with keep-alive.

Run: ``python bench/fake_upstream.py --port 9100``.

- ``POST .../chat/completions`` answers with a canned completion, or, when the body asks for
  ``"stream": true``, with a role chunk, 20 content chunks, a finish chunk and ``[DONE]``, each
  written on its own (one send per chunk, as a real upstream produces them).
- When the body names the model ``bench-paced`` the stream's chunks are 10 ms apart: the bench
  uses it to check that a gateway forwards every chunk on its own instead of batching them.
- When the body names the model ``bench-real-<n>`` (n from 1 to 1000) the stream is a realistic one:
  the role chunk and the first content chunk after 20 ms, then the other content chunks (n in all)
  20 ms apart, the finish chunk with usage, ``[DONE]``. One timer drives every such stream (a tick
  every 20 ms writes each stream's next frame), so thousands of concurrent streams cost this
  process one wake-up per tick, not one per stream.
- ``POST .../models/bench-real-<n>:streamGenerateContent?alt=sse`` is the same realistic stream in
  Gemini's wire format (the bench's translated path): n events 20 ms apart, the first after 20 ms,
  each a ``GenerateContentResponse`` with cumulative ``usageMetadata``, the last with
  ``finishReason: STOP``, separated by ``\r\n\r\n`` and without ``[DONE]`` as Gemini sends them.
- ``GET`` anything answers ``{"status":"ok"}``.

It is deliberately minimal (no validation, no allocation beyond what a reply needs) so what a
benchmark measures is the code in front of it, not this.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

PACED_MODEL = b"bench-paced"
PACE_SECONDS = 0.010
REAL_MODEL = b"bench-real-"
GEMINI_STREAM = b":streamGenerateContent"
REAL_TICK = 0.020
CONTENT_CHUNKS = 20

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the bench upstream."},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16},
    },
    separators=(",", ":"),
).encode()


def _chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "bench-model",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def _chunked(part: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(part), part)


STREAM_EVENTS = [
    _chunk({"role": "assistant", "content": ""}),
    *(_chunk({"content": f"tok{i} "}) for i in range(CONTENT_CHUNKS)),
    _chunk({}, "stop"),
    b"data: [DONE]\n\n",
]
STREAM_FRAMES = [_chunked(e) for e in STREAM_EVENTS]
_USAGE_FINISH = _chunked(
    b"data: "
    + json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": "bench-model",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 20, "total_tokens": 29},
        },
        separators=(",", ":"),
    ).encode()
    + b"\n\n"
)
_REAL_CACHE: dict[int, list[bytes]] = {}


def real_frames(n: int) -> list[bytes]:
    """The frames of a ``bench-real-<n>`` stream, one per tick (the first tick: role + first token)."""
    frames = _REAL_CACHE.get(n)
    if frames is None:
        content = [_chunked(_chunk({"content": f"tok{i} "})) for i in range(n)]
        frames = [STREAM_FRAMES[0] + content[0], *content[1:], _USAGE_FINISH + STREAM_FRAMES[-1] + STREAM_END]
        _REAL_CACHE[n] = frames
    return frames


_GEMINI_CACHE: dict[int, list[bytes]] = {}


def _gemini_event(n: int, text: str, last: bool) -> bytes:
    candidate: dict[str, object] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if last:
        candidate["finishReason"] = "STOP"
    usage = {"promptTokenCount": 9, "candidatesTokenCount": n, "totalTokenCount": 9 + n}
    event = {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "bench-model", "responseId": "r-1"}
    return _chunked(b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\r\n\r\n")


def gemini_frames(n: int) -> list[bytes]:
    """The frames of a Gemini ``bench-real-<n>`` stream, one event per tick."""
    frames = _GEMINI_CACHE.get(n)
    if frames is None:
        frames = [_gemini_event(i + 1, f"tok{i} ", i == n - 1) for i in range(n)]
        frames[-1] += STREAM_END
        _GEMINI_CACHE[n] = frames
    return frames


def _real_length(text: bytes, at: int) -> int:
    digits = text[at + len(REAL_MODEL) : at + len(REAL_MODEL) + 4]
    return max(1, min(int(bytes(c for c in digits if 48 <= c <= 57) or b"20"), 1000))


class _Ticker:
    """Every ``REAL_TICK`` writes the next frame of every realistic stream in flight."""

    def __init__(self) -> None:
        self.streams: dict[Upstream, tuple[list[bytes], int]] = {}
        self.handle: asyncio.TimerHandle | None = None

    def add(self, protocol: Upstream, frames: list[bytes]) -> None:
        self.streams[protocol] = (frames, 0)
        if self.handle is None:
            self.handle = asyncio.get_running_loop().call_later(REAL_TICK, self.tick)

    def tick(self) -> None:
        finished = []
        for protocol, (frames, at) in self.streams.items():
            transport = protocol.transport
            if transport is None or transport.is_closing():
                finished.append(protocol)
                continue
            transport.write(frames[at])
            if at + 1 == len(frames):
                finished.append(protocol)
            else:
                self.streams[protocol] = (frames, at + 1)
        for protocol in finished:
            del self.streams[protocol]
            protocol.busy = False
            if protocol.transport is not None:
                protocol._process()
        self.handle = asyncio.get_running_loop().call_later(REAL_TICK, self.tick) if self.streams else None


TICKER = _Ticker()
STREAM_END = b"0\r\n\r\n"

JSON_REPLY = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(COMPLETION) + COMPLETION
)
SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
OK_BODY = b'{"status":"ok"}'
GET_REPLY = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    len(OK_BODY),
    OK_BODY,
)


class Upstream(asyncio.Protocol):
    """One connection: requests are parsed from a byte buffer (content-length bodies only; every
    client a bench drives sends one) and answered in order."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.busy = False  # a paced stream is being written: later requests wait their turn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._process()

    def _process(self) -> None:
        transport = self.transport
        assert transport is not None
        while True:
            buffer = self.buffer
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = buffer[:end]
            length = 0
            lower = head.lower()
            at = lower.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = lower.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else None])
            total = end + 4 + length
            if len(buffer) < total:
                return
            body = buffer[end + 4 : total]
            self.buffer = buffer[total:]
            if head[:4] != b"POST":
                transport.write(GET_REPLY)
                continue
            if GEMINI_STREAM in head and (at := head.find(REAL_MODEL)) >= 0:
                self.busy = True
                transport.write(SSE_HEAD)
                TICKER.add(self, gemini_frames(_real_length(head, at)))
                return
            compact = body.replace(b" ", b"")
            if b'"stream":true' not in compact:
                transport.write(JSON_REPLY)
                continue
            at = body.find(REAL_MODEL)
            if at >= 0:
                self.busy = True
                transport.write(SSE_HEAD)
                TICKER.add(self, real_frames(_real_length(body, at)))
                return
            if PACED_MODEL in body:
                self.busy = True
                asyncio.get_running_loop().create_task(self._paced())
                return
            transport.write(SSE_HEAD)
            for frame in STREAM_FRAMES:
                transport.write(frame)
            transport.write(STREAM_END)

    async def _paced(self) -> None:
        transport = self.transport
        assert transport is not None
        transport.write(SSE_HEAD)
        for frame in STREAM_FRAMES:
            if transport.is_closing():
                return
            transport.write(frame)
            await asyncio.sleep(PACE_SECONDS)
        transport.write(STREAM_END)
        self.busy = False
        self._process()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.busy = True  # nothing more to answer


async def serve(host: str, port: int, ready: Any = None) -> None:
    server = await asyncio.get_running_loop().create_server(Upstream, host, port, backlog=4096, reuse_address=True)
    if ready is not None:
        ready.set()
    async with server:
        await server.serve_forever()


def run(main: Any) -> Any:
    """``asyncio.run`` on uvloop when installed (the server's dependencies include it)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - the plain loop works too, only slower
        return asyncio.run(main)
    return uvloop.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    print(f"fake upstream on http://{args.host}:{args.port} (pid {os.getpid()})", flush=True)
    try:
        run(serve(args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
