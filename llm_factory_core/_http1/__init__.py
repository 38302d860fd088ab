"""A small HTTP/1.1 client on an asyncio protocol and httptools' parser: the fast path's calls.

A non-streamed call through aiohttp's session costs ~85 µs of CPU (its request and response
objects, tracing hooks, timers, header multidicts); through this client ~17, written straight to
a socket and parsed by httptools (llhttp, in C); a bare protocol-level client ~10
(``bench/client_floor.py``).
So the fast transport sends its calls here, and keeps aiohttp for what this client leaves out:
proxies, streamed request bodies, ``HEAD``.

What it does: a pool of keep-alive connections per origin (``http`` and ``https``, TLS through the
event loop's ``ssl``), capped in all and per origin, the wait for a free connection bounded by the
``pool`` timeout; ``connect`` bounds opening a connection and ``read`` each wait for bytes, as
httpx's timeouts do. Failures are httpx's exceptions (a reset stays a connection error, a silence
a read timeout), so failover decisions do not change with the transport. A body is delivered once
per socket read (the HTTP chunks that arrived together as one piece), to a reader that awaits it
or, spliced, to a callback run inside the read (no task wakes per read).

A connection goes back to the pool only once its reply was read to the end and the upstream keeps
it alive; a reply abandoned half way closes its connection (never drained, never reused).
"""

from ._bodies import Http1Body
from ._connection import Target, header_lines, raw_header_lines, target
from ._pool import Http1Pool

__all__ = ["Http1Body", "Http1Pool", "Target", "header_lines", "raw_header_lines", "target"]
