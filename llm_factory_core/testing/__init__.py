"""Test helpers for users and plugin authors: scripted fake upstreams, OpenAI wire builders and
the provider conformance kit."""

from typing import TYPE_CHECKING, Any

from ._faults import Fault, UpstreamRequest
from ._faulty_server import FaultyUpstream
from ._mock import (
    MockUpstream,
    json_response,
    openai_chunks,
    openai_completion,
    sse_body,
    sse_response,
)
from ._serve import serve_handler

if TYPE_CHECKING:
    from ._conformance import ERROR_KINDS, ProviderConformance

__all__ = [
    "ERROR_KINDS",
    "Fault",
    "FaultyUpstream",
    "MockUpstream",
    "ProviderConformance",
    "json_response",
    "openai_chunks",
    "openai_completion",
    "serve_handler",
    "sse_body",
    "sse_response",
    "UpstreamRequest",
]


def __getattr__(name: str) -> Any:
    # The conformance kit needs pytest; import it only when asked for.
    if name in ("ProviderConformance", "ERROR_KINDS"):
        from . import _conformance

        return getattr(_conformance, name)
    raise AttributeError(name)
