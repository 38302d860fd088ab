"""Finding the configuration the way the library does: an explicit file, then ``LLM_FACTORY_CONFIG``,
then ``./config.yaml``, then the environment (overlaid on ``.env``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# The core's own .env reader, so the server reads .env exactly as LLMFactory.create() does.
from llm_factory_core import LLMFactory, load_env

__all__ = ["Discovered", "discover", "HOW_TO_CONFIGURE"]

CONFIG_ENV = "LLM_FACTORY_CONFIG"
ENV_FILE_ENV = "LLM_FACTORY_ENV_FILE"

HOW_TO_CONFIGURE = (
    "No provider is configured. Add one in the environment or .env (for example "
    "OPENAI_API_KEY=sk-... and OPENAI_MODEL=gpt-4o; likewise QWEN_*, DEEPSEEK_*, CLAUDE_*, GEMINI_*), "
    "or write a config.yaml with a 'providers:' list (provider, model_name, api_key) and restart; "
    "see the llm-factory-server README."
)


@dataclass(frozen=True)
class Discovered:
    factory: LLMFactory
    source: str
    """Where the configuration came from, for the start-up log."""
    env: dict[str, str]
    """The environment the configuration was read with (.env overlaid by real variables)."""


def discover(
    config: str | os.PathLike[str] | None = None, env_file: str | os.PathLike[str] | None = None
) -> Discovered:
    """Build the factory from the first configuration source found."""
    env_file = env_file or os.environ.get(ENV_FILE_ENV) or None
    env = load_env(env_file)
    path = config or env.get(CONFIG_ENV) or None
    if path is None and Path("config.yaml").is_file():
        path = "config.yaml"
    if path is not None:
        # ${VAR} in the YAML also reads ./.env, as LLMFactory.create() does for the environment.
        yaml_env_file = env_file or (".env" if Path(".env").is_file() else None)
        factory = LLMFactory.create_from_config(path, env_file=yaml_env_file)
        return Discovered(factory, str(path), env)
    factory = LLMFactory.create(env_file=env_file)
    source = (
        f"environment ({env_file})" if env_file else ("environment (.env)" if Path(".env").is_file() else "environment")
    )
    return Discovered(factory, source, env)
