"""Health shared by every process of a fleet through Redis, with no Redis on the request path.

``SharedHealth`` is an ``InMemoryHealth``: the router reads and writes local state only (no I/O,
no awaits), and one background task per process keeps that state in step with the fleet:

- a cooldown or a disabled key is written to Redis atomically (a Lua script that keeps the later
  end, sets the key to expire then, and publishes the change), and every other process applies it
  from its pub/sub subscription within milliseconds; a recovery (a success that ends a cooldown)
  is published the same way;
- in-flight counts, successes, failures and latency averages are exchanged every
  ``sync_interval`` (one pipelined round trip), so ``least_busy``, ``latency`` and ``status()``
  see the whole fleet;
- when Redis is unreachable or slow, requests go on with local state; the outage is logged once,
  visible in ``describe()`` (the server's ``/health``), and the process rejoins when Redis is back
  (pushing its live cooldowns and loading the fleet's).

Keys live under ``llm_factory:<namespace>:`` and expire on their own. Needs the ``redis`` extra
(``pip install 'llm-factory-core[redis]'``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ._errors import ConfigurationError, ProviderError
from ._health import CooldownPolicy, InMemoryHealth, wall_clock

__all__ = ["SharedHealth", "health_for_state", "still_wanted"]

log = logging.getLogger("llm_factory_core.shared_state")

# KEYS[1]: the deployment's cooldown key. ARGV: until (ms since the epoch), fields JSON, channel,
# message. Keeps the later end when two processes cool one deployment down at once.
_SET_COOLDOWN = """
local current = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if tonumber(ARGV[1]) <= current then return 0 end
redis.call('HSET', KEYS[1], 'until', ARGV[1], 'fields', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
"""
_RECOVER = """
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
"""


def health_for_state(state: str | None, policy: CooldownPolicy) -> InMemoryHealth:
    """The health store for a ``state`` setting: ``None``/``memory`` or a ``redis://`` URL."""
    if state is None or state.strip().lower() in ("", "memory"):
        return InMemoryHealth(policy)
    scheme = urlsplit(state.strip()).scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigurationError(
            f"state must be 'memory' or a redis://, rediss:// or unix:// URL, got {scheme or state[:20]!r}"
        )
    return SharedHealth(state.strip(), policy)


def _display(url: str) -> str:
    """The URL without its password, for logs and status."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:****@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def still_wanted() -> None:
    """Raise the cancellation a library below swallowed: redis-py's asyncio client can catch a
    ``CancelledError`` delivered mid-command and go on, leaving a loop that never ends (a
    gateway's shutdown then waited until the connection failed, ~13 s)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class SharedHealth(InMemoryHealth):
    """Local health kept in step with every other process configured with the same Redis URL."""

    def __init__(
        self,
        url: str,
        policy: CooldownPolicy | None = None,
        *,
        sync_interval: float = 0.5,
        client: Any = None,
    ) -> None:
        super().__init__(policy)
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        namespace = query.pop("namespace", "default")
        self.url = urlunsplit(parts._replace(query=urlencode(query)))
        self.display_url = _display(self.url)
        self.prefix = f"llm_factory:{namespace}:"
        self.channel = self.prefix + "events"
        self.sync_interval = sync_interval
        self.process_id = uuid.uuid4().hex[:12]
        self.connected = False
        """Whether the last exchange with Redis succeeded."""
        self.last_error: str | None = None
        self._client = client
        self._outbox: collections.deque[tuple[str, str]] = collections.deque(maxlen=10_000)
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._own: dict[str, list[float]] = {}  # name -> [in_flight, successes, failures]
        self._own_latency: dict[str, float] = {}
        self._remote: dict[str, list[float]] = {}
        self._remote_latency: dict[str, list[float]] = {}
        self._warned = False

    def __repr__(self) -> str:
        return f"SharedHealth({self.display_url!r}, connected={self.connected})"

    def describe(self) -> dict[str, Any]:
        """For ``/health`` and status: where the state is shared and whether that works now."""
        return {"kind": "redis", "url": self.display_url, "connected": self.connected, "last_error": self.last_error}

    # -- the router's (synchronous, local) interface ---------------------------------------------

    def start(self) -> None:
        """Start exchanging state now (on the running loop) rather than at the first request: a
        server calls it at start-up so every worker joins the fleet before it serves."""
        task = self._task
        if task is None or task.done():
            self._start()

    def begin(self, name: str) -> None:
        task = self._task
        if task is None or task.done():
            self._start()
        super().begin(name)
        self._counts(name)[0] += 1

    def end(self, name: str) -> None:
        super().end(name)
        self._counts(name)[0] -= 1

    def success(self, name: str, latency: float) -> bool:
        recovered = super().success(name, latency)
        self._counts(name)[1] += 1
        own = self._own_latency.get(name)
        self._own_latency[name] = latency if own is None else own + self.EWMA_ALPHA * (latency - own)
        if recovered:
            self._send("recovered", name)
        return recovered

    def failure(self, name: str, error: ProviderError, now: float) -> float:
        cooldown = super().failure(name, error, now)
        self._counts(name)[2] += 1
        if cooldown:
            self._send("cooldown", name)
        return cooldown

    def _counts(self, name: str) -> list[float]:
        counts = self._own.get(name)
        if counts is None:
            counts = self._own[name] = [0, 0, 0]
        return counts

    def _send(self, kind: str, name: str) -> None:
        self._outbox.append((kind, name))
        wake = self._wake
        if wake is not None:
            task = self._task
            loop = task.get_loop() if task is not None else None
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if loop is None or loop is running:
                wake.set()
            elif not loop.is_closed():
                loop.call_soon_threadsafe(wake.set)

    # -- the background task ----------------------------------------------------------------------

    def _start(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._task = loop.create_task(self._run(), name="llm-factory-shared-state")

    async def aclose(self) -> None:
        """Stop the background task (it starts again with the next request)."""
        task, self._task = self._task, None
        if task is None or task.done():
            return
        loop = task.get_loop()
        if loop is asyncio.get_running_loop():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        elif not loop.is_closed():  # started on another loop (the sync API's thread)
            loop.call_soon_threadsafe(task.cancel)

    async def _run(self) -> None:
        backoff = 0.25
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # redis errors, OSError, timeouts: keep serving locally
                while isinstance(exc, ExceptionGroup):  # from the session's task group
                    exc = exc.exceptions[0]
                if self.connected:  # a fresh outage: retry soon
                    backoff = 0.25
                self._lost(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _lost(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]
        if self.connected or not self._warned:
            log.warning(
                "shared state at %s is unreachable (%s); requests continue on this process's own state",
                self.display_url,
                self.last_error,
            )
            self._warned = True
        self.connected = False

    async def _session(self) -> None:
        import redis.asyncio as redis

        client = self._client or redis.Redis.from_url(
            self.url, socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=10
        )
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
            set_cooldown = client.register_script(_SET_COOLDOWN)
            recover = client.register_script(_RECOVER)
            await self._rejoin(client, set_cooldown)
            if not self.connected:
                log.info("shared state at %s: connected", self.display_url)
            self.connected, self.last_error = True, None
            wake = self._wake = asyncio.Event()
            wake.set()
            async with asyncio.TaskGroup() as group:  # either failing ends the session
                group.create_task(self._write(client, wake, set_cooldown, recover))
                group.create_task(self._read(pubsub))
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            if self._client is None:
                with contextlib.suppress(Exception):
                    await client.aclose()

    async def _write(self, client: Any, wake: asyncio.Event, set_cooldown: Any, recover: Any) -> None:
        """Send changes as soon as they happen; exchange counters every ``sync_interval``."""
        next_sync = 0.0
        while True:
            still_wanted()
            wake.clear()
            await self._flush(set_cooldown, recover)
            if time.monotonic() >= next_sync:
                await self._sync(client)
                next_sync = time.monotonic() + self.sync_interval
            still_wanted()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_sync - time.monotonic())):
                    await wake.wait()

    async def _read(self, pubsub: Any) -> None:
        """Apply the fleet's changes as they are published."""
        while True:
            still_wanted()
            message = await pubsub.get_message(timeout=1.0)
            if message is not None:
                self._apply(message.get("data"))

    async def _rejoin(self, client: Any, set_cooldown: Any) -> None:
        """After a (re)connect: the fleet's live cooldowns here, ours there."""
        keys = [key async for key in client.scan_iter(match=self.prefix + "cd:*", count=500)]
        if keys:
            async with client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hgetall(key)
                rows = await pipe.execute()
            for key, row in zip(keys, rows, strict=True):
                name = _text(key)[len(self.prefix) + 3 :]
                fields = json.loads(_text(row.get(b"fields", b"{}")))
                self._apply_cooldown(name, int(_text(row.get(b"until", b"0"))) / 1000, fields)
        now = time.monotonic()
        for name, stats in list(self._stats.items()):
            if stats.cooldown_until > now:
                self._outbox.append(("cooldown", name))

    async def _flush(self, set_cooldown: Any, recover: Any) -> None:
        while self._outbox:
            kind, name = self._outbox[0]
            key = self.prefix + "cd:" + name
            if kind == "recovered":
                message = json.dumps({"kind": kind, "name": name, "origin": self.process_id})
                await recover(keys=[key], args=[self.channel, message])
            else:
                stats = self.stats(name)
                if stats.cooldown_until > time.monotonic():
                    until_ms = int(wall_clock(stats.cooldown_until) * 1000)
                    fields = {
                        "disabled_reason": stats.disabled_reason,
                        "last_error": stats.last_error,
                        "consecutive": stats.consecutive_failures,
                    }
                    message = json.dumps(
                        {"kind": kind, "name": name, "until": until_ms, "origin": self.process_id, **fields}
                    )
                    await set_cooldown(keys=[key], args=[until_ms, json.dumps(fields), self.channel, message])
            self._outbox.popleft()  # only once sent: an outage keeps it for the rejoin

    async def _sync(self, client: Any) -> None:
        """Publish this process's counters; read the fleet's (one pipelined round trip)."""
        now_ms = int(time.time() * 1000)
        procs = self.prefix + "procs"
        mine = self.prefix + "proc:" + self.process_id
        snapshot = {name: [*counts, self._own_latency.get(name)] for name, counts in self._own.items()}
        ttl_ms = int(max(3.0, self.sync_interval * 6) * 1000)
        async with client.pipeline(transaction=False) as pipe:
            pipe.set(mine, json.dumps(snapshot), px=ttl_ms)
            pipe.zadd(procs, {self.process_id: now_ms})
            pipe.zremrangebyscore(procs, 0, now_ms - ttl_ms)
            pipe.zrange(procs, 0, -1)
            *_, members = await pipe.execute()
        others = [_text(m) for m in members if _text(m) != self.process_id]
        values = await client.mget([self.prefix + "proc:" + p for p in others]) if others else []
        remote: dict[str, list[float]] = {}
        latency: dict[str, list[float]] = {}
        for raw in values:
            if raw is None:
                continue
            for name, (in_flight, successes, failures, ewma) in json.loads(_text(raw)).items():
                total = remote.setdefault(name, [0, 0, 0])
                total[0] += in_flight
                total[1] += successes
                total[2] += failures
                if ewma is not None:
                    latency.setdefault(name, []).append(ewma)
        self._remote, self._remote_latency = remote, latency
        for name in set(self._own) | set(remote):
            own = self._counts(name)
            theirs = remote.get(name, [0, 0, 0])
            stats = self.stats(name)
            stats.in_flight = int(own[0] + theirs[0])
            stats.successes = int(own[1] + theirs[1])
            stats.failures = int(own[2] + theirs[2])
            averages = [*latency.get(name, []), *([self._own_latency[name]] if name in self._own_latency else [])]
            if averages:
                stats.latency_ewma = sum(averages) / len(averages)

    # -- applying the fleet's changes -------------------------------------------------------------

    def _apply(self, data: Any) -> None:
        try:
            event = json.loads(_text(data))
        except (ValueError, TypeError):
            return
        if not isinstance(event, dict) or event.get("origin") == self.process_id:
            return
        name = event.get("name")
        if not isinstance(name, str):
            return
        if event.get("kind") == "recovered":
            stats = self.stats(name)
            stats.cooldown_until = 0.0
            stats.consecutive_failures = 0
            stats.disabled_reason = None
        elif event.get("kind") == "cooldown":
            self._apply_cooldown(name, float(event.get("until", 0)) / 1000, event)

    def _apply_cooldown(self, name: str, until_wall: float, fields: dict[str, Any]) -> None:
        until = time.monotonic() + (until_wall - time.time())
        if until <= time.monotonic():
            return
        stats = self.stats(name)
        stats.cooldown_until = max(stats.cooldown_until, until)
        stats.consecutive_failures = max(stats.consecutive_failures, int(fields.get("consecutive") or 0))
        if fields.get("last_error"):
            stats.last_error = str(fields["last_error"])
        if fields.get("disabled_reason"):
            stats.disabled_reason = str(fields["disabled_reason"])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
