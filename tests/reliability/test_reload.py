"""Config reload without dropping requests (issue 14, item 4), through the library on both HTTP
transports: new deployments join, a removed one finishes its in-flight stream, unchanged ones
keep their health and provider objects, a changed one starts healthy, and a bad configuration is
rejected with a clear error while the old one keeps serving."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from llm_factory_core import AllDeploymentsFailedError, ConfigurationError, LLMFactory, ModelConfig
from llm_factory_core.testing import Fault, FaultyUpstream

from .conftest import BACKUP_KEY, PRIMARY_KEY, ROUTER, TIMEOUTS, ask, assert_answered_by, expected_text

pytestmark = pytest.mark.anyio


def config(upstream: FaultyUpstream, *names: str, keys: dict[str, str] | None = None, **router: Any) -> dict[str, Any]:
    """``primary`` / ``backup`` entries (each its own model name) as a configuration mapping."""
    key = {"primary": PRIMARY_KEY, "backup": BACKUP_KEY, **(keys or {})}
    providers = [
        {"provider": "openai", "model_name": n, "name": n, "api_base": upstream.base_url, "api_key": key[n], **TIMEOUTS}
        for n in names
    ]
    return {"providers": providers, "router": {**ROUTER, "fallbacks": {}, **router}}


async def test_a_new_deployment_joins_and_the_old_keeps_its_health(
    upstream: FaultyUpstream, http_transport: str
) -> None:
    async with LLMFactory(config(upstream, "primary"), transport=http_transport) as f:
        assert_answered_by(await ask(f, "chat"), "primary")
        [before] = f.status()
        provider = f.providers()["primary"]
        result = f.reload(config(upstream, "primary", "backup", fallbacks={"primary": ["backup"]}))
        assert result.added == ("backup",) and result.unchanged == ("primary",) and not result.removed
        assert f.providers()["primary"] is provider  # same connections, same object
        assert f.status()[0].successes == before.successes == 1
        upstream.set_rule("primary", Fault.server_error(503))
        assert_answered_by(await ask(f, "stream"), "backup")  # the new fallback serves


async def test_a_removed_deployment_finishes_its_stream(upstream: FaultyUpstream, http_transport: str) -> None:
    upstream.set_rule("primary", Fault.ok(token_delay=0.05))
    async with LLMFactory(config(upstream, "primary", "backup"), transport=http_transport) as f:
        stream = f.stream_async("hi", model="primary")
        text, reloaded = "", False
        async with stream:
            async for chunk in stream:
                if not reloaded:  # the stream has started: remove its deployment now
                    reloaded = True
                    result = f.reload(config(upstream, "backup"))
                    assert result.removed == ("primary",)
                    assert f.model_names == ["backup"]
                for choice in chunk.choices:
                    text += choice.delta.content or ""
        assert text == expected_text("primary")  # nothing dropped
        with pytest.raises(Exception, match="does not exist"):
            await f.chat_async("hi", model="primary")  # new requests see the new configuration
        assert (await f.chat_async("hi", model="backup")).choices[0].message.content == expected_text("backup")
        with anyio.fail_after(5):  # the retired deployment drains: its in-flight count is back to 0
            while f.health.stats("primary").in_flight:
                await anyio.sleep(0.05)


async def test_a_changed_deployment_starts_healthy(upstream: FaultyUpstream, http_transport: str) -> None:
    upstream.set_rule("primary", [Fault.error(401), Fault.ok()])
    async with LLMFactory(config(upstream, "primary"), transport=http_transport) as f:
        with pytest.raises(AllDeploymentsFailedError):
            await ask(f, "chat")
        assert f.status()[0].state == "disabled"
        result = f.reload(config(upstream, "primary", keys={"primary": "sk-primary-rotated-0003"}))
        assert result.changed == ("primary",)
        assert f.status()[0].state == "healthy"
        assert_answered_by(await ask(f, "chat"), "primary")
        assert upstream.requests[-1].key == "sk-primary-rotated-0003"  # the new key was used


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"router": {"fallbacks": {"primary": ["nowhere"]}}}, "'nowhere' is not a configured model_name"),
        ({"providers": [{"provider": "openai", "model_name": "primary", "temperature": 9}]}, "temperature"),
        ({"providers": [{"provider": "no-such-provider", "model_name": "x"}]}, "no-such-provider"),
    ],
    ids=["unknown-fallback", "bad-field", "unknown-provider"],
)
async def test_a_bad_configuration_is_rejected_and_the_old_one_stays(
    upstream: FaultyUpstream, http_transport: str, bad: dict[str, Any], message: str
) -> None:
    good = config(upstream, "primary")
    async with LLMFactory(good, transport=http_transport) as f:
        assert_answered_by(await ask(f, "chat"), "primary")
        router, deployments = f.router, f.deployments
        with pytest.raises(ConfigurationError) as info:
            f.reload({**good, **bad})
        assert message in str(info.value)
        assert PRIMARY_KEY not in str(info.value)
        assert f.router is router and f.deployments is deployments
        assert_answered_by(await ask(f, "stream"), "primary")


def test_reload_from_a_yaml_file(upstream: FaultyUpstream, tmp_path: Any) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "providers:\n"
        + "".join(
            f"  - {{provider: openai, model_name: {n}, name: {n}, api_key: sk-{n}-000,"
            f" api_base: '{upstream.base_url}'}}\n"
            for n in ("primary", "backup")
        )
    )
    with LLMFactory([ModelConfig(provider="openai", model_name="primary", name="primary",
                                 api_base=upstream.base_url, api_key="sk-primary-000")]) as f:  # fmt: skip
        assert f.reload_from_config(path).added == ("backup",)
        assert f.chat("hi", model="backup").choices[0].message.content == expected_text("backup")
