"""Server settings (YAML ``server:``, ``LLM_FACTORY_*``, flags) and configuration discovery."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_factory_core import ConfigurationError
from llm_factory_server import Gateway, ServerSettings
from llm_factory_server._discovery import discover
from llm_factory_server._settings import load_settings

YAML = """\
providers:
  - provider: openai
    model_name: {name}
    api_key: ${{KEY_FROM_ENV}}
    api_base: https://up.test/v1
server:
  port: 9001
  api_keys: [yaml-key]
"""


def test_defaults() -> None:
    settings = load_settings({}, {})
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, 1)
    assert settings.api_keys == [] and settings.log_requests and not settings.log_content


def test_precedence_yaml_then_env_then_flags() -> None:
    section = {"port": 9001, "host": "127.0.0.2", "api_keys": ["a"], "log_content": True}
    env = {"LLM_FACTORY_PORT": "9002", "LLM_FACTORY_API_KEYS": "k1, k2,"}
    settings = load_settings(section, env, overrides={"port": 9003, "host": None})
    assert settings.port == 9003 and settings.host == "127.0.0.2" and settings.log_content is True
    assert [k.get_secret_value() for k in settings.api_keys] == ["k1", "k2"]
    assert [k.get_secret_value() for k in load_settings({}, {"LLM_FACTORY_API_KEY": "solo"}).api_keys] == ["solo"]


@pytest.mark.parametrize(
    ("section", "env", "overrides", "fragment"),
    [
        ({"prot": 1}, {}, None, "config.yaml: server.prot: unknown field"),
        ({"port": "eighty"}, {}, None, "config.yaml: server.port"),
        ({}, {"LLM_FACTORY_PORT": "99999"}, None, "environment: LLM_FACTORY_PORT"),
        ({}, {}, {"workers": 0}, "--workers"),
    ],
)
def test_errors_name_their_source(section: dict, env: dict, overrides: dict | None, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(section, env, source="config.yaml", overrides=overrides)
    assert fragment in str(info.value)


def _write(path: Path, name: str) -> Path:
    path.write_text(YAML.format(name=name))
    return path


def test_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEY_FROM_ENV", "sk-abc-0001")
    # 4. the environment (nothing here: an empty gateway that still starts)
    found = discover()
    assert found.factory.model_names == [] and found.source == "environment"
    # 3. ./config.yaml
    _write(tmp_path / "config.yaml", "cwd-model")
    assert discover().factory.model_names == ["cwd-model"]
    # 2. LLM_FACTORY_CONFIG
    other = _write(tmp_path / "other.yaml", "env-var-model")
    monkeypatch.setenv("LLM_FACTORY_CONFIG", str(other))
    assert discover().factory.model_names == ["env-var-model"]
    # 1. an explicit path
    explicit = _write(tmp_path / "explicit.yaml", "explicit-model")
    found = discover(explicit)
    assert found.factory.model_names == ["explicit-model"] and found.source == str(explicit)


def test_env_file_feeds_providers_and_settings(tmp_path: Path) -> None:
    env_file = tmp_path / "custom.env"
    env_file.write_text(
        "OPENAI_API_KEY=sk-dotenv-0002\nOPENAI_MODEL=gpt-4o-mini\nOPENAI_API_BASE=https://up.test/v1\n"
        "LLM_FACTORY_API_KEYS=dotenv-client-key\nLLM_FACTORY_PORT=8123\n"
    )
    gateway = Gateway.discover(env_file=env_file)
    assert gateway.factory.model_names == ["gpt-4o-mini"]
    assert gateway.settings.port == 8123 and gateway.authorized(b"dotenv-client-key")
    assert "custom.env" in gateway.source


def test_dot_env_in_cwd_is_read_for_yaml_too(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("KEY_FROM_ENV=sk-from-dotenv-0004\n")
    _write(tmp_path / "config.yaml", "m")
    gateway = Gateway.discover()
    assert gateway.factory.status()[0].api_key == "****0004"
    assert gateway.settings.port == 9001 and gateway.authorized(b"yaml-key")


def test_yaml_server_section_is_validated(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("providers: []\nserver:\n  api_key: oops\n")
    with pytest.raises(ConfigurationError) as info:
        Gateway.discover()
    assert "server.api_key: unknown field" in str(info.value)


def test_settings_model_forbids_extras() -> None:
    with pytest.raises(ValueError):
        ServerSettings.model_validate({"bogus": 1})


def test_readme_yaml_example_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("llm_factory_qwen", reason="the example configures qwen too")
    readme = (Path(__file__).resolve().parents[2] / "server" / "README.md").read_text()
    block = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = Path("config.yaml")
    config.write_text(block)
    for name in ("OPENAI_API_KEY", "QWEN_API_KEY", "GATEWAY_KEY"):
        monkeypatch.setenv(name, f"{name.lower()}-value-1234")
    gateway = Gateway.discover()
    assert gateway.factory.model_names == ["gpt-4o"] and len(gateway.factory.deployments) == 2
    assert gateway.settings.host == "0.0.0.0" and gateway.authorized(b"gateway_key-value-1234")
