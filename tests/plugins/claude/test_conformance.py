"""The core's conformance kit against the Bedrock fake (SigV4 and API-key auth) and the Anthropic fake.

Every optional hook the real hosts have is supplied: stop reasons (``max_tokens``, ``refusal``),
``tool_use`` replies, an error as the first event of a 200 stream, and the quota / context-length /
content-filter errors each host really sends (sources beside each one)."""

from __future__ import annotations

from typing import Any

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

# Claude's stop reasons for OpenAI's endings (Messages API "Handling stop reasons": ``max_tokens``
# when the limit cut the reply, ``refusal`` when the safety classifiers stopped it; Bedrock passes
# the same body through InvokeModel).
STOP_REASONS = {"length": "max_tokens", "content_filter": "refusal"}


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
    errors: dict[str, Fail | None] = {
        # Bedrock sends no Retry-After; the kit asks for a 7 s hint, which the plugin honours
        # whenever a proxy or AWS adds the header.
        "rate_limit": Fail("ThrottlingException", "Too many requests", {"retry-after": "7"}),
        "auth": Fail("AccessDeniedException", "You don't have access to the model with the specified model ID."),
        "bad_request": Fail("ValidationException", "messages: field required"),
        "server": Fail("ServiceUnavailableException", "Bedrock is unable to process your request."),
        # bedrock-runtime InvokeModel errors: ServiceQuotaExceededException (400) "Your request
        # exceeds the service quota for your account".
        "quota": Fail(
            "ServiceQuotaExceededException",
            "Your request exceeds the service quota for your account. You can view your quotas at "
            "https://docs.aws.amazon.com/servicequotas/latest/userguide/gs-request-quota.html",
        ),
        # Claude on Bedrock over its context window: ValidationException "Input is too long for
        # requested model." (boto3 ClientError as reported in langchain-aws and litellm issues).
        "context_length": Fail("ValidationException", "Input is too long for requested model."),
        # Bedrock has no content-filter *error* for Claude: a refusal is a 200 with stop_reason
        # "refusal" (the finish-reason checks), a guardrail a 200 with
        # "amazon-bedrock-guardrailAction": "INTERVENED" (test_codec covers it).
        "content_filter": None,
    }
    stream_error = Reply(fail_after=0, fail_code="ThrottlingException")
    """Bedrock's first frame an exception (``:message-type: exception``, bedrock-runtime
    InvokeModelWithResponseStream: throttlingException, modelStreamErrorException...)."""

    def reply_text(self, request: httpx.Request, text: str) -> httpx.Response:
        request.read()
        return self.fake.render(request, Reply.text(text))

    def reply_stream(self, request: httpx.Request, pieces: list[str]) -> httpx.Response:
        request.read()
        return self.fake.render(request, Reply.text("".join(pieces), pieces=pieces))

    def reply_error(self, request: httpx.Request, kind: str) -> httpx.Response | None:
        fail = self.errors[kind]
        return None if fail is None else self.fake.render(request, fail)

    def reply_finish(self, request: httpx.Request, text: str, reason: str, stream: bool) -> httpx.Response | None:
        request.read()
        return self.fake.render(request, Reply.text(text, stop_reason=STOP_REASONS[reason]))

    def reply_tool_call(
        self, request: httpx.Request, name: str, arguments: dict[str, Any], stream: bool
    ) -> httpx.Response | None:
        request.read()
        block = {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": name, "input": arguments}
        return self.fake.render(request, Reply(blocks=[block], stop_reason="tool_use"))

    def reply_stream_error(self, request: httpx.Request) -> httpx.Response | None:
        request.read()
        return self.fake.render(request, self.stream_error)


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
        # An account out of credit is a 400 invalid_request_error, not the documented 402
        # billing_error (anthropics/claude-code#4684, #66314; anthropics/claude-quickstarts#229).
        "quota": Fail(
            "invalid_request_error",
            "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing "
            "to upgrade or purchase credits.",
        ),
        # Messages API errors: "prompt is too long: 210000 tokens > 200000 maximum".
        "context_length": Fail("invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"),
        # The output classifier's block (anthropics/claude-code#6195, #37547, #58367).
        "content_filter": Fail("invalid_request_error", "Output blocked by content filtering policy"),
    }
    # Anthropic's ``event: error`` with an overloaded_error as the first event of a 200 stream
    # (Messages streaming docs, "Error events").
    stream_error = Reply(fail_after=0, fail_code="overloaded_error")
