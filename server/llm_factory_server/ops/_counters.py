"""Fixed-window counters for client-key limits and budgets: in memory, and shared by every
process through Redis when the factory's ``state`` is a Redis URL.

The request path only reads and writes local dictionaries (no I/O). With Redis, a background task
runs every ``sync_interval`` seconds: one Lua script adds this process's pending increments to the
fleet's counters (``INCRBYFLOAT`` with an expiry at the window's end) and reads back the fleet's
totals of every counter this process uses. A counter first used in a window is fetched from Redis
before the request is admitted (one round trip per key and window per process), so a process that
has not seen a key yet still knows what the others spent. Between two syncs each process may admit
what it sees as free: across N processes a limit can be overshot by at most what N-1 processes
admit in one ``sync_interval`` (0.1 s by default). When Redis is unreachable, counting goes on
locally (logged once) and the pending increments are sent when it is back.

Kept in the server rather than the core: only client keys (a server concept) need counters; the
core's shared-state seam is health. The Redis session follows ``SharedHealth``'s conventions
(URL, namespace, key prefix ``llm_factory:<namespace>:``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from llm_factory_core._shared_state import still_wanted

__all__ = ["Counters"]

log = logging.getLogger("llm_factory_server.ops")

# KEYS: counter names. ARGV: per key, its increment and its expiry (ms since the epoch).
_SYNC = """
local out = {}
for i, key in ipairs(KEYS) do
  local delta = tonumber(ARGV[2 * i - 1])
  local value
  if delta ~= 0 then
    value = redis.call('INCRBYFLOAT', key, ARGV[2 * i - 1])
    redis.call('PEXPIREAT', key, ARGV[2 * i])
  else
    value = redis.call('GET', key) or '0'
  end
  out[i] = tostring(value)
end
return out
"""
# KEYS[1]: a counter; ARGV: a value to start from when it does not exist yet (spend recovered
# from the usage database after a Redis restart), its expiry.
_SEED = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PXAT', ARGV[2]) then return ARGV[1] end
return redis.call('GET', KEYS[1]) or '0'
"""


class Counters:
    """``value(name)`` / ``add(name, amount, expires_at)``; with Redis, ``fetch`` before a name's first use."""

    def __init__(self, redis_url: str | None = None, prefix: str = "llm_factory:default:", sync_interval: float = 0.1):
        self.redis_url = redis_url
        self.prefix = prefix + "ops:"
        self.sync_interval = sync_interval
        self._values: dict[str, float] = {}
        self._expires: dict[str, float] = {}
        self._pending: dict[str, float] = {}
        self._known: set[str] = set()  # names whose fleet total this process has read
        self._seeds: dict[str, tuple[float, float]] = {}
        self._next_prune = 0.0
        self._client: Any = None
        self._task: asyncio.Task[None] | None = None
        self.connected = False
        self._warned = False

    @property
    def shared(self) -> bool:
        return self.redis_url is not None

    def value(self, name: str) -> float:
        return self._values.get(name, 0.0)

    def needs_fetch(self, name: str) -> bool:
        return self.redis_url is not None and name not in self._known

    def add(self, name: str, amount: float, expires_at: float) -> None:
        self._values[name] = self._values.get(name, 0.0) + amount
        self._expires[name] = expires_at
        if self.redis_url is not None:
            self._pending[name] = self._pending.get(name, 0.0) + amount
            self._ensure_task()
        elif expires_at > self._next_prune:  # in memory only: drop past windows now and then
            self._next_prune = expires_at + 60
            self._prune(time.time())

    def _prune(self, now: float) -> None:
        for name in [n for n, end in self._expires.items() if end < now]:
            for table in (self._values, self._expires, self._pending):
                table.pop(name, None)
            self._known.discard(name)

    def seed(self, name: str, amount: float, expires_at: float) -> None:
        """A starting value (spend so far from the usage database); never lowers a counter."""
        if amount > self._values.get(name, 0.0):
            self._values[name] = amount
        self._expires[name] = expires_at
        if self.redis_url is not None:
            self._seeds[name] = (amount, expires_at)

    async def fetch(self, counters: list[tuple[str, float]]) -> None:
        """Read the fleet's totals of these (name, window end) now, and keep them in step from then
        on (bounded: on a slow or absent Redis, go on with what this process knows)."""
        if self.redis_url is None:
            return
        for name, expires_at in counters:
            self._expires.setdefault(name, expires_at)
        self._ensure_task()
        try:
            await asyncio.wait_for(self._sync(), timeout=0.25)
        except Exception as exc:
            self._down(exc)
            self._known.update(name for name, _ in counters)  # do not stall every request while Redis is away

    # -- Redis ------------------------------------------------------------------------------------

    def _ensure_task(self) -> None:
        if self._task is None or self._task.done():
            with contextlib.suppress(RuntimeError):  # no running loop: the next add starts it
                self._task = asyncio.get_running_loop().create_task(self._run())

    def _redis(self) -> Any:
        if self._client is None:
            import redis.asyncio as redis

            self._client = redis.Redis.from_url(
                self.redis_url or "", socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=10
            )
        return self._client

    async def _sync(self) -> None:
        client = self._redis()
        now = time.time()
        self._prune(now)
        seeds, self._seeds = self._seeds, {}
        for name, (amount, expires_at) in seeds.items():
            try:
                await client.eval(_SEED, 1, self.prefix + name, repr(amount), int(expires_at * 1000))
            except Exception:
                self._seeds.setdefault(name, (amount, expires_at))
                raise
        names = list(self._expires)
        if not names:
            return
        pending, self._pending = self._pending, {}
        args: list[Any] = []
        for name in names:
            args += [repr(pending.get(name, 0.0)), int(self._expires[name] * 1000)]
        try:
            totals = await client.eval(_SYNC, len(names), *[self.prefix + n for n in names], *args)
        except BaseException:
            for name, amount in pending.items():  # sent again next time
                self._pending[name] = self._pending.get(name, 0.0) + amount
            raise
        for name, total in zip(names, totals, strict=True):
            # the fleet's total, plus what this process added while the script ran
            self._values[name] = float(total) + self._pending.get(name, 0.0)
            self._known.add(name)
        if not self.connected:
            if self._warned:
                log.info("client-key counters: Redis is back")
            self.connected, self._warned = True, False

    def _down(self, exc: BaseException) -> None:
        if not self._warned:
            log.warning(
                "client-key counters: Redis unavailable (%s); counting in this process only", type(exc).__name__
            )
            self._warned = True
        self.connected = False

    async def _run(self) -> None:
        while True:
            still_wanted()  # redis-py can swallow a cancellation delivered mid-command
            try:
                await asyncio.wait_for(self._sync(), timeout=2.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._down(exc)
                await asyncio.sleep(1.0)
            await asyncio.sleep(self.sync_interval)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
        if self._pending and self.redis_url is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._sync(), timeout=1.0)  # hand this process's counts over
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
            self._client = None
