"""The gateway benchmark, in one command:

    python bench/run.py            # full run, a few minutes
    python bench/run.py --quick    # about a minute

It measures, in one run on this machine, a direct call to a fast fake upstream, the same call
through llm-factory's server, and (when found) through nginx as a plain reverse proxy and through
LiteLLM's proxy: non-streaming and streaming (20 chunks), at concurrency 1 / 16 / 64. The fake
upstream and the load generator share one core and the gateway gets the other (where the machine
has two). The load driver is wrk when installed, else the bundled asyncio generator.

Reported: requests (or streams) per second, p50 / p99 latency, added latency vs direct, time to
first byte, gateway CPU µs per request, peak RSS, start-up time to the first 200, errors; whether
stream chunks are forwarded one by one; memory after a long run; the library path (``chat_async``
vs a bare httpx call vs ``litellm.acompletion``) and import times. Output: markdown on stdout and
in ``--markdown``, everything in ``--json`` (default ``bench/.cache/``).

LiteLLM is found through ``--litellm PATH`` (its executable or venv), ``$BENCH_LITELLM`` or PATH;
nginx through ``--nginx PATH`` or PATH; wrk through ``--wrk PATH`` or PATH (``--wrk none`` forces
the bundled generator). Whatever is missing is skipped with a note.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gateways
import imports
import library_overhead
import loadgen
import profiles
import report
import wrk
from fake_upstream import run as run_loop

LITELLM_PIN = "litellm[proxy]==1.106.2"


@dataclass(frozen=True)
class Profile:
    duration: float
    warmup: float
    concurrency: tuple[int, ...]
    soak_requests: int
    library_calls: int
    import_repeats: int
    paced_repeats: int
    stream_levels: tuple[int, ...] = ()
    """Realistic streams (``streams.py``): concurrency levels of the first length."""
    stream_lengths: tuple[tuple[int, float], ...] = ()
    """(chunks per stream, seconds counted); lengths after the first run at the top level only."""
    p99_levels: tuple[int, ...] = ()
    scaling: bool = False


PROFILES = {
    "full": Profile(
        4.0,
        1.0,
        (1, 16, 64),
        100_000,
        2000,
        5,
        3,
        stream_levels=(1, 64, 512, 2048),
        stream_lengths=((20, 4.0), (200, 10.0)),
        p99_levels=(1, 2, 4, 8, 16, 32, 64, 128),
        scaling=True,
    ),
    "quick": Profile(
        1.5,
        0.5,
        (1, 16, 64),
        10_000,
        500,
        2,
        1,
        stream_levels=(64, 512),
        stream_lengths=((20, 2.0),),
        p99_levels=(1, 4, 16, 64),
        scaling=True,
    ),
    # The smoke test's: seconds in all, no wrk / nginx / LiteLLM needed.
    "tiny": Profile(0.3, 0.1, (1, 4), 0, 20, 1, 1, stream_levels=(4,), stream_lengths=((20, 1.0),), p99_levels=(1,)),
}

STREAM_BODY = json.dumps(
    {"model": "bench-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}
).encode()
PACED_BODY = json.dumps(
    {"model": "bench-paced", "messages": [{"role": "user", "content": "hi"}], "stream": True}
).encode()
BODIES = {"json": gateways.CHAT_BODY, "stream": STREAM_BODY}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.profile = PROFILES[args.profile]
        self.workdir = workdir
        self.load_cpus, self.gateway_cpus = gateways.cores()
        self.wrk = wrk.find_wrk(args.wrk) if args.profile != "tiny" else None
        self.litellm = None if args.no_litellm else gateways.litellm_command(args.litellm)
        self.results: dict[str, Any] = {"cells": [], "gateways": {}, "notes": [], "streams": [], "p99_sweep": []}
        self.stream_levels, note = profiles.fd_limit_note(self.profile.stream_levels)
        if note:
            self.results["notes"].append(note)

    # -- one measurement ------------------------------------------------------------------------

    def load(self, gw: gateways.Gateway, mode: str, concurrency: int, duration: float) -> dict[str, Any]:
        """Run load against ``gw``; the gateway's CPU time is sampled around the counted window."""
        samples: dict[str, float | None] = {}
        proc = gw.proc if gw.name != "direct" else None

        def window(edge: str) -> None:
            samples[edge] = proc.cpu_seconds() if proc is not None else None

        body = BODIES[mode]
        if self.wrk is not None:
            url = f"http://127.0.0.1:{gw.port}{gw.path}"
            warm = max(1.0, self.profile.warmup)
            wrk.run_wrk(
                self.wrk, url, body, gateways.API_KEY, concurrency=concurrency, duration=warm, workdir=self.workdir
            )
            window("start")
            result = wrk.run_wrk(
                self.wrk, url, body, gateways.API_KEY, concurrency=concurrency, duration=duration, workdir=self.workdir
            )
            window("end")
        else:
            target = loadgen.Target("127.0.0.1", gw.port, gw.path)
            outcome = run_loop(
                loadgen.drive(
                    target,
                    body,
                    concurrency=concurrency,
                    duration=duration,
                    warmup=self.profile.warmup,
                    stream=mode == "stream",
                    on_window=window,
                )
            )
            result = outcome.summary()
        start, end = samples.get("start"), samples.get("end")
        result["cpu_us_per_request"] = (
            (end - start) / result["requests"] * 1e6
            if start is not None and end is not None and result["requests"]
            else None
        )
        return result

    def ttfb(self, gw: gateways.Gateway) -> float | None:
        target = loadgen.Target("127.0.0.1", gw.port, gw.path)
        outcome = run_loop(
            loadgen.drive(
                target,
                STREAM_BODY,
                concurrency=1,
                duration=self.profile.duration / 2,
                warmup=self.profile.warmup / 2,
                stream=True,
            )
        )
        return outcome.summary()["ttfb_p50_ms"]

    # -- one gateway ----------------------------------------------------------------------------

    def measure(self, gw: gateways.Gateway) -> None:
        info: dict[str, Any] = {"startup_s": gw.startup_s, "note": gw.note}
        self.results["gateways"][gw.name] = info
        for mode in ("json", "stream"):
            for concurrency in self.profile.concurrency:
                log(f"  {gw.name}: {mode} at concurrency {concurrency}")
                cell = self.load(gw, mode, concurrency, self.profile.duration)
                if mode == "stream" and concurrency == 1 and cell["ttfb_p50_ms"] is None:
                    cell["ttfb_p50_ms"] = self.ttfb(gw)
                self.results["cells"].append({"target": gw.name, "mode": mode, "concurrency": concurrency, **cell})
        log(f"  {gw.name}: chunk forwarding")
        target = loadgen.Target("127.0.0.1", gw.port, gw.path)
        try:
            info["paced"] = run_loop(loadgen.paced_check(target, PACED_BODY, self.profile.paced_repeats))
        except (OSError, TimeoutError) as exc:
            info["paced"] = {"error": repr(exc)}
        if gw.name != "litellm":  # LiteLLM would take minutes per level here; its table row says enough
            warm = self.profile.warmup
            self.results["streams"] += profiles.realistic(
                gw, self.stream_levels, self.profile.stream_lengths, warm, log
            )
            self.results["p99_sweep"] += profiles.p99_sweep(
                gw, self.profile.p99_levels, self.profile.duration, warm, log
            )
        if gw.proc is not None and gw.name != "direct":
            info["peak_rss_mb"] = gw.proc.memory_mb("VmHWM")
            info["rss_mb"] = gw.proc.memory_mb("VmRSS")
        if gw.name == "llm-factory" and self.profile.soak_requests:
            info["soak"] = self.soak(gw)

    def soak(self, gw: gateways.Gateway) -> dict[str, Any]:
        """Many more non-streaming requests at concurrency 64; RSS after each segment."""
        assert gw.proc is not None
        total = 0
        points: list[tuple[int, float | None]] = []
        log(f"  {gw.name}: soak, {self.profile.soak_requests} requests")
        while total < self.profile.soak_requests:
            result = self.load(gw, "json", 64, 2.0)
            total += result["requests"] + result["errors"]
            points.append((total, gw.proc.memory_mb("VmRSS")))
            if result["requests"] == 0:
                break
        first = next((p for p in points if p[0] >= self.profile.soak_requests // 10), points[0])
        return {"requests": total, "rss_mb_after": points[-1][1], "rss_mb_at": first, "points": points}

    # -- the run --------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        if self.load_cpus:
            os.sched_setaffinity(0, self.load_cpus)  # this process drives the load: the load core
        else:
            self.results["notes"].append("one core only: nothing pinned, numbers include contention")
        self.results["environment"] = self.environment()
        log(
            f"upstream (cores {self.load_cpus or 'any'}); gateway on cores {self.gateway_cpus or 'any'}; "
            f"driver {self.results['environment']['driver']}"
        )
        upstream = gateways.start_upstream(self.workdir, self.load_cpus)
        try:
            self.measure(upstream)
            self.run_gateways(upstream.port)
            if self.profile.scaling and self.args.workers == 1:
                self.results["workers"] = profiles.workers_scaling(
                    self.workdir, upstream.port, self.profile.duration, self.profile.warmup, log
                )
            log("library path")
            litellm_python = gateways.litellm_python(self.litellm) if self.litellm else None
            self.results["library"] = library_overhead.run_paths(
                upstream.port, self.profile.library_calls, self.gateway_cpus, litellm_python
            )
        finally:
            assert upstream.proc is not None
            upstream.proc.stop()
        log("import times")
        self.results["imports"] = imports.measure_imports(
            self.profile.import_repeats, gateways.litellm_python(self.litellm) if self.litellm else None
        )
        return self.results

    def run_gateways(self, upstream: int) -> None:
        starters: list[tuple[str, Callable[[], gateways.Gateway | str]]] = [
            ("llm-factory", lambda: gateways.start_ours(self.workdir, self.gateway_cpus, upstream, self.args.workers)),
        ]
        if self.args.profile != "tiny":
            if not self.args.no_nginx:
                starters.append(
                    ("nginx", lambda: gateways.start_nginx(self.workdir, self.gateway_cpus, upstream, self.args.nginx))
                )
            if self.litellm is not None:
                command = self.litellm
                starters.append(
                    ("litellm", lambda: gateways.start_litellm(self.workdir, self.gateway_cpus, upstream, command))
                )
            elif self.args.no_litellm:
                self.results["notes"].append("LiteLLM skipped (--no-litellm)")
            else:
                self.results["notes"].append(
                    f"LiteLLM skipped: not found (pip install '{LITELLM_PIN}' into a venv, then --litellm VENV)"
                )
        for name, start in starters:
            log(f"{name}: starting")
            try:
                gw = start()
            except RuntimeError as exc:
                self.results["notes"].append(f"{name} skipped: {exc}")
                continue
            if isinstance(gw, str):
                self.results["notes"].append(f"{name} skipped: {gw}")
                continue
            log(f"{name}: first 200 after {gw.startup_s:.2f} s")
            try:
                self.measure(gw)
            finally:
                assert gw.proc is not None
                gw.proc.stop()

    def environment(self) -> dict[str, Any]:
        env: dict[str, Any] = {
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "pinned": bool(self.load_cpus),
            "driver": "wrk" if self.wrk else "bundled asyncio generator",
            "profile": self.args.profile,
            "gateway_workers": self.args.workers,
        }
        python = gateways.litellm_python(self.litellm) if self.litellm else None
        if python:
            env["litellm"] = _version([python, "-c", "import importlib.metadata as m; print(m.version('litellm'))"])
        return env


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except OSError:
        return "unknown"
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[-1] if text else "unknown"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick",
        dest="profile",
        action="store_const",
        const="quick",
        default="full",
        help="shorter runs (about a minute)",
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), help="full (default), quick, tiny (the smoke test)")
    parser.add_argument("--litellm", help="LiteLLM's executable or venv (default $BENCH_LITELLM, then PATH)")
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--nginx", help="nginx executable (default: PATH)")
    parser.add_argument("--no-nginx", action="store_true")
    parser.add_argument("--wrk", help="wrk executable, or 'none' for the bundled generator (default: PATH)")
    parser.add_argument("--workers", type=int, default=1, help="gateway worker processes (default 1: one core)")
    parser.add_argument("--json", type=Path, help="write every number here (default bench/.cache/bench-<time>.json)")
    parser.add_argument("--markdown", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    if args.profile is None:
        args.profile = "full"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llm-factory-bench-") as tmp:
        results = Bench(args, Path(tmp)).run()
    results["elapsed_s"] = time.perf_counter() - started
    text = report.render(results)
    print(text)
    out = args.json
    if out is None:
        out = gateways.BENCH_DIR / ".cache" / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    if args.markdown:
        args.markdown.write_text(text + "\n")
    log(f"JSON: {out}  ({results['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
