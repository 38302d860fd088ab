"""Usage of streams cut short (the client left, the upstream broke after commit), of the
Responses and embeddings doors, budgets across a restart, and the ``keys`` / ``usage`` CLI."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_factory_core import LLMFactory
from llm_factory_core.testing import json_response, openai_chunks, sse_response
from llm_factory_server import ServerSettings, create_app
from llm_factory_server._cli import main
from llm_factory_server.ops._cli import run_admin_command

from ..conftest import Serve
from ..helpers import Upstream, deployment, make_factory, serving
from .test_keys_limits import ADMIN, admin, chat, eventually, new_key, rows


@pytest.fixture
def gateway(upstream: Upstream, serve: Serve) -> Any:
    return serve(make_factory(upstream), admin_key=ADMIN)


def test_a_stream_the_client_left_early_is_recorded_and_billed(gateway: Any, upstream: Upstream) -> None:
    chunks = openai_chunks(["a"] * 50, include_usage=True)
    upstream.script("a", lambda request: sse_response(chunks, delay=0.05))
    key = new_key(gateway, tpm=1000)
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key['key']}"},
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 400}], "stream": True},
    ) as reply:
        for line in reply.iter_lines():
            if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                break  # leave after the first content
    eventually(lambda: len(rows()) == 1)
    (row,) = rows()
    assert row["status"] == 499 and row["estimated"] == 1
    assert row["completion_tokens"] >= 1 and row["prompt_tokens"] >= 100  # the prompt's bytes / 4
    assert admin(gateway, "GET", f"/keys/{key['id']}").json()["tokens_this_minute"] > 100


def test_a_stream_broken_after_commit_is_recorded(gateway: Any, upstream: Upstream) -> None:
    chunks = openai_chunks(["a", "b", "c"], include_usage=True)
    upstream.script("a", lambda request: sse_response(chunks, fail_after=3, done=False))
    key = new_key(gateway)["key"]
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True},
    ) as reply:
        text = reply.read().decode()
    assert '"error"' in text and "[DONE]" not in text
    eventually(lambda: len(rows()) == 1)
    (row,) = rows()
    assert row["status"] >= 500 and row["stream"] == 1 and row["estimated"] == 1 and row["completion_tokens"] >= 1


def test_a_stream_that_asked_for_usage_gets_it_and_records_it(gateway: Any) -> None:
    key = new_key(gateway)["key"]
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ) as reply:
        text = reply.read().decode()
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    assert events[-1]["usage"]["prompt_tokens"] == 9 and events[-1]["choices"] == []
    eventually(lambda: len(rows()) == 1)
    assert rows()[0]["prompt_tokens"] == 9 and rows()[0]["estimated"] == 0


def test_the_responses_door_is_limited_and_recorded(gateway: Any) -> None:
    key = new_key(gateway, rpm=1, models=["gpt-4o"])["key"]
    headers = {"authorization": f"Bearer {key}"}
    ok = httpx.post(f"{gateway.url}/v1/responses", headers=headers, json={"model": "gpt-4o", "input": "hi"})
    assert ok.status_code == 200, ok.text
    limited = httpx.post(f"{gateway.url}/v1/responses", headers=headers, json={"model": "gpt-4o", "input": "hi"})
    assert limited.status_code == 429 and limited.headers["retry-after"]
    other = httpx.post(f"{gateway.url}/v1/responses", headers=headers, json={"model": "other", "input": "hi"})
    assert other.status_code == 403
    eventually(lambda: len(rows()) == 3)
    row, limited_row, other_row = rows()
    assert row["endpoint"] == "responses" and row["prompt_tokens"] > 0 and row["cost"] > 0
    assert (limited_row["status"], other_row["status"], other_row["model"]) == (429, 403, "other")  # refusals too
    assert limited_row["cost"] is None and limited_row["prompt_tokens"] is None


def test_a_responses_stream_is_recorded(gateway: Any) -> None:
    key = new_key(gateway)["key"]
    body = {"model": "gpt-4o", "input": "hi", "stream": True}
    text = httpx.post(f"{gateway.url}/v1/responses", headers={"authorization": f"Bearer {key}"}, json=body).text
    assert "response.completed" in text
    eventually(lambda: len(rows()) == 1)
    (row,) = rows()
    assert row["endpoint"] == "responses" and row["stream"] == 1 and row["completion_tokens"] > 0


@pytest.mark.parametrize(
    ("path", "body", "failure_event"),
    [
        ("/v1/responses", {"model": "gpt-4o", "input": "x" * 400, "stream": True}, "response.failed"),
        (
            "/v1/messages",
            {"model": "gpt-4o", "max_tokens": 50, "messages": [{"role": "user", "content": "x" * 400}], "stream": True},
            "event: error",
        ),
    ],
)
def test_a_dialect_stream_broken_after_commit_is_recorded_as_the_chat_door_records_it(
    gateway: Any, upstream: Upstream, path: str, body: dict[str, Any], failure_event: str
) -> None:
    chunks = openai_chunks(["a", "b", "c"], include_usage=True)
    upstream.script("a", lambda request: sse_response(chunks, fail_after=3, done=False))
    key = new_key(gateway)["key"]
    text = httpx.post(f"{gateway.url}{path}", headers={"authorization": f"Bearer {key}"}, json=body).text
    assert failure_event in text
    eventually(lambda: len(rows()) == 1)
    (row,) = rows()
    assert row["status"] >= 500 and row["stream"] == 1 and row["estimated"] == 1
    # Billed by what was sent: the role chunk and two contents (every chunk counted, the first
    # included, as on /v1/chat/completions), and the prompt's bytes / 4.
    assert row["completion_tokens"] == 3 and row["prompt_tokens"] >= 100


def test_a_responses_stream_failing_before_content_is_recorded_as_a_stream(gateway: Any, upstream: Upstream) -> None:
    refusal = {"error": {"message": "bad request", "type": "invalid_request_error", "code": None}}
    upstream.script("a", lambda request: json_response(refusal, status=400))
    key = new_key(gateway)["key"]
    body = {"model": "gpt-4o", "input": "hi", "stream": True}
    reply = httpx.post(f"{gateway.url}/v1/responses", headers={"authorization": f"Bearer {key}"}, json=body)
    assert reply.status_code == 400
    eventually(lambda: len(rows()) == 1)
    (row,) = rows()
    assert (row["status"], row["stream"], row["endpoint"]) == (400, 1, "responses")


def test_the_embeddings_door_is_limited_and_recorded(upstream: Upstream, serve: Serve) -> None:
    upstream.script(
        "a",
        lambda request: json_response(
            {
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                "model": "text-embedding-3-small",
                "usage": {"prompt_tokens": 7, "total_tokens": 7},
            }
        ),
    )
    server = serve(
        make_factory(upstream, deployment("a", model_name="emb", model="text-embedding-3-small")), admin_key=ADMIN
    )
    key = new_key(server, rpm=1)["key"]
    headers = {"authorization": f"Bearer {key}"}
    ok = httpx.post(f"{server.url}/v1/embeddings", headers=headers, json={"model": "emb", "input": "hi"})
    assert ok.status_code == 200, ok.text
    limited = httpx.post(f"{server.url}/v1/embeddings", headers=headers, json={"model": "emb", "input": "hi"})
    assert limited.status_code == 429
    eventually(lambda: len(rows()) == 2)
    row = rows()[0]
    assert row["endpoint"] == "embeddings" and row["prompt_tokens"] == 7 and row["cost"] > 0


def test_spend_survives_a_restart(upstream: Upstream) -> None:
    def app() -> Any:
        return create_app(make_factory(upstream), settings=ServerSettings(admin_key=ADMIN))

    with serving(app()) as first:
        key = new_key(first, budget=0.000001, budget_period="day")["key"]
        assert chat(first, key).status_code == 200
    with serving(app()) as second:  # shutdown flushed the record; the new process reads the spend
        refused = chat(second, key)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "insufficient_quota"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    parser_args = __import__("llm_factory_server._cli", fromlist=["_parser"])._parser().parse_args(argv)
    code = run_admin_command(parser_args, out, err)
    return code, out.getvalue(), err.getvalue()


def test_the_cli_manages_keys_in_the_configured_database(upstream: Upstream, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    db = tmp_path / "usage.sqlite3"
    config.write_text(
        f"server: {{admin_key: {ADMIN}, usage_db: '{db}'}}\n"
        "providers:\n  - {provider: openai, model_name: gpt-4o, api_key: sk-upstream-secret-key-0001, api_base: 'https://a.test/v1'}\n"
    )
    code, key, err = run(
        "keys", "create", "team-x", "--rpm", "1", "--budget", "5", "--period", "day", "--config", str(config)
    )
    key = key.strip()
    assert code == 0 and key.startswith("lfk-") and "not shown again" in err
    code, listing, _ = run("keys", "list", "--config", str(config), "--json")
    (row,) = json.loads(listing)
    assert row["name"] == "team-x" and row["rpm"] == 1 and row["spend"] == 0 and key not in listing
    factory = LLMFactory.create_from_config(config, transport=upstream.transport)
    with serving(create_app(factory)) as server:
        code, later, _ = run("keys", "create", "team-y", "--config", str(config))
        time.sleep(1.1)
        assert chat(server, later.strip()).status_code == 200  # a key made while it runs works at once
        assert chat(server, key).status_code == 200
        assert chat(server, key).status_code == 429
        eventually(lambda: len(rows(db)) == 3)
        code, table, _ = run("usage", "--by", "model", "--since", "1d", "--url", server.url, "--admin-key", ADMIN)
        assert code == 0 and "gpt-4o" in table and "REQUESTS" in table
        code, _, err = run("keys", "revoke", row["id"], "--config", str(config))
        assert code == 0 and "Revoked" in err
        time.sleep(1.1)  # other processes (the CLI) are seen within the key refresh interval
        chat(server, key)
        eventually(lambda: chat(server, key).status_code == 401)
    factory.close()
    code, table, _ = run("usage", "--config", str(config))
    assert code == 0 and "team-x" in table and "team-y" in table
    code, _, err = run("keys", "revoke", "key_nope", "--config", str(config))
    assert code == 1 and "no client key" in err
    code, _, err = run("keys", "list", "--url", "http://127.0.0.1:9")
    assert code == 2 and "admin key" in err
    code, _, err = run("keys", "create", "x", "--rpm", "0", "--config", str(config))
    assert code == 2 and "--rpm" in err
    assert main(["keys", "list", "--config", str(config)]) == 0


def test_the_admin_cli_says_what_is_wrong_with_its_input_and_its_configuration(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"server: {{admin_key: {ADMIN}, usage_db: '{tmp_path / 'usage.sqlite3'}'}}\n"
        "providers:\n  - {provider: openai, model_name: gpt-4o, api_key: sk-upstream-secret-key-0001}\n"
    )
    code, out, err = run("keys", "create", "x", "--expires", "next tuesday", "--config", str(config))
    assert (code, out) == (2, "") and err.startswith("llm-factory: ") and "next tuesday" in err  # a bad value: 2
    broken = tmp_path / "broken.yaml"
    broken.write_text("providers:\n  - {provider: openai, model_name: gpt-4o, api_key: k, temprature: 2}\n")
    code, out, err = run("keys", "list", "--config", str(broken))
    assert (code, out) == (2, "") and "configuration error" in err and "temprature" in err


def test_the_cli_manages_keys_through_a_running_gateway(gateway: Any) -> None:
    remote = ("--url", gateway.url, "--admin-key", ADMIN)
    code, key, err = run("keys", "create", "remote-team", "--models", "gpt-4o", "--tpm", "100", *remote)
    assert code == 0 and key.strip().startswith("lfk-") and "not shown again" in err
    assert chat(gateway, key.strip()).status_code == 200
    code, listing, _ = run("keys", "list", "--json", *remote)
    (row,) = json.loads(listing)
    assert row["models"] == ["gpt-4o"] and row["tpm"] == 100 and row["requests_this_minute"] == 1
    code, _, err = run("keys", "revoke", row["id"], *remote)
    assert code == 0 and chat(gateway, key.strip()).status_code == 401
    code, _, err = run("keys", "list", "--url", gateway.url, "--admin-key", "wrong-admin-key-000000")
    assert code == 1 and "401" in err


def test_a_configured_price_is_what_the_records_and_budgets_use(upstream: Upstream, serve: Serve) -> None:
    price = {"input_per_mtok": 1_000_000, "output_per_mtok": 2_000_000}  # $1 and $2 a token: easy sums
    server = serve(make_factory(upstream), admin_key=ADMIN, prices={"gpt-4o": price})
    key = new_key(server, budget=1000)
    assert chat(server, key["key"]).status_code == 200
    eventually(lambda: len(rows()) == 1)
    (row,) = rows()
    assert row["cost"] == pytest.approx(row["prompt_tokens"] * 1 + row["completion_tokens"] * 2)
    eventually(lambda: admin(server, "GET", f"/keys/{key['id']}").json()["spend"] == pytest.approx(row["cost"]))
