from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

import llm_factory_claude
from llm_factory_core import LLMFactory, ModelConfig
from llm_factory_core.providers import PluginRegistry
from llm_factory_core.testing import serve_handler

from .fake_claude import FakeAnthropic, FakeBedrock

# Real-looking ids of today's models: a Bedrock model id, cross-region (us./global.) inference
# profiles and an inference-profile ARN (with '/' and ':'), and Anthropic ids.
MODEL = "anthropic.claude-sonnet-4-5-20250929-v1:0"
US_PROFILE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
GLOBAL_PROFILE = "global.anthropic.claude-haiku-4-5-20251001-v1:0"
OPUS_46 = "us.anthropic.claude-opus-4-6-v1"
PROFILE_ARN = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-opus-4-5-20251101-v1:0"
OLD_MODEL = "anthropic.claude-3-5-sonnet-20241022-v2:0"
BEDROCK_MODELS = (MODEL, US_PROFILE, GLOBAL_PROFILE, OPUS_46, PROFILE_ARN)
ANTHROPIC_MODEL = "claude-sonnet-4-5-20250929"

AKID, SECRET = "AKIDTESTKEY00001", "bedrock-test-secret-0001"
TEMP_AKID, TEMP_SECRET, SESSION_TOKEN = "ASIATEMPKEY00001", "temp-secret-0001", "session-token-0001-FQoGZXIvYXdzE"
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
    kw.setdefault("credentials", {AKID: (SECRET, None), TEMP_AKID: (TEMP_SECRET, SESSION_TOKEN)})
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


def session_config(**overrides: Any) -> ModelConfig:
    """Temporary credentials (an assumed role, SSO): access key, secret and session token."""
    return bedrock_config(
        aws_access_key_id=TEMP_AKID, aws_secret_access_key=TEMP_SECRET, aws_session_token=SESSION_TOKEN, **overrides
    )


def api_key_config(**overrides: Any) -> ModelConfig:
    """A Bedrock API key (bearer token)."""
    return bedrock_config(aws_access_key_id=None, aws_secret_access_key=None, api_key=BEARER, **overrides)


def anthropic_config(**overrides: Any) -> ModelConfig:
    data = {
        "provider": "claude",
        "model_name": "claude",
        "model": ANTHROPIC_MODEL,
        "mode": "anthropic",
        "api_key": ANTHROPIC_KEY,
        "api_base": "https://api.anthropic.com",
        **overrides,
    }
    return ModelConfig.model_validate(data)


def factory(fake: FakeBedrock | FakeAnthropic, configs: list[ModelConfig], **kw: Any) -> LLMFactory:
    """A factory on httpx.MockTransport: only for what needs no socket (URL and host selection)."""
    kw.setdefault("cooldown", 0.0)
    kw.setdefault("retry_backoff", 0.0)
    kw.setdefault("num_retries", 0)
    return LLMFactory(configs, transport=httpx.MockTransport(fake.handle), registry=registry(), **kw)


@asynccontextmanager
async def served(
    fake: Any, configs: ModelConfig | list[ModelConfig], transport: str, **kw: Any
) -> AsyncIterator[LLMFactory]:
    """A factory whose deployments call ``fake`` over a real socket on 127.0.0.1 through the named
    HTTP transport (``aiohttp`` or ``httpx``): what goes on the wire is what the fake checks."""
    handler = fake.handle if hasattr(fake, "handle") else fake
    kw.setdefault("cooldown", 0.0)
    kw.setdefault("retry_backoff", 0.0)
    kw.setdefault("num_retries", 0)
    with serve_handler(handler) as base:
        listed = configs if isinstance(configs, list) else [configs]
        moved = [c.model_copy(update={"api_base": base}) for c in listed]
        async with LLMFactory(moved, transport=transport, registry=registry(), **kw) as f:
            yield f


def hosts() -> list[Any]:
    """Both hosts: Bedrock with SigV4 access keys, and Anthropic's API."""
    import pytest

    return [
        pytest.param(bedrock_fake, bedrock_config, id="bedrock"),
        pytest.param(FakeAnthropic, anthropic_config, id="anthropic"),
    ]
