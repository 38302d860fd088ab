"""Failover and health, as DESIGN.md's table says, through a real LLMFactory over fake hosts."""

from __future__ import annotations

import time

import httpx
import pytest

from llm_factory_core import (
    AllDeploymentsFailedError,
    AuthenticationError,
    BadRequestError,
    ContentFilterError,
    ContextLengthError,
    NoDeploymentAvailableError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    UpstreamConnectionError,
)
from llm_factory_core.testing import openai_chunks, sse_response

from .helpers import Hosts, cfg, error, stream_reply, text_reply

pytestmark = pytest.mark.anyio


async def test_server_error_fails_over_to_the_next_deployment_and_cools_the_first() -> None:
    hosts = Hosts(a=error(503), b=text_reply("from b"))
    async with hosts.factory([cfg("a"), cfg("b")], strategy="first_available") as f:
        result = await f.chat_async("hi")
        status = {s.name.split("[")[0]: s for s in f.status()}
    assert result.choices[0].message.content == "from b"
    assert result.deployment is not None and "#2" in result.deployment
    assert hosts.hosts == ["a", "b"]
    assert status["openai/gpt-4o#1"].failures == 1
    assert status["openai/gpt-4o#2"].successes == 1


@pytest.mark.parametrize("status", [408, 409, 500, 502, 504])
async def test_transient_statuses_are_failed_over(status: int) -> None:
    hosts = Hosts(a=error(status), b=text_reply("b"))
    async with hosts.factory([cfg("a"), cfg("b")], strategy="first_available") as f:
        assert (await f.chat_async("hi")).choices[0].message.content == "b"


async def test_connection_error_fails_over() -> None:
    hosts = Hosts(a=httpx.ConnectError("refused"), b=text_reply("b"))
    async with hosts.factory([cfg("a"), cfg("b")], strategy="first_available") as f:
        assert (await f.chat_async("hi")).choices[0].message.content == "b"


async def test_rate_limit_cooldown_honours_retry_after() -> None:
    hosts = Hosts(a=error(429, "rate_limit_exceeded", {"retry-after": "30"}), b=text_reply("b"))
    async with hosts.factory([cfg("a"), cfg("b")], strategy="first_available") as f:
        await f.chat_async("hi")
        state = f.status()[0]
        assert state.state == "cooldown"
        assert state.until is not None and 28 < state.until - time.time() <= 30.5
        # while cooling, a second call goes straight to b
        await f.chat_async("hi")
    assert hosts.hosts == ["a", "b", "b"]


async def test_azure_retry_after_ms_is_honoured() -> None:
    hosts = Hosts(a=error(429, "429", {"retry-after-ms": "12000"}), b=text_reply("b"))
    async with hosts.factory([cfg("a"), cfg("b")], strategy="first_available") as f:
        await f.chat_async("hi")
        until = f.status()[0].until
    assert until is not None and 10 < until - time.time() <= 12.5


async def test_retry_hint_in_the_body_is_honoured() -> None:
    hosts = Hosts(a=error(429, "429", message="Please retry after 20 seconds."), b=text_reply("b"))
    async with hosts.factory([cfg("a"), cfg("b")], strategy="first_available") as f:
        await f.chat_async("hi")
        until = f.status()[0].until
    assert until is not None and 18 < until - time.time() <= 20.5


@pytest.mark.parametrize("status", [401, 402, 403])
async def test_bad_key_is_disabled_with_its_reason(status: int) -> None:
    hosts = Hosts(a=error(status, "invalid_api_key", message="Incorrect API key"), b=text_reply("b"))
    async with hosts.factory([cfg("a"), cfg("b")], strategy="first_available") as f:
        await f.chat_async("hi")
        await f.chat_async("hi")
        first = f.status()[0]
    assert hosts.hosts == ["a", "b", "b"]
    assert first.state == "disabled"
    assert first.reason and "Incorrect API key" in first.reason
    assert first.until is not None and first.until - time.time() > 3000


@pytest.mark.parametrize("status", [400, 404, 413, 422])
async def test_request_errors_fail_at_once(status: int) -> None:
    hosts = Hosts(a=error(status), b=text_reply("b"))
    async with hosts.factory([cfg("a"), cfg("b")], strategy="first_available") as f:
        with pytest.raises(BadRequestError) as info:
            await f.chat_async("hi")
        assert f.status()[0].state == "healthy", "the request was the problem, not the deployment"
    assert info.value.status == status
    assert hosts.hosts == ["a"]


