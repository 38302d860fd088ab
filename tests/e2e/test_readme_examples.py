# ruff: noqa: RUF003  (the README is Chinese: full-width punctuation is intended)
"""The original README's examples (llm-factory-README.zh.md), run against fake upstreams.

Each example is kept as written, with three kinds of change only:
* the import reads ``from llm_factory_core import ...``;
* placeholders that are not URLs (``"your-api-base"``, ``"base1"``, ``"your-qwen-api-base"``...)
  become real-looking URLs, since a base URL must be one (``test_placeholder_base_is_a_clear_error``);
* the fake upstream is injected with ``transport=`` and the factory is closed at the end.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_factory_core import (
    AllDeploymentsFailedError,
    ConfigurationError,
    LLMFactory,
    ModelConfig,
    ProviderType,
)
from tests.plugins.openai.fake_openai import FakeOpenAI

from .upstreams import Upstreams, require_providers

ACCOUNT1 = "https://account1.openai.azure.com"
STORY = "从前有一座山，山上有一座庙，庙里有个老和尚在给小和尚讲故事。"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The real environment wins over a .env file; keep the developer's variables out."""
    for name in list(os.environ):
        if name.split("_", 1)[0] in {"OPENAI", "QWEN", "DEEPSEEK", "CLAUDE", "GEMINI", "LLM"}:
            monkeypatch.delenv(name)
    yield


# -- 1. 直接模型配置 ---------------------------------------------------------------------------------


def test_direct_model_configuration() -> None:
    fake = FakeOpenAI(text="你好！有什么可以帮你的吗？")

    # 配置单个模型
    config = ModelConfig(
        provider=ProviderType.OPENAI,
        model_name="gpt-4o",
        api_key="your-api-key",
        api_base=ACCOUNT1,
        api_version="2024-02-15-preview",
    )

    # 使用单个配置创建工厂
    factory = LLMFactory(config, transport=fake.transport)

    # 使用工厂
    response = factory.chat("你好，世界！")
    factory.close()

    assert response.choices[0].message.content == "你好！有什么可以帮你的吗？"
    assert response.object == "chat.completion" and response.id and response.created > 0
    (seen,) = fake.requests
    assert seen.url == f"{ACCOUNT1}/openai/deployments/gpt-4o/chat/completions?api-version=2024-02-15-preview"
    assert seen.headers["api-key"] == "your-api-key"
    assert seen.body["messages"] == [{"role": "user", "content": "你好，世界！"}]


def test_placeholder_base_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match=r"providers\[0\]\.api_base.*http:// or https:// URL"):
        LLMFactory(
            ModelConfig(
                provider=ProviderType.OPENAI,
                model_name="gpt-4o",
                api_key="your-api-key",
                api_base="your-api-base",
                api_version="2024-02-15-preview",
            )
        )


# -- 2. 多模型配置 -----------------------------------------------------------------------------------


def multi_model_configs() -> list[ModelConfig]:
    # 配置多个模型
    configs = [
        ModelConfig(
            provider=ProviderType.OPENAI,
            model_name="gpt-4o",
            api_key="key1",
            api_base=ACCOUNT1,
            api_version="2024-02-15-preview",
        ),
        ModelConfig(
            provider=ProviderType.QWEN,
            model_name="qwen-turbo",
            api_key="key2",
            api_base="https://dashscope.aliyuncs.com/api/v1",
        ),
        ModelConfig(
            provider=ProviderType.DEEPSEEK,
            model_name="deepseek-chat",
            api_key="key3",
            api_base="https://api.deepseek.com",
        ),
    ]
    return configs


@pytest.mark.parametrize("strategy", ["round_robin", "random", "first_available"])
def test_multi_model_configuration(strategy: str) -> None:
    require_providers("qwen", "deepseek")
    upstreams = Upstreams(FakeOpenAI(text="Azure 的回答"))
    configs = multi_model_configs()

    # 使用多个配置创建工厂
    factory = LLMFactory(configs, transport=upstreams.transport)

    # 使用负载均衡
    response = factory.chat(
        "你好！",
        load_balance_strategy=strategy,  # 可选："random"（随机）, "first_available"（优先可用）
    )

    # Every configured model answers by its name, each through its own provider.
    qwen = factory.chat("你好！", model="qwen-turbo", load_balance_strategy=strategy)
    deepseek = factory.chat("你好！", model="deepseek-chat", load_balance_strategy=strategy)
    statuses = factory.status()
    factory.close()

    # Without a model the first configured one (gpt-4o) answers.
    assert response.choices[0].message.content == "Azure 的回答"
    assert len(upstreams.openai.requests) == 1 and upstreams.openai.requests[0].key == "key1"
    assert qwen.choices[0].message.content == upstreams.dashscope.text
    assert upstreams.dashscope.bodies()[0]["model"] == "qwen-turbo"
    assert upstreams.dashscope.requests[0].headers["authorization"] == "Bearer key2"
    assert deepseek.choices[0].message.content == "Hello from DeepSeek"
    assert upstreams.deepseek.bodies()[0]["model"] == "deepseek-chat"
    assert [s.provider for s in statuses] == ["openai", "qwen", "deepseek"]
    assert all(s.state == "healthy" and s.successes == 1 for s in statuses)


