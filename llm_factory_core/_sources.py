"""Reading configuration from the environment / a .env file and from YAML.

Environment: for every installed provider plugin ``<KEY>``: ``<KEY>_API_KEYS`` (comma-separated)
or ``<KEY>_API_KEY``, ``<KEY>_API_BASES`` or ``<KEY>_API_BASE``, ``<KEY>_MODEL`` (comma-separated
for several; ``name=upstream-id`` when callers use another name than the provider), and
``<KEY>_<FIELD>`` for any other field of the provider (``OPENAI_API_VERSION``).
One deployment per key and model; one base serves every key, or key i pairs with base i.
Router settings: ``LLM_FACTORY_STRATEGY``, ``LLM_FACTORY_NUM_RETRIES``, ``LLM_FACTORY_TIMEOUT``,
``LLM_FACTORY_FALLBACKS`` (``gpt-4o=qwen-plus|deepseek-chat;...``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ._config import FactoryConfig, ModelConfig, RouterSettings, format_validation_error
from ._errors import ConfigurationError
from ._plugins import PluginRegistry

__all__ = ["load_env", "read_env_file", "config_from_env", "load_yaml"]

_ENV_ROUTER = {
    "LLM_FACTORY_STRATEGY": "strategy",
    "LLM_FACTORY_NUM_RETRIES": "num_retries",
    "LLM_FACTORY_TIMEOUT": "timeout",
}
_COMMON_ENV_FIELDS = (
    "weight",
    "priority",
    "max_concurrency",
    "timeout",
    "connect_timeout",
    "first_token_timeout",
    "chunk_timeout",
    "max_tokens",
    "temperature",
    "top_p",
)


def read_env_file(env_file: str | os.PathLike[str] | None) -> dict[str, str]:
    """Variables of a .env file. An explicit file that does not exist is an error; without one,
    ``./.env`` is read when present."""
    from dotenv import dotenv_values

    if env_file is None:
        path = Path(".env")
        if not path.is_file():
            return {}
    else:
        path = Path(env_file)
        if not path.is_file():
            raise ConfigurationError(f"env file {str(path)!r} does not exist")
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def load_env(env_file: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """The .env file's variables overlaid by the real environment (real variables win)."""
    return {**read_env_file(env_file), **os.environ}


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()] if value else []


def config_from_env(env: Mapping[str, str], registry: PluginRegistry, source: str = "environment") -> FactoryConfig:
    providers: list[ModelConfig] = []
    for key in registry.installed_provider_keys():
        prefix = key.upper().replace("-", "_") + "_"
        keys_var = prefix + ("API_KEYS" if env.get(prefix + "API_KEYS") else "API_KEY")
        keys = _split(env.get(keys_var))
        models_var = prefix + ("MODELS" if env.get(prefix + "MODELS") else "MODEL")
        models = _split(env.get(models_var))
        if not keys and not models:
            continue
        if not models:
            raise ConfigurationError(
                f"{source}: {keys_var} is set but {prefix}MODEL is not: set {prefix}MODEL to the "
                "model name callers will use (comma-separate several)."
            )
        bases_var = prefix + ("API_BASES" if env.get(prefix + "API_BASES") else "API_BASE")
        bases = _split(env.get(bases_var))
        if len(bases) > 1 and len(bases) != max(len(keys), 1):
            raise ConfigurationError(
                f"{source}: {keys_var} has {len(keys)} key(s) but {bases_var} has {len(bases)} "
                f"base URL(s). Give one base for every key, or exactly one base per key (key i "
                "is used with base i): a key usually works only on its own resource."
            )
        cls = registry.provider(key)
        extras: dict[str, Any] = {}
        for field in (*_COMMON_ENV_FIELDS, *cls.Settings.model_fields):
            if field in ("model", "api_key", "api_base"):
                continue
            value = env.get(prefix + field.upper())
            if value is not None and value != "":
                extras[field] = value
        for model in models:
            for i, api_key in enumerate(keys or [None]):
                base = bases[i] if len(bases) > 1 else (bases[0] if bases else None)
                name, _, upstream = model.partition("=")  # "sonnet=us.anthropic.claude-..." names an id
                data: dict[str, Any] = {"provider": key, "model_name": name.strip(), **extras}
                if upstream.strip():
                    data["model"] = upstream.strip()
                if api_key is not None:
                    data["api_key"] = api_key
                if base is not None:
                    data["api_base"] = base
                try:
                    providers.append(ModelConfig.model_validate(data))
                except ValidationError as exc:
                    raise ConfigurationError(format_validation_error(exc, f"{source} ({prefix}*)")) from None
    router: dict[str, Any] = {field: env[var] for var, field in _ENV_ROUTER.items() if env.get(var)}
    if env.get("LLM_FACTORY_FALLBACKS"):
        router["fallbacks"] = _parse_fallbacks(env["LLM_FACTORY_FALLBACKS"], source)
    try:
        return FactoryConfig(providers=providers, router=RouterSettings.model_validate(router))
    except ValidationError as exc:
        raise ConfigurationError(format_validation_error(exc, f"{source} (LLM_FACTORY_*)", ("router",))) from None


def _parse_fallbacks(value: str, source: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in value.split(";"):
        if not item.strip():
            continue
        model, sep, targets = item.partition("=")
        if not sep or not model.strip() or not targets.strip():
            raise ConfigurationError(
                f"{source}: LLM_FACTORY_FALLBACKS item {item!r} must look like 'gpt-4o=qwen-plus|deepseek-chat'"
            )
        out[model.strip()] = [t.strip() for t in targets.split("|") if t.strip()]
    return out


_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _substitute(value: Any, env: Mapping[str, str], source: str, path: str) -> Any:
    if isinstance(value, str) and "$" in value:

        def repl(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name in env and env[name] != "":
                return env[name]
            if default is not None:
                return default
            raise ConfigurationError(
                f"{source}: {path}: environment variable {name} is not set (set it, or write ${{{name}:-default}})"
            )

        return _VAR.sub(repl, value)
    if isinstance(value, dict):
        return {k: _substitute(v, env, source, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, env, source, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def load_yaml(path: str | os.PathLike[str], env: Mapping[str, str]) -> FactoryConfig:
    """Parse a YAML config safely (``yaml.safe_load``: no object construction), substitute
    ``${VAR}`` / ``${VAR:-default}``, and validate; errors name the file and the field path."""
    import yaml  # imported here: most processes never read YAML, and import time matters

    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"config file {source!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"config file {source!r} cannot be read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # Say where and what, but not PyYAML's snippet of the line: it may hold a key.
        def at(mark: Any) -> str:
            return f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""

        problem = (getattr(exc, "problem", None) or type(exc).__name__) + at(getattr(exc, "problem_mark", None))
        context = getattr(exc, "context", None)
        if context:
            problem = f"{context}{at(getattr(exc, 'context_mark', None))}: {problem}"
        raise ConfigurationError(f"{source}: not valid YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigurationError(f"{source}: the top level must be a mapping with a 'providers:' list")
    data = _substitute(data, env, source, "")
    try:
        return FactoryConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(format_validation_error(exc, source)) from None
