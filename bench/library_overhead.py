"""The library path: what ``LLMFactory.chat_async`` costs next to a bare httpx call to the same
upstream (and, when installed, ``litellm.acompletion``), sequential calls in one process.

    python bench/library_overhead.py [--calls 2000] [--json out.json] [--litellm /path/to/venv]

Each path runs in its own process (pinned to a core of its own where the machine has two), the
fake upstream in another, so the CPU time measured is the caller's alone. Reported per call: wall
latency p50 / p99 and CPU microseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

API_KEY = "sk-bench-0000"
PATHS = ["bare_httpx", "bare_httpx_aiohttp", "chat_async", "chat_async_httpx_transport", "litellm_acompletion"]


async def measure(call: Callable[[], Awaitable[object]], calls: int) -> dict[str, float]:
    for _ in range(min(200, max(10, calls // 10))):  # warm the pool and caches
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
        "p99_us": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1e6,
        "cpu_us_per_call": cpu / calls * 1e6,
        "calls_per_s": calls / wall,
    }


async def _path(name: str, port: int, calls: int) -> dict[str, float] | str:
    """One path, in this process. A string result says why it was skipped."""
    import httpx

    base = f"http://127.0.0.1:{port}/v1"
    body = {"model": "bench-model", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {API_KEY}"}

    if name in ("bare_httpx", "bare_httpx_aiohttp"):
        transport: Any = None
        if name == "bare_httpx_aiohttp":
            try:
                from httpx_aiohttp import AiohttpTransport
            except ImportError:
                return "httpx-aiohttp not installed"
            transport = AiohttpTransport()
        async with httpx.AsyncClient(transport=transport) as client:

            async def bare() -> object:
                response = await client.post(f"{base}/chat/completions", json=body, headers=headers)
                response.raise_for_status()
                return response.json()

            return await measure(bare, calls)

    if name in ("chat_async", "chat_async_httpx_transport"):
        try:
            from llm_factory_core import LLMFactory, ModelConfig
        except ImportError:
            return "llm_factory_core not importable here"
        config = ModelConfig(provider="openai", model_name="bench-model", api_key=API_KEY, api_base=base)
        options: dict[str, Any] = {}
        if name == "chat_async_httpx_transport":
            options["transport"] = httpx.AsyncHTTPTransport()  # httpx's own transport, whatever the default
        async with LLMFactory(config, **options) as factory:

            async def ours() -> object:
                return await factory.chat_async("hi")

            return await measure(ours, calls)

    if name == "litellm_acompletion":
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        try:
            import litellm
        except ImportError:
            return "litellm not installed (--litellm PATH)"
        litellm.suppress_debug_info = True

        async def theirs() -> object:
            return await litellm.acompletion(
                model="openai/bench-model", api_base=base, api_key=API_KEY, messages=body["messages"]
            )

        return await measure(theirs, calls)
    raise ValueError(name)


def run_paths(
    port: int, calls: int, cpus: set[int] | None, litellm_python: str | None, paths: list[str] | None = None
) -> dict[str, Any]:
    """Each path in a fresh process; litellm's in the interpreter that has it."""
    results: dict[str, Any] = {}
    for name in paths or PATHS:
        python = sys.executable
        if name == "litellm_acompletion":
            if litellm_python is None:
                results[name] = "skipped: litellm not installed (--litellm PATH)"
                continue
            python = litellm_python
        argv = [python, __file__, "--worker", name, "--port", str(port), "--calls", str(calls)]
        out = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            results[name] = f"failed: {(out.stderr or out.stdout)[-300:]}"
            continue
        value = json.loads(line[len("RESULT ") :])
        results[name] = value if isinstance(value, dict) else f"skipped: {value}"
    return results


def markdown(results: dict[str, Any]) -> str:
    lines = ["| library path | p50 µs | p99 µs | CPU µs/call | calls/s |", "|---|---:|---:|---:|---:|"]
    for name, r in results.items():
        if isinstance(r, dict):
            lines.append(
                f"| {name} | {r['p50_us']:.0f} | {r['p99_us']:.0f} | {r['cpu_us_per_call']:.0f} | "
                f"{r['calls_per_s']:.0f} |"
            )
        else:
            lines.append(f"| {name} | {r} | | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--litellm", help="the litellm executable or its venv (default: $BENCH_LITELLM, PATH)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        from fake_upstream import run

        print("RESULT " + json.dumps(run(_path(args.worker, args.port, args.calls))), flush=True)
        return

    import gateways

    load_cpus, gateway_cpus = gateways.cores()
    if load_cpus:
        os.sched_setaffinity(0, load_cpus)
    command = gateways.litellm_command(args.litellm)
    with tempfile.TemporaryDirectory(prefix="llm-factory-bench-") as tmp:
        upstream = gateways.start_upstream(Path(tmp), load_cpus)
        try:
            results = run_paths(
                upstream.port, args.calls, gateway_cpus, gateways.litellm_python(command) if command else None
            )
        finally:
            assert upstream.proc is not None
            upstream.proc.stop()
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
