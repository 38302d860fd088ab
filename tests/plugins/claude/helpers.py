from __future__ import annotations

from typing import Any

import httpx

import llm_factory_claude
from llm_factory_core import LLMFactory, ModelConfig
from llm_factory_core.providers import PluginRegistry

from .fake_claude import FakeAnthropic, FakeBedrock

MODEL = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
AKID, SECRET = "AKIDTESTKEY00001", "bedrock-test-secret-0001"
BEARER = "bedrock-api-key-test-0001"
ANTHROPIC_KEY = "sk-ant-test-key-0001"

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def registry() -> PluginRegistry:
    reg = PluginRegistry(entry_points=False)
    reg.register(llm_factory_claude, origin="llm-factory-claude")
    return reg


def bedrock_fake(**kw: Any) -> FakeBedrock:
    kw.setdefault("credentials", {AKID: (SECRET, None)})
    kw.setdefault("bearer_tokens", {BEARER})
    return FakeBedrock(**kw)


def bedrock_config(**overrides: Any) -> ModelConfig:
    data = {
        "provider": "claude",
        "model_name": "claude",
        "model": MODEL,
        "aws_region": "us-east-1",
        "aws_access_key_id": AKID,
        "aws_secret_access_key": SECRET,
        **overrides,
    }
    return ModelConfig.model_validate({k: v for k, v in data.items() if v is not None})


def anthropic_config(**overrides: Any) -> ModelConfig:
    data = {
        "provider": "claude",
        "model_name": "claude",
        "model": "claude-sonnet-4-5",
        "api_key": ANTHROPIC_KEY,
        "api_base": "https://api.anthropic.com",
        **overrides,
    }
    return ModelConfig.model_validate(data)


def factory(fake: FakeBedrock | FakeAnthropic, configs: list[ModelConfig], **kw: Any) -> LLMFactory:
    kw.setdefault("cooldown", 0.0)
    kw.setdefault("retry_backoff", 0.0)
    kw.setdefault("num_retries", 0)
    return LLMFactory(configs, transport=httpx.MockTransport(fake.handle), registry=registry(), **kw)
