"""Soak test: the gateway under concurrency with a random mix of upstream faults, checking that no
request is lost or truncated and that nothing leaks.

    python bench/soak.py                          # 120 s at concurrency 64
    python bench/soak.py --duration 30 --concurrency 32 --seed 3

Everything runs in this process on 127.0.0.1: a ``FaultyUpstream`` serving ``primary`` (a
``Fault.mix`` of every fault) and ``backup`` (mostly healthy), the gateway (uvicorn in a thread),
and ``concurrency`` raw-HTTP clients asking for streams and plain replies at random. Each answer
is checked against what the fake sent:

* a 200 reply or a stream ending in ``[DONE]`` must carry the whole text of the model it names,
  a finish reason and usage (no truncated success);
* any other reply must be an explicit error: an OpenAI error envelope, or a stream whose last
  event is an error event (never a silent end); a streamed error keeps a prefix of the text;
* a transport failure or a client timeout is a lost request.

After a warm-up phase (same load) and again after the run, with the clients closed, it takes
the open file descriptors, the fake's open connections and the RSS: they must come back to the
warm-up level (fds and connections: within the keep-alive pool's size; RSS: a generous bound; a
leak check, not a performance measurement). Bounded: every loop stops at its deadline. The CI test
``tests/reliability/server/test_soak.py`` runs a short profile of ``run()``. ``SOAK_TRACEBACKS=1``
prints the gateway's and uvicorn's error records (with tracebacks) to stderr as they happen; a lost
request is reported with its transport's cause chain.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from llm_factory_core import LLMFactory, ModelConfig
from llm_factory_core.testing import Fault, FaultyUpstream

__all__ = ["Report", "run", "upstream_faults"]

TEXT = Fault.ok().text
TIMEOUTS = {"first_token_timeout": 0.5, "chunk_timeout": 0.5, "timeout": 2.0, "connect_timeout": 2.0}
ROUTER: dict[str, Any] = {
    "fallbacks": {"primary": ["backup"]},
    "num_retries": 1,
    "cooldown": 0.02,
    "cooldown_max": 0.1,
    "retry_backoff": 0.01,
    "retry_backoff_max": 0.05,
    "max_cooldown_wait": 0.5,
    "timeout": 6.0,
}
CLIENT_TIMEOUT = 30.0
"""Far beyond the gateway's own deadline: a client timeout means the gateway lost the request."""


def upstream_faults(seed: int) -> dict[str, Fault]:
    """``primary`` fails about half the time, in every way; ``backup`` mostly answers."""
    primary = Fault.mix(
        [
            Fault.ok(),
            Fault.rate_limit(retry_after=0.05),
            Fault.rate_limit(),
            Fault.server_error(500),
            Fault.server_error(503),
            Fault.reset(),
            Fault.hang(),
            Fault.slow_first_token(0.05),
            Fault.cut(0),
            Fault.cut(3),
            Fault.cut(5, reset=True),
            Fault.stall(2),
            Fault.malformed_event(2),
            Fault.no_done(),
            Fault.context_length(),
            Fault.content_filter(),
        ],
        [40, 4, 4, 4, 4, 4, 1, 4, 3, 4, 4, 1, 4, 4, 3, 2],
        seed=seed,
    )
    backup = Fault.mix(
        [Fault.ok(), Fault.server_error(503), Fault.cut(4), Fault.malformed_event(1), Fault.no_done()],
        [80, 5, 5, 5, 5],
        seed=seed + 1,
    )
    return {"primary": primary, "backup": backup}


@dataclass
class Report:
    requests: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    """``answered``, ``error <status>``, ``stream-error`` (all fine) and ``gateway-crash`` (an
    explicit 500 from an unhandled exception: a bug); problems are listed in ``problems``."""
    problems: list[str] = field(default_factory=list)
    """Lost, truncated-as-success, malformed or silent replies (must stay empty)."""
    upstream_requests: int = 0
    fds: dict[str, int] = field(default_factory=dict)
    connections: dict[str, int] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)
    crash_types: Counter[str] = field(default_factory=Counter)
    """Exception types the gateway logged as unexpected failures."""

    def summary(self) -> str:
        return (
            f"{self.requests} requests ({self.upstream_requests} upstream attempts): {dict(self.outcomes)}; "
            f"problems: {len(self.problems)}; fds {self.fds}; upstream connections {self.connections}; "
            f"RSS MB {self.rss_mb}" + (f"; gateway crashes: {dict(self.crash_types)}" if self.crash_types else "")
        )


