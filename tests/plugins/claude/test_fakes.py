"""The fakes are checked against the official SDKs: boto3 (bedrock-runtime) and anthropic must parse
their replies, raise their own errors for the fakes' errors, and be accepted by the fakes' checks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import anthropic
import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ClientError, EventStreamError

from .fake_claude import (
    ANTHROPIC_ERRORS,
    BEDROCK_ERRORS,
    Fail,
    FakeAnthropic,
    FakeBedrock,
    Reply,
    encode_event,
    serve,
    sign_thinking,
    stream_events,
)

MODEL = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
"""Claude 3.5 Sonnet v2 (both samplers allowed): what the rules by model are compared against."""
BODY = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
TOOL_REPLY = Reply(
    blocks=[
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
    ],
    stop_reason="tool_use",
)


_CLIENTS: list[Any] = []


@pytest.fixture(autouse=True)
def close_sdk_clients() -> Iterator[None]:
    """SDK clients keep pooled sockets: close them so no socket outlives its test."""
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


@pytest.fixture
def bedrock() -> Iterator[tuple[FakeBedrock, str]]:
    fake = FakeBedrock(
        credentials={"AKIDEXAMPLE0001": ("bedrock-secret-0001", None), "ASIATEMP0001": ("temp-secret", "session-tok")},
        bearer_tokens={"bedrock-api-key-0001"},
    )
    with serve(fake) as base:
        yield fake, base


def boto(base: str, key: str = "AKIDEXAMPLE0001", secret: str = "bedrock-secret-0001", **kw: Any) -> Any:
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=base,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}),
        **kw,
    )
    _CLIENTS.append(client)
    return client


def test_event_stream_encoder_round_trips_through_botocore() -> None:
    frame = encode_event({":event-type": "chunk", ":message-type": "event"}, b'{"bytes":"e30="}')
    buffer = EventStreamBuffer()
    buffer.add_data(frame[:7])
    assert list(buffer) == []
    buffer.add_data(frame[7:] + frame)
    messages = list(buffer)
    assert len(messages) == 2
    assert messages[0].headers == {":event-type": "chunk", ":message-type": "event"}
    assert messages[0].payload == b'{"bytes":"e30="}'


def test_boto3_invoke_model_parses_the_reply(bedrock: tuple[FakeBedrock, str]) -> None:
    fake, base = bedrock
    fake.script.append(TOOL_REPLY)
    reply = boto(base).invoke_model(
        modelId=MODEL, body=json.dumps(BODY), contentType="application/json", accept="application/json"
    )
    message = json.loads(reply["body"].read())
    assert message["content"] == TOOL_REPLY.blocks and message["stop_reason"] == "tool_use"
    assert message["model"] == MODEL  # the fake decoded the percent-encoded model id
    assert reply["contentType"] == "application/json"
    assert fake.requests[-1].url.raw_path == b"/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke"


def test_boto3_reads_the_binary_event_stream(bedrock: tuple[FakeBedrock, str]) -> None:
    fake, base = bedrock
    fake.script.append(TOOL_REPLY)
    reply = boto(base).invoke_model_with_response_stream(modelId=MODEL, body=json.dumps(BODY))
    events = [json.loads(e["chunk"]["bytes"]) for e in reply["body"]]
    expected = stream_events(TOOL_REPLY, MODEL, bedrock=True)
    assert [e["type"] for e in events] == [e["type"] for e in expected]
    assert events[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == 7
    assert reply["contentType"] == "application/json"


def test_boto3_raises_for_an_exception_frame_inside_the_stream(bedrock: tuple[FakeBedrock, str]) -> None:
    fake, base = bedrock
    fake.script.append(Reply(fail_after=3, fail_code="ThrottlingException"))
    reply = boto(base).invoke_model_with_response_stream(modelId=MODEL, body=json.dumps(BODY))
    seen = []
    with pytest.raises(EventStreamError) as info:
        for event in reply["body"]:
            seen.append(event)
    assert len(seen) == 3
    assert info.value.response["Error"]["Code"] == "throttlingException"


@pytest.mark.parametrize("code", sorted(BEDROCK_ERRORS))
def test_boto3_raises_client_error_with_the_code(bedrock: tuple[FakeBedrock, str], code: str) -> None:
    fake, base = bedrock
    fake.script.append(Fail(code, "it failed"))
    with pytest.raises(ClientError) as info:
        boto(base).invoke_model(modelId=MODEL, body=json.dumps(BODY))
    assert info.value.response["Error"] == {"Code": code, "Message": "it failed"}
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == BEDROCK_ERRORS[code]


def test_fake_verifies_boto3_signatures(bedrock: tuple[FakeBedrock, str]) -> None:
    _fake, base = bedrock
    assert boto(base).invoke_model(modelId=MODEL, body=json.dumps(BODY))["ResponseMetadata"]["HTTPStatusCode"] == 200
    temp = boto(base, "ASIATEMP0001", "temp-secret", aws_session_token="session-tok")
    assert temp.invoke_model(modelId=MODEL, body=json.dumps(BODY))["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(ClientError, match="InvalidSignatureException"):
        boto(base, secret="not-the-secret").invoke_model(modelId=MODEL, body=json.dumps(BODY))
    with pytest.raises(ClientError, match="UnrecognizedClientException"):
        boto(base, key="AKIDUNKNOWN").invoke_model(modelId=MODEL, body=json.dumps(BODY))
    with pytest.raises(ClientError, match="UnrecognizedClientException"):
        boto(base, "ASIATEMP0001", "temp-secret", aws_session_token="other").invoke_model(
            modelId=MODEL, body=json.dumps(BODY)
        )


class _Raw:
    def __init__(self, content: bytes) -> None:
        self._content = content

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._content


def _forwarding_client(https_base: str, **kwargs: Any) -> Any:
    """A boto3 client for an https endpoint whose requests are delivered to the local fake."""
    import httpx
    from botocore.awsrequest import AWSResponse

    def forward(request: Any, **_: Any) -> AWSResponse:
        url = request.url.replace("https://", "http://", 1)
        reply = httpx.request(request.method, url, headers=dict(request.headers.items()), content=request.body)
        return AWSResponse(url, reply.status_code, dict(reply.headers), _Raw(reply.content))

    client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=https_base, **kwargs)
    client.meta.events.register("before-send.bedrock-runtime.*", forward)
    _CLIENTS.append(client)
    return client


def test_fake_accepts_bedrock_api_keys_as_boto3_sends_them(
    bedrock: tuple[FakeBedrock, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, base = bedrock
    # Newer botocore sends a bearer token only to an https endpoint: give boto3 one, and forward
    # what it would send over TLS to the plain-HTTP fake.
    https_base = base.replace("http://", "https://", 1)
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-0001")
    client = _forwarding_client(https_base)
    assert client.invoke_model(modelId=MODEL, body=json.dumps(BODY))["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert fake.requests[-1].headers["authorization"] == "Bearer bedrock-api-key-0001"
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "wrong-key")
    client = _forwarding_client(https_base, config=Config(retries={"total_max_attempts": 1}))
    with pytest.raises(ClientError, match="UnrecognizedClientException"):
        client.invoke_model(modelId=MODEL, body=json.dumps(BODY))


def test_fake_rejects_what_bedrock_rejects(bedrock: tuple[FakeBedrock, str]) -> None:
    _fake, base = bedrock
    client = boto(base)
    for body in (
        {**BODY, "anthropic_version": None},
        {**BODY, "model": MODEL},
        {**BODY, "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
        {**BODY, "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
    ):
        with pytest.raises(client.exceptions.ValidationException):
            client.invoke_model(modelId=MODEL, body=json.dumps(body))


# -- Anthropic -----------------------------------------------------------------------------------


@pytest.fixture
def anthropic_fake() -> Iterator[tuple[FakeAnthropic, str]]:
    # This anthropic release talks through httpx2, so it gets a socket rather than a MockTransport.
    fake = FakeAnthropic()
    with serve(fake) as base:
        yield fake, base


def sdk(base: str, key: str = "sk-ant-test-key-0001") -> anthropic.Anthropic:
    client = anthropic.Anthropic(api_key=key, base_url=base, max_retries=0)
    _CLIENTS.append(client)
    return client


def test_anthropic_sdk_parses_messages(anthropic_fake: tuple[FakeAnthropic, str]) -> None:
    fake, base = anthropic_fake
    fake.script.append(TOOL_REPLY)
    message = sdk(base).messages.create(
        model="claude-fake-1", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.stop_reason == "tool_use"
    assert message.content[1].type == "tool_use" and message.content[1].input == {"city": "Paris"}
    request = fake.requests[-1]
    assert request.url.path == "/v1/messages"
    assert request.headers["anthropic-version"]  # the SDK pins its own version


def test_anthropic_sdk_parses_the_stream(anthropic_fake: tuple[FakeAnthropic, str]) -> None:
    fake, base = anthropic_fake
    fake.script.append(TOOL_REPLY)
    with sdk(base).messages.stream(
        model="claude-fake-1", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "Let me check."
    assert final.content[1].input == {"city": "Paris"}
    assert final.usage.output_tokens == 7 and final.stop_reason == "tool_use"


def test_anthropic_sdk_raises_for_an_error_event_in_the_stream(anthropic_fake: tuple[FakeAnthropic, str]) -> None:
    fake, base = anthropic_fake
    fake.script.append(Reply(fail_after=3, fail_code="overloaded_error"))
    with pytest.raises(anthropic.APIStatusError, match="Overloaded"):  # noqa: SIM117
        with sdk(base).messages.stream(
            model="claude-fake-1", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            stream.get_final_message()


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("invalid_request_error", anthropic.BadRequestError),
        ("authentication_error", anthropic.AuthenticationError),
        ("permission_error", anthropic.PermissionDeniedError),
        ("not_found_error", anthropic.NotFoundError),
        ("request_too_large", anthropic.APIStatusError),
        ("rate_limit_error", anthropic.RateLimitError),
        ("api_error", anthropic.InternalServerError),
        ("overloaded_error", anthropic.APIStatusError),
    ],
)
def test_anthropic_sdk_raises_its_errors(
    anthropic_fake: tuple[FakeAnthropic, str], kind: str, error: type[Exception]
) -> None:
    fake, base = anthropic_fake
    fake.script.append(Fail(kind, f"{kind} happened"))
    with pytest.raises(error) as info:
        sdk(base).messages.create(model="claude-fake-1", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert isinstance(info.value, anthropic.APIStatusError)
    assert info.value.status_code == ANTHROPIC_ERRORS[kind]
    assert info.value.body["error"]["type"] == kind  # type: ignore[index]


def test_anthropic_fake_checks_the_key(anthropic_fake: tuple[FakeAnthropic, str]) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        sdk(anthropic_fake[1], key="sk-ant-wrong").messages.create(
            model="claude-fake-1", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )


# -- today's models: what the fakes reject, checked with both SDKs ------------------------------

SONNET_45 = "anthropic.claude-sonnet-4-5-20250929-v1:0"
THINKING = {"type": "enabled", "budget_tokens": 2048}
TOOL_TURN = [
    {"role": "user", "content": "weather?"},
    {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "w", "input": {}}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "21C"}]},
]
REJECTED: list[tuple[str, dict[str, Any], str]] = [
    # (what, body fields over a plain Sonnet 4.5 request, the start of the error message)
    ("both-samplers", {"temperature": 0.5, "top_p": 0.9}, "`temperature` and `top_p` cannot both be specified"),
    ("whitespace-stop", {"stop_sequences": ["\n"]}, "stop_sequences: each stop sequence must contain non-whitespace"),
    ("budget>=max", {"max_tokens": 2048, "thinking": THINKING}, "`max_tokens` must be greater than"),
    ("thinking+temperature", {"thinking": THINKING, "temperature": 0.2}, "`temperature` may only be set to 1"),
    ("thinking+forced-tool", {"thinking": THINKING, "tool_choice": {"type": "any"},
     "tools": [{"name": "w", "input_schema": {"type": "object"}}]}, "Thinking may not be enabled"),
    ("thinking+tool-turn", {"thinking": THINKING, "messages": TOOL_TURN}, "messages.1.content.0.type: Expected"),
    ("unknown-field", {"frequency_penalty": 0.5}, ""),
    ("effort-on-4.5", {"output_config": {"effort": "high"}}, "output_config.effort"),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "start"), [p[1:] for p in REJECTED], ids=[p[0] for p in REJECTED])
def test_boto3_gets_a_validation_exception_for_what_today_s_models_reject(
    bedrock: tuple[FakeBedrock, str], fields: dict[str, Any], start: str
) -> None:
    _fake, base = bedrock
    client = boto(base)
    body = {**BODY, "max_tokens": 8192, **fields}
    with pytest.raises(client.exceptions.ValidationException) as info:
        client.invoke_model(modelId=SONNET_45, body=json.dumps(body))
    message = info.value.response["Error"]["Message"]
    assert message.startswith(start or "Malformed input request: #: extraneous key [frequency_penalty]")
    # The same body on Claude 3.5 Sonnet (both samplers and no thinking there) shows the rules are by model.
    if fields.keys() == {"temperature", "top_p"}:
        assert (
            boto(base).invoke_model(modelId=MODEL, body=json.dumps(body))["ResponseMetadata"]["HTTPStatusCode"] == 200
        )


@pytest.mark.parametrize(("fields", "start"), [p[1:] for p in REJECTED], ids=[p[0] for p in REJECTED])
def test_anthropic_sdk_gets_a_bad_request_for_what_today_s_models_reject(
    anthropic_fake: tuple[FakeAnthropic, str], fields: dict[str, Any], start: str
) -> None:
    _fake, base = anthropic_fake
    fields = dict(fields)
    messages = fields.pop("messages", [{"role": "user", "content": "hi"}])
    max_tokens = fields.pop("max_tokens", 8192)
    with pytest.raises(anthropic.BadRequestError) as info:
        sdk(base).messages.create(
            model="claude-sonnet-4-5-20250929", max_tokens=max_tokens, messages=messages, extra_body=fields
        )
    assert info.value.body["error"]["message"].startswith(start or "frequency_penalty: Extra inputs")  # type: ignore[index]


def test_bedrock_model_ids_of_every_form_reach_the_fake_through_boto3(bedrock: tuple[FakeBedrock, str]) -> None:
    fake, base = bedrock
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/global.anthropic.claude-opus-4-6-v1"
    for model in (SONNET_45, "us.anthropic.claude-haiku-4-5-20251001-v1:0", arn):
        reply = boto(base).invoke_model(modelId=model, body=json.dumps(BODY))
        assert json.loads(reply["body"].read())["model"] == model
    assert fake.requests[-1].url.raw_path == b"/model/" + quote(arn, safe="").encode() + b"/invoke"


def test_the_fake_checks_the_signature_over_the_path_on_the_wire(bedrock: tuple[FakeBedrock, str]) -> None:
    """A client that signs ``/model/...%3A0/invoke`` but sends ``:`` (what aiohttp did to a
    re-normalised URL) gets InvalidSignatureException, as from AWS."""
    import http.client

    from botocore.credentials import ReadOnlyCredentials

    from llm_factory_claude._aws import sign_request

    _fake, base = bedrock
    host = base.split("//", 1)[1]
    encoded = f"/model/{quote(SONNET_45, safe='')}/invoke"
    payload = json.dumps(BODY).encode()
    results = {}
    for sent in (encoded, f"/model/{SONNET_45}/invoke"):
        request = httpx.Request("POST", base + encoded, content=payload, headers={"content-type": "application/json"})
        sign_request(request, ReadOnlyCredentials("AKIDEXAMPLE0001", "bedrock-secret-0001", None, None), "us-east-1")
        connection = http.client.HTTPConnection(host, timeout=10)
        connection.request("POST", sent, body=payload, headers=dict(request.headers))
        response = connection.getresponse()
        results[sent] = (response.status, response.getheader("x-amzn-errortype") or "")
        response.read()
        connection.close()
    assert results[encoded][0] == 200
    assert results[f"/model/{SONNET_45}/invoke"][0] == 403
    assert results[f"/model/{SONNET_45}/invoke"][1].startswith("InvalidSignatureException")


def test_anthropic_sdk_reads_signed_thinking_and_sends_it_back(anthropic_fake: tuple[FakeAnthropic, str]) -> None:
    fake, base = anthropic_fake
    fake.script.append(
        Reply(
            blocks=[
                {"type": "thinking", "thinking": "Call the tool."},
                {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
                {"type": "tool_use", "id": "toolu_9", "name": "w", "input": {"city": "Paris"}},
            ],
            stop_reason="tool_use",
        )
    )
    client = sdk(base)
    tools = [{"name": "w", "input_schema": {"type": "object"}}]
    with client.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=8192,
        thinking=THINKING,
        tools=tools,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "weather?"}],
    ) as stream:
        final = stream.get_final_message()  # fmt: skip
    thinking = final.content[0]
    assert thinking.type == "thinking" and thinking.signature == sign_thinking("Call the tool.")
    assert final.content[1].type == "redacted_thinking"
    history = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [b.model_dump() for b in final.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "21C"}]},
    ]
    reply = client.messages.create(
        model="claude-sonnet-4-5", max_tokens=8192, thinking=THINKING, tools=tools,  # type: ignore[arg-type]
        messages=history,  # type: ignore[arg-type]
    )  # fmt: skip
    assert reply.content[0].type == "text"
    history[1]["content"][0]["thinking"] = "Edited."  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError, match="Invalid `signature`"):
        client.messages.create(
            model="claude-sonnet-4-5", max_tokens=8192, thinking=THINKING, tools=tools,  # type: ignore[arg-type]
            messages=history,  # type: ignore[arg-type]
        )  # fmt: skip


def test_anthropic_sdk_native_structured_output_cache_and_effort(anthropic_fake: tuple[FakeAnthropic, str]) -> None:
    fake, base = anthropic_fake
    fake.script.append(Reply.text('{"a": 1}', cache=(100, 20)))
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    reply = sdk(base).messages.create(
        model="claude-opus-4-6",
        max_tokens=1024,
        thinking={"type": "adaptive"},
        output_config={"effort": "max", "format": {"type": "json_schema", "schema": schema}},
        system=[{"type": "text", "text": "doc", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        messages=[{"role": "user", "content": "hi"}],
    )
    assert reply.usage.cache_read_input_tokens == 100 and reply.usage.cache_creation_input_tokens == 20
    with pytest.raises(anthropic.BadRequestError, match="structured outputs are not supported"):
        sdk(base).messages.create(
            model="claude-3-5-haiku-20241022",
            max_tokens=64,
            output_config={"format": {"type": "json_schema", "schema": schema}},
            messages=[{"role": "user", "content": "hi"}],
        )
    with pytest.raises(anthropic.BadRequestError, match="'adaptive' thinking is not supported"):
        sdk(base).messages.create(
            model="claude-sonnet-4-5",
            max_tokens=1024,
            thinking={"type": "adaptive"},
            messages=[{"role": "user", "content": "hi"}],
        )
