"""Debian's chromium, headless, for the status page tests; and a PNG reader (zlib + struct).

The flags keep chromium off the network (no background fetches, no component updates, no sync,
no QUIC): the only address it talks to is the gateway on 127.0.0.1.
"""

from __future__ import annotations

import os
import struct
import subprocess
import zlib
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="the status page tests drive Debian's chromium (/usr/bin/chromium): run scripts/test.sh as root "
    "on Debian, or `apt-get install chromium`",
)

_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--force-color-profile=srgb",  # the screenshot's colours are the stylesheet's, byte for byte
    "--hide-scrollbars",
    "--lang=en-US",
)


def chromium(url: str, profile: Path, *extra: str, budget_ms: int = 4000, timeout: float = 90) -> str:
    """Run chromium on ``url``; its stdout (the DOM with ``--dump-dom``). ``budget_ms`` of virtual
    time lets the page's scripts and timers run (time stands still while a fetch is pending)."""
    args = [str(CHROMIUM), *_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", *extra, url]
    env = {k: v for k, v in os.environ.items() if not k.endswith("_proxy") and not k.endswith("_PROXY")}
    env["TZ"] = "UTC"
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if done.returncode != 0:
        raise AssertionError(f"chromium exited with {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


# -- the DOM --------------------------------------------------------------------------------------


class Element:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Element | None) -> None:
        self.tag = tag
        self.attrs = attrs
        self.parent = parent
        self.children: list[Element | str] = []

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def iter(self) -> list[Element]:
        found: list[Element] = [self]
        for c in self.children:
            if isinstance(c, Element):
                found.extend(c.iter())
        return found

    def find_all(self, tag: str | None = None, *, cls: str | None = None, **attrs: str) -> list[Element]:
        return [
            e
            for e in self.iter()
            if (tag is None or e.tag == tag)
            and (cls is None or cls in e.classes)
            and all(e.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def by_id(self, id_: str) -> Element:
        found = self.find_all(id=id_)
        assert len(found) == 1, f"expected one element #{id_}, found {len(found)}"
        return found[0]


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.root = Element("#document", {}, None)
        self.current = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs}, self.current)
        self.current.children.append(element)
        if tag not in _VOID:
            self.current = element

    def handle_endtag(self, tag: str) -> None:
        node: Element | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.children.append(data)


def parse_html(html: str) -> Element:
    parser = _Parser()
    parser.feed(html)
    parser.close()
    return parser.root


# -- PNG ------------------------------------------------------------------------------------------


class Image:
    def __init__(self, width: int, height: int, channels: int, pixels: bytes) -> None:
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels

    def colours(self) -> Counter[tuple[int, int, int]]:
        """How many pixels have each RGB colour (alpha ignored)."""
        c = self.channels
        data = self.pixels
        return Counter(zip(data[0::c], data[1::c], data[2::c], strict=True))


def read_png(path: Path) -> Image:
    """Decode an 8-bit RGB / RGBA, non-interlaced PNG (what chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    pos = 8
    idat = bytearray()
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in chunk {kind!r}"
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + length
    raw = zlib.decompress(bytes(idat))
    stride = width * channels
    assert len(raw) == height * (stride + 1), "truncated image data"
    out = bytearray(height * stride)
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        filtering, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if filtering == 1:  # Sub
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif filtering == 2:  # Up
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        elif filtering == 3:  # Average
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif filtering == 4:  # Paeth
            for i in range(stride):
                a = line[i - channels] if i >= channels else 0
                b = previous[i]
                c = previous[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        else:
            assert filtering == 0, f"unknown PNG filter {filtering}"
        out[y * stride : (y + 1) * stride] = line
        previous = line
    return Image(width, height, channels, bytes(out))
