"""The core's provider conformance kit, run against the DeepSeek fake."""

from __future__ import annotations

import json
from typing import Any

import httpx

from llm_factory_core.testing import ProviderConformance
from llm_factory_deepseek import DeepSeekProvider

from .fake_deepseek import ERRORS, FakeDeepSeek, Reply

KEY = "sk-deepseek-conformance-0001"


class TestDeepSeekConformance(ProviderConformance):
    provider_cls = DeepSeekProvider
    model_name = "deepseek-chat"
    config = {"api_key": KEY}

    def _fake(self, reply: Reply) -> FakeDeepSeek:
        return FakeDeepSeek(keys=(KEY,)).add(reply)

    def reply_text(self, request: httpx.Request, text: str) -> httpx.Response:
        return self._fake(Reply(text=text))(request)

    def reply_stream(self, request: httpx.Request, pieces: list[str]) -> httpx.Response:
        return self._fake(Reply(text="".join(pieces), pieces=pieces, keepalives=2))(request)

    def reply_error(self, request: httpx.Request, kind: str) -> httpx.Response | None:
        if request.url.host == "probe.test":
            return httpx.Response(200)  # the kit only asks whether the kind exists
        headers = {"retry-after": "7"} if kind == "rate_limit" else {}
        ours = {"quota": "balance", "context_length": "context"}.get(kind, kind)
        if ours not in ERRORS:
            return None  # DeepSeek has no content filter error reply
        return self._fake(Reply(error=ours, headers=headers))(request)

    def reply_finish(self, request: httpx.Request, text: str, reason: str, stream: bool) -> httpx.Response | None:
        if reason != "length":
            return None  # DeepSeek documents stop, length, tool_calls, insufficient_system_resource
        return self._fake(Reply(text=text, finish_reason="length"))(request)

    def reply_tool_call(
        self, request: httpx.Request, name: str, arguments: dict[str, Any], stream: bool
    ) -> httpx.Response | None:
        call = {
            "id": "call_00_conformance",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)},
        }
        return self._fake(Reply(text="", pieces=[], tool_calls=[call], finish_reason="tool_calls"))(request)


class TestDeepSeekReasonerConformance(TestDeepSeekConformance):
    """The same contract with the legacy thinking alias (reasoning deltas precede the text)."""

    model_name = "deepseek-reasoner"


class TestDeepSeekFlashConformance(TestDeepSeekConformance):
    """Today's default model (DeepSeek-V4.1-Flash), thinking by default."""

    model_name = "deepseek-flash"
