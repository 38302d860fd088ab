"""GET /v1/models, /v1/models/{id}, /v1/providers/status, /health, /ready and /metrics."""

from __future__ import annotations

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llm_factory_core import LLMFactory

from .conftest import Serve
from .helpers import UPSTREAM_KEY, ServerThread, Upstream, client, deployment, error_reply, make_factory

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def two_models(upstream: Upstream, serve: Serve) -> ServerThread:
    return serve(make_factory(upstream, deployment("a"), deployment("b"), deployment("c", "org/model:latest")))


def test_models_list_and_retrieve(two_models: ServerThread) -> None:
    sdk = client(two_models)
    models = list(sdk.models.list())
    assert [(m.id, m.owned_by, m.object) for m in models] == [
        ("gpt-4o", "openai", "model"),
        ("org/model:latest", "openai", "model"),
    ]
    assert sdk.models.retrieve("org/model:latest").id == "org/model:latest"  # ids may contain '/'
    with pytest.raises(openai.NotFoundError) as info:
        sdk.models.retrieve("gpt-5")
    assert info.value.code == "model_not_found" and "gpt-4o" in info.value.message


def test_providers_status_is_key_safe(upstream: Upstream, serve: Serve) -> None:
    configs = [deployment("a"), deployment("b")]
    configs[1] = configs[1].model_copy(update={"name": None})  # default name: carries the masked key
    server = serve(make_factory(upstream, *configs, max_cooldown_wait=0))
    upstream.script("a", lambda r: error_reply(503, "overloaded"))
    client(server).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, extra_body={"load_balance_strategy": "first_available"}
    )
    response = httpx.get(f"{server.url}/v1/providers/status")
    assert response.status_code == 200 and UPSTREAM_KEY not in response.text
    rows = {row["name"]: row for row in response.json()["data"]}
    assert rows["a-gpt-4o"]["state"] == "cooldown" and rows["a-gpt-4o"]["failures"] == 1
    assert rows["a-gpt-4o"]["api_key"] == "****0001" and rows["a-gpt-4o"]["until"] is not None
    (other,) = [name for name in rows if name != "a-gpt-4o"]
    assert other == "openai/gpt-4o#2" and rows[other]["api_key"] == "****0001"  # no key material in labels
    assert rows[other]["state"] == "healthy" and rows[other]["successes"] == 1


def test_health_and_ready(gateway: ServerThread, serve: Serve) -> None:
    assert httpx.get(f"{gateway.url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway.url}/ready")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "models": {"gpt-4o": True}}
    empty = serve(LLMFactory([]))
    response = httpx.get(f"{empty.url}/ready")
    assert response.status_code == 503 and "OPENAI_API_KEY" in response.json()["reason"]
    assert httpx.get(f"{empty.url}/health").status_code == 200


def test_no_provider_configured_says_how_to_add_one(serve: Serve) -> None:
    server = serve(LLMFactory([]))
    body = httpx.get(f"{server.url}/v1/models").json()
    assert body["data"] == [] and "config.yaml" in body["message"] and "OPENAI_MODEL" in body["message"]
    with pytest.raises(openai.NotFoundError) as info:
        client(server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert "no provider is configured" in info.value.message


def _samples(server: ServerThread) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{server.url}/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert UPSTREAM_KEY not in response.text
    out = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics(upstream: Upstream, serve: Serve) -> None:
    server = serve(make_factory(upstream, deployment("a"), deployment("b"), max_cooldown_wait=0))
    sdk = client(server)
    first = {"load_balance_strategy": "first_available"}
    sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_body=first)
    list(
        sdk.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}, extra_body=first
        )
    )
    upstream.script("a", lambda r: error_reply(500, "boom"))
    sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_body=first)  # a fails, b answers
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="made-up-name", messages=MESSAGES)
    m = _samples(server)

    def get(name: str, **labels: str) -> float:
        return m[(name, tuple(sorted(labels.items())))]

    assert get("llm_factory_requests_total", model="gpt-4o", stream="false", status="200") == 2
    assert get("llm_factory_requests_total", model="gpt-4o", stream="true", status="200") == 1
    # an unknown model name never becomes a label value (clients cannot explode cardinality)
    assert get("llm_factory_requests_total", model="unknown", stream="false", status="404") == 1
    assert get("llm_factory_request_duration_seconds_count", model="gpt-4o", stream="false") == 2
    assert get("llm_factory_time_to_first_token_seconds_count", model="gpt-4o", deployment="a-gpt-4o") == 1
    assert get("llm_factory_tokens_total", model="gpt-4o", deployment="a-gpt-4o", type="prompt") == 18
    assert get("llm_factory_tokens_total", model="gpt-4o", deployment="b-gpt-4o", type="completion") == 12
    assert get("llm_factory_failovers_total", model="gpt-4o") == 1
    assert (
        get("llm_factory_deployment_state_changes_total", deployment="a-gpt-4o", model="gpt-4o", state="cooldown") == 1
    )
    labels = {"deployment": "a-gpt-4o", "model": "gpt-4o", "provider": "openai"}
    assert get("llm_factory_deployment_state", **labels, state="cooldown") == 1
    assert get("llm_factory_deployment_state", **labels, state="healthy") == 0
    assert get("llm_factory_deployment_failures_total", **labels) == 1
    assert get("llm_factory_deployment_successes_total", **labels) == 2
    assert get("llm_factory_deployment_in_flight", **labels) == 0


def test_two_gateways_in_one_process_keep_their_metrics_apart(upstream: Upstream, serve: Serve) -> None:
    one = serve(make_factory(upstream))
    two = serve(make_factory(upstream))
    client(one).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    key = ("llm_factory_requests_total", (("model", "gpt-4o"), ("status", "200"), ("stream", "false")))
    assert _samples(one)[key] == 1
    assert key not in _samples(two)


def test_docs_cover_the_get_routes(gateway: ServerThread) -> None:
    paths = httpx.get(f"{gateway.url}/openapi.json").json()["paths"]
    assert {"/v1/models", "/v1/providers/status"} <= set(paths)
