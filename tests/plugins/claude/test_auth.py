"""AWS credentials of every kind, SigV4 checked with botocore's own signer, regions, env config."""

from __future__ import annotations

import datetime
import json
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth as BotocoreSigV4
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials, RefreshableCredentials

from llm_factory_claude._aws import AwsCredentials, SigV4Auth, sign_request
from llm_factory_core import AllDeploymentsFailedError, AuthenticationError, LLMFactory, ProviderError

from .fake_claude import Reply, serve
from .helpers import (
    AKID,
    BEARER,
    BEDROCK_MODELS,
    GLOBAL_PROFILE,
    MODEL,
    SECRET,
    SESSION_TOKEN,
    TEMP_AKID,
    TEMP_SECRET,
    US_PROFILE,
    api_key_config,
    bedrock_config,
    bedrock_fake,
    factory,
    registry,
    served,
    session_config,
)


def botocore_signature(request: httpx.Request, access_key: str, secret: str, token: str | None, region: str) -> str:
    """What botocore's SigV4Auth computes for the same request at the same timestamp."""
    fields = dict(p.strip().split("=", 1) for p in request.headers["authorization"].split(" ", 1)[1].split(","))
    signed = fields["SignedHeaders"].split(";")
    aws = AWSRequest(
        method=request.method,
        url=str(request.url),
        data=request.content,
        headers={h: request.headers[h] for h in signed},
    )
    aws.context["timestamp"] = request.headers["x-amz-date"]
    signer = BotocoreSigV4(Credentials(access_key, secret, token), "bedrock", region)
    return signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)


@pytest.mark.anyio
@pytest.mark.parametrize("model", BEDROCK_MODELS)
@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
async def test_signed_requests_verify_on_the_wire(model: str, stream: bool, http_transport: str) -> None:
    """SigV4 with a session token over a real socket: the fake recomputes the signature over the path
    as it arrived on the wire, so a transport that decodes ``%3A`` (or ``%2F``) fails here."""
    fake = bedrock_fake(region="eu-west-1")
    async with served(fake, session_config(model=model, aws_region="eu-west-1"), http_transport) as f:
        if stream:
            assert "".join([c.choices[0].delta.content or "" async for c in f.stream_async("Hi") if c.choices])
        else:
            assert (await f.chat_async("Hi")).choices[0].message.content == "Hello from fake Claude"
    request = fake.requests[-1]
    op = "invoke-with-response-stream" if stream else "invoke"
    assert request.url.raw_path.decode() == f"/model/{quote(model, safe='')}/{op}"
    auth = request.headers["authorization"]
    date = request.headers["x-amz-date"][:8]
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={TEMP_AKID}/{date}/eu-west-1/bedrock/aws4_request")
    assert request.headers["x-amz-security-token"] == SESSION_TOKEN
    signature = auth.rsplit("Signature=", 1)[1]
    assert signature == botocore_signature(request, TEMP_AKID, TEMP_SECRET, SESSION_TOKEN, "eu-west-1")
    assert signature != botocore_signature(request, TEMP_AKID, "another-secret", SESSION_TOKEN, "eu-west-1")


@pytest.mark.anyio
async def test_a_bad_signature_is_refused_and_its_echo_never_passed_on(http_transport: str) -> None:
    """AWS answers a wrong secret with the canonical request and string to sign (which list the
    session token) after its first sentence: only that sentence reaches the caller and the status."""
    fake = bedrock_fake(credentials={TEMP_AKID: ("the-real-secret", SESSION_TOKEN)})
    async with served(fake, session_config(), http_transport) as f:
        with pytest.raises((AuthenticationError, AllDeploymentsFailedError)) as info:
            await f.chat_async("Hi")
        status = f.status()[0]
    error = info.value.last_error if isinstance(info.value, AllDeploymentsFailedError) else info.value
    assert isinstance(error, AuthenticationError)
    seen = str(info.value) + repr(error) + repr(status)
    assert "does not match the signature you provided" in seen
    for leak in (SESSION_TOKEN, TEMP_SECRET, "Canonical String", "String-to-Sign", "aws4_request", "x-amz-date:"):
        assert leak not in seen, leak
    assert status.state == "disabled"


