"""The gateway's operations room: managed client keys with limits and budgets, usage and cost
records, the admin API (``/admin/...``) and its CLI (``llm-factory keys | usage``).

Light on import (``_settings`` reads ``Price`` from here); the rest loads on first use.
"""

from __future__ import annotations

from typing import Any

from ._prices import Price

__all__ = ["KeySpec", "Operations", "Price", "UsageRecorder", "create_admin_router"]


def __getattr__(name: str) -> Any:
    if name == "Operations":
        from ._operations import Operations

        return Operations
    if name == "UsageRecorder":
        from ._recorder import UsageRecorder

        return UsageRecorder
    if name == "KeySpec":
        from ._keys import KeySpec

        return KeySpec
    if name == "create_admin_router":
        from ._admin import create_admin_router

        return create_admin_router
    raise AttributeError(name)
