"""How long a cooldown learnt by one process takes to reach another through Redis.

    python bench/propagation.py [--samples 200] [--redis redis://127.0.0.1:6379/0]

Without ``--redis`` it starts a private ``redis-server`` on a free loopback port (Debian's
``redis-server`` must be installed). Two ``SharedHealth`` stores stand for two processes (each its
own connection, subscription and process id, as in two gateways); one records a 429, the other is
polled until it sees the cooldown. Prints p50 / p90 / p99 / max in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from llm_factory_core import RateLimitError
from llm_factory_core._health import CooldownPolicy
from llm_factory_core._shared_state import SharedHealth


async def measure(url: str, samples: int) -> list[float]:
    policy = CooldownPolicy()
    one, two = SharedHealth(url, policy), SharedHealth(url, policy)
    one.begin("warm")
    two.begin("warm")
    while not (one.connected and two.connected):
        await asyncio.sleep(0.01)
    delays: list[float] = []
    for i in range(samples):
        name = f"deployment-{i}"
        error = RateLimitError("slow down", retry_after=30)
        started = time.monotonic()
        one.failure(name, error, started)
        while two.stats(name).cooldown_until <= time.monotonic():
            await asyncio.sleep(0.0005)
        delays.append((time.monotonic() - started) * 1000)
    await one.aclose()
    await two.aclose()
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--redis", help="a Redis URL (default: start a private redis-server)")
    args = parser.parse_args()
    server = None
    url = args.redis
    if url is None:
        binary = shutil.which("redis-server")
        if binary is None:
            sys.exit("redis-server not found: apt-get install redis-server, or pass --redis URL")
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from redis_server import RedisServer  # type: ignore[import-not-found]

        server = RedisServer(Path(tempfile.mkdtemp()))
        server.start()
        url = server.url
    try:
        delays = sorted(asyncio.run(measure(url, args.samples)))
    finally:
        if server is not None:
            server.stop()
    q = statistics.quantiles(delays, n=100)
    print(
        f"cooldown propagation over {len(delays)} samples: p50 {q[49]:.1f} ms, p90 {q[89]:.1f} ms, "
        f"p99 {q[98]:.1f} ms, max {delays[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
