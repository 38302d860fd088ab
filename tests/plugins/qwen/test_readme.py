"""What the README promises: install (entry point), ProviderType.QWEN, ModelConfig, QWEN_* env
variables through LLMFactory.create(env_file=...), YAML; a reply from factory.chat(...,
model="qwen-turbo") through both the native and the compatible base URL. The .env and YAML
examples are taken from the README itself."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import llm_factory_qwen
from llm_factory_core import LLMFactory, ModelConfig, ProviderType
from llm_factory_core.providers import default_registry

from .conftest import COMPAT_BASE, NATIVE_BASE
from .fake_dashscope import COMPAT_PATH, KEY, TEXT_PATH, FakeDashScope
from .fake_embeddings import NATIVE_EMBEDDINGS_PATH, vector_for

README = Path(llm_factory_qwen.__file__).parents[1] / "README.md"


def block(language: str) -> str:
    found = re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert found, f"README has no {language} example"
    return str(found[0])


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    prefixes = ("QWEN_", "OPENAI_", "DEEPSEEK_", "CLAUDE_", "GEMINI_", "LLM_FACTORY_", "DASHSCOPE_")
    for name in list(os.environ):
        if name.startswith(prefixes):
            monkeypatch.delenv(name)


def test_the_plugin_is_found_through_its_entry_point() -> None:
    assert default_registry().provider("qwen") is llm_factory_qwen.QwenProvider
    assert ProviderType.QWEN == "qwen"


@pytest.mark.parametrize(("base", "path"), [(NATIVE_BASE, TEXT_PATH), (COMPAT_BASE, COMPAT_PATH)])
def test_model_config(fake: FakeDashScope, base: str, path: str) -> None:
    assert fake.live_url is not None  # real sockets, on each HTTP transport
    live_base = fake.live_url + base.removeprefix("https://dashscope.aliyuncs.com")
    config = ModelConfig(provider=ProviderType.QWEN, model_name="qwen-turbo", api_key=KEY, api_base=live_base)
    with LLMFactory(config, transport=fake.live_transport) as factory:
        reply = factory.chat("Hello!", model="qwen-turbo")
        streamed = "".join(
            c.choices[0].delta.content or "" for c in factory.stream("Hello!", model="qwen-turbo") if c.choices
        )
    assert reply.choices[0].message.content == "Hello from DashScope" == streamed
    assert [r.path for r in fake.requests] == [path, path]


@pytest.mark.parametrize(("base", "path"), [(NATIVE_BASE, TEXT_PATH), (COMPAT_BASE, COMPAT_PATH)])
def test_env_file_from_the_readme(tmp_path: Path, clean_env: None, base: str, path: str) -> None:
    example = block("dotenv")
    assert "QWEN_API_KEYS=" in example and "QWEN_MODEL=qwen-turbo" in example
    other = "sk-fake-qwen-second-key-0002"
    text = re.sub(r"QWEN_API_KEYS=.*", f"QWEN_API_KEYS={KEY},{other}", example)
    text = re.sub(r"QWEN_API_BASE=.*", f"QWEN_API_BASE={base}", text)
    env_file = tmp_path / ".env"
    env_file.write_text(text, encoding="utf-8")
    fake = FakeDashScope(keys=(KEY, other))
    with LLMFactory.create(env_file=env_file, transport=fake.transport, strategy="round_robin") as factory:
        assert [d.provider_key for d in factory.deployments] == ["qwen", "qwen"]
        replies = [factory.chat("Hello!", model="qwen-turbo") for _ in range(2)]
    assert all(r.choices[0].message.content == "Hello from DashScope" for r in replies)
    assert {r.path for r in fake.requests} == {path}
    assert {r.headers["authorization"] for r in fake.requests} == {f"Bearer {KEY}", f"Bearer {other}"}


def test_env_options_reach_the_settings(tmp_path: Path, clean_env: None) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        f"QWEN_API_KEYS={KEY}\nQWEN_MODEL=qwen-turbo\nQWEN_WORKSPACE=ws-9\n"
        "QWEN_API_BASE=https://gw.example.test/compatible-mode/v1\nQWEN_MODE=compatible\n",
        encoding="utf-8",
    )
    fake = FakeDashScope()
    with LLMFactory.create(env_file=env_file, transport=fake.transport) as factory:
        factory.chat("Hello!", model="qwen-turbo")
    assert fake.requests[0].path == COMPAT_PATH and fake.requests[0].host == "gw.example.test"


def test_yaml_from_the_readme(tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(block("yaml"), encoding="utf-8")
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    fake = FakeDashScope()
    with LLMFactory.create_from_config(config, transport=fake.transport) as factory:
        assert factory.chat("Hello!", model="qwen-turbo").choices[0].message.content == "Hello from DashScope"
        image = {"type": "image_url", "image_url": {"url": "https://example.test/cat.png"}}
        vl = factory.chat(
            [{"role": "user", "content": [image, {"type": "text", "text": "What?"}]}], model="qwen-vl-max"
        )
    assert vl.choices[0].message.content == "Hello from DashScope"
    assert [(r.host, r.path) for r in fake.requests] == [
        ("dashscope-intl.aliyuncs.com", TEXT_PATH),
        ("dashscope-intl.aliyuncs.com", COMPAT_PATH),
    ]


def test_public_api_is_pinned() -> None:
    assert sorted(llm_factory_qwen.__all__) == [
        "NativeStreamState",
        "QwenProvider",
        "QwenSettings",
        "api_mode",
        "classify_native_error",
        "decode_native_completion",
        "encode_native_request",
        "wants_multimodal",
    ]
    assert (Path(llm_factory_qwen.__file__).parent / "py.typed").is_file()


def test_embeddings_yaml_from_the_readme(tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Embeddings section's YAML: Beijing's native API by default (URL-host test: MockTransport)."""
    section = README.read_text(encoding="utf-8").split("## Embeddings", 1)[1]
    found = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert found, "the Embeddings section has no yaml example"
    config = tmp_path / "config.yaml"
    config.write_text(found[0], encoding="utf-8")
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    fake = FakeDashScope()
    texts = [f"passage {i}" for i in range(11)]
    with LLMFactory.create_from_config(config, transport=fake.transport) as factory:
        result = factory.embed(texts, model="embed")
    assert [e.embedding for e in result.data] == [vector_for(t, 1024) for t in texts]
    assert [(r.host, r.path) for r in fake.requests] == [("dashscope.aliyuncs.com", NATIVE_EMBEDDINGS_PATH)] * 2
    assert fake.embedding_batches == [10, 1], "v4 takes at most 10 texts a request"
