"""Hostile upstream error text over real sockets (issue 20): unbounded bodies, forged log lines,
AWS signature errors that list the canonical request, and key material in labels and metrics."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import httpx
import pytest

from llm_factory_core import (
    AllDeploymentsFailedError,
    AuthenticationError,
    LLMFactory,
    LLMFactoryError,
    ModelConfig,
    ProviderError,
)
from llm_factory_core._errors import MAX_ERROR_MESSAGE
from llm_factory_core.testing import serve_handler
from llm_factory_server import ServerSettings, create_app

from ..server.helpers import ServerThread

KEY = "sk-proj-" + "9f8e7d6c5b4a" * 4
ACCESS_KEY_ID = "AKIAQ7ZT4EXAMPLE2J5X"
OTHER_ACCESS_KEY_ID = "ASIAZZ9Y8X7W6V5U4T3S"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLETOKEN" + "Zm9v" * 20


def _pieces(secret: str) -> set[str]:
    return {secret[i : i + 8] for i in range(len(secret) - 7)}


def _leaked(text: str, *secrets: str) -> bool:
    return any(p in text for s in secrets for p in _pieces(s))


def test_a_huge_error_body_is_capped_and_cannot_forge_log_lines(
    http_transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "\r\nCRITICAL llm_factory_core.router forged: deployment deleted\n"
    # The key straddles the cap, so masking after cutting would show its beginning.
    message = "x" * (MAX_ERROR_MESSAGE - 12) + KEY + forged * 40_000 + "tail" * 250_000  # ~3.6 MB

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": {"message": message, "type": "invalid_request_error"}})

    caplog.set_level(logging.DEBUG)
    with serve_handler(handler) as base:
        config = ModelConfig(provider="openai", model_name="m", api_key=KEY, api_base=base)
        with LLMFactory([config], transport=http_transport, num_retries=0) as f:
            with pytest.raises(LLMFactoryError) as info:
                f.chat("hi")
            error = info.value.last_error if isinstance(info.value, AllDeploymentsFailedError) else info.value
            assert isinstance(error, ProviderError) and len(error.message) < MAX_ERROR_MESSAGE + 40
            assert "more characters" in error.message
            assert not _leaked(str(info.value), KEY)
            server = ServerThread(create_app(f, settings=ServerSettings())).start()
            try:
                reply = httpx.post(
                    f"{server.url}/v1/chat/completions",
                    json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                    timeout=30,
                )
            finally:
                server.stop()
    assert reply.status_code == 400 and len(reply.content) < 3 * MAX_ERROR_MESSAGE
    assert not _leaked(reply.text, KEY)
    for record in caplog.records:
        text = record.getMessage()
        assert "forged" not in text or "\n" not in text, text[:200]  # upstream line breaks arrive escaped
        assert len(text) < 4 * MAX_ERROR_MESSAGE, record.name
        assert not _leaked(text, KEY)


def _signature_error(request: httpx.Request) -> httpx.Response:
    """What AWS answers a request it cannot verify: the canonical request and string to sign it
    expected (which name every signed header value, the session token included), and here also
    S3's fields naming the access key id and the signature the client sent."""
    auth = request.headers["authorization"]
    signature = re.search(r"Signature=(\w+)", auth)
    canonical = "\n".join(
        ["POST", request.url.path, ""]
        + [f"{name}:{value}" for name, value in sorted(request.headers.items()) if name.startswith(("x-amz", "host"))]
        + [
            "",
            "host;x-amz-date;x-amz-security-token",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ]
    )
    message = (
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
        "Access Key and signing method. Consult the service documentation for details.\n\n"
        f"The Canonical String for this request should have been\n'{canonical}'\n\n"
        "The String-to-Sign should have been\n'AWS4-HMAC-SHA256\n20260101T000000Z\n"
        "20260101/us-east-1/bedrock/aws4_request\n9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'\n"
        f"AWSAccessKeyId: {ACCESS_KEY_ID} (also seen: {OTHER_ACCESS_KEY_ID}) "
        f"SignatureProvided: {signature.group(1) if signature else ''} Authorization: {auth}"
    )
    return httpx.Response(
        403,
        json={"message": message},
        headers={"x-amzn-errortype": "InvalidSignatureException:http://internal.amazon.com/coral/com.amazon.coral/"},
    )


@pytest.mark.parametrize("stream", [False, True])
def test_bedrock_signature_errors_lose_their_signing_material(
    http_transport: str, stream: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return _signature_error(request)

    with serve_handler(handler) as base:
        config = ModelConfig(
            provider="claude",
            model_name="m",
            model="anthropic.claude-sonnet-4-5",
            api_base=base,
            mode="bedrock",
            aws_region="us-east-1",
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_KEY,
            aws_session_token=SESSION_TOKEN,
        )  # type: ignore[call-arg]
        with LLMFactory([config], transport=http_transport, num_retries=0) as f:
            with pytest.raises(AllDeploymentsFailedError) as info:
                if stream:
                    with f.stream("hi") as chunks:
                        list(chunks)
                else:
                    f.chat("hi")
            status = json.dumps([s.model_dump(mode="json") for s in f.status()])
    error = info.value.last_error
    assert isinstance(error, AuthenticationError) and error.code == "InvalidSignatureException"
    assert error.message.startswith("The request signature we calculated does not match")
    assert "Canonical" not in error.message and "String-to-Sign" not in error.message
    signatures = [m.group(1) for a in seen if (m := re.search(r"Signature=(\w+)", a))]
    assert signatures  # the requests were signed: the test would see a leak
    for text in (str(info.value), repr(error), status):
        assert not _leaked(text, ACCESS_KEY_ID, OTHER_ACCESS_KEY_ID, SECRET_KEY, SESSION_TOKEN, *signatures), text


def test_metrics_and_labels_show_no_key_material(http_transport: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, json={"error": {"message": "slow down", "type": "rate_limit_error"}})

    with serve_handler(handler) as base:
        configs = [
            ModelConfig(provider="openai", model_name="m", api_key=KEY, api_base=base),
            ModelConfig(provider="openai", model_name="m", api_key="sk-short-1", api_base=base),
        ]
        with LLMFactory(configs, transport=http_transport, num_retries=0) as f:
            server = ServerThread(create_app(f, settings=ServerSettings())).start()
            try:
                body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
                assert httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30).status_code == 429
                metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
                status = httpx.get(f"{server.url}/v1/providers/status", timeout=30).json()["data"]
            finally:
                server.stop()
    assert "openai/m#1" in metrics and "openai/m#2" in metrics
    assert KEY[-4:] not in metrics and "****" not in metrics
    assert [row["name"] for row in status] == ["openai/m#1", "openai/m#2"]
    assert [row["api_key"] for row in status] == ["****" + KEY[-4:], "****"]  # a short key shows nothing
