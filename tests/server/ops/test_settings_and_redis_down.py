"""The admin key's settings fail closed; limits hold in the process while Redis is down."""

from __future__ import annotations

import time

import pytest

from llm_factory_core import ConfigurationError, LLMFactory
from llm_factory_server import ServerSettings, create_app
from llm_factory_server._settings import load_settings
from tests.redis_server import free_port

from ..helpers import Upstream, deployment, serving
from .test_keys_limits import ADMIN, chat, new_key


@pytest.mark.parametrize(
    ("section", "env", "says"),
    [
        ({}, {"LLM_FACTORY_ADMIN_KEY": ""}, "LLM_FACTORY_ADMIN_KEY: Value error, the admin key is blank"),
        ({"admin_key": "  "}, {}, "server.admin_key: Value error, the admin key is blank"),
        ({"admin_key": "short"}, {}, "at least 16 printable ASCII"),
        ({"admin_key": ADMIN, "api_keys": [ADMIN]}, {}, "the admin key is never a client key"),
        ({"prices": {"gpt-4o": {"input_per_mtok": 1}}}, {}, "output_per_mtok"),
    ],
)
def test_bad_admin_settings_are_start_up_errors(section: dict[str, object], env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        load_settings(section, env)


def test_the_admin_key_never_shows_in_reprs() -> None:
    settings = load_settings({"admin_key": ADMIN}, {})
    assert ADMIN not in repr(settings) and ADMIN not in str(settings)


def test_an_admin_key_closes_the_open_gateway(upstream: Upstream) -> None:
    factory = LLMFactory([deployment("a")], transport=upstream.transport)
    with serving(create_app(factory, settings=ServerSettings(admin_key=ADMIN))) as server:
        assert chat(server, "anything").status_code == 401
    factory.close()


def test_limits_hold_in_the_process_while_redis_is_down(upstream: Upstream) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    factory = LLMFactory([deployment("a")], transport=upstream.transport, state=dead, num_retries=0)
    with serving(create_app(factory, settings=ServerSettings(admin_key=ADMIN))) as server:
        key = new_key(server, rpm=2)["key"]
        if time.time() % 60 > 55:
            time.sleep(61 - time.time() % 60)
        started = time.monotonic()
        assert [chat(server, key).status_code for _ in range(3)] == [200, 200, 429]
        assert time.monotonic() - started < 3  # Redis down costs each request nothing (a bounded first fetch)
    factory.close()
