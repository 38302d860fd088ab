"""Shared health on a real redis-server: what one process learns, the others honour within 1 s;
Redis down never stops requests; a restarted Redis is rejoined.

Two factories stand for two processes (each ``SharedHealth`` has its own process id and its own
connection); tests/server/test_scale_out.py does the same with real gateway processes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import pytest

from llm_factory_core import LLMFactory, NoDeploymentAvailableError
from llm_factory_core._shared_state import SharedHealth
from tests.redis_server import RedisServer, free_port

from .helpers import Hosts, cfg, error, ok


def wait_for(predicate: Callable[[], bool], within: float = 1.0) -> float:
    """Seconds until ``predicate()`` held; fails after ``within``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > within:
            raise AssertionError(f"not within {within}s")
        time.sleep(0.01)
    return time.monotonic() - start


def state(factory: LLMFactory, name: str) -> str:
    return next(s.state for s in factory.status() if s.name == name)


@pytest.fixture
def hosts() -> Hosts:
    return Hosts(a=ok("from a"), b=ok("from b"))


@pytest.fixture
def fleet(hosts: Hosts, redis_server: RedisServer) -> Iterator[tuple[LLMFactory, LLMFactory]]:
    configs = [cfg("a"), cfg("b")]
    one = hosts.factory(configs, state=redis_server.url, strategy="first_available", max_cooldown_wait=0)
    two = hosts.factory(configs, state=redis_server.url, strategy="first_available", max_cooldown_wait=0)
    with one, two:
        one.chat("warm up")  # starts each process's background task
        two.chat("warm up")
        for f in (one, two):
            wait_for(lambda f=f: f.health.connected, within=5)  # type: ignore[attr-defined]
        yield one, two


def names(factory: LLMFactory) -> list[str]:
    return [d.name for d in factory.deployments]


def test_a_rate_limited_key_is_avoided_by_the_other_process(hosts: Hosts, fleet: tuple[LLMFactory, LLMFactory]) -> None:
    one, two = fleet
    a = names(one)[0]
    hosts.behaviours["a"] = error(429, "rate_limit_exceeded", {"retry-after": "30"})
    assert one.chat("hi").choices[0].message.content == "from b"  # a answered 429: failed over
    assert wait_for(lambda: state(two, a) == "cooldown") < 1.0
    before = hosts.hosts.count("a")
    assert two.chat("hi").choices[0].message.content == "from b"
    assert hosts.hosts.count("a") == before  # the other process never touched the cooling key


def test_a_disabled_key_is_disabled_everywhere_with_its_reason(
    hosts: Hosts, fleet: tuple[LLMFactory, LLMFactory]
) -> None:
    one, two = fleet
    a = names(one)[0]
    hosts.behaviours["a"] = error(401, "invalid_api_key", message="Incorrect API key provided")
    one.chat("hi")
    wait_for(lambda: state(two, a) == "disabled")
    status = next(s for s in two.status() if s.name == a)
    assert status.reason is not None and "Incorrect API key" in status.reason
    assert status.until is not None and status.until > time.time() + 3000


def test_a_recovery_is_shared_too(hosts: Hosts, redis_server: RedisServer) -> None:
    configs = [cfg("a")]
    with (
        hosts.factory(configs, state=redis_server.url, cooldown=0.2, max_cooldown_wait=0) as one,
        hosts.factory(configs, state=redis_server.url, cooldown=0.2, max_cooldown_wait=0) as two,
    ):
        one.chat("warm up")
        two.chat("warm up")
        wait_for(lambda: one.health.connected and two.health.connected, within=5)  # type: ignore[attr-defined]
        a = names(one)[0]
        hosts.behaviours["a"] = [error(500), ok("back")]
        with pytest.raises(Exception):  # noqa: B017 - the only deployment failed
            one.chat("hi")
        wait_for(lambda: state(two, a) == "cooldown")
        time.sleep(0.25)
        assert one.chat("probe").choices[0].message.content == "back"  # the probe closes the breaker
        two.health.stats(a).cooldown_until = time.monotonic() + 60  # as if two had not seen it end
        wait_for(lambda: state(two, a) == "healthy")


def test_counters_show_the_whole_fleet(hosts: Hosts, fleet: tuple[LLMFactory, LLMFactory]) -> None:
    one, two = fleet
    a = names(one)[0]
    for _ in range(5):
        one.chat("hi")
    wait_for(lambda: two.health.stats(a).successes >= 6, within=3)  # 5 + warm-up, seen from two