# -- 3. 环境变量配置 (.env) -----------------------------------------------------------------------------

README_ENV = """\
# Azure OpenAI 配置
OPENAI_API_KEYS="key1,key2,key3"  # 多个 API 密钥用于负载均衡
OPENAI_API_BASES="https://account1.openai.azure.com,https://account2.openai.azure.com"
OPENAI_MODEL="gpt-4o"
OPENAI_API_VERSION="2024-02-15-preview"

# 可选：其他提供商配置
QWEN_API_KEYS="key1,key2"
QWEN_MODEL="qwen-turbo"
QWEN_API_BASE="your-qwen-api-base"
"""


def test_env_file_with_three_keys_and_two_bases_is_a_clear_error(tmp_path: Path) -> None:
    env_file = tmp_path / ".env.local"
    env_file.write_text(README_ENV, encoding="utf-8")
    with pytest.raises(ConfigurationError) as info:
        # 或指定其他环境变量文件
        LLMFactory.create(env_file=env_file, transport=FakeOpenAI().transport)
    message = str(info.value)
    assert "OPENAI_API_KEYS has 3 key(s) but OPENAI_API_BASES has 2 base URL(s)" in message
    assert "key i is used with base i" in message
    assert "key1" not in message and "key3" not in message


def three_bases_env() -> str:
    return README_ENV.replace(
        '"https://account1.openai.azure.com,https://account2.openai.azure.com"',
        '"https://account1.openai.azure.com,https://account2.openai.azure.com,https://account3.openai.azure.com"',
    ).replace('"your-qwen-api-base"', '"https://dashscope.aliyuncs.com/api/v1"')


