"""`pip install llm-factory-server` is the fast install: it pulls the core's fast extra (aiohttp,
orjson) and uvicorn's fast loop and parser, so the documented install is the benchmarked gateway."""

import importlib.metadata
import sys

import pytest
from packaging.requirements import Requirement


def requirements() -> dict[str, Requirement]:
    found = [Requirement(r) for r in importlib.metadata.requires("llm-factory-server") or []]
    return {r.name: r for r in found}


def test_the_server_depends_on_the_fast_transport() -> None:
    found = [Requirement(r) for r in importlib.metadata.requires("llm-factory-server") or []]
    core = [r for r in found if r.name == "llm-factory-core" and r.marker is None]  # unconditional
    assert core and "fast" in core[0].extras
    fast = [Requirement(r) for r in importlib.metadata.requires("llm-factory-core") or []]
    assert any(r.name == "aiohttp" and r.marker is not None and "fast" in str(r.marker) for r in fast)


def test_uvicorn_gets_its_fast_loop_and_parser() -> None:
    reqs = requirements()
    assert "httptools" in reqs
    uvloop = reqs["uvloop"]
    if sys.platform != "win32" and sys.implementation.name == "cpython":
        assert uvloop.marker is None or uvloop.marker.evaluate()


def test_the_default_transport_of_an_installed_gateway_is_aiohttp(monkeypatch: pytest.MonkeyPatch) -> None:
    from llm_factory_core._transports import TRANSPORT_ENV, transport_name

    monkeypatch.delenv(TRANSPORT_ENV, raising=False)
    assert transport_name(None) == "aiohttp"
