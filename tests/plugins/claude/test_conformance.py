"""The core's conformance kit against the Bedrock fake (SigV4 and API-key auth) and the Anthropic fake."""

from __future__ import annotations

import httpx

from llm_factory_claude import ClaudeProvider
from llm_factory_core.testing import ProviderConformance

from .fake_claude import Fail, FakeAnthropic, FakeBedrock, Reply

BEDROCK_MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"

BEDROCK = FakeBedrock(
    region="us-east-1",
    credentials={"AKIDCONFORMANCE1": ("bedrock-conformance-secret-0001", None)},
    bearer_tokens={"bedrock-api-key-conformance-0001"},
)
ANTHROPIC = FakeAnthropic(api_keys={"sk-ant-conformance-key-0001"})


class TestBedrockSigV4Conformance(ProviderConformance):
    provider_cls = ClaudeProvider
    config = {
        "model": BEDROCK_MODEL,
        "aws_region": "us-east-1",
        "aws_access_key_id": "AKIDCONFORMANCE1",
        "aws_secret_access_key": "bedrock-conformance-secret-0001",
    }
    secret_fields = ("aws_secret_access_key",)
    fake: FakeBedrock | FakeAnthropic = BEDROCK
    errors = {
        # Bedrock sends no Retry-After; the kit asks for a 7 s hint, which the plugin honours
        # whenever a proxy or AWS adds the header.
        "rate_limit": Fail("ThrottlingException", "Too many requests", {"retry-after": "7"}),
        "auth": Fail("AccessDeniedException", "You don't have access to the model with the specified model ID."),
        "bad_request": Fail("ValidationException", "messages: field required"),
        "server": Fail("ServiceUnavailableException", "Bedrock is unable to process your request."),
    }

    def reply_text(self, request: httpx.Request, text: str) -> httpx.Response:
        request.read()
        return self.fake.render(request, Reply.text(text))

    def reply_stream(self, request: httpx.Request, pieces: list[str]) -> httpx.Response:
        request.read()
        return self.fake.render(request, Reply.text("".join(pieces), pieces=pieces))

    def reply_error(self, request: httpx.Request, kind: str) -> httpx.Response | None:
        return self.fake.render(request, self.errors[kind])


class TestBedrockApiKeyConformance(TestBedrockSigV4Conformance):
    config = {"model": BEDROCK_MODEL, "aws_region": "us-west-2", "api_key": "bedrock-api-key-conformance-0001"}
    secret_fields = ("api_key",)


class TestAnthropicConformance(TestBedrockSigV4Conformance):
    config = {
        "model": "claude-sonnet-4-5",
        "mode": "anthropic",
        "api_key": "sk-ant-conformance-key-0001",
        "api_base": "https://api.anthropic.com",
    }
    secret_fields = ("api_key",)
    fake = ANTHROPIC
    errors = {
        "rate_limit": Fail(
            "rate_limit_error", "Number of request tokens has exceeded your limit", {"retry-after": "7"}
        ),
        "auth": Fail("authentication_error", "invalid x-api-key"),
        "bad_request": Fail("invalid_request_error", "max_tokens: Field required"),
        "server": Fail("overloaded_error", "Overloaded"),
    }
