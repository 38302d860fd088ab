"""Mounting the API into an existing FastAPI app, as the original README's custom integration does."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

import llm_factory_server
from llm_factory_server import create_router, gateway_for, router

from .helpers import Upstream, client, make_factory, serving

MESSAGES = [{"role": "user", "content": "hi"}]


def test_readme_custom_integration(upstream: Upstream) -> None:
    from llm_factory_server import router as llm_router

    factory = make_factory(upstream)
    app = FastAPI()

    @app.get("/")
    async def home() -> dict[str, str]:
        return {"app": "mine"}

    app.state.llm_factory = factory
    app.include_router(llm_router, prefix="/v1")
    with serving(app) as server:
        sdk = client(server)
        assert sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices[0].message.content
        text = "".join(
            c.choices[0].delta.content or ""
            for c in sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
            if c.choices
        )
        assert text == "Hello!"
        assert [m.id for m in sdk.models.list()] == ["gpt-4o"]
        assert httpx.get(f"{server.url}/v1/providers/status").json()["data"][0]["name"] == "a-gpt-4o"
        assert httpx.get(f"{server.url}/").json() == {"app": "mine"}
        # errors keep OpenAI's envelope without any handler of ours in the host app
        response = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "nope", "messages": MESSAGES})
        assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"
        response = httpx.post(
            f"{server.url}/v1/chat/completions", content=b"{", headers={"content-type": "application/json"}
        )
        assert response.status_code == 400 and "error" in response.json()
    assert gateway_for(app).factory is factory
    factory.close()


def test_any_prefix_and_several_routers(upstream: Upstream) -> None:
    factory = make_factory(upstream)
    app = FastAPI()
    app.state.llm_factory = factory
    app.include_router(router, prefix="/api/llm/v1")
    app.include_router(create_router(), prefix="/other")
    with serving(app) as server:
        sdk = client(server)
        sdk.base_url = httpx.URL(f"{server.url}/api/llm/v1/")
        assert sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices[0].message.content
        assert httpx.get(f"{server.url}/other/models").json()["data"][0]["id"] == "gpt-4o"
        assert httpx.get(f"{server.url}/v1/models").status_code == 404
    factory.close()


def test_router_discovers_its_factory_lazily(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.yaml").write_text(
        "providers:\n"
        "  - provider: openai\n"
        "    model_name: from-yaml\n"
        "    api_key: ${UPSTREAM_KEY}\n"
        "    api_base: https://yaml.test/v1\n"
        "server:\n"
        "  api_keys: [yaml-client-key]\n"
    )
    monkeypatch.setenv("UPSTREAM_KEY", "sk-from-env-0009")
    app = FastAPI()
    app.include_router(router, prefix="/v1")
    with serving(app) as server:
        assert httpx.get(f"{server.url}/v1/models").status_code == 401  # server.api_keys applies
        models = httpx.get(f"{server.url}/v1/models", headers={"authorization": "Bearer yaml-client-key"}).json()
        assert [m["id"] for m in models["data"]] == ["from-yaml"]
    gateway = gateway_for(app)
    assert gateway.source == "config.yaml" and gateway.owns_factory
    gateway.factory.close()


def test_public_api() -> None:
    assert sorted(llm_factory_server.__all__) == [
        "Gateway",
        "ServerSettings",
        "__version__",
        "create_app",
        "create_router",
        "gateway_for",
        "main",
        "router",
        "serve",
        "uvicorn_options",
    ]
    for name in llm_factory_server.__all__:
        assert getattr(llm_factory_server, name) is not None


def test_create_app_without_factory_discovers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-key-0003")
    monkeypatch.setenv("OPENAI_MODEL", "env-model")
    monkeypatch.setenv("OPENAI_API_BASE", "https://env.test/v1")
    app = llm_factory_server.create_app()
    with serving(app) as server:
        assert [m["id"] for m in httpx.get(f"{server.url}/v1/models").json()["data"]] == ["env-model"]
    assert gateway_for(app).source == "environment"
