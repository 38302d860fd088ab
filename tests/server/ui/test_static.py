"""The vendored charting library is what VENDORED.md says, and the page's files ship in the wheel."""

from __future__ import annotations

import hashlib
import re
import zipfile
from pathlib import Path

import pytest

import llm_factory_server

STATIC = Path(llm_factory_server.__file__).parent / "ui" / "static"
SERVER = Path(llm_factory_server.__file__).parents[1]
SHIPPED = ("index.html", "app.js", "app.css", "uPlot.iife.min.js", "uPlot.min.css", "uPlot.LICENSE", "VENDORED.md")


def test_the_vendored_files_match_their_recorded_hashes_and_version() -> None:
    notes = (STATIC / "VENDORED.md").read_text()
    recorded = dict((name, digest) for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", notes, re.M))
    assert set(recorded) == {"uPlot.iife.min.js", "uPlot.min.css"}
    for name, digest in recorded.items():
        assert hashlib.sha256((STATIC / name).read_bytes()).hexdigest() == digest, name
    version = re.search(r"\| (\d+\.\d+\.\d+) \|", notes)
    assert version is not None
    assert f"(v{version.group(1)})" in (STATIC / "uPlot.iife.min.js").read_text()[:100]
    licence = (STATIC / "uPlot.LICENSE").read_text()
    assert "The MIT License" in licence and "Leon Sorokin" in licence


def test_the_page_loads_nothing_from_another_origin() -> None:
    for name in ("index.html", "app.js", "app.css"):
        text = (STATIC / name).read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), name


def test_the_wheel_ships_the_page(tmp_path: Path) -> None:
    builders = pytest.importorskip("hatchling.builders.wheel", reason="building the wheel needs hatchling")
    wheel = next(builders.WheelBuilder(str(SERVER)).build(directory=str(tmp_path), versions=["standard"]))
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in SHIPPED:
        assert f"llm_factory_server/ui/static/{name}" in names, name
    assert "llm_factory_server/ui/_router.py" in names
