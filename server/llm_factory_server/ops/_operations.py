"""Client keys, limits, budgets and usage records for one gateway: what the doors call.

Per request: ``admit`` (after the body is read: the key's model list, RPM, TPM and budget, all
checked against in-memory counters) and ``finish`` (tokens to the TPM counter, an event to the
usage recorder). Everything else (pricing, the database, Redis) happens off the request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import anyio
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from llm_factory_core import LLMFactory

from .._access import presented_key
from .._errors import ErrorReply, simple
from ._counters import Counters
from ._db import display
from ._keys import KeyRecord, KeyStore
from ._prices import Pricing, TokenCounts
from ._queries import period_bounds
from ._recorder import DatabaseSink, UsageEvent, UsageRecorder

__all__ = ["Operations", "Ticket"]

log = logging.getLogger("llm_factory_server.ops")


class Ticket:
    """Who is calling, and which counters the request's tokens and cost go to."""

    __slots__ = ("endpoint", "key", "key_id", "key_name", "prompt_bytes", "spend", "tpm", "usage")

    def __init__(self, key_id: str | None, key_name: str, endpoint: str) -> None:
        self.key_id = key_id
        self.key_name = key_name
        self.endpoint = endpoint
        self.key: KeyRecord | None = None
        self.tpm: tuple[str, float] | None = None
        self.spend: tuple[str, float] | None = None
        self.prompt_bytes = 0
        self.usage: Any = None
        """The reply's usage once known (a ``CompletionUsage``, or an embeddings' usage)."""


