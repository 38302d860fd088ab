"""Plugin discovery: entry points, lazy import, duplicates, missing plugins."""

from __future__ import annotations

import importlib.metadata
import sys
import types

import pytest

from llm_factory_core import LLMFactory, ModelConfig, PluginError, hookimpl
from llm_factory_core.providers import PluginRegistry, Provider, default_registry


class AcmeProvider(Provider):
    key = "acme"


def plugin_module(name: str, cls: type[Provider]) -> types.ModuleType:
    module = types.ModuleType(name)

    @hookimpl
    def llm_factory_register_providers(register):  # type: ignore[no-untyped-def]
        register(cls)

    module.llm_factory_register_providers = llm_factory_register_providers  # type: ignore[attr-defined]
    return module


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, eps: list[importlib.metadata.EntryPoint]) -> None:
    real = importlib.metadata.entry_points

    def entry_points(**kw):  # type: ignore[no-untyped-def]
        if kw.get("group") == "llm_factory":
            return importlib.metadata.EntryPoints(eps)
        return real(**kw)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


@pytest.mark.parametrize("key", ["openai", "qwen", "deepseek", "claude", "gemini"])
def test_installed_provider_distributions_are_found_by_entry_point(key: str) -> None:
    distribution = f"llm-factory-{key}"
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{distribution} is not installed here")
    assert key in default_registry().installed_provider_keys()


def test_third_party_plugin_is_found_through_its_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llm_factory_acme", plugin_module("llm_factory_acme", AcmeProvider))
    fake_entry_points(monkeypatch, [importlib.metadata.EntryPoint("acme", "llm_factory_acme", "llm_factory")])
    registry = PluginRegistry()
    assert "acme" in registry.installed_provider_keys()
    factory = LLMFactory(ModelConfig(provider="acme", model_name="m"), registry=registry)
    assert factory.deployments[0].provider_cls is AcmeProvider


def test_plugins_are_imported_only_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(monkeypatch, [importlib.metadata.EntryPoint("ghost", "llm_factory_ghost_missing", "llm_factory")])
    registry = PluginRegistry()
    assert "ghost" in registry.installed_provider_keys()  # listed without importing
    with pytest.raises(PluginError, match="failed to import"):
        registry.provider("ghost")
    with pytest.raises(PluginError, match="failed to import"):  # the real cause, every time
        registry.provider("ghost")


def test_two_plugins_claiming_one_key_name_both(monkeypatch: pytest.MonkeyPatch) -> None:
    class Other(Provider):
        key = "acme"

    registry = PluginRegistry(entry_points=False)
    registry.register(plugin_module("first_plugin", AcmeProvider), origin="llm-factory-acme")
    with pytest.raises(PluginError, match="llm-factory-acme and llm-factory-acme-fork"):
        registry.register(plugin_module("second_plugin", Other), origin="llm-factory-acme-fork")


def test_missing_plugin_for_a_known_provider_names_the_distribution() -> None:
    registry = PluginRegistry(entry_points=False)
    with pytest.raises(PluginError, match="pip install llm-factory-qwen"):
        LLMFactory(ModelConfig(provider="qwen", model_name="qwen-turbo", api_key="k"), registry=registry)


def test_a_misspelt_installed_provider_suggests_the_installed_one() -> None:
    registry = PluginRegistry(entry_points=False)
    registry.register(plugin_module("acme_plugin", AcmeProvider), origin="llm-factory-acme")
    with pytest.raises(PluginError, match="did you mean 'acme'") as caught:
        LLMFactory(ModelConfig(provider="acmee", model_name="m", api_key="k"), registry=registry)
    assert "pip install" not in caught.value.message


def test_a_misspelt_first_party_provider_names_the_right_distribution() -> None:
    registry = PluginRegistry(entry_points=False)
    with pytest.raises(PluginError, match=r"did you mean .gemini..*pip install llm-factory-gemini") as caught:
        LLMFactory(ModelConfig(provider="gemnii", model_name="m", api_key="k"), registry=registry)
    assert "llm-factory-gemnii" not in caught.value.message


def test_an_entry_point_named_unlike_its_key_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    class CohereV2(Provider):
        key = "cohere-v2"

    monkeypatch.setitem(sys.modules, "llm_factory_cohere", plugin_module("llm_factory_cohere", CohereV2))
    fake_entry_points(monkeypatch, [importlib.metadata.EntryPoint("cohere", "llm_factory_cohere", "llm_factory")])
    with pytest.raises(PluginError, match=r"entry point named .cohere. but registers provider key.*.cohere-v2.") as e:
        LLMFactory(ModelConfig(provider="cohere", model_name="m"), registry=PluginRegistry())
    assert "is not installed" not in e.value.message
