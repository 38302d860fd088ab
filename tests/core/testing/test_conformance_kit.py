"""The conformance kit catches realistic plugin bugs: a sample provider passes it as written, and
fails the expected checks with each bug planted (pytester runs the kit in-process)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

TEST_MODULE = """
import pytest
from llm_factory_core.testing import ProviderConformance
from tests.core.testing import sample_plugin as sample

sample.BUGS.clear()
sample.BUGS.update({bugs!r})


class TestSample(ProviderConformance):
    provider_cls = sample.SampleProvider
    config = {{"api_key": "sk-sample-secret-key-0001", "api_base": "https://my-sample.test/v1"}}

    reply_text = staticmethod(sample.reply_text)
    reply_stream = staticmethod(sample.reply_stream)
    reply_error = staticmethod(sample.reply_error)
    reply_finish = staticmethod(sample.reply_finish)
    reply_tool_call = staticmethod(sample.reply_tool_call)
    reply_stream_error = staticmethod(sample.reply_stream_error)
"""


def run_kit(pytester: pytest.Pytester, bugs: set[str]) -> dict[str, str]:
    pytester.makepyfile(test_sample=TEST_MODULE.format(bugs=sorted(bugs)))
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-q", "-W", "error", "--rootdir", str(pytester.path)
    )
    outcomes: dict[str, str] = {}
    for report in result.reprec.getreports("pytest_runtest_logreport"):  # type: ignore[attr-defined]
        if report.when == "call" or report.outcome != "passed":
            outcomes[report.nodeid.split("::", 1)[1]] = report.outcome
    return outcomes


@pytest.fixture
def kit(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    import pathlib

    monkeypatch.syspath_prepend(str(pathlib.Path(__file__).resolve().parents[3]))
    return pytester


def failed(outcomes: dict[str, str]) -> set[str]:
    return {name for name, outcome in outcomes.items() if outcome == "failed"}


def test_a_correct_plugin_passes(kit: pytest.Pytester) -> None:
    outcomes = run_kit(kit, set())
    assert failed(outcomes) == set()
    skipped = {n for n, o in outcomes.items() if o == "skipped"}
    assert skipped == {"TestSample::test_the_entry_point_is_named_after_the_key"}  # not an installed plugin
    assert sum(1 for o in outcomes.values() if o == "passed") >= 28


@pytest.mark.parametrize(
    ("bug", "caught_by"),
    [
        ("finish_is_always_stop", "test_finish_reasons[length-chat]"),
        ("finish_is_always_stop", "test_finish_reasons[content_filter-stream]"),
        ("finish_is_always_stop", "test_tool_calls[chat]"),
        ("drops_stream_usage", "test_stream_usage_when_asked"),
        ("cut_stream_ends_quietly", "test_a_cut_stream_never_ends_quietly"),
        ("mutates_the_request", "test_the_callers_request_is_left_untouched"),
        ("ignores_api_base", "test_the_request_goes_where_the_deployment_says"),
        ("never_streams", "test_stream_yields_openai_chunks"),
        ("logs_the_key", "test_chat_returns_openai_completion"),
    ],
)
def test_the_kit_catches(kit: pytest.Pytester, bug: str, caught_by: str) -> None:
    outcomes = run_kit(kit, {bug})
    assert f"TestSample::{caught_by}" in {f"TestSample::{n.split('::')[-1]}" for n in failed(outcomes)}, (
        f"{bug} was not caught by {caught_by}; failed: {sorted(failed(outcomes))}"
    )
