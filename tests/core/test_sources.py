"""Configuration from the environment / .env and from YAML, and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_factory_core import ConfigurationError, LLMFactory, PluginError
from llm_factory_core.testing import MockUpstream, json_response, openai_completion

ENV_PREFIXES = ("OPENAI_", "QWEN_", "DEEPSEEK_", "CLAUDE_", "GEMINI_", "LLM_FACTORY_", "AWS_")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def openai_deployments(factory: LLMFactory) -> list[tuple[str, str | None, str]]:
    return [
        (
            d.model_name,
            d.settings.api_base,
            d.settings.api_key.get_secret_value() if d.settings.api_key else "",
        )
        for d in factory.deployments
    ]


def test_env_file_one_base_serves_every_key(tmp_path: Path) -> None:
    env = write(
        tmp_path,
        ".env.local",
        'OPENAI_API_KEYS="k1111111111,k2222222222,k3333333333"\n'
        'OPENAI_API_BASE="https://one.openai.azure.com"\n'
        'OPENAI_MODEL="gpt-4o"\nOPENAI_API_VERSION="2024-02-15-preview"\n',
    )
    factory = LLMFactory.create(env_file=env)
    assert openai_deployments(factory) == [
        ("gpt-4o", "https://one.openai.azure.com", "k1111111111"),
        ("gpt-4o", "https://one.openai.azure.com", "k2222222222"),
        ("gpt-4o", "https://one.openai.azure.com", "k3333333333"),
    ]
    assert all(d.settings.api_version == "2024-02-15-preview" for d in factory.deployments)  # type: ignore[attr-defined]


def test_env_key_i_pairs_with_base_i(tmp_path: Path) -> None:
    write(
        tmp_path,
        ".env",
        "OPENAI_API_KEYS=k1111111111,k2222222222\n"
        "OPENAI_API_BASES=https://a.openai.azure.com,https://b.openai.azure.com\n"
        "OPENAI_MODEL=gpt-4o\nOPENAI_API_VERSION=2024-10-21\n",
    )
    factory = LLMFactory.create()  # reads ./.env
    assert [(b, k) for _, b, k in openai_deployments(factory)] == [
        ("https://a.openai.azure.com", "k1111111111"),
        ("https://b.openai.azure.com", "k2222222222"),
    ]


def test_env_three_keys_two_bases_is_a_clear_error(tmp_path: Path) -> None:
    env = write(
        tmp_path,
        ".env",
        'OPENAI_API_KEYS="key1,key2,key3"\n'
        'OPENAI_API_BASES="https://account1.openai.azure.com,https://account2.openai.azure.com"\n'
        'OPENAI_MODEL="gpt-4o"\n',
    )
    with pytest.raises(ConfigurationError) as info:
        LLMFactory.create(env_file=env)
    message = str(info.value)
    assert "OPENAI_API_KEYS has 3 key(s)" in message and "OPENAI_API_BASES has 2" in message
    assert "key i" in message
    assert "key1" not in message and "key2" not in message


def test_real_environment_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = write(
        tmp_path,
        ".env",
        "OPENAI_API_KEY=from-file-0000\nOPENAI_MODEL=file-model\nOPENAI_API_BASE=https://x.test/v1\n",
    )
    monkeypatch.setenv("OPENAI_MODEL", "env-model")
    factory = LLMFactory.create(env_file=env)
    assert factory.model_names == ["env-model"]


def test_env_several_models_and_router_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-0000000000")
    monkeypatch.setenv("OPENAI_MODEL", "gpt-4o, gpt-4o-mini")
    monkeypatch.setenv("OPENAI_API_BASE", "https://x.test/v1")
    monkeypatch.setenv("OPENAI_TIMEOUT", "12.5")
    monkeypatch.setenv("LLM_FACTORY_STRATEGY", "least_busy")
    monkeypatch.setenv("LLM_FACTORY_FALLBACKS", "gpt-4o=gpt-4o-mini")
    factory = LLMFactory.create()
    assert factory.model_names == ["gpt-4o", "gpt-4o-mini"]
    assert factory.config.router.strategy == "least_busy"
    assert factory.config.router.fallbacks == {"gpt-4o": ["gpt-4o-mini"]}
    assert factory.deployments[0].timeouts.total == 12.5


def test_env_keys_without_model_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEYS", "k1,k2")
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEYS is set but OPENAI_MODEL is not"):
        LLMFactory.create()


def test_missing_env_file_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        LLMFactory.create(env_file="nope.env")


def test_invalid_env_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-0000000000")
    monkeypatch.setenv("OPENAI_MODEL", "gpt-4o")
    monkeypatch.setenv("OPENAI_API_BASE", "https://x.test/v1")
    monkeypatch.setenv("OPENAI_TEMPERATURE", "hot")
    with pytest.raises(ConfigurationError, match="temperature"):
        LLMFactory.create()


def test_no_configuration_gives_an_empty_factory() -> None:
    factory = LLMFactory.create()
    assert factory.model_names == []


YAML = """
providers:
  - provider: "openai"
    model_name: "gpt-4o"
    api_key: "${OPENAI_API_KEY}"
    api_base: "${OPENAI_API_BASE}"
    api_version: "2024-02-01"
    max_tokens: 4096
    temperature: 0.7
  - provider: openai
    model_name: gpt-4o-mini
    api_key: ${MINI_KEY:-sk-default-key-0000}
    api_base: https://mini.test/v1
    weight: 3
    priority: 1
    timeout: 30
    first_token_timeout: 5
router:
  strategy: weighted
  num_retries: 1
  fallbacks:
    gpt-4o: [gpt-4o-mini]