async def test_content_filter_is_one_attempt_even_with_fallbacks() -> None:
    hosts = Hosts(a=error(400, "content_filter"), b=text_reply("b"), c=text_reply("c"))
    configs = [cfg("a"), cfg("b"), cfg("c", model_name="backup")]
    async with hosts.factory(configs, fallbacks={"gpt-4o": ["backup"]}) as f:
        with pytest.raises(ContentFilterError):
            await f.chat_async("hi")
    assert len(hosts.hosts) == 1


async def test_context_length_skips_the_group_and_goes_to_the_fallback() -> None:
    too_long = error(400, "context_length_exceeded", message="maximum context length is 8192 tokens")
    hosts = Hosts(a=too_long, b=too_long, c=text_reply("big"))
    configs = [cfg("a"), cfg("b"), cfg("c", model_name="gpt-4o-32k")]
    async with hosts.factory(configs, fallbacks={"gpt-4o": ["gpt-4o-32k"]}, strategy="first_available") as f:
        result = await f.chat_async("a very long prompt")
    assert result.choices[0].message.content == "big"
    assert hosts.hosts == ["a", "c"], "no blind resend to the same-sized sibling"


async def test_context_length_without_fallback_raises_it() -> None:
    hosts = Hosts(a=error(400, "context_length_exceeded"))
    async with hosts.factory([cfg("a")]) as f:
        with pytest.raises(ContextLengthError):
            await f.chat_async("hi")


async def test_retry_rounds_wait_out_a_short_cooldown_on_the_same_deployment() -> None:
    hosts = Hosts(a=[error(429, headers={"retry-after": "0.3"}), text_reply("second try")])
    async with hosts.factory([cfg("a")], cooldown=0.01) as f:
        started = time.monotonic()
        result = await f.chat_async("hi")
        waited = time.monotonic() - started
    assert result.choices[0].message.content == "second try"
    assert hosts.hosts == ["a", "a"]
    assert waited >= 0.29, "Retry-After was not waited out (hammering)"


async def test_num_retries_bounds_the_attempts_then_all_failed_lists_each() -> None:
    hosts = Hosts(a=error(500, message="upstream exploded"), b=error(502))
    async with hosts.factory([cfg("a"), cfg("b")], num_retries=2, cooldown=0.0) as f:
        with pytest.raises(AllDeploymentsFailedError) as info:
            await f.chat_async("hi")
    assert len(hosts.hosts) == 6  # 3 rounds over 2 deployments
    err = info.value
    assert len(err.attempts) == 6
    assert all(isinstance(a.error, ServerError) for a in err.attempts)
    assert "upstream exploded" in str(err) and "attempt 6" in str(err)
    assert "secret" not in str(err)
    assert err.http_status == 502


async def test_all_rate_limited_reports_429_and_when() -> None:
    hosts = Hosts(a=error(429, headers={"retry-after": "60"}))
    async with hosts.factory([cfg("a")]) as f:
        with pytest.raises(AllDeploymentsFailedError) as first:
            await f.chat_async("hi")
        assert first.value.http_status == 429
        with pytest.raises(NoDeploymentAvailableError) as second:
            await f.chat_async("hi")
    assert len(hosts.hosts) == 1, "a cooling deployment is not hammered"
    assert second.value.http_status == 429
    assert second.value.retry_after is not None and 55 < second.value.retry_after <= 60
    assert "cooling down" in str(second.value)


async def test_fallback_model_answers_when_the_primary_group_is_exhausted() -> None:
    hosts = Hosts(a=error(503), b=text_reply("fallback"))
    configs = [cfg("a"), cfg("b", model_name="qwen-plus")]
    async with hosts.factory(configs, fallbacks={"gpt-4o": ["qwen-plus"]}, num_retries=1) as f:
        result = await f.chat_async("hi")
    assert result.choices[0].message.content == "fallback"
    assert hosts.hosts == ["a", "a", "b"]  # one blip is retried on the same model first


async def test_a_cooling_primary_without_a_healthy_fallback_is_still_retried() -> None:
    hosts = Hosts(a=[error(503), text_reply("recovered")], b=error(503))
    configs = [cfg("a"), cfg("b", model_name="qwen-plus")]
    async with hosts.factory(configs, fallbacks={"gpt-4o": ["qwen-plus"]}, num_retries=1) as f:
        b = f.deployments[1].name
        f.health.stats(b).cooldown_until = time.monotonic() + 60  # the fallback is out too
        result = await f.chat_async("hi")
    assert result.choices[0].message.content == "recovered"
    assert hosts.hosts == ["a", "a"]


