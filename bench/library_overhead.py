"""What ``LLMFactory.chat_async`` costs over a bare httpx call to the same upstream, in one run.

    python bench/library_overhead.py [--calls 2000] [--json out.json]

The fake upstream runs in its own process, so the CPU time measured here is the caller's alone.
Reported per call: wall latency (p50) and CPU microseconds; and the ratio ours / bare httpx.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_upstream(port: int, ready: object) -> None:
    from fake_upstream import serve

    asyncio.run(serve("127.0.0.1", port, ready))


async def measure(call: Callable[[], Awaitable[object]], calls: int) -> dict[str, float]:
    for _ in range(min(200, calls)):  # warm the pool and caches
        await call()
    latencies = []
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    for _ in range(calls):
        t = time.perf_counter()
        await call()
        latencies.append(time.perf_counter() - t)
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    latencies.sort()
    return {
        "calls": calls,
        "p50_us": statistics.median(latencies) * 1e6,
        "p99_us": latencies[int(len(latencies) * 0.99) - 1] * 1e6,
        "cpu_us_per_call": cpu / calls * 1e6,
        "calls_per_s": calls / wall,
    }


async def bench(port: int, calls: int) -> dict[str, dict[str, float]]:
    import httpx

    from llm_factory_core import LLMFactory, ModelConfig

    base = f"http://127.0.0.1:{port}/v1"
    body = {"model": "bench-model", "messages": [{"role": "user", "content": "hi"}]}
    results: dict[str, dict[str, float]] = {}

    async with httpx.AsyncClient() as client:

        async def bare() -> object:
            response = await client.post(f"{base}/chat/completions", json=body, headers={"authorization": "Bearer k"})
            return response.json()

        results["bare_httpx"] = await measure(bare, calls)

    config = ModelConfig(provider="openai", model_name="bench-model", api_key="sk-bench-0000", api_base=base)
    async with LLMFactory(config) as factory:

        async def ours() -> object:
            return await factory.chat_async("hi")

        results["llm_factory_chat_async"] = await measure(ours, calls)
    try:
        from httpx_aiohttp import AiohttpTransport
    except ImportError:
        return results
    async with httpx.AsyncClient(transport=AiohttpTransport()) as client:

        async def bare_aiohttp() -> object:
            response = await client.post(f"{base}/chat/completions", json=body, headers={"authorization": "Bearer k"})
            return response.json()

        results["bare_httpx_aiohttp"] = await measure(bare_aiohttp, calls)
    async with LLMFactory(config, transport=AiohttpTransport()) as factory:

        async def ours_aiohttp() -> object:
            return await factory.chat_async("hi")

        results["llm_factory_aiohttp"] = await measure(ours_aiohttp, calls)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    port = free_port()
    ready = multiprocessing.Event()
    upstream = multiprocessing.Process(target=run_upstream, args=(port, ready), daemon=True)
    upstream.start()
    ready.wait(10)
    try:
        results = asyncio.run(bench(port, args.calls))
    finally:
        upstream.terminate()
    bare, ours = results["bare_httpx"], results["llm_factory_chat_async"]
    results["ratio"] = {
        "p50": ours["p50_us"] / bare["p50_us"],
        "cpu": ours["cpu_us_per_call"] / bare["cpu_us_per_call"],
    }
    print("| path | p50 µs | p99 µs | CPU µs/call | calls/s |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        if name == "ratio":
            continue
        print(f"| {name} | {r['p50_us']:.0f} | {r['p99_us']:.0f} | {r['cpu_us_per_call']:.0f} | {r['calls_per_s']:.0f} |")
    print(f"\nchat_async / bare httpx: p50 x{results['ratio']['p50']:.2f}, CPU x{results['ratio']['cpu']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