"""


def test_yaml_with_substitution_defaults_and_router(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-azure-0000000")
    monkeypatch.setenv("OPENAI_API_BASE", "https://res.openai.azure.com")
    path = write(tmp_path, "config.yaml", YAML)
    factory = LLMFactory.create_from_config(path)
    first, second = factory.deployments
    assert first.settings.api_key is not None and first.settings.api_key.get_secret_value() == "sk-azure-0000000"
    assert first.defaults == {"max_tokens": 4096, "temperature": 0.7}
    assert second.settings.api_key is not None and second.settings.api_key.get_secret_value() == "sk-default-key-0000"
    assert (second.weight, second.priority, second.timeouts.total, second.timeouts.first_token) == (
        3,
        1,
        30,
        5,
    )
    assert factory.config.router.strategy == "weighted"
    assert factory.config.router.fallbacks == {"gpt-4o": ["gpt-4o-mini"]}


@pytest.mark.anyio
async def test_yaml_defaults_apply_to_requests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-azure-0000000")
    monkeypatch.setenv("OPENAI_API_BASE", "https://res.openai.azure.com")
    upstream = MockUpstream(lambda r: json_response(openai_completion("hi")))
    async with LLMFactory.create_from_config(write(tmp_path, "c.yaml", YAML), transport=upstream.transport) as f:
        await f.chat_async("x")
        await f.chat_async("x", temperature=0.1)
    first, second = upstream.bodies()
    assert (first["max_tokens"], first["temperature"]) == (4096, 0.7)
    assert (second["max_tokens"], second["temperature"]) == (4096, 0.1), "the caller's value wins"


def test_yaml_missing_variable_names_file_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "config.yaml", YAML)
    with pytest.raises(ConfigurationError) as info:
        LLMFactory.create_from_config(path)
    assert str(path) in str(info.value)
    assert "providers[0].api_key" in str(info.value) and "OPENAI_API_KEY is not set" in str(info.value)


def test_yaml_invalid_field_names_the_path(tmp_path: Path) -> None:
    text = (
        "providers:\n  - {provider: openai, model_name: a, api_key: k0000000, api_base: https://a.test}\n"
        "  - {provider: openai, model_name: b, api_key: k0000000, api_base: https://b.test, temperature: 9}\n"
    )
    with pytest.raises(ConfigurationError) as info:
        LLMFactory.create_from_config(write(tmp_path, "config.yaml", text))
    assert "config.yaml: providers[1].temperature" in str(info.value)


def test_yaml_misspelt_provider_field_is_named(tmp_path: Path) -> None:
    text = "providers:\n  - {provider: openai, model_name: a, api_key: k0000000, api_bse: https://a.test}\n"
    with pytest.raises(ConfigurationError) as info:
        LLMFactory.create_from_config(write(tmp_path, "config.yaml", text))
    assert "providers[0].api_bse" in str(info.value) and "unknown field" in str(info.value)


def test_yaml_unknown_top_level_key_and_bad_shapes(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="provders"):
        LLMFactory.create_from_config(write(tmp_path, "a.yaml", "provders: []\n"))
    with pytest.raises(ConfigurationError, match="top level must be a mapping"):
        LLMFactory.create_from_config(write(tmp_path, "b.yaml", "- 1\n- 2\n"))
    with pytest.raises(ConfigurationError, match="not valid YAML"):
        LLMFactory.create_from_config(write(tmp_path, "c.yaml", "providers: [\n"))
    with pytest.raises(ConfigurationError, match="does not exist"):
        LLMFactory.create_from_config(tmp_path / "missing.yaml")


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    text = "providers: !!python/object/apply:os.system ['echo pwned']\n"
    with pytest.raises(ConfigurationError, match="not valid YAML"):
        LLMFactory.create_from_config(write(tmp_path, "evil.yaml", text))


def test_yaml_fallback_to_unknown_model_is_an_error(tmp_path: Path) -> None:
    text = (
        "providers:\n  - {provider: openai, model_name: a, api_key: k0000000, api_base: https://a.test}\n"
        "router:\n  fallbacks: {a: [nope]}\n"
    )
    with pytest.raises(ConfigurationError, match="'nope' is not a configured model_name"):
        LLMFactory.create_from_config(write(tmp_path, "config.yaml", text))


def test_an_unknown_provider_never_suggests_installing_its_own_name() -> None:
    from llm_factory_core import ModelConfig

    with pytest.raises(PluginError, match="no installed plugin provides it") as caught:
        LLMFactory(ModelConfig(provider="mistral", model_name="m", api_key="k"))
    assert "pip install llm-factory-mistral" not in caught.value.message
    assert "llm-factory-<vendor>" in caught.value.message


def test_dollar_escape(tmp_path: Path) -> None:
    text = "providers:\n  - {provider: openai, model_name: a, api_key: 'p$$ss0000000', api_base: https://a.test}\n"
    factory = LLMFactory.create_from_config(write(tmp_path, "config.yaml", text))
    key = factory.deployments[0].settings.api_key
    assert key is not None and key.get_secret_value() == "p$ss0000000"


def test_env_model_may_name_a_different_upstream_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-0000000000")
    monkeypatch.setenv("OPENAI_API_BASE", "https://x.test/v1")
    monkeypatch.setenv("OPENAI_MODEL", "fast=gpt-4o-mini-2024-07-18, gpt-4o")
    factory = LLMFactory.create()
    assert [(d.model_name, d.settings.model) for d in factory.deployments] == [
        ("fast", "gpt-4o-mini-2024-07-18"),
        ("gpt-4o", "gpt-4o"),
    ]