class _CrashLog(logging.Handler):
    """Counts the exception types of the gateway's "failed unexpectedly" log records."""

    def __init__(self, report: Report) -> None:
        super().__init__(logging.ERROR)
        self.report = report

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[0] is not None:
            self.report.crash_types[f"{record.exc_info[0].__name__}: {record.exc_info[1]}"] += 1
        if os.environ.get("SOAK_TRACEBACKS"):  # the records themselves, to debug a failing soak
            sys.stderr.write(f"{record.name}: {logging.Formatter().format(record)}\n")


# -- checking one reply -------------------------------------------------------------------------


def _expected(model: Any) -> str | None:
    return TEXT.replace("{model}", model) if model in ("primary", "backup") else None


def _envelope(data: Any) -> bool:
    error = data.get("error") if isinstance(data, dict) else None
    return isinstance(error, dict) and bool(error.get("message")) and bool(error.get("type"))


def check_json(status: int, body: bytes) -> str:
    """The outcome of a non-streaming reply; raises AssertionError for a bad one."""
    data = json.loads(body)
    if status != 200:
        assert _envelope(data), f"{status} without an error envelope: {body[:200]!r}"
        return f"error {status}"
    text = data["choices"][0]["message"]["content"]
    assert text == _expected(data["model"]), f"truncated or foreign reply from {data['model']!r}: {text!r}"
    assert data["choices"][0]["finish_reason"] == "stop" and data["usage"]["completion_tokens"] > 0
    return "answered"


def check_stream(status: int, body: bytes) -> str:
    if status != 200:
        return check_json(status, body)
    raw = body.decode()
    assert raw.endswith("\n\n"), f"stream ends mid-event: {raw[-120:]!r}"
    events = [e.removeprefix("data: ") for e in raw[:-2].split("\n\n")]
    text, model, finish, usage = "", None, None, None
    for data in events[:-1]:
        chunk = json.loads(data)
        assert "error" not in chunk, "an error event before the end"
        model = chunk["model"]
        usage = chunk.get("usage") or usage
        for choice in chunk["choices"]:
            text += choice["delta"].get("content") or ""
            finish = choice.get("finish_reason") or finish
    last = events[-1]
    if last == "[DONE]":
        assert text == _expected(model), f"truncated stream from {model!r} ended with [DONE]: {text!r}"
        assert finish == "stop" and usage is not None and usage["completion_tokens"] > 0
        return "answered"
    error = json.loads(last)
    assert _envelope(error), f"stream without [DONE] and without an error event: {raw[-200:]!r}"
    expected = _expected(model) or ""
    assert expected.startswith(text), f"streamed text is not the fake's: {text!r}"
    return "stream-error"


# -- the load -----------------------------------------------------------------------------------


async def _load(url: str, concurrency: int, until: float, rng: random.Random, report: Report) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=CLIENT_TIMEOUT, limits=limits) as client:

        async def worker() -> None:
            while time.monotonic() < until:
                stream = rng.random() < 0.6
                body: dict[str, Any] = {"model": "primary", "messages": [{"role": "user", "content": "soak"}]}
                if stream:
                    body.update(stream=True, stream_options={"include_usage": True})
                report.requests += 1
                try:
                    response = await client.post("/v1/chat/completions", json=body)
                    outcome = (check_stream if stream else check_json)(response.status_code, response.content)
                    if b"failed unexpectedly" in response.content:
                        outcome = "gateway-crash"  # explicit, but a bug: an unhandled exception
                except (httpx.HTTPError, AssertionError, ValueError, KeyError, TypeError) as exc:
                    why, cause = "", exc.__cause__ or exc.__context__
                    while cause is not None:  # the transport's own exception says what happened
                        why += f" <- {type(cause).__name__}: {cause!r}"
                        cause = cause.__cause__ or cause.__context__
                    report.problems.append(f"{'stream' if stream else 'chat'}: {type(exc).__name__}: {exc}{why}")
                    continue
                report.outcomes[outcome] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def _settle(upstream: FaultyUpstream, key: str, report: Report) -> None:
    await asyncio.sleep(0.3)  # closed sockets' callbacks run; the gateway finishes its logging
    gc.collect()
    report.fds[key] = _fds()
    report.connections[key] = upstream.open_connections
    report.rss_mb[key] = round(_rss_mb(), 1)