def _reset(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _limited(message: str, type_: str, code: str, retry_after: float, extra: list[tuple[bytes, bytes]]) -> ErrorReply:
    status, body, _ = simple(429, message, type_, code)
    seconds = str(max(1, math.ceil(retry_after))).encode()
    return status, body, [(b"retry-after", seconds), *extra]


class Operations:
    def __init__(self, factory: LLMFactory, settings: Any) -> None:
        self.settings = settings
        admin = settings.admin_key.get_secret_value() if settings.admin_key is not None else None
        self._admin = admin.encode() if admin else None
        self.managed = self._admin is not None
        """Managed keys (and the admin API) are on when ``server.admin_key`` is set."""
        self.db_path: str | None = settings.usage_db
        self.keys = KeyStore(self.db_path)
        self.pricing = Pricing(dict(settings.prices))
        health = factory.health
        shared_url = getattr(health, "url", None) if hasattr(health, "prefix") else None
        self.counters = Counters(shared_url, getattr(health, "prefix", "llm_factory:default:"))
        self._static = {
            hashlib.sha256(k.get_secret_value().encode()).digest(): f"api_keys[{i}]"
            for i, k in enumerate(settings.api_keys)
        }
        deployments = {d.name: (d.provider_key, d.settings.model) for d in factory.deployments}
        self.recorder = UsageRecorder(
            DatabaseSink(self.db_path),
            self.pricing,
            deployments=deployments,
            capacity=settings.usage_queue,
            on_cost=self._costs_from_thread,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._refreshing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.on_first_record: Callable[[], None] | None = None
        """Called once, at the first usage record (the status page shows usage from then on)."""
        if self.managed:
            try:
                self._load()
            except Exception as exc:  # the database is down: no managed key works until it is back
                log.error("could not read client keys from %s: %s; retrying on use", display(self.db_path), exc)
                self.keys.loaded_at = time.monotonic()

    # -- client keys ----------------------------------------------------------------------------------

    def is_admin(self, presented: bytes | None) -> bool:
        return self._admin is not None and presented is not None and hmac.compare_digest(presented, self._admin)

    def is_client_key(self, presented: bytes) -> bool:
        if not self.managed:
            return False
        if self.keys.lookup(presented) is not None:
            self._maybe_refresh()  # revocations elsewhere (another process, the CLI) arrive within a second
            return True
        if self.keys.remote:
            self._maybe_refresh()  # PostgreSQL: never a network call on the event loop
            return False
        if time.monotonic() - self.keys.loaded_at >= self.keys.refresh and not self._refreshing:
            # An unknown key may be one just created elsewhere: re-read the keys table now (a small
            # SQLite read, at most once per refresh interval, however many wrong keys arrive).
            try:
                self.keys.load()
            except Exception as exc:  # keep the keys we have
                log.warning("could not re-read client keys: %s", exc)
                self.keys.loaded_at = time.monotonic()
            return self.keys.lookup(presented) is not None
        return False

    def _load(self) -> None:
        self._seed(self._read())

    def _read(self) -> list[tuple[str, float, float]]:
        """Keys from the database, and each budgeted key's spend so far in its period (any thread)."""
        self.keys.load()
        since: dict[str, float] = {}
        ends: dict[str, tuple[str, float]] = {}
        for record in self.keys.by_hash.values():
            if record.budget is not None:
                start, end, label = period_bounds(record.budget_period)
                since[record.id] = start
                ends[record.id] = (f"s:{record.id}:{label}", end)
        return [(*ends[key_id], spent) for key_id, spent in self.keys.spend(since).items()]

    def _seed(self, spends: list[tuple[str, float, float]]) -> None:
        """On the event loop (the counters are not shared with threads)."""
        for name, end, spent in spends:
            self.counters.seed(name, spent, end)

    def _maybe_refresh(self) -> None:
        if self._refreshing or time.monotonic() - self.keys.loaded_at < self.keys.refresh:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called outside the gateway's loop: nothing to schedule on
            return
        self._refreshing = True

        async def refresh() -> None:
            try:
                self._seed(await anyio.to_thread.run_sync(self._read))
            except Exception as exc:
                log.warning("could not re-read client keys: %s", exc)
                self.keys.loaded_at = time.monotonic()
            finally:
                self._refreshing = False

        task = loop.create_task(refresh())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the request path -----------------------------------------------------------------------------

    async def admit(
        self, headers: Iterable[tuple[bytes, bytes]], model: str | None, endpoint: str, prompt_bytes: int = 0
    ) -> Ticket | ErrorReply:
        """Who calls, or the reply refusing the call (model not allowed, over a limit or budget).
        ``check_access`` has accepted the key already."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        presented = presented_key(headers)
        if presented is None:
            return Ticket(None, "-", endpoint)
        digest = hashlib.sha256(presented).digest()
        label = self._static.get(digest)
        if label is not None or not self.managed:
            return Ticket(None, label or "-", endpoint)
        self._maybe_refresh()
        record = self.keys.lookup(presented)
        if record is None:  # revoked or expired since check_access
            status, body, _ = simple(401, "This API key was revoked or has expired.", "invalid_request_error")
            return status, body, [(b"www-authenticate", b"Bearer")]
        ticket = Ticket(record.id, record.name, endpoint)
        ticket.key = record
        ticket.prompt_bytes = prompt_bytes
        now = time.time()
        minute = int(now // 60)
        minute_end = (minute + 1) * 60.0
        rpm = (f"r:{record.id}:{minute}", minute_end)
        if record.tpm is not None:
            ticket.tpm = (f"t:{record.id}:{minute}", minute_end)
        if record.budget is not None:
            _, end, period = period_bounds(record.budget_period, now)
            ticket.spend = (f"s:{record.id}:{period}", end)
        counters = self.counters
        if counters.shared:
            missing = [c for c in (rpm, ticket.tpm, ticket.spend) if c is not None and counters.needs_fetch(c[0])]
            if missing:
                await counters.fetch(missing)
        refused = self._refusal(record, ticket, model, rpm[0], now, minute_end)
        if refused is not None:  # refusals are usage too: the admin sees who hits their limits
            self.recorder.record(
                UsageEvent(
                    key_id=record.id,
                    key_name=record.name,
                    endpoint=endpoint,
                    model=model,
                    deployment=None,
                    stream=False,
                    status=refused[0],
                    latency_ms=0.0,
                    tokens=None,
                )
            )
            return refused
        counters.add(rpm[0], 1, minute_end + 5)
        return ticket

    def _refusal(
        self, record: KeyRecord, ticket: Ticket, model: str | None, rpm_name: str, now: float, minute_end: float
    ) -> ErrorReply | None:
        counters = self.counters
        if record.models is not None and (model is None or model not in record.models):
            return simple(
                403,
                f"The key {record.name!r} may not use model {str(model)[:100]!r}; it may use: "
                f"{', '.join(record.models)}.",
                "invalid_request_error",
                "model_not_allowed",
                "model",
            )
        if record.rpm is not None and counters.value(rpm_name) >= record.rpm:
            return _limited(
                f"Rate limit reached for key {record.name!r}: {record.rpm} requests per minute. "
                f"Try again in {math.ceil(minute_end - now)}s.",
                "requests",
                "rate_limit_exceeded",
                minute_end - now,
                [(b"x-ratelimit-limit-requests", str(record.rpm).encode()), (b"x-ratelimit-remaining-requests", b"0")],
            )
        if ticket.tpm is not None and record.tpm is not None and counters.value(ticket.tpm[0]) >= record.tpm:
            return _limited(
                f"Rate limit reached for key {record.name!r}: {record.tpm} tokens per minute. "
                f"Try again in {math.ceil(minute_end - now)}s.",
                "tokens",
                "rate_limit_exceeded",
                minute_end - now,
                [(b"x-ratelimit-limit-tokens", str(record.tpm).encode()), (b"x-ratelimit-remaining-tokens", b"0")],
            )
        if ticket.spend is not None and record.budget is not None:
            spent = counters.value(ticket.spend[0])
            if spent >= record.budget:
                end = ticket.spend[1]
                # 429 insufficient_quota is what OpenAI answers for an exhausted quota, so clients
                # already show it well; x-should-retry: false stops the OpenAI SDKs' automatic
                # retries (they would retry any other 429), Retry-After says when the budget resets.
                return _limited(
                    f"Budget exceeded for key {record.name!r}: ${spent:.4f} spent of its ${record.budget:g} per "
                    f"{record.budget_period}. The budget resets at {_reset(end)}.",
                    "insufficient_quota",
                    "insufficient_quota",
                    end - now,
                    [(b"x-should-retry", b"false")],
                )
        return None

    def finish(
        self,
        ticket: Ticket,
        *,
        model: str | None,
        deployment: str | None,
        stream: bool,
        status: int,
        latency: float,
        usage: Any,
        streamed_chunks: int = 0,
    ) -> None:
        """After the reply: tokens to the TPM counter, the event to the recorder (no I/O here)."""
        estimated = False
        tokens = TokenCounts.from_usage(usage) if usage is not None else None
        if tokens is None and ticket.key is not None and (streamed_chunks or status == 499):
            # A stream the client left, or that broke, before its usage chunk: bill what was sent
            # (about a token per content chunk, and the prompt's bytes / 4), so leaving early is
            # no way around a budget.
            tokens = TokenCounts(prompt=ticket.prompt_bytes // 4, completion=streamed_chunks)
            estimated = True
        if self.on_first_record is not None and self.managed:  # usage by key: with managed keys
            self.on_first_record()
            self.on_first_record = None
        if ticket.tpm is not None and tokens is not None:
            self.counters.add(ticket.tpm[0], tokens.prompt + tokens.completion, ticket.tpm[1] + 5)
        self.recorder.record(
            UsageEvent(
                key_id=ticket.key_id,
                key_name=ticket.key_name,
                endpoint=ticket.endpoint,
                model=model,
                deployment=deployment,
                stream=stream,
                status=status,
                latency_ms=latency * 1000,
                tokens=tokens,
                estimated=estimated,
                spend_counter=ticket.spend,
            )
        )

    def _costs_from_thread(self, costs: list[tuple[str, float, float]]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._add_costs, costs)

    def _add_costs(self, costs: list[tuple[str, float, float]]) -> None:
        for name, end, cost in costs:
            self.counters.add(name, cost, end + 86400)

    # -- reading ------------------------------------------------------------------------------------------

    def current(self, record: KeyRecord) -> dict[str, Any]:
        """A key's limits and what it used in the current minute and budget period (this process's
        view: the fleet's when Redis is configured)."""
        now = time.time()
        minute = int(now // 60)
        out: dict[str, Any] = {
            "requests_this_minute": int(self.counters.value(f"r:{record.id}:{minute}")),
            "tokens_this_minute": int(self.counters.value(f"t:{record.id}:{minute}")),
        }
        if record.budget is not None:
            _, end, label = period_bounds(record.budget_period, now)
            out["spend"] = round(self.counters.value(f"s:{record.id}:{label}"), 10)
            out["budget_resets_at"] = _reset(end)
        return out

    def usage_report(self, since: float | None) -> dict[str, Any]:
        """The status page's usage section (``ui.UsageSource``): this process's last hour."""
        return self.recorder.summary(since)

    def collector(self) -> Collector:
        return _RecorderCollector(self.recorder)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await anyio.to_thread.run_sync(self.recorder.close)
        await self.counters.aclose()
        with contextlib.suppress(Exception):
            self.keys.close()


class _RecorderCollector(Collector):
    def __init__(self, recorder: UsageRecorder) -> None:
        self.recorder = recorder

    def collect(self) -> Iterator[Any]:
        r = self.recorder
        dropped = CounterMetricFamily(
            "llm_factory_usage_records_dropped",
            "Usage records not written: queue full (the database is too slow) or the write failed",
            labels=["reason"],
        )
        dropped.add_metric(["queue_full"], r.dropped_full)
        dropped.add_metric(["write_failed"], r.dropped_failed)
        written = CounterMetricFamily("llm_factory_usage_records_written", "Usage records written to the database")
        written.add_metric([], r.written)
        queued = GaugeMetricFamily("llm_factory_usage_records_queued", "Usage records waiting to be written")
        queued.add_metric([], len(r._events) + len(r._rows))
        yield from (dropped, written, queued)
