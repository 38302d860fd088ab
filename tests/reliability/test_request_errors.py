"""Errors that are about the request, not the deployment: a context-length error goes straight to
the fallback (a bigger model) without a blind resend; a content-filter rejection is tried once
and reported clearly."""

from __future__ import annotations

import pytest

from llm_factory_core import ContentFilterError, ContextLengthError
from llm_factory_core.testing import Fault, FaultyUpstream

from .conftest import ask, assert_answered_by, make_factory

pytestmark = pytest.mark.anyio


async def test_context_length_goes_straight_to_the_fallback(upstream: FaultyUpstream, mode: str) -> None:
    upstream.set_rule("primary", Fault.context_length())
    async with make_factory(upstream.base_url) as factory:
        out = await ask(factory, mode)
        [status] = [s for s in factory.status() if s.name == "primary"]
    assert_answered_by(out, "backup")
    assert upstream.count("primary") == 1  # no blind resend of a prompt that does not fit
    assert upstream.count("backup") == 1
    assert status.state == "healthy"  # the request was the problem, not the deployment


async def test_context_length_everywhere_is_reported_as_such(upstream: FaultyUpstream, mode: str) -> None:
    upstream.set_rule("primary", Fault.context_length())
    upstream.set_rule("backup", Fault.context_length())
    async with make_factory(upstream.base_url) as factory:
        with pytest.raises(ContextLengthError) as info:
            await ask(factory, mode)
    assert "maximum context length" in str(info.value)
    assert info.value.code == "context_length_exceeded"
    assert upstream.count("primary") == upstream.count("backup") == 1


async def test_content_filter_is_one_attempt_and_a_clear_error(upstream: FaultyUpstream, mode: str) -> None:
    upstream.set_rule("primary", Fault.content_filter())
    async with make_factory(upstream.base_url) as factory:
        with pytest.raises(ContentFilterError) as info:
            await ask(factory, mode)
        [status] = [s for s in factory.status() if s.name == "primary"]
    error = info.value
    assert error.code == "content_filter" and error.status == 400
    assert "content management policy" in str(error)
    assert error.deployment == "primary"
    assert upstream.count("primary") == 1
    assert upstream.count("backup") == 0  # the same request is rejected anywhere
    assert status.state == "healthy"


async def test_content_filter_on_the_fallback_is_not_hidden(upstream: FaultyUpstream, mode: str) -> None:
    upstream.set_rule("primary", Fault.server_error(503))
    upstream.set_rule("backup", Fault.content_filter())
    async with make_factory(upstream.base_url, num_retries=0) as factory:
        with pytest.raises(ContentFilterError):
            await ask(factory, mode)
    assert upstream.count("backup") == 1


async def test_keys_never_appear_in_errors(upstream: FaultyUpstream, mode: str) -> None:
    from llm_factory_core import AllDeploymentsFailedError

    from .conftest import BACKUP_KEY, PRIMARY_KEY

    upstream.set_rule("primary", Fault.reset())
    upstream.set_rule("backup", Fault.hang())
    async with make_factory(upstream.base_url, num_retries=0) as factory:
        with pytest.raises(AllDeploymentsFailedError) as info:
            await ask(factory, mode)
        statuses = repr(factory.status())
    text = str(info.value) + repr(info.value) + statuses
    assert PRIMARY_KEY not in text and BACKUP_KEY not in text
    assert upstream.requests[0].key == PRIMARY_KEY  # the key did reach the upstream