@pytest.mark.anyio
async def test_requests_match_what_boto3_sends(http_transport: str) -> None:
    """Same path, same content headers, same signed header core as boto3's invoke operations."""
    fake = bedrock_fake()
    with serve(fake) as base:
        client = boto3.client(
            "bedrock-runtime",
            region_name="us-east-1",
            endpoint_url=base,
            aws_access_key_id=AKID,
            aws_secret_access_key=SECRET,
            config=Config(retries={"total_max_attempts": 1}),
        )
        body = {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}],
        }
        client.invoke_model(
            modelId=MODEL, body=json.dumps(body), contentType="application/json", accept="application/json"
        )
        stream = client.invoke_model_with_response_stream(
            modelId=MODEL, body=json.dumps(body), contentType="application/json", accept="application/json"
        )
        list(stream["body"])
        client.close()
        boto_requests = list(fake.requests)
    async with served(fake, bedrock_config(), http_transport) as f:
        await f.chat_async("Hi")
        [c async for c in f.stream_async("Hi")]
    ours = fake.requests[2:]
    for theirs, mine in zip(boto_requests, ours, strict=True):
        assert mine.url.raw_path == theirs.url.raw_path
        for header in ("content-type", "accept", "x-amzn-bedrock-accept"):
            if header in theirs.headers:  # (httpx adds accept: */* where boto3 sends none)
                assert mine.headers.get(header) == theirs.headers[header], header
        signed = set(mine.headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";"))
        assert {"host", "x-amz-date", "content-type"} <= signed
    # The plugin's body is the Messages body boto3 callers pass, with the same required keys.
    assert {"anthropic_version", "max_tokens", "messages"} <= set(fake.bodies[-1])


@pytest.mark.anyio
async def test_bedrock_api_key_from_config_and_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, http_transport: str
) -> None:
    fake = bedrock_fake()
    async with served(fake, api_key_config(model=GLOBAL_PROFILE), http_transport) as f:
        await f.chat_async("Hi")
        assert "".join([c.choices[0].delta.content or "" async for c in f.stream_async("Hi") if c.choices])
    assert fake.requests[-1].headers["authorization"] == f"Bearer {BEARER}"
    assert fake.requests[-1].url.raw_path.decode().startswith(f"/model/{quote(GLOBAL_PROFILE, safe='')}/")
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", BEARER)
    async with served(fake, bedrock_config(aws_access_key_id=None, aws_secret_access_key=None), http_transport) as f:
        await f.chat_async("Hi")
    assert fake.requests[-1].headers["authorization"] == f"Bearer {BEARER}"
    assert "x-amz-date" not in fake.requests[-1].headers


@pytest.mark.anyio
async def test_profile_credentials_and_region(isolated_aws: Path) -> None:
    (isolated_aws / "aws_credentials").write_text(
        f"[work]\naws_access_key_id = {AKID}\naws_secret_access_key = {SECRET}\n"
    )
    (isolated_aws / "aws_config").write_text("[profile work]\nregion = ap-northeast-1\n")
    fake = bedrock_fake(region="ap-northeast-1")
    config = bedrock_config(aws_access_key_id=None, aws_secret_access_key=None, aws_region=None, aws_profile="work")
    async with factory(fake, [config]) as f:
        result = await f.chat_async("Hi")
    assert result.choices[0].message.content == "Hello from fake Claude"
    assert fake.requests[-1].url.host == "bedrock-runtime.ap-northeast-1.amazonaws.com"


@pytest.mark.anyio
async def test_keyless_env_deployment_uses_the_default_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    """CLAUDE_MODEL alone: one deployment, credentials and region from the AWS environment."""
    monkeypatch.setenv("CLAUDE_MODEL", US_PROFILE)
    monkeypatch.setenv("CLAUDE_DEFAULT_MAX_TOKENS", "321")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AKID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_REGION", "us-east-2")
    fake = bedrock_fake(region="us-east-2")
    f = LLMFactory.create(transport=httpx.MockTransport(fake.handle), registry=registry(), num_retries=0)
    async with f:
        assert len(f.deployments) == 1
        await f.chat_async("Hi")
    assert fake.requests[-1].url.host == "bedrock-runtime.us-east-2.amazonaws.com"
    assert fake.bodies[-1]["max_tokens"] == 321


@pytest.mark.anyio
async def test_env_keys_regions_and_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    """CLAUDE_API_KEYS are Bedrock API keys: one deployment each, failing over like API keys."""
    monkeypatch.setenv("CLAUDE_API_KEYS", f"bedrock-api-key-revoked-01,{BEARER}")
    monkeypatch.setenv("CLAUDE_MODEL", US_PROFILE)
    monkeypatch.setenv("CLAUDE_AWS_REGION", "us-west-2")
    monkeypatch.setenv("CLAUDE_ANTHROPIC_BETA", "beta-one, beta-two")
    fake = bedrock_fake(region="us-west-2")
    f = LLMFactory.create(
        transport=httpx.MockTransport(fake.handle), registry=registry(), strategy="first_available", cooldown=0
    )
    async with f:
        result = await f.chat_async("Hi")
        status = {s.name: s for s in f.status()}
    assert result.choices[0].message.content == "Hello from fake Claude"
    assert fake.requests[-1].url.host == "bedrock-runtime.us-west-2.amazonaws.com"
    assert fake.bodies[-1]["anthropic_beta"] == ["beta-one", "beta-two"]
    revoked = next(s for s in status.values() if s.failures)
    assert revoked.state == "disabled" and "Invalid API Key" in (revoked.reason or revoked.last_error or "")


