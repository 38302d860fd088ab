import httpx

from llm_factory_core.testing import ProviderConformance
from llm_factory_gemini import GeminiProvider

from .fake_gemini import VALID_KEY, FakeGemini, GeminiError, Turn

ERRORS = {
    "rate_limit": GeminiError.rate_limit("7s"),
    "auth": GeminiError.invalid_key(),
    "bad_request": GeminiError.invalid_argument(),
    "server": GeminiError.unavailable(),
}


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
        return FakeGemini().add(ERRORS[kind]).respond(request)


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


def _as_gemini_api(request: httpx.Request) -> httpx.Request:
    """Vertex serves the same body under a project path; the fake speaks the Gemini API path."""
    path = request.url.path
    if "/publishers/google/" in path:
        path = "/v1beta/" + path.split("/publishers/google/", 1)[1]
    return httpx.Request(
        request.method, request.url.copy_with(path=path), headers=request.headers, content=request.content
    )
