from typing import Any

import httpx

from llm_factory_core.testing import ProviderConformance
from llm_factory_gemini import GeminiProvider

from .fake_gemini import VALID_KEY, FakeGemini, GeminiError, Turn

ERRORS = {
    "rate_limit": GeminiError.rate_limit("7s"),
    "auth": GeminiError.invalid_key(),
    # Gemini API troubleshooting guide: 400 FAILED_PRECONDITION when the free tier is not available
    # and billing is not enabled, so the key cannot serve until billing is set up (the exact
    # reply: kolbytn/mindcraft#133).
    "quota": GeminiError(
        400,
        "FAILED_PRECONDITION",
        "Gemini API free tier is not available in your country. Please enable billing on your project in "
        "Google AI Studio.",
    ),
    "bad_request": GeminiError.invalid_argument(),
    "context_length": GeminiError.context_too_long(),
    "server": GeminiError.unavailable(),
}
FINISH = {"length": "MAX_TOKENS", "content_filter": "SAFETY", "stop": "STOP"}


class TestGeminiConformance(ProviderConformance):
    provider_cls = GeminiProvider
    config = {"api_key": VALID_KEY, "api_base": "https://generativelanguage.googleapis.com"}

    def reply_text(self, request: httpx.Request, text: str) -> httpx.Response:
        return FakeGemini().add(Turn(text=text)).respond(request)

    def reply_stream(self, request: httpx.Request, pieces: list[str]) -> httpx.Response:
        return FakeGemini().add(Turn(text="".join(pieces), pieces=pieces)).respond(request)

    def reply_error(self, request: httpx.Request, kind: str) -> httpx.Response | None:
        if kind == "auth":  # a key the fake does not know: Gemini's 400 API_KEY_INVALID
            return FakeGemini(keys=("another-key-entirely",)).respond(request)
        if kind == "content_filter":  # a blocked prompt: HTTP 200 with promptFeedback, no candidates
            return FakeGemini().add(Turn(block_reason="PROHIBITED_CONTENT")).respond(request)
        return FakeGemini().add(ERRORS[kind]).respond(request)

    def reply_finish(self, request: httpx.Request, text: str, reason: str, stream: bool) -> httpx.Response | None:
        return FakeGemini().add(Turn(text=text, finish=FINISH[reason])).respond(request) if reason in FINISH else None

    def reply_tool_call(
        self, request: httpx.Request, name: str, arguments: dict[str, Any], stream: bool
    ) -> httpx.Response | None:
        return FakeGemini().add(Turn(calls=[(name, arguments)])).respond(request)

    def reply_stream_error(self, request: httpx.Request) -> httpx.Response | None:
        # Gemini writes an error object into a 200 stream (overload mid-stream): the fake sends it
        # raw, before any event, as the SDK's parser expects.
        return FakeGemini().add(Turn(text="x", stream_error=GeminiError.unavailable(), error_after=0)).respond(request)


class TestVertexConformance(TestGeminiConformance):
    config = {
        "api_key": VALID_KEY,
        "vertex_project": "my-project",
        "vertex_location": "us-central1",
    }

    def reply_text(self, request: httpx.Request, text: str) -> httpx.Response:
        assert request.url.host == "us-central1-aiplatform.googleapis.com"
        assert request.url.path.startswith("/v1/projects/my-project/locations/us-central1/publishers/google/")
        return super().reply_text(_as_gemini_api(request), text)

    def reply_stream(self, request: httpx.Request, pieces: list[str]) -> httpx.Response:
        return super().reply_stream(_as_gemini_api(request), pieces)

    def reply_error(self, request: httpx.Request, kind: str) -> httpx.Response | None:
        return super().reply_error(_as_gemini_api(request), kind)

    def reply_finish(self, request: httpx.Request, text: str, reason: str, stream: bool) -> httpx.Response | None:
        return super().reply_finish(_as_gemini_api(request), text, reason, stream)

    def reply_tool_call(
        self, request: httpx.Request, name: str, arguments: dict[str, Any], stream: bool
    ) -> httpx.Response | None:
        return super().reply_tool_call(_as_gemini_api(request), name, arguments, stream)

    def reply_stream_error(self, request: httpx.Request) -> httpx.Response | None:
        return super().reply_stream_error(_as_gemini_api(request))


def _as_gemini_api(request: httpx.Request) -> httpx.Request:
    """Vertex serves the same body under a project path; the fake speaks the Gemini API path."""
    path = request.url.path
    if "/publishers/google/" in path:
        path = "/v1beta/" + path.split("/publishers/google/", 1)[1]
    return httpx.Request(
        request.method, request.url.copy_with(path=path), headers=request.headers, content=request.content
    )
