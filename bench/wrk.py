"""Running wrk (when installed) as the load driver: a Lua script posts the chat body and prints
the numbers the bench needs as one JSON line."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["find_wrk", "run_wrk"]

SCRIPT = r"""
wrk.method = "POST"
wrk.body = [==[%(body)s]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,"errors":%%d,' ..
    '"error_kinds":"connect=%%d read=%%d write=%%d status=%%d timeout=%%d"}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def find_wrk(option: str | None) -> str | None:
    if option == "none":
        return None
    return option or shutil.which("wrk")


def run_wrk(
    binary: str,
    url: str,
    body: bytes,
    key: str,
    *,
    concurrency: int,
    duration: float,
    workdir: Path,
) -> dict[str, Any]:
    """One closed-loop run (one wrk thread, ``concurrency`` connections)."""
    script = workdir / "post.lua"
    script.write_text(SCRIPT % {"body": body.decode(), "key": key})
    seconds = max(1, math.ceil(duration))
    argv = [binary, "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "30s", "-s", str(script), url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {out.stdout[-500:]} {out.stderr[-500:]}")
    data = json.loads(line[len("WRKJSON ") :])
    secs = data["duration_us"] / 1e6
    return {
        "requests": data["requests"],
        "errors": data["errors"],
        "rps": data["requests"] / secs if secs else 0.0,
        "p50_ms": data["p50_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000,
        "ttfb_p50_ms": None,
        "error_samples": [data["error_kinds"]] if data["errors"] else [],
    }