async def _run(duration: float, warmup: float, concurrency: int, seed: int) -> Report:
    import uvicorn  # the server's dependencies, imported only when a soak runs

    from llm_factory_server import ServerSettings, create_app, uvicorn_options

    report = Report()
    rng = random.Random(seed)
    crash_log = _CrashLog(report)
    server_log = logging.getLogger("llm_factory_server")
    level = server_log.level
    server_log.addHandler(crash_log)
    if server_log.getEffectiveLevel() > logging.ERROR:
        server_log.setLevel(logging.ERROR)
    # uvicorn reports an exception that escaped the app ("Exception in ASGI application") there.
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addHandler(crash_log)
    # Keep no request records: a soak's fake must not grow in memory itself.
    async with FaultyUpstream(upstream_faults(seed), keep_requests=0) as upstream:
        configs = [
            ModelConfig(
                provider="openai",
                model_name=m,
                name=m,
                api_base=upstream.base_url,
                api_key=f"sk-soak-{m}-0000",
                **TIMEOUTS,
            )
            for m in ("primary", "backup")
        ]
        factory = LLMFactory(configs, **ROUTER)
        settings = ServerSettings(log_requests=False)
        app = create_app(factory, settings=settings)
        # As ``llm-factory serve`` runs it: uvicorn's default loop (uvloop when installed), the
        # gateway's protocol and connection settings (its keep-alive outlives httpx's idle limit).
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_config=None, access_log=False, loop="auto", **uvicorn_options(settings)
        )
        server = uvicorn.Server(config)
        task = asyncio.get_running_loop().create_task(server.serve())
        try:
            while not server.started:
                await asyncio.sleep(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            url = f"http://127.0.0.1:{port}"
            await _load(url, concurrency, time.monotonic() + warmup, rng, report)
            await _settle(upstream, "warm", report)
            await _load(url, concurrency, time.monotonic() + duration, rng, report)
            await _settle(upstream, "after", report)
        finally:
            server.should_exit = True
            await task
            await factory.aclose()
            server_log.removeHandler(crash_log)
            uvicorn_log.removeHandler(crash_log)
            server_log.setLevel(level)
        report.upstream_requests = upstream.total_requests
    return report


def run(duration: float = 120.0, *, warmup: float = 10.0, concurrency: int = 64, seed: int = 1) -> Report:
    """Warm up, then soak for ``duration`` seconds; returns the report (see ``check``)."""
    return asyncio.run(_run(duration, warmup, concurrency, seed))


def check(report: Report, concurrency: int, *, crashes: bool = True) -> list[str]:
    """What went wrong, if anything: problems, leaks beyond the keep-alive pool, and (with
    ``crashes``) requests the gateway answered with its unexpected-failure 500."""
    failures = [*report.problems[:20]]
    if crashes and report.outcomes["gateway-crash"]:
        failures.append(
            f"{report.outcomes['gateway-crash']} request(s) crashed the gateway (its log has the tracebacks)"
        )
    if len(report.problems) > 20:
        failures.append(f"... {len(report.problems) - 20} more problems")
    if not report.outcomes["answered"]:
        failures.append("no request was answered")
    # Each idle pooled upstream connection is two descriptors here (both ends are in-process).
    pool = 2 * concurrency + 16
    if report.fds["after"] > report.fds["warm"] + pool:
        failures.append(f"file descriptors grew from {report.fds['warm']} to {report.fds['after']}")
    if report.connections["after"] > report.connections["warm"] + concurrency:
        failures.append(f"upstream connections grew from {report.connections['warm']} to {report.connections['after']}")
    if report.rss_mb["after"] > report.rss_mb["warm"] * 1.5 + 50:
        failures.append(f"RSS grew from {report.rss_mb['warm']} MB to {report.rss_mb['after']} MB")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of soak after the warm-up")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verbose", action="store_true", help="show the gateway's and the core's log")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.verbose else logging.CRITICAL)
    if not args.verbose:
        logging.getLogger("llm_factory_server").propagate = False  # tracebacks are summarised instead
    report = run(args.duration, warmup=args.warmup, concurrency=args.concurrency, seed=args.seed)
    print(report.summary())
    failures = check(report, args.concurrency)
    for failure in failures:
        print("FAIL:", failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
