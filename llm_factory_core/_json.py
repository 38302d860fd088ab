"""JSON encoding for the hot path: orjson when installed (several times faster), else ``json``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["dumps", "loads"]

dumps: Callable[[Any], bytes]
loads: Callable[[bytes | str], Any]

try:
    import orjson

    dumps = orjson.dumps
    loads = orjson.loads
except ImportError:  # pragma: no cover - depends on the environment
    import json

    def dumps(value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()

    loads = json.loads