def test_redis_down_requests_flow_and_it_is_said_once(hosts: Hosts, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "llm_factory_core.shared_state")
    url = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"  # nothing listens there
    with hosts.factory([cfg("a")], state=url) as factory:
        started = time.monotonic()
        for _ in range(5):
            assert factory.chat("hi").choices[0].message.content == "from a"
        assert time.monotonic() - started < 2  # no request waits for Redis
        health = factory.health
        assert isinstance(health, SharedHealth)
        wait_for(lambda: health.last_error is not None, within=5)
        time.sleep(0.6)  # a few reconnect attempts
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1
    assert "hunter2" not in caplog.text and "hunter2" not in repr(health) and "hunter2" not in str(health.describe())
    assert health.describe()["connected"] is False


def test_a_restarted_redis_is_rejoined(hosts: Hosts, redis_server: RedisServer) -> None:
    configs = [cfg("a"), cfg("b")]
    with (
        hosts.factory(configs, state=redis_server.url, strategy="first_available", max_cooldown_wait=0) as one,
        hosts.factory(configs, state=redis_server.url, strategy="first_available", max_cooldown_wait=0) as two,
    ):
        one.chat("warm up")
        two.chat("warm up")
        h1, h2 = one.health, two.health
        assert isinstance(h1, SharedHealth) and isinstance(h2, SharedHealth)
        wait_for(lambda: h1.connected and h2.connected, within=5)
        redis_server.stop()
        wait_for(lambda: not h1.connected and not h2.connected, within=5)
        # Redis is gone: a cooldown learnt now stays local, and requests keep flowing
        a = names(one)[0]
        hosts.behaviours["a"] = error(429, "rate_limit_exceeded", {"retry-after": "30"})
        assert one.chat("hi").choices[0].message.content == "from b"
        assert state(two, a) == "healthy"
        redis_server.start()  # same port: both rejoin, and one's live cooldown reaches two
        wait_for(lambda: h1.connected and h2.connected, within=10)
        wait_for(lambda: state(two, a) == "cooldown", within=2)


def test_all_cooling_down_across_the_fleet_is_refused_at_once(
    hosts: Hosts, fleet: tuple[LLMFactory, LLMFactory]
) -> None:
    one, two = fleet
    hosts.behaviours["a"] = hosts.behaviours["b"] = error(429, "rate_limit_exceeded", {"retry-after": "30"})
    with pytest.raises(Exception):  # noqa: B017 - both deployments answered 429
        one.chat("hi")
    wait_for(lambda: all(state(two, n) == "cooldown" for n in names(two)))
    seen = len(hosts.hosts)
    with pytest.raises(NoDeploymentAvailableError):
        two.chat("hi")
    assert len(hosts.hosts) == seen


def test_state_setting_is_checked() -> None:
    from llm_factory_core import ConfigurationError

    with pytest.raises(ConfigurationError, match="state must be 'memory' or a redis://"):
        LLMFactory(cfg("a"), state="postgres://x")


def test_the_gateway_health_probe_says_whether_state_is_shared(hosts: Hosts, redis_server: RedisServer) -> None:
    from llm_factory_server import ServerSettings, create_app
    from tests.server.helpers import ServerThread

    with hosts.factory([cfg("a")], state=redis_server.url) as factory:
        server = ServerThread(create_app(factory, settings=ServerSettings())).start()
        try:
            import httpx

            factory.chat("warm up")
            wait_for(lambda: httpx.get(f"{server.url}/health").json()["shared_state"]["connected"], within=5)
            redis_server.stop()
            wait_for(lambda: not httpx.get(f"{server.url}/health").json()["shared_state"]["connected"], within=5)
            reply = httpx.get(f"{server.url}/health")
            assert reply.status_code == 200 and reply.json()["status"] == "ok"  # local state still serves
            assert "127.0.0.1" not in reply.text  # an open probe says nothing about where Redis is
        finally:
            server.stop()


class _SwallowingPubSub:
    """A subscription whose read swallows the first cancellation delivered mid-read, as redis-py's
    asyncio client can."""

    swallowed = False

    async def get_message(self, timeout: float) -> None:
        import asyncio

        try:
            await asyncio.sleep(timeout)
        except asyncio.CancelledError:
            if self.swallowed:
                raise
            self.swallowed = True
        return None


@pytest.mark.anyio
async def test_a_cancellation_the_redis_client_swallows_still_stops_the_loops() -> None:
    # Else a gateway's shutdown waited on the shared-state task until the connection failed (~13 s).
    import asyncio

    health = SharedHealth("redis://127.0.0.1:1/0")
    pubsub = _SwallowingPubSub()
    reader = asyncio.get_running_loop().create_task(health._read(pubsub))
    await asyncio.sleep(0.05)
    reader.cancel()
    done, _ = await asyncio.wait({reader}, timeout=3)
    if not done:  # the loop went on: end it (the fake swallows once) and fail
        reader.cancel()
        await asyncio.wait({reader}, timeout=3)
    assert pubsub.swallowed
    assert done and reader.cancelled(), "the loop went on after its cancellation was swallowed"
