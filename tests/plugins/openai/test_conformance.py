import json

import httpx

from llm_factory_core.testing import (
    ProviderConformance,
    json_response,
    openai_chunks,
    openai_completion,
    sse_response,
)
from llm_factory_openai import OpenAIProvider


class TestOpenAIConformance(ProviderConformance):
    provider_cls = OpenAIProvider
    config = {"api_key": "sk-test-secret-key-0001", "api_base": "https://api.openai.test/v1"}

    def reply_text(self, request: httpx.Request, text: str) -> httpx.Response:
        return json_response(openai_completion(text))

    def reply_stream(self, request: httpx.Request, pieces: list[str]) -> httpx.Response:
        usage = bool((json.loads(request.content).get("stream_options") or {}).get("include_usage"))
        return sse_response(openai_chunks(pieces, include_usage=usage))

    def reply_error(self, request: httpx.Request, kind: str) -> httpx.Response | None:
        status, code, headers = {
            "rate_limit": (429, "rate_limit_exceeded", {"retry-after": "7"}),
            "auth": (401, "invalid_api_key", {}),
            "bad_request": (400, "invalid_value", {}),
            "server": (500, None, {}),
        }[kind]
        body = {
            "error": {
                "message": f"{kind} error",
                "type": "invalid_request_error",
                "param": None,
                "code": code,
            }
        }
        return json_response(body, status, headers)


class TestAzureConformance(TestOpenAIConformance):
    config = {
        "api_key": "azure-secret-key-0001",
        "api_base": "https://res.openai.azure.com",
        "api_version": "2024-10-21",
    }
