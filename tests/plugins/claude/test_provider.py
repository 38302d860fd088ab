"""Errors, stream edge cases, prefill and host selection through LLMFactory against the fakes, over
real sockets on both HTTP transports (``http_transport``: aiohttp and httpx)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from llm_factory_claude import ClaudeProvider, ClaudeSettings
from llm_factory_core import (
    AllDeploymentsFailedError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ContextLengthError,
    InsufficientQuotaError,
    LLMFactory,
    ModelConfig,
    ProviderError,
    ProviderType,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    UpstreamConnectionError,
)

from .fake_claude import Fail, FakeAnthropic, Reply
from .helpers import (
    BEARER,
    OLD_MODEL,
    SECRET,
    anthropic_config,
    api_key_config,
    bedrock_config,
    bedrock_fake,
    factory,
    registry,
    served,
)


def unwrap(error: BaseException) -> BaseException:
    if isinstance(error, AllDeploymentsFailedError) and error.last_error is not None:
        return error.last_error
    return error


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("code", "message", "expected", "disabled"),
    [
        ("ThrottlingException", "Too many requests, please wait before trying again.", RateLimitError, False),
        ("ServiceUnavailableException", "Bedrock is unable to process your request.", ServerError, False),
        ("ModelNotReadyException", "Model is not ready", ServerError, False),
        ("ModelTimeoutException", "Model timed out", ServerError, False),
        ("InternalServerException", "oops", ServerError, False),
        (
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
            AuthenticationError,
            True,
        ),
        (
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            AuthenticationError,
            True,
        ),
        ("ExpiredTokenException", "The security token included in the request is expired", AuthenticationError, True),
        ("ServiceQuotaExceededException", "quota", InsufficientQuotaError, True),
        ("ValidationException", "Input is too long for requested model.", ContextLengthError, False),
        ("ValidationException", "messages.0.content: field required", BadRequestError, False),
    ],
)
async def test_bedrock_errors(
    code: str, message: str, expected: type[ProviderError], disabled: bool, http_transport: str
) -> None:
    fake = bedrock_fake()
    fake.script.append(Fail(code, message))
    async with served(fake, [bedrock_config()], http_transport) as f:
        with pytest.raises((ProviderError, AllDeploymentsFailedError)) as info:
            await f.chat_async("Hi")
        status = f.status()[0]
    error = unwrap(info.value)
    assert type(error) is expected, f"{code} became {type(error).__name__}"
    assert error.retryable == (expected not in (BadRequestError, ContextLengthError))
    assert message in str(error)
    assert (status.state == "disabled") is disabled
    if disabled:
        assert message in (status.reason or status.last_error or "")
    assert SECRET not in str(error)


@pytest.mark.anyio
async def test_validation_error_is_not_failed_over_but_throttling_is(http_transport: str) -> None:
    fake = bedrock_fake()
    fake.script.extend([Fail("ValidationException", "bad"), Reply()])
    configs = [bedrock_config(name="a"), bedrock_config(name="b")]
    async with served(fake, configs, http_transport) as f:
        with pytest.raises(BadRequestError):
            await f.chat_async("Hi")
        fake.script.append(Fail("ThrottlingException", "slow"))
        result = await f.chat_async("Hi")
    assert result.choices[0].message.content == "Hello from fake Claude"


@pytest.mark.anyio
@pytest.mark.parametrize("host", ["bedrock", "anthropic"])
async def test_error_inside_the_stream_before_content_fails_over(host: str, http_transport: str) -> None:
    if host == "bedrock":
        fake: Any = bedrock_fake()
        configs = [bedrock_config(name="a"), bedrock_config(name="b")]
        fake.script.append(Reply(fail_after=2, fail_code="ThrottlingException"))
    else:
        fake = FakeAnthropic()
        configs = [anthropic_config(name="a"), anthropic_config(name="b")]
        fake.script.append(Reply(fail_after=2, fail_code="overloaded_error"))
    fake.script.append(Reply.text("second", pieces=["sec", "ond"]))
    async with served(fake, configs, http_transport, strategy="first_available") as f:
        chunks = [c async for c in f.stream_async("Hi")]
        failures = {s.name: s.failures for s in f.status()}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "second"
    assert failures == {"a": 1, "b": 0}


@pytest.mark.anyio
@pytest.mark.parametrize("host", ["bedrock", "anthropic"])
async def test_error_inside_a_committed_stream_is_never_a_silent_end(host: str, http_transport: str) -> None:
    fake: Any = bedrock_fake() if host == "bedrock" else FakeAnthropic()
    config = bedrock_config() if host == "bedrock" else anthropic_config()
    code = "ModelStreamErrorException" if host == "bedrock" else "api_error"
    after = 4 if host == "bedrock" else 5  # Anthropic's stream has a ping after message_start
    fake.script.append(Reply.text("abc", pieces=["a", "b", "c"], fail_after=after, fail_code=code))
    seen = ""
    async with served(fake, [config], http_transport) as f:
        with pytest.raises(StreamInterruptedError):
            async for chunk in f.stream_async("Hi"):
                seen += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert seen == "ab"


@pytest.mark.anyio
async def test_cut_stream_after_the_stop_reason_completes_and_before_it_fails(http_transport: str) -> None:
    fake = bedrock_fake()
    events_before_stop = 6  # start, block start, 1 delta, block stop, message_delta | message_stop
    fake.script.append(Reply.text("hi", cut_after=events_before_stop - 1))
    fake.script.append(Reply.text("hi", cut_after=3))
    async with served(fake, [bedrock_config()], http_transport) as f:
        chunks = [c async for c in f.stream_async("Hi")]
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        with pytest.raises(StreamInterruptedError) as info:
            [c async for c in f.stream_async("Hi")]
    assert "closed the stream before it finished" in str(info.value)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("stop_reason", "extra", "finish"),
    [
        ("max_tokens", {}, "length"),
        ("stop_sequence", {}, "stop"),
        ("refusal", {}, "content_filter"),
        ("end_turn", {"amazon-bedrock-guardrailAction": "INTERVENED"}, "content_filter"),
    ],
)
async def test_stop_reasons(stop_reason: str, extra: dict[str, Any], finish: str, http_transport: str) -> None:
    fake = bedrock_fake()
    fake.script.append(Reply.text("x", stop_reason=stop_reason, extra=extra))
    async with served(fake, [bedrock_config()], http_transport) as f:
        result = await f.chat_async("Hi")
    assert result.choices[0].finish_reason == finish


@pytest.mark.anyio
@pytest.mark.parametrize("make_config", [bedrock_config, anthropic_config])
async def test_prefill_is_sent_as_the_final_assistant_turn(make_config: Any, http_transport: str) -> None:
    assert ClaudeProvider.capabilities.prefill is True
    fake: Any = bedrock_fake() if make_config is bedrock_config else FakeAnthropic()
    fake.script.append(Reply.text(' "b": 2}'))
    messages = [
        {"role": "user", "content": "Give JSON"},
        {"role": "assistant", "content": '{"a": 1, '},
    ]
    async with served(fake, [make_config()], http_transport) as f:
        result = await f.chat_async(messages)
    body = fake.bodies[-1]
    assert body["messages"][-1] == {"role": "assistant", "content": [{"type": "text", "text": '{"a": 1,'}]}
    assert result.choices[0].message.content == ' "b": 2}'


@pytest.mark.anyio
async def test_request_parameters_and_images_reach_bedrock(http_transport: str) -> None:
    fake = bedrock_fake()
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    messages = [
        {"role": "system", "content": "S1"},
        {"role": "developer", "content": "S2"},
        {"role": "user", "content": "Look:"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}]},
    ]
    config = bedrock_config(guardrail_identifier="gr-123", guardrail_version="2")
    async with served(fake, [config], http_transport) as f:
        await f.chat_async(messages, temperature=0.3, max_tokens=77, stop=["END"], user="u-1")
    body = fake.bodies[-1]
    assert body["system"] == [{"type": "text", "text": "S1"}, {"type": "text", "text": "S2"}]
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look:"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
            ],
        }
    ]
    assert (body["temperature"], body["max_tokens"], body["stop_sequences"]) == (0.3, 77, ["END"])
    assert "metadata" not in body  # Bedrock's InvokeModel takes no metadata.user_id
    assert fake.requests[-1].headers["x-amzn-bedrock-guardrailidentifier"] == "gr-123"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("model", "sent"),
    [
        # Claude 3.5 Sonnet still takes both samplers; Sonnet/Haiku 4.5 and Opus 4.1+ answer 400
        # "`temperature` and `top_p` cannot both be specified": top_p is dropped (rule claude.one_sampler).
        (OLD_MODEL, {"temperature": 0.3, "top_p": 0.9}),
        ("anthropic.claude-sonnet-4-5-20250929-v1:0", {"temperature": 0.3}),
        ("global.anthropic.claude-haiku-4-5-20251001-v1:0", {"temperature": 0.3}),
        ("us.anthropic.claude-opus-4-1-20250805-v1:0", {"temperature": 0.3}),
        ("us.anthropic.claude-opus-4-6-v1", {"temperature": 0.3}),
    ],
)
async def test_temperature_and_top_p_by_model(model: str, sent: dict[str, float], http_transport: str) -> None:
    fake = bedrock_fake()
    async with served(fake, [bedrock_config(model=model)], http_transport) as f:
        reply = await f.chat_async("Hi", temperature=0.3, top_p=0.9)
    assert reply.choices[0].message.content == "Hello from fake Claude"
    body = fake.bodies[-1]
    assert {k: body[k] for k in ("temperature", "top_p") if k in body} == sent


@pytest.mark.anyio
async def test_anthropic_request_shape(http_transport: str) -> None:
    fake = FakeAnthropic()
    config = anthropic_config(anthropic_beta=["prompt-caching-2024-07-31"])
    async with served(fake, [config], http_transport) as f:
        await f.chat_async("Hi", user="u-1", extra_body={"top_k": 5})
    request, body = fake.requests[-1], fake.bodies[-1]
    assert request.url.path == "/v1/messages"
    assert request.headers["x-api-key"] == "sk-ant-test-key-0001"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    # Sonnet 4.5 writes up to 64k tokens: the default max_tokens is the family's, capped at 32k.
    assert body["model"] == "claude-sonnet-4-5-20250929" and body["max_tokens"] == 32_000
    assert body["metadata"] == {"user_id": "u-1"} and body["top_k"] == 5


@pytest.mark.anyio
async def test_anthropic_api_url_by_default() -> None:
    from llm_factory_claude._hosts import AnthropicHost

    host = AnthropicHost(ClaudeSettings(model="claude-opus-4-6", api_key="sk-ant-x"), lambda c, m, k: c(m))
    assert await host.url(stream=False) == "https://api.anthropic.com/v1/messages"


@pytest.mark.anyio
async def test_bad_image_url_on_bedrock_is_a_bad_request_without_a_call(http_transport: str) -> None:
    fake = bedrock_fake()
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]}]
    async with served(fake, [bedrock_config(name="a"), bedrock_config(name="b")], http_transport) as f:
        with pytest.raises(BadRequestError, match="data: URLs"):
            await f.chat_async(messages)
    assert fake.requests == []


@pytest.mark.anyio
async def test_api_base_overrides_the_bedrock_endpoint() -> None:
    # URL building only (an https host that cannot be served on loopback): MockTransport.
    fake = bedrock_fake(region="eu-west-3")
    config = bedrock_config(aws_region=None, api_base="https://vpce-0abc.bedrock-runtime.eu-west-3.vpce.amazonaws.com")
    async with factory(fake, [config]) as f:
        await f.chat_async("Hi")
    assert fake.requests[-1].url.host == "vpce-0abc.bedrock-runtime.eu-west-3.vpce.amazonaws.com"


@pytest.mark.anyio
async def test_a_secret_echoed_upstream_is_masked(http_transport: str) -> None:
    fake = bedrock_fake()
    fake.script.append(Fail("AccessDeniedException", f"key {BEARER} is not allowed"))
    async with served(fake, [api_key_config()], http_transport) as f:
        with pytest.raises((AuthenticationError, AllDeploymentsFailedError)) as info:
            await f.chat_async("Hi")
        text = repr(f.status()) + str(info.value)
    assert BEARER not in text and BEARER[-4:] in text


def mode_of(**fields: Any) -> str:
    provider = ClaudeProvider(ClaudeSettings(model="m", **fields), client=httpx.AsyncClient(), name="t")
    return provider.mode


def test_host_is_chosen_by_api_base_key_or_setting() -> None:
    assert mode_of(aws_region="us-east-1") == "bedrock"
    assert mode_of(api_base="https://api.anthropic.com") == "anthropic"
    assert mode_of(api_key="sk-ant-api03-abc") == "anthropic"
    assert mode_of(api_key="sk-ant-api03-abc", api_base="https://proxy.corp.test/v1", mode="anthropic") == "anthropic"
    assert mode_of(api_key="bedrock-api-key", aws_region="us-east-1") == "bedrock"
    assert mode_of(api_base="http://127.0.0.1:9000") == "bedrock"


def test_provider_type_and_configuration_errors() -> None:
    config = ModelConfig(
        provider=ProviderType.CLAUDE, model_name="c", model="anthropic.claude-v2", aws_region="us-east-1"
    )
    assert LLMFactory([config], registry=registry()).deployments[0].provider_key == "claude"
    with pytest.raises(ConfigurationError, match="must be given together"):
        LLMFactory([bedrock_config(aws_secret_access_key=None)], registry=registry())
    with pytest.raises(ConfigurationError, match="not both"):
        LLMFactory([bedrock_config(api_key=BEARER)], registry=registry())
    with pytest.raises(ConfigurationError, match="only apply to Bedrock"):
        LLMFactory([anthropic_config(aws_region="us-east-1")], registry=registry())
    with pytest.raises(ConfigurationError, match="aws_regoin"):
        LLMFactory([bedrock_config(aws_regoin="us-east-1")], registry=registry())


@pytest.mark.anyio
async def test_corrupt_event_stream_is_a_connection_error(http_transport: str) -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"\x00\x00\x00\x20" + b"\x00" * 40)

    async with served(reply, [bedrock_config()], http_transport) as f:
        with pytest.raises((UpstreamConnectionError, AllDeploymentsFailedError)) as info:
            [c async for c in f.stream_async("Hi")]
    assert isinstance(unwrap(info.value), UpstreamConnectionError)
