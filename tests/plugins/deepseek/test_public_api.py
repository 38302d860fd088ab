"""The plugin's public surface is pinned; it is found through its entry point."""

from importlib.metadata import entry_points

import llm_factory_deepseek
from llm_factory_core.providers import default_registry


def test_public_names() -> None:
    assert sorted(llm_factory_deepseek.__all__) == [
        "DeepSeekProvider",
        "DeepSeekSettings",
        "prepare_messages",
        "thinking_mode",
    ]


def test_found_through_its_entry_point() -> None:
    (ep,) = [ep for ep in entry_points(group="llm_factory") if ep.name == "deepseek"]
    assert ep.value == "llm_factory_deepseek"
    assert default_registry().provider("deepseek") is llm_factory_deepseek.DeepSeekProvider