async def test_an_outage_goes_to_the_healthy_fallback_without_waiting() -> None:
    hosts = Hosts(a=error(503), b=text_reply("fallback"))
    configs = [cfg("a"), cfg("b", model_name="qwen-plus")]
    async with hosts.factory(configs, fallbacks={"gpt-4o": ["qwen-plus"]}, cooldown=5, max_cooldown_wait=10) as f:
        a = f.deployments[0].name
        f.health.stats(a).consecutive_failures = 1  # a failed before: the next failure is an outage
        await f.chat_async("first")  # a fails again and cools down for 5 s; b answers at once
        started = time.monotonic()
        result = await f.chat_async("second")
        elapsed = time.monotonic() - started
    assert result.choices[0].message.content == "fallback"
    assert hosts.hosts == ["a", "b", "b"]  # the cooling primary is neither hammered nor waited for
    assert elapsed < 2.5, "the plan waited out the primary's cooldown instead of using the fallback"


async def test_cooldown_expires_and_the_deployment_returns() -> None:
    hosts = Hosts(a=[error(500), text_reply("a is back")], b=text_reply("b"))
    async with hosts.factory([cfg("a"), cfg("b")], strategy="first_available", cooldown=0.2) as f:
        assert (await f.chat_async("hi")).choices[0].message.content == "b"
        assert (await f.chat_async("hi")).choices[0].message.content == "b"
        assert f.status()[0].state == "cooldown"
        import anyio

        await anyio.sleep(0.25)
        assert (await f.chat_async("hi")).choices[0].message.content == "a is back"
        assert f.status()[0].state == "healthy"
    assert hosts.hosts == ["a", "b", "b", "a"]


async def test_deadline_bounds_the_whole_call() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        import anyio

        await anyio.sleep(5)
        return text_reply("late")(request)

    hosts = Hosts(a=slow, b=slow)
    async with hosts.factory([cfg("a"), cfg("b")]) as f:
        started = time.monotonic()
        with pytest.raises(AllDeploymentsFailedError) as info:
            await f.chat_async("hi", timeout=0.3)
        elapsed = time.monotonic() - started
    assert elapsed < 2
    assert "deadline" in str(info.value)


async def test_per_attempt_timeout_fails_over_and_is_not_retried() -> None:
    async def silent(request: httpx.Request) -> httpx.Response:
        import anyio

        await anyio.sleep(5)
        raise AssertionError("unreachable")

    hosts = Hosts(a=silent, b=text_reply("b"))
    async with hosts.factory([cfg("a", timeout=0.2), cfg("b")], strategy="first_available") as f:
        result = await f.chat_async("hi")
    assert result.choices[0].message.content == "b"
    assert hosts.hosts == ["a", "b"]


# -- streaming --------------------------------------------------------------------------------------


async def test_stream_fails_over_before_the_first_content_chunk() -> None:
    hosts = Hosts(a=error(500), b=stream_reply(["Hel", "lo"]))
    async with hosts.factory([cfg("a"), cfg("b")], strategy="first_available") as f:
        stream = f.stream_async("hi")
        chunks = [c async for c in stream]
        assert stream.deployment is not None and "#2" in stream.deployment
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello"


async def test_error_event_inside_a_200_stream_before_content_fails_over() -> None:
    bad = {"error": {"message": "overloaded", "type": "server_error", "code": "500"}}
    hosts = Hosts(a=lambda r: sse_response([bad], done=False), b=stream_reply(["ok"]))
    async with hosts.factory([cfg("a"), cfg("b")], strategy="first_available") as f:
        chunks = [c async for c in f.stream_async("hi")]
    assert hosts.hosts == ["a", "b"]
    assert any(c.choices and c.choices[0].delta.content == "ok" for c in chunks)


async def test_stream_cut_after_content_is_an_explicit_error_not_a_silent_end() -> None:
    cut = lambda r: sse_response(openai_chunks(["one", "two", "three"]), fail_after=3)  # noqa: E731
    hosts = Hosts(a=cut, b=stream_reply(["never"]))
    async with hosts.factory([cfg("a"), cfg("b")], strategy="first_available") as f:
        received = []
        with pytest.raises(StreamInterruptedError) as info:
            async for chunk in f.stream_async("hi"):
                received.append(chunk)
    assert [c.choices[0].delta.content for c in received if c.choices] == ["", "one", "two"]
    assert hosts.hosts == ["a"], "a committed stream is never replayed elsewhere"
    assert "broke after it started" in str(info.value)


