"""The status page in a real headless browser (Debian's chromium): what it renders, a screenshot."""

from __future__ import annotations

import os
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio
import httpx

from llm_factory_server.ui import RECORDER_ATTR, USAGE_ATTR, Recorder

from ..helpers import Upstream
from ._browser import chromium, needs_chromium, parse_html, read_png
from .conftest import RATE_LIMITED, StartGateway
from .test_routes import REPORT, Source

pytestmark = needs_chromium

REPO = Path(__file__).resolve().parents[3]
SCREENSHOT = REPO / "docs" / "status-page.png"

# The stylesheet's state colours (app.css), as chromium paints them with an sRGB profile.
COOLDOWN_BADGE = (0x9A, 0x67, 0x00)
COOLDOWN_ROW = (0xFF, 0xF8, 0xC5)
HEALTHY_BADGE = (0x1A, 0x7F, 0x37)
SERIES_COLOURS = [(0x09, 0x69, 0xDA), (0xBF, 0x39, 0x89)]  # app.js COLOURS[0], [1]


def cell(row: object, cls: str) -> str:
    return row.find_all("td", cls=cls)[0].text  # type: ignore[attr-defined, no-any-return]


def test_the_page_shows_every_deployment_and_the_cooldown(start_gateway: StartGateway, tmp_path: Path) -> None:
    gw = start_gateway()
    status = gw.status()
    read_at = time.time()  # the browser can take seconds to start on a busy machine
    dom = parse_html(chromium(f"{gw.url}/ui", tmp_path / "profile", "--dump-dom"))

    rows = {r.attrs["data-deployment"]: r for r in dom.find_all("tr") if "data-deployment" in r.attrs}
    assert set(rows) == {"a-gpt-4o", "b-qwen-plus"}
    a, b = rows["a-gpt-4o"], rows["b-qwen-plus"]

    assert "state-cooldown" in a.classes
    assert a.find_all("span", cls="badge")[0].text == "cooldown"  # a text label, not only a colour
    assert RATE_LIMITED in cell(a, "reason")
    until = status["a-gpt-4o"]["until"]
    assert until is not None and 55 < until - read_at <= 61  # Retry-After: 60
    shown = a.find_all("time")[0]
    assert abs(float(shown.attrs["data-until"]) - until) < 0.01
    iso = datetime.fromtimestamp(until, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert shown.attrs["datetime"] == iso
    assert time.strftime("%I:%M:%S", time.gmtime(until)) in shown.text  # chromium runs with TZ=UTC
    left = re.search(r"\u00a0\(in (\d+) s\)", shown.text)
    assert left is not None and 40 <= int(left.group(1)) <= 60, shown.text
    numbers = [td.text for td in a.find_all("td", cls="num")]
    assert numbers == ["0", "0", "1", "100.0 %", "\u2014"]  # in flight, successes, failures, rate, latency

    assert "state-healthy" in b.classes
    assert b.find_all("span", cls="badge")[0].text == "healthy"
    assert cell(b, "until") == "\u2014" and cell(b, "reason") == "\u2014"
    numbers = [td.text for td in b.find_all("td", cls="num")]
    assert numbers[:4] == ["0", "1", "0", "0.0 %"] and numbers[4].endswith(" ms")

    assert dom.by_id("summary").text == "2 deployments \u00b7 1 healthy \u00b7 1 cooldown"
    assert dom.by_id("updated").text.startswith("Updated ")
    assert "hidden" in dom.by_id("auth").attrs and "hidden" in dom.by_id("usage").attrs
    for chart in ("chart-requests", "chart-errors", "chart-latency"):
        plot = dom.by_id(chart)
        assert plot.find_all("canvas"), f"{chart} was not drawn"
        labels = {e.text for e in plot.find_all("div", cls="u-label")}
        assert {"a-gpt-4o", "b-qwen-plus"} <= labels


def test_a_screenshot_of_a_gateway_with_traffic_and_a_cooldown(
    start_gateway: StartGateway, upstream: Upstream, tmp_path: Path
) -> None:
    gw = start_gateway(chat=False)

    async def slow(request: httpx.Request) -> httpx.Response:  # latency worth a chart
        await anyio.sleep(0.01 + 0.002 * (len(upstream.requests) % 15))
        return upstream.default(request)

    upstream.script("b", slow, times=1000)
    # Two minutes of history in a few seconds: the recorder's clock is scripted, the traffic real.
    now = time.time()
    clock = iter([now - 5 * (24 - i) for i in range(25)])
    recorder = Recorder(gw.app.state.llm_factory_gateway.factory, clock=lambda: next(clock))
    setattr(gw.app.state, RECORDER_ATTR, recorder)
    recorder.sample()
    for i in range(24):
        for _ in range(1 + (i * 7) % 4):
            assert gw.chat("qwen-plus").status_code == 200
        if i == 16:
            assert gw.chat("gpt-4o").status_code == 429
        recorder.sample()

    shot = tmp_path / "page.png"
    chromium(f"{gw.url}/ui", tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,900")
    image = read_png(shot)
    assert (image.width, image.height) == (1280, 900)
    colours = image.colours()
    pixels = image.width * image.height
    assert len(colours) > 50, "one flat colour: not a rendered page"
    assert colours.most_common(1)[0][1] < 0.97 * pixels
    assert colours[COOLDOWN_BADGE] > 500, "no cooldown badge"
    assert colours[COOLDOWN_ROW] > 10_000, "no cooling-down row"
    assert colours[HEALTHY_BADGE] > 500, "no healthy badge"
    for colour in SERIES_COLOURS:  # the charts' lines were drawn
        assert colours[colour] > 30, f"no chart line in {colour}"
    # The READMEs' picture: UPDATE_SCREENSHOTS=1 python -m pytest tests/server/ui (not LLM_*: the
    # server tests clear those variables).
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, SCREENSHOT)


def test_with_client_keys_the_page_asks_for_one_and_shows_nothing(start_gateway: StartGateway, tmp_path: Path) -> None:
    gw = start_gateway(keyed=True)
    html = chromium(f"{gw.url}/ui", tmp_path / "profile", "--dump-dom")
    dom = parse_html(html)
    assert "hidden" not in dom.by_id("auth").attrs
    assert "hidden" in dom.by_id("deployments").attrs and "hidden" in dom.by_id("charts").attrs
    assert dom.by_id("updated").text == "Waiting for a client key."
    assert dom.by_id("key").attrs["type"] == "password"
    for name in ("a-gpt-4o", "b-qwen-plus", RATE_LIMITED):
        assert name not in html
    assert dom.by_id("status-rows").children == []


def test_usage_and_cost_appear_once_usage_is_reported(start_gateway: StartGateway, tmp_path: Path) -> None:
    gw = start_gateway()
    profile = tmp_path / "profile"
    assert "hidden" in parse_html(chromium(f"{gw.url}/ui", profile, "--dump-dom")).by_id("usage").attrs

    setattr(gw.app.state, USAGE_ATTR, Source(REPORT))
    dom = parse_html(chromium(f"{gw.url}/ui", profile, "--dump-dom"))
    usage = dom.by_id("usage")
    assert "hidden" not in usage.attrs
    (row,) = dom.by_id("usage-rows").find_all("tr")
    assert row.find_all("th")[0].text == "team-search"
    assert [td.text for td in row.find_all("td")] == ["gpt-4o", "7", "700", "30", "$0.032"]
    for chart in ("chart-cost", "chart-tokens"):
        plot = dom.by_id(chart)
        assert plot.find_all("canvas"), f"{chart} was not drawn"
        assert "team-search / gpt-4o" in {e.text for e in plot.find_all("div", cls="u-label")}