def test_env_file_pairs_key_i_with_base_i(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_providers("qwen")
    (tmp_path / ".env").write_text(three_bases_env(), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    upstreams = Upstreams()

    # 从 .env 文件创建工厂
    factory = LLMFactory.create(transport=upstreams.transport)

    for _ in range(3):
        factory.chat("你好！")  # round robin: each key once
    factory.chat("你好！", model="qwen-turbo")
    names = factory.model_names
    factory.close()

    assert names == ["gpt-4o", "qwen-turbo"]
    pairs = sorted((r.host, r.key, r.query["api-version"]) for r in upstreams.openai.requests)
    assert pairs == [(f"account{i}.openai.azure.com", f"key{i}", "2024-02-15-preview") for i in (1, 2, 3)]
    assert all(r.auth_header == "api-key" for r in upstreams.openai.requests)
    assert upstreams.dashscope.requests[0].headers["authorization"] in ("Bearer key1", "Bearer key2")


def test_env_file_with_one_base_serves_every_key(tmp_path: Path) -> None:
    env_file = tmp_path / ".env.local"
    env_file.write_text(
        'OPENAI_API_KEYS="key1,key2,key3"\nOPENAI_API_BASE="https://account1.openai.azure.com"\n'
        'OPENAI_MODEL="gpt-4o"\nOPENAI_API_VERSION="2024-02-15-preview"\n',
        encoding="utf-8",
    )
    fake = FakeOpenAI()
    factory = LLMFactory.create(env_file=env_file, transport=fake.transport)
    for _ in range(3):
        factory.chat("你好！")
    factory.close()
    assert sorted((r.host, r.key) for r in fake.requests) == [
        ("account1.openai.azure.com", f"key{i}") for i in (1, 2, 3)
    ]


# -- 3. YAML 配置 ------------------------------------------------------------------------------------

README_YAML = """\
providers:
  - provider: "openai"
    model_name: "gpt-4o"
    api_key: "${OPENAI_API_KEY}"  # 支持从环境变量读取
    api_base: "${OPENAI_API_BASE}"
    api_version: "2024-02-01"
    max_tokens: 4096
    temperature: 0.7

  - provider: "qwen"
    model_name: "qwen-turbo"
    api_key: "${QWEN_API_KEY}"
    api_base: "https://dashscope.aliyuncs.com/api/v1"
    max_tokens: 2000
"""


def test_yaml_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_providers("qwen")
    (tmp_path / "config.yaml").write_text(README_YAML, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "azure-yaml-key-0001")
    monkeypatch.setenv("OPENAI_API_BASE", "https://yaml-resource.openai.azure.com")
    monkeypatch.setenv("QWEN_API_KEY", "sk-qwen-yaml-0002")
    upstreams = Upstreams(FakeOpenAI(text="来自 YAML"))

    # 从 YAML 配置创建工厂
    factory = LLMFactory.create_from_config("config.yaml", transport=upstreams.transport)

    response = factory.chat("你好，世界！")
    qwen = factory.chat("你好，世界！", model="qwen-turbo")
    factory.close()

    assert response.choices[0].message.content == "来自 YAML"
    (seen,) = upstreams.openai.requests
    assert seen.host == "yaml-resource.openai.azure.com" and seen.key == "azure-yaml-key-0001"
    assert seen.query == {"api-version": "2024-02-01"}
    assert (seen.body["max_tokens"], seen.body["temperature"]) == (4096, 0.7)
    assert qwen.choices[0].message.content == upstreams.dashscope.text
    assert upstreams.dashscope.bodies()[0]["parameters"]["max_tokens"] == 2000
    assert upstreams.dashscope.requests[0].headers["authorization"] == "Bearer sk-qwen-yaml-0002"


def test_yaml_missing_variable_names_it(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(README_YAML, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"providers\[0\]\.api_key: environment variable OPENAI_API_KEY"):
        LLMFactory.create_from_config(tmp_path / "config.yaml", transport=FakeOpenAI().transport)


README_BALANCE_YAML = """\
providers:
  - provider: "openai"
    model_name: "gpt-4"          # 相同的模型名称
    api_key: "key1"
    api_base: "https://base1.example.com/v1"

  - provider: "openai"
    model_name: "gpt-4"          # 相同的模型名称
    api_key: "key2"
    api_base: "https://base2.example.com/v1"
"""


def test_yaml_same_model_name_is_load_balanced(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(README_BALANCE_YAML, encoding="utf-8")
    fake = FakeOpenAI()
    factory = LLMFactory.create_from_config(tmp_path / "config.yaml", transport=fake.transport)
    for _ in range(4):
        factory.chat("你好！", model="gpt-4", load_balance_strategy="round_robin")
    factory.close()
    pairs = [(r.host, r.key, r.auth_header) for r in fake.requests]
    assert sorted(pairs) == sorted(
        [("base1.example.com", "key1", "authorization"), ("base2.example.com", "key2", "authorization")] * 2
    )
    assert pairs[0] != pairs[1]


# -- 同步与异步使用 -----------------------------------------------------------------------------------


@pytest.fixture
def readme_factory() -> Iterator[tuple[LLMFactory, FakeOpenAI]]:
    fake = FakeOpenAI(text="你好！我能帮你什么忙？", pieces=[STORY[i : i + 5] for i in range(0, len(STORY), 5)])
    config = ModelConfig(
        provider=ProviderType.OPENAI,
        model_name="gpt-4o",
        api_key="your-api-key",
        api_base=ACCOUNT1,
        api_version="2024-02-15-preview",
    )
    f = LLMFactory(config, transport=fake.transport)
    yield f, fake
    f.close()


def test_sync_usage(readme_factory: tuple[LLMFactory, FakeOpenAI]) -> None:
    factory, fake = readme_factory
    # 适用于脚本、命令行工具等
    response = factory.chat("你好，世界！")
    assert response.choices[0].message.content == "你好！我能帮你什么忙？"
    assert response.to_dict()["choices"][0]["message"] == {"role": "assistant", "content": "你好！我能帮你什么忙？"}
    assert [r.body["messages"] for r in fake.requests] == [[{"role": "user", "content": "你好，世界！"}]]


@pytest.mark.anyio
async def test_async_usage(readme_factory: tuple[LLMFactory, FakeOpenAI]) -> None:
    factory, fake = readme_factory

    # 适用于 FastAPI、aiohttp 等
    async def chat():  # type: ignore[no-untyped-def]
        response = await factory.chat_async("你好，世界！")
        return response

    response = await chat()
    assert response.choices[0].message.content == "你好！我能帮你什么忙？"
    assert [r.body.get("stream") for r in fake.requests] == [None]
    await factory.aclose()


@pytest.mark.anyio
async def test_streaming_usage(
    readme_factory: tuple[LLMFactory, FakeOpenAI], capsys: pytest.CaptureFixture[str]
) -> None:
    factory, fake = readme_factory
    fake.async_filter = True  # Azure's extra annotation chunks must not disturb the loop

    # 流式响应
    async for chunk in factory.stream_async("写一个故事"):
        if chunk.choices and chunk.choices[0].get("delta", {}).get("content"):
            print(chunk.choices[0]["delta"]["content"], end="", flush=True)

    assert capsys.readouterr().out == STORY
    assert fake.requests[0].body["stream"] is True
    assert fake.requests[0].body["messages"] == [{"role": "user", "content": "写一个故事"}]
    await factory.aclose()


# -- 错误处理 ----------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_error_handling_example(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("readme")
    fake = FakeOpenAI(invalid_keys={"azure-secret-key-000000001"})
    factory = LLMFactory(
        ModelConfig(
            provider=ProviderType.OPENAI,
            model_name="gpt-4o",
            api_key="azure-secret-key-000000001",
            api_base=ACCOUNT1,
            api_version="2024-02-15-preview",
        ),
        transport=fake.transport,
    )
    caught = None
    try:
        response = await factory.chat_async("你好")  # noqa: F841
    except Exception as e:
        logger.error(f"聊天失败: {e}")
        caught = e
    await factory.aclose()
    assert isinstance(caught, AllDeploymentsFailedError)
    assert "AuthenticationError" in caplog.text and "聊天失败" in caplog.text
    assert "azure-secret-key-000000001" not in caplog.text
    assert json.dumps([s.model_dump() for s in factory.status()]).count("azure-secret-key") == 0
