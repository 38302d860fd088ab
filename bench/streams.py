"""The realistic-stream profile: many long concurrent streams, the load a gateway mostly carries.

Each stream's upstream (``fake_upstream``, model ``bench-real-<n>``) sends its first token after
20 ms and ``n`` content chunks 20 ms apart, as a model generating at ~50 tokens/s does. A closed
loop of ``concurrency`` keep-alive connections streams back to back; per level it reports streams/s,
full-stream p50 / p99, first byte p50, the full-stream overhead over ``direct`` in the same run,
errors, and the gateway's CPU µs per streamed chunk (``/proc`` CPU time over the counted window
divided by the chunks of the streams counted in it).

Run alone: ``python bench/streams.py [--concurrency 1,64,512] [--chunks 20] [--duration 4]``
(starts the upstream, llm-factory and nginx when installed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gateways
import loadgen
from fake_upstream import run as run_loop

__all__ = ["PATHS", "body", "chunks_per_stream", "marginal", "measure", "overheads"]


PATHS = {"pass-through": "bench-real-{}", "translated": "translated-real-{}"}
"""The gateway's two stream paths: an openai deployment (plain chunks forwarded as they are) and a
gemini one on the same upstream (Gemini's events translated to OpenAI chunks, validated,
serialised)."""


def body(chunks: int, path: str = "pass-through") -> bytes:
    return json.dumps(
        {
            "model": PATHS[path].format(chunks),
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ).encode()


def chunks_per_stream(chunks: int) -> int:
    """SSE events a gateway forwards per stream: role, ``chunks`` contents, finish with usage."""
    return chunks + 2


def nominal_seconds(chunks: int) -> float:
    """How long a stream of ``chunks`` lasts at the upstream: first token at 20 ms, then 20 ms apart."""
    return 0.02 * (chunks + 1)


def measure(
    gw: gateways.Gateway,
    concurrency: int,
    chunks: int,
    duration: float,
    warmup: float,
    path: str = "pass-through",
    *,
    burst: bool = False,
) -> dict[str, Any]:
    """One cell. The connections start spread over one stream's length (steady load: as many
    streams start in each instant as end); ``burst`` starts them all at once, so every round of
    streams arrives together (``concurrency`` new requests in one instant, again and again)."""
    samples: dict[str, float | None] = {}
    proc = gw.proc if gw.name != "direct" else None

    def window(edge: str) -> None:
        samples[edge] = proc.cpu_seconds() if proc is not None else None

    target = loadgen.Target("127.0.0.1", gw.port, gw.path)
    outcome = run_loop(
        loadgen.drive(
            target,
            body(chunks, path),
            concurrency=concurrency,
            duration=duration,
            warmup=warmup,
            stream=True,
            on_window=window,
            ramp=0.0 if burst else min(nominal_seconds(chunks), warmup),
        )
    )
    result = outcome.summary()
    lat = sorted(outcome.latencies)
    result["p90_ms"] = loadgen.percentile(lat, 90) * 1000 if lat else None
    start, end = samples.get("start"), samples.get("end")
    # Chunks forwarded in the window by Little's law (closed loop: ``concurrency`` streams always in
    # flight, each ``chunks_per_stream`` long, lasting the mean latency). Counting only the streams
    # that start and end inside the window would miss most of the chunks of long streams.
    mean = sum(lat) / len(lat) if lat else None
    streamed = concurrency * chunks_per_stream(chunks) / mean * duration if mean else 0
    result["chunks_per_s"] = streamed / duration if streamed else None
    cpu = end - start if start is not None and end is not None else None
    result["cpu_us_per_chunk"] = cpu / streamed * 1e6 if cpu is not None and streamed else None
    result["cpu_us_per_stream"] = (
        cpu / streamed * chunks_per_stream(chunks) * 1e6 if cpu is not None and streamed else None
    )
    result["rss_mb"] = proc.memory_mb("VmRSS") if proc is not None else None
    cell = {"target": gw.name, "path": path, "concurrency": concurrency, "chunks": chunks, **result}
    return {**cell, "arrivals": "burst"} if burst else cell


def marginal(cells: list[dict[str, Any]], target: str, path: str) -> tuple[int, float] | None:
    """(concurrency, CPU µs per extra chunk): the CPU per stream of the longest and the shortest
    streams measured at one concurrency, the difference over the chunks between them. Per-request
    costs (parsing the request, routing, the access log) cancel out."""
    mine = [
        c
        for c in cells
        if c["target"] == target
        and c.get("path", "pass-through") == path
        and c.get("cpu_us_per_stream")
        and not c.get("arrivals")
    ]
    for level in sorted({c["concurrency"] for c in mine}):
        at = sorted((c for c in mine if c["concurrency"] == level), key=lambda c: c["chunks"])
        if len(at) >= 2 and at[-1]["chunks"] > at[0]["chunks"]:
            extra = chunks_per_stream(at[-1]["chunks"]) - chunks_per_stream(at[0]["chunks"])
            return level, (at[-1]["cpu_us_per_stream"] - at[0]["cpu_us_per_stream"]) / extra
    return None


def overheads(cells: list[dict[str, Any]]) -> None:
    """Add each cell's full-stream overhead over ``direct`` at the same concurrency and length."""
    direct = {(c["concurrency"], c["chunks"], c.get("arrivals")): c for c in cells if c["target"] == "direct"}
    for cell in cells:
        ref = direct.get((cell["concurrency"], cell["chunks"], cell.get("arrivals")))
        if ref is None or cell["target"] == "direct" or not cell["requests"] or not ref["requests"]:
            cell["added_p50_ms"] = None
            continue
        cell["added_p50_ms"] = cell["p50_ms"] - ref["p50_ms"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", default="1,64,512", help="comma-separated levels")
    parser.add_argument("--chunks", type=int, default=20, choices=(20, 200))
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--no-nginx", action="store_true")
    parser.add_argument("--burst", action="store_true", help="every connection starts at once (see measure)")
    parser.add_argument(
        "--no-passthrough",
        action="store_true",
        help="run llm-factory with the stream pass-through off (every chunk parsed): the before/after",
    )
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    load_cpus, gateway_cpus = gateways.cores()
    if load_cpus:
        os.sched_setaffinity(0, load_cpus)
    cells: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="llm-factory-streams-") as tmp:
        workdir = Path(tmp)
        if args.no_passthrough:
            # The gateway process imports this first (``sitecustomize``): its streams take the parsed path.
            (workdir / "nopass").mkdir()
            (workdir / "nopass" / "sitecustomize.py").write_text(
                "import llm_factory_server._chat as chat\nchat.wants_raw = lambda gateway: False\n"
            )
            os.environ["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(workdir / "nopass"), os.environ.get("PYTHONPATH")])
            )
        upstream = gateways.start_upstream(workdir, load_cpus)
        targets: list[gateways.Gateway] = [upstream]
        try:
            targets.append(gateways.start_ours(workdir, gateway_cpus, upstream.port, args.workers))
            if not args.no_nginx:
                ng = gateways.start_nginx(workdir, gateway_cpus, upstream.port, None)
                if isinstance(ng, str):
                    print(f"nginx skipped: {ng}", file=sys.stderr)
                else:
                    targets.append(ng)
            for gw in targets:
                for level in levels:
                    cell = measure(gw, level, args.chunks, args.duration, args.warmup, burst=args.burst)
                    cells.append(cell)
                    print(
                        f"{gw.name} c={level}: {cell['rps']:.0f} streams/s p50 {cell['p50_ms']:.1f} ms "
                        f"cpu/chunk {cell['cpu_us_per_chunk']} errors {cell['errors']}",
                        file=sys.stderr,
                    )
        finally:
            for gw in targets:
                if gw.proc is not None:
                    gw.proc.stop()
    overheads(cells)
    print(json.dumps(cells, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
