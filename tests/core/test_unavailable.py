"""When no deployment can be tried, the error says why each is out and until when."""

from __future__ import annotations

import time

import pytest

from llm_factory_core import AllDeploymentsFailedError, NoDeploymentAvailableError

from .helpers import Hosts, cfg, error


def test_all_disabled_says_why_and_until_when() -> None:
    hosts = Hosts(a=error(401, "invalid_api_key", message="Incorrect API key"), b=error(403, message="forbidden"))
    with hosts.factory([cfg("a"), cfg("b")], num_retries=0) as factory:
        with pytest.raises(AllDeploymentsFailedError):
            factory.chat("hi")
        with pytest.raises(NoDeploymentAvailableError) as caught:
            factory.chat("hi")
    err = caught.value
    assert err.http_status == 503
    message = err.message
    assert "all are disabled" in message
    for name in ("openai/gpt-4o#1", "openai/gpt-4o#2"):
        assert name in message
    assert "disabled:" in message and "Incorrect API key" in message and "forbidden" in message
    assert "until " in message and " UTC" in message
    # the first re-enabled deployment says when to come back
    assert err.retry_after is not None and 60 < err.retry_after <= 24 * 3600
    assert {name.split("[")[0] for name, _, _ in err.unavailable} == {"openai/gpt-4o#1", "openai/gpt-4o#2"}
    assert all(until is not None and until > time.time() for _, _, until in err.unavailable)
    assert "sk-a-secret" not in message and "sk-b-secret" not in message


def test_cooling_down_says_why_too() -> None:
    hosts = Hosts(a=error(500, message="upstream exploded"))
    with hosts.factory([cfg("a")], num_retries=0, cooldown=30, max_cooldown_wait=0) as factory:
        with pytest.raises(AllDeploymentsFailedError):
            factory.chat("hi")
        with pytest.raises(NoDeploymentAvailableError) as caught:
            factory.chat("hi")
    assert caught.value.http_status == 429
    assert "cooling down: " in caught.value.message and "upstream exploded" in caught.value.message
