"""The status page: ``GET /ui`` (an HTML shell), its static files, and the JSON it reads.

How the browser authenticates: the shell and the static files carry no data and are served
without a client key (a browser cannot add a header to a navigation). Everything with data needs
the key when keys are configured, read by ``check_access`` like every other route:
``/v1/providers/status``, ``/ui/api/timeseries`` and ``/ui/api/usage``. On a 401 the page asks for
the key, keeps it in ``sessionStorage`` (this tab only, gone when it closes, never in a URL or a
cookie, so no other site can make the browser send it) and sends ``Authorization: Bearer`` on its
fetches. Without client keys the page is as open as the rest of the gateway (loopback ``Host``
names only, see ``_access``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
from collections.abc import AsyncIterator
from importlib import resources

from fastapi import APIRouter, FastAPI
from starlette.requests import Request
from starlette.responses import Response

from llm_factory_core.providers import json_dumps as dumps

from .._access import check_access
from .._errors import simple
from .._gateway import gateway_for
from ._recorder import DEFAULT_INTERVAL, DEFAULT_WINDOW, Recorder, check_period
from ._usage import USAGE_ATTR, usage_report

__all__ = ["RECORDER_ATTR", "create_ui_router"]

RECORDER_ATTR = "llm_factory_ui_recorder"

_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}
# The files served under /ui/static/ (an allow-list: no path from the URL reaches the disk).
_SERVED = ("app.js", "app.css", "uPlot.iife.min.js", "uPlot.min.css")
_IMMUTABLE = "public, max-age=31536000, immutable"
# No inline script or style in the shell; uPlot sets styles through the CSSOM, which CSP allows.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_PAGE_HEADERS = {
    "cache-control": "no-cache",
    "content-security-policy": _CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
_DATA_HEADERS = {"cache-control": "no-store", "x-content-type-options": "nosniff"}


class _Asset:
    __slots__ = ("body", "content_type", "etag", "version")

    def __init__(self, name: str, body: bytes) -> None:
        self.body = body
        self.content_type = _TYPES[name[name.rfind(".") :]]
        self.version = hashlib.sha256(body).hexdigest()[:16]
        self.etag = f'"{self.version}"'


def _load() -> tuple[dict[str, _Asset], bytes]:
    # Read once at import: a few tens of KB, and it works from a zipped install too.
    folder = resources.files(__package__) / "static"
    assets = {name: _Asset(name, (folder / name).read_bytes()) for name in _SERVED}
    page = (folder / "index.html").read_text("utf-8")
    for name, asset in assets.items():
        # Relative URLs: the page works under a proxy's path prefix; ?v= makes caching forever safe.
        page = page.replace("{{" + name + "}}", f"ui/static/{name}?v={asset.version}")
    if "{{" in page:  # pragma: no cover - caught by the tests of the shipped page
        raise RuntimeError("status page: index.html names a static file that is not served")
    return assets, page.encode()


_ASSETS, _PAGE = _load()


def _error(status: int, message: str) -> Response:
    status, body, _ = simple(status, message, "invalid_request_error")
    return Response(body, status_code=status, media_type="application/json", headers=_DATA_HEADERS)


def _denied(request: Request, *, key: bool) -> Response | None:
    denied = check_access(gateway_for(request.app), request.scope["headers"], post=False, key=key)
    if denied is None:
        return None
    status, body, extra = denied
    headers = {**_DATA_HEADERS, **{k.decode(): v.decode() for k, v in extra}}
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _since(request: Request) -> float | Response | None:
    raw = request.query_params.get("since")
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        return _error(400, f"'since' must be a Unix time in seconds (a number), not {raw[:50]!r}.")
    return value


def _json(data: object) -> Response:
    return Response(dumps(data), media_type="application/json", headers=_DATA_HEADERS)


async def _page(request: Request) -> Response:
    if (denied := _denied(request, key=False)) is not None:
        return denied
    return Response(_PAGE, media_type=_TYPES[".html"], headers=_PAGE_HEADERS)


async def _static(request: Request) -> Response:
    if (denied := _denied(request, key=False)) is not None:
        return denied
    asset = _ASSETS.get(request.path_params["name"])
    if asset is None:
        return _error(404, f"No static file {request.path_params['name'][:100]!r} in the status page.")
    # Versioned URL (what the page asks for): cache for good. Any other: revalidate by ETag.
    cache = _IMMUTABLE if request.query_params.get("v") == asset.version else "no-cache"
    headers = {"cache-control": cache, "etag": asset.etag, "x-content-type-options": "nosniff"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.content_type, headers=headers)


async def _timeseries(request: Request) -> Response:
    if (denied := _denied(request, key=True)) is not None:
        return denied
    since = _since(request)
    if isinstance(since, Response):
        return since
    recorder: Recorder | None = getattr(request.app.state, RECORDER_ATTR, None)
    if recorder is None:
        return _json(
            {
                "interval": DEFAULT_INTERVAL,
                "window": DEFAULT_WINDOW,
                "t": [],
                "deployments": [],
                "message": "Not recording: the app's lifespan did not run (start it with uvicorn, or "
                "use TestClient as a context manager).",
            }
        )
    return _json(recorder.series(since))


async def _usage(request: Request) -> Response:
    if (denied := _denied(request, key=True)) is not None:
        return denied
    since = _since(request)
    if isinstance(since, Response):
        return since
    return _json(usage_report(getattr(request.app.state, USAGE_ATTR, None), since))


def create_ui_router(*, interval: float = DEFAULT_INTERVAL, window: float = DEFAULT_WINDOW) -> APIRouter:
    """The status page's routes; its lifespan samples the deployments every ``interval`` seconds
    for the last ``window`` seconds while the app runs. Include it without a prefix: the page
    lives at ``/ui`` and reads ``/v1/providers/status``."""
    check_period(interval, window)  # a bad value fails here, not when the app starts

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        recorder = Recorder(gateway_for(app).factory, interval=interval, window=window)
        setattr(app.state, RECORDER_ATTR, recorder)
        task = asyncio.create_task(recorder.run(), name="llm-factory status page recorder")
        try:
            yield  # no lifespan state: servers without "state" support still run the app
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    router = APIRouter(lifespan=lifespan, include_in_schema=False)
    router.add_route("/ui", _page, methods=["GET"])
    router.add_route("/ui/static/{name}", _static, methods=["GET"])
    router.add_route("/ui/api/timeseries", _timeseries, methods=["GET"])
    router.add_route("/ui/api/usage", _usage, methods=["GET"])
    return router
