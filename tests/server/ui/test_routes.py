"""The status page's routes over a real socket: content types, caching, the client key, inputs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_factory_server.ui import RECORDER_ATTR, USAGE_ATTR, UsageReport

from ..helpers import CLIENT_KEY
from .conftest import StartGateway

DATA = ("/ui/api/timeseries", "/ui/api/usage", "/v1/providers/status")


def assets(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="(ui/static/[^"]+)"', page)


def test_the_page_and_its_files_have_their_types_and_cache_headers(start_gateway: StartGateway) -> None:
    gw = start_gateway()
    page = gw.http.get("/ui")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in page.text and "style=" not in page.text  # nothing inline: the CSP allows none
    found = assets(page.text)
    assert sorted(u.split("?")[0] for u in found) == [
        "ui/static/app.css",
        "ui/static/app.js",
        "ui/static/uPlot.iife.min.js",
        "ui/static/uPlot.min.css",
    ]
    types = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
    for url in found:
        reply = gw.http.get("/" + url)
        assert reply.status_code == 200, url
        assert reply.headers["content-type"] == types[Path(url.split("?")[0]).suffix]
        assert reply.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert reply.headers["x-content-type-options"] == "nosniff"
        etag = reply.headers["etag"]
        again = gw.http.get("/" + url, headers={"if-none-match": etag})
        assert again.status_code == 304 and again.content == b""
        # The same file asked for without its version (an old page): revalidated, not cached for good.
        plain = gw.http.get("/" + url.split("?")[0])
        assert plain.status_code == 200 and plain.headers["cache-control"] == "no-cache"
        assert plain.content == reply.content
    assert b"uPlot" in gw.http.get("/" + next(u for u in found if "uPlot.iife" in u)).content
    # /ui/ goes to /ui: the page's relative URLs (ui/static/..., v1/...) resolve from /ui only.
    slash = gw.http.get("/ui/")
    assert slash.status_code == 307 and slash.headers["location"].endswith("/ui")


@pytest.mark.parametrize("path", ["/ui/static/nothing.js", "/ui/static/index.html", "/ui/static/..%2f_router.py"])
def test_only_the_listed_files_are_served(start_gateway: StartGateway, path: str) -> None:
    gw = start_gateway()
    reply = gw.http.get(path)
    assert reply.status_code == 404
    assert "static file" in reply.json()["error"]["message"] or reply.json()["error"]["type"] == "not_found_error"
    assert b"import" not in reply.content


def test_data_needs_the_client_key_and_the_shell_carries_none(start_gateway: StartGateway) -> None:
    gw = start_gateway(keyed=True)
    anonymous = httpx.Client(base_url=gw.url)
    try:
        for path in DATA:
            reply = anonymous.get(path)
            assert reply.status_code == 401, path
            assert reply.json()["error"]["code"] == "invalid_api_key"
            assert reply.headers["www-authenticate"] == "Bearer"
            wrong = anonymous.get(path, headers={"authorization": "Bearer not-the-key"})
            assert wrong.status_code == 401, path
            twice = anonymous.get(
                path, headers=[("authorization", f"Bearer {CLIENT_KEY}"), ("authorization", f"Bearer {CLIENT_KEY}")]
            )
            assert twice.status_code == 401, path
            assert anonymous.get(path, headers={"authorization": f"Bearer {CLIENT_KEY}"}).status_code == 200
            assert anonymous.get(path, headers={"api-key": CLIENT_KEY}).status_code == 200
        # The shell and its files are served without the key: they hold no data (and no secret).
        page = anonymous.get("/ui")
        assert page.status_code == 200
        for secret_or_data in (CLIENT_KEY, "a-gpt-4o", "b-qwen-plus", "sk-upstream"):
            assert secret_or_data not in page.text
        for url in assets(page.text):
            reply = anonymous.get("/" + url)
            assert reply.status_code == 200
            assert CLIENT_KEY.encode() not in reply.content
    finally:
        anonymous.close()


def test_an_open_gateway_page_answers_only_its_own_host_names(start_gateway: StartGateway) -> None:
    gw = start_gateway()
    for path in ("/ui", "/ui/static/app.js", *DATA):
        reply = gw.http.get(path, headers={"host": "attacker.example"})
        assert reply.status_code == 400, path
        assert reply.json()["error"]["code"] == "host_not_allowed"


@pytest.mark.parametrize("since", ["yesterday", "nan", "inf", "1e999"])
@pytest.mark.parametrize("path", ["/ui/api/timeseries", "/ui/api/usage"])
def test_since_must_be_a_number(start_gateway: StartGateway, path: str, since: str) -> None:
    gw = start_gateway()
    reply = gw.http.get(path, params={"since": since})
    assert reply.status_code == 400
    message = reply.json()["error"]["message"]
    assert "'since' must be a Unix time in seconds" in message and since[:20] in message


def test_timeseries_serves_the_recorded_samples(start_gateway: StartGateway) -> None:
    gw = start_gateway()
    recorder = getattr(gw.app.state, RECORDER_ATTR)
    assert recorder.samples_taken >= 1  # the lifespan started it: a first sample at once
    before = gw.http.get("/ui/api/timeseries").json()
    assert before["interval"] == 5.0 and before["window"] == 3600.0
    assert {d["name"] for d in before["deployments"]} == {"a-gpt-4o", "b-qwen-plus"}
    recorder.sample()
    for _ in range(3):
        assert gw.chat("qwen-plus").status_code == 200
    recorder.sample()
    reply = gw.http.get("/ui/api/timeseries")
    assert reply.headers["cache-control"] == "no-store"
    series = reply.json()
    assert len(series["t"]) == len(before["t"]) + 2
    b = next(d for d in series["deployments"] if d["name"] == "b-qwen-plus")
    assert b["requests"][-1] == 3 and b["errors"][-1] == 0 and b["state"][-1] == "healthy"
    a = next(d for d in series["deployments"] if d["name"] == "a-gpt-4o")
    assert a["state"][-1] == "cooldown"
    newer = gw.http.get("/ui/api/timeseries", params={"since": series["t"][-2]}).json()
    assert newer["t"] == series["t"][-1:]


class Source:
    def __init__(self, report: Any) -> None:
        self.report = report
        self.since: list[float | None] = []

    def usage_report(self, since: float | None) -> Any:
        self.since.append(since)
        return self.report


SERIES: dict[str, Any] = {
    "key": "team-search",
    "model": "gpt-4o",
    "requests": [3, 4],
    "prompt_tokens": [300, 400],
    "completion_tokens": [30, None],
    "cost": [0.012, 0.02],
}
REPORT: dict[str, Any] = {
    "interval": 300,
    "currency": "USD",
    "t": [1_800_000_000.0, 1_800_000_300.0],
    "series": [SERIES],
}


def test_usage_is_off_until_a_source_reports_it(start_gateway: StartGateway) -> None:
    gw = start_gateway()
    assert gw.http.get("/ui/api/usage").json() == {"enabled": False}
    source = Source(REPORT)
    setattr(gw.app.state, USAGE_ATTR, source)
    reply = gw.http.get("/ui/api/usage", params={"since": "1800000000"})
    assert reply.status_code == 200 and reply.headers["cache-control"] == "no-store"
    assert reply.json() == {**REPORT, "enabled": True, "interval": 300.0}
    assert source.since == [1_800_000_000.0]
    source.report = UsageReport.model_validate(REPORT)  # the model itself is accepted as well
    assert gw.http.get("/ui/api/usage").json()["series"][0]["key"] == "team-search"


@pytest.mark.parametrize(
    ("report", "message"),
    [
        ({**REPORT, "t": [1.0]}, "requests has 2 values for 1 times"),
        ({**REPORT, "series": [{**SERIES, "api_key": "sk-x"}]}, "Extra inputs are not permitted"),
    ],
)
def test_a_malformed_usage_report_is_an_error_not_a_broken_page(
    start_gateway: StartGateway, report: dict[str, Any], message: str, caplog: pytest.LogCaptureFixture
) -> None:
    gw = start_gateway()
    setattr(gw.app.state, USAGE_ATTR, Source(report))
    reply = gw.http.get("/ui/api/usage")
    assert reply.status_code == 500
    assert reply.json()["error"]["type"] == "server_error"
    assert message in caplog.text


def test_a_usage_source_without_the_method_is_named(
    start_gateway: StartGateway, caplog: pytest.LogCaptureFixture
) -> None:
    gw = start_gateway()
    setattr(gw.app.state, USAGE_ATTR, object())
    assert gw.http.get("/ui/api/usage").status_code == 500
    assert "app.state.llm_factory_usage must have a usage_report(since) method, not object" in caplog.text