@pytest.mark.anyio
async def test_several_credential_sets_and_regions_fail_over() -> None:
    fake_east = bedrock_fake(region="us-east-1")
    fake_west = bedrock_fake(region="us-west-2", credentials={"AKIDWEST00000001": ("west-secret-0001", None)})
    fake_east.script.append(Reply(blocks=[], stop_reason="end_turn"))  # unused: east is throttled below

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.host.startswith("bedrock-runtime.us-east-1"):
            return fake_east.error("ThrottlingException", "Too many requests, please wait before trying again.")
        return fake_west.handle(request)

    configs = [
        bedrock_config(name="east"),
        bedrock_config(
            name="west",
            aws_region="us-west-2",
            aws_access_key_id="AKIDWEST00000001",
            aws_secret_access_key="west-secret-0001",
        ),
    ]
    async with LLMFactory(
        configs, transport=httpx.MockTransport(route), registry=registry(), strategy="first_available", num_retries=0
    ) as f:
        result = await f.chat_async("Hi")
        states = {s.name: s.state for s in f.status()}
    assert result.choices[0].message.content == "Hello from fake Claude"
    assert states == {"east": "cooldown", "west": "healthy"}


@pytest.mark.anyio
async def test_missing_credentials_disable_the_deployment_with_a_reason() -> None:
    fake = bedrock_fake()
    config = bedrock_config(aws_access_key_id=None, aws_secret_access_key=None)
    async with factory(fake, [config]) as f:
        with pytest.raises((AuthenticationError, AllDeploymentsFailedError)) as info:
            await f.chat_async("Hi")
        status = f.status()[0]
    error = info.value.last_error if isinstance(info.value, AllDeploymentsFailedError) else info.value
    assert isinstance(error, AuthenticationError) and "no AWS credentials found" in str(error)
    assert status.state == "disabled"
    assert fake.requests == []


@pytest.mark.anyio
async def test_refreshable_credentials_refresh_off_the_event_loop() -> None:
    loop_thread = threading.get_ident()
    loads: list[int] = []
    refreshes: list[int] = []
    now = datetime.datetime.now(datetime.UTC)

    def refresh() -> dict[str, Any]:
        refreshes.append(threading.get_ident())
        return {
            "access_key": "ASIAREFRESHED0001",
            "secret_key": "refreshed-secret",
            "token": "refreshed-token",
            "expiry_time": (now + datetime.timedelta(hours=1)).isoformat(),
        }

    def loader() -> tuple[Credentials | None, str | None]:
        loads.append(threading.get_ident())  # the chain lookup itself (files, SSO, IMDS...)
        soon = {
            "access_key": "ASIAEXPIRING00001",
            "secret_key": "expiring-secret",
            "token": "expiring-token",
            "expiry_time": (now + datetime.timedelta(seconds=60)).isoformat(),
        }
        return RefreshableCredentials.create_from_metadata(soon, refresh, "test"), "eu-central-1"

    source = AwsCredentials(loader=loader)
    async with anyio.create_task_group() as tg:  # concurrent first uses resolve the chain once
        for _ in range(5):
            tg.start_soon(source.frozen)
    assert len(loads) == 1
    # The loaded credentials expire within botocore's refresh window: refreshed once, in a thread.
    assert len(refreshes) == 1
    assert loop_thread not in loads + refreshes, "blocking credential I/O ran on the event loop"
    frozen = await source.frozen()
    assert (frozen.access_key, frozen.token) == ("ASIAREFRESHED0001", "refreshed-token")
    assert len(refreshes) == 1, "fresh credentials are reused without another refresh"
    assert await source.region() == "eu-central-1"
    source.invalidate()  # after the upstream rejected them: the chain is resolved again
    await source.frozen()
    assert len(loads) == 2


def test_sign_request_matches_botocore_for_an_arn_model_id() -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0"
    from urllib.parse import quote

    request = httpx.Request(
        "POST",
        f"https://bedrock-runtime.us-east-1.amazonaws.com/model/{quote(arn, safe='')}/invoke",
        content=b'{"a":1}',
        headers={"content-type": "application/json", "user-agent": "x", "x-custom": "unsigned"},
    )
    from botocore.credentials import ReadOnlyCredentials

    sign_request(request, ReadOnlyCredentials(AKID, SECRET, None, None), "us-east-1")
    assert "x-custom" not in request.headers["authorization"] and "user-agent" not in request.headers["authorization"]
    assert request.headers["authorization"].endswith(botocore_signature(request, AKID, SECRET, None, "us-east-1"))


@pytest.mark.anyio
async def test_auth_flow_errors_are_typed() -> None:
    def on_error(message: str) -> Exception:
        return AuthenticationError(message, provider="claude")

    def loader() -> tuple[Credentials | None, str | None]:
        return None, None

    auth = SigV4Auth(AwsCredentials(loader=loader), "us-east-1", on_error)
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200))) as client:
        with pytest.raises(ProviderError, match="no AWS credentials found"):
            await client.post("https://bedrock-runtime.us-east-1.amazonaws.com/x", content=b"{}", auth=auth)
