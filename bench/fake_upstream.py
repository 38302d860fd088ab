"""A fast fake OpenAI upstream for benchmarks: raw asyncio HTTP/1.1 with keep-alive, canned replies.

Run: ``python bench/fake_upstream.py --port 9100``. ``POST .../chat/completions`` answers with a
completion, or with 20 SSE chunks and ``[DONE]`` when the body asks for ``"stream": true``.
It is deliberately minimal so that what a benchmark measures is the code in front of it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "bench-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the bench upstream."},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16},
    }
).encode()


def _chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    body = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "bench-model",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


STREAM_CHUNKS = [_chunk({"role": "assistant", "content": ""})] + [
    _chunk({"content": f"tok{i} "}) for i in range(20)
] + [_chunk({}, "stop"), b"data: [DONE]\n\n"]

JSON_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length) if length else b""
            if b'"stream":true' in body.replace(b" ", b""):
                writer.write(SSE_HEAD)
                for part in STREAM_CHUNKS:
                    writer.write(b"%x\r\n%s\r\n" % (len(part), part))
                    await writer.drain()
                writer.write(b"0\r\n\r\n")
            else:
                writer.write(JSON_HEAD % len(COMPLETION) + COMPLETION)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(host: str, port: int, ready: object = None) -> None:
    server = await asyncio.start_server(handle, host, port, backlog=1024)
    if ready is not None:
        ready.set()  # type: ignore[attr-defined]
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass
    print(f"fake upstream on http://{args.host}:{args.port} (pid {os.getpid()})", flush=True)
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
