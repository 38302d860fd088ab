"""The bench command runs from a fresh checkout: its tiny profile, in seconds, with nothing but the
project's own dependencies (no wrk, nginx or LiteLLM). Numbers are not checked (no timed
assertions), only that every part ran and produced a complete, error-free report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the bench reads /proc")


def test_the_bench_command_runs_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    markdown = tmp_path / "bench.md"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            "--profile",
            "tiny",
            "--no-litellm",
            "--no-nginx",
            "--wrk",
            "none",
            "--json",
            str(out),
            "--markdown",
            str(markdown),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(out.read_text())

    cells = {(c["target"], c["mode"], c["concurrency"]): c for c in results["cells"]}
    for target in ("direct", "llm-factory"):
        for mode in ("json", "stream"):
            for concurrency in (1, 4):
                cell = cells[(target, mode, concurrency)]
                assert cell["requests"] > 0 and cell["errors"] == 0, cell
    assert cells[("llm-factory", "stream", 1)]["ttfb_p50_ms"] is not None
    assert cells[("llm-factory", "json", 4)]["cpu_us_per_request"] is not None

    streams = {(c["target"], c.get("path")): c for c in results["streams"]}
    for path in ("pass-through", "translated"):  # an openai and a gemini deployment on the fake upstream
        cell = streams[("llm-factory", path)]
        assert cell["requests"] > 0 and cell["errors"] == 0, cell

    ours = results["gateways"]["llm-factory"]
    assert ours["startup_s"] > 0 and ours["peak_rss_mb"] > 0
    assert ours["paced"]["events"] > 0  # the chunk-forwarding check ran through the gateway

    library = results["library"]
    for path in ("bare_httpx", "chat_async", "chat_async_httpx_transport"):
        assert library[path]["calls"] > 0, library[path]
    assert str(library["litellm_acompletion"]).startswith("skipped")
    assert results["imports"]["llm_factory_core"] > 0
    assert results["imports"]["plugins_only_when_configured"] is True

    report = markdown.read_text()
    assert report == run.stdout.strip() + "\n"
    assert "| llm-factory | non-streaming | 4 |" in report
    assert "LiteLLM skipped (--no-litellm)" not in report  # the tiny profile compares with nothing


def _measured(script: str, *args: str) -> list[dict[str, Any]]:
    """Run ``bench/<script>`` with ``args``; its JSON cells."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args], capture_output=True, text=True, timeout=180, check=False
    )
    assert run.returncode == 0, run.stderr[-3000:]
    cells: list[dict[str, Any]] = json.loads(run.stdout)
    return cells


def test_the_splice_floor_measurement_runs_and_relays_streams_whole() -> None:
    cells = _measured("splice_floor.py", "--concurrency", "4", "--chunks", "20", "--duration", "1")
    assert {c["target"] for c in cells} == {"splice", "splice+check"}
    for cell in cells:
        assert cell["requests"] > 0 and cell["errors"] == 0, cell


def test_the_upstream_client_floor_measurement_runs_every_client() -> None:
    cells = _measured("client_floor.py", "--connections", "2", "--requests", "200")
    assert [c["client"] for c in cells] == ["transport", "aiohttp", "protocol"]
    for cell in cells:
        assert cell["cpu_us_per_request"] > 0 and cell["rps"] > 0, cell