async def test_stream_ending_without_finish_or_done_is_an_error() -> None:
    truncated = lambda r: sse_response(openai_chunks(["a", "b"], finish_reason=None), done=False)  # noqa: E731
    hosts = Hosts(a=truncated)
    async with hosts.factory([cfg("a")], num_retries=0) as f:
        with pytest.raises(StreamInterruptedError, match="before it finished"):
            async for _ in f.stream_async("hi"):
                pass


async def test_stream_ending_after_finish_without_done_is_complete() -> None:
    hosts = Hosts(a=lambda r: sse_response(openai_chunks(["a", "b"]), done=False))
    async with hosts.factory([cfg("a")]) as f:
        chunks = [c async for c in f.stream_async("hi")]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert hosts.hosts == ["a"]


async def test_one_malformed_event_is_skipped() -> None:
    events = openai_chunks(["a", "b"])
    events.insert(2, "{not json")
    hosts = Hosts(a=lambda r: sse_response(events))
    async with hosts.factory([cfg("a")]) as f:
        text = "".join([c.choices[0].delta.content or "" async for c in f.stream_async("hi") if c.choices])
    assert text == "ab"


async def test_stream_first_token_timeout_fails_over_and_excludes_the_silent_one() -> None:
    slow = lambda r: sse_response(openai_chunks(["late"]), delay=2)  # noqa: E731
    hosts = Hosts(a=slow, b=stream_reply(["fast"]))
    configs = [cfg("a", first_token_timeout=0.2), cfg("b")]
    async with hosts.factory(configs, strategy="first_available") as f:
        text = "".join([c.choices[0].delta.content or "" async for c in f.stream_async("hi") if c.choices])
    assert text == "fast"
    assert hosts.hosts == ["a", "b"]


async def test_stream_errors_after_commit_with_connection_error_class() -> None:
    hosts = Hosts(a=lambda r: sse_response(openai_chunks(["x", "y"]), fail_after=2))
    async with hosts.factory([cfg("a")]) as f:
        with pytest.raises(StreamInterruptedError) as info:
            async for _ in f.stream_async("hi"):
                pass
        assert f.status()[0].failures == 1
    assert isinstance(info.value.__cause__, UpstreamConnectionError)


async def test_abandoned_stream_releases_its_upstream() -> None:
    closed: list[bool] = []

    def reply(request: httpx.Request) -> httpx.Response:
        response = sse_response(openai_chunks(["a", "b", "c"]), delay=0.01)
        original = response.stream

        class Tracking(httpx.AsyncByteStream):
            async def __aiter__(self):  # type: ignore[override]
                async for part in original:  # type: ignore[union-attr]
                    yield part

            async def aclose(self) -> None:
                closed.append(True)

        response.stream = Tracking()
        return response

    hosts = Hosts(a=reply)
    async with hosts.factory([cfg("a")]) as f:
        async with f.stream_async("hi") as stream:
            async for _ in stream:
                break
        assert closed == [True]
        assert f.status()[0].in_flight == 0


async def test_rate_limit_error_class_is_exposed() -> None:
    hosts = Hosts(a=error(429))
    async with hosts.factory([cfg("a")], num_retries=0) as f:
        with pytest.raises(AllDeploymentsFailedError) as info:
            await f.chat_async("hi")
    assert isinstance(info.value.last_error, RateLimitError)


async def test_authentication_error_of_every_key_is_reported() -> None:
    hosts = Hosts(a=error(401), b=error(401))
    async with hosts.factory([cfg("a"), cfg("b")]) as f:
        with pytest.raises(AllDeploymentsFailedError) as info:
            await f.chat_async("hi")
        assert [s.state for s in f.status()] == ["disabled", "disabled"]
    assert all(isinstance(a.error, AuthenticationError) for a in info.value.attempts)
    assert len(hosts.hosts) == 2, "disabled keys are not retried in later rounds"


async def test_when_every_key_is_disabled_later_calls_fail_without_waiting() -> None:
    hosts = Hosts(a=error(401))
    async with hosts.factory([cfg("a")], retry_backoff=5.0) as f:
        started = time.monotonic()
        with pytest.raises(AllDeploymentsFailedError):
            await f.chat_async("hi")
        with pytest.raises(NoDeploymentAvailableError) as info:
            await f.chat_async("hi")
        elapsed = time.monotonic() - started
    assert elapsed < 2.5, "no backoff sleep when nothing can answer"
    assert info.value.http_status == 503 and "disabled" in str(info.value)
