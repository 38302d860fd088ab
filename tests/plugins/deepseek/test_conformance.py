"""The core's provider conformance kit, run against the DeepSeek fake."""

from __future__ import annotations

import httpx

from llm_factory_core.testing import ProviderConformance
from llm_factory_deepseek import DeepSeekProvider

from .fake_deepseek import FakeDeepSeek, Reply

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
        return self._fake(Reply(error=kind, headers=headers))(request)


class TestDeepSeekReasonerConformance(TestDeepSeekConformance):
    """The same contract with a thinking model (reasoning deltas precede the text)."""

    model_name = "deepseek-reasoner"
