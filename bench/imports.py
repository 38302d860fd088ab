"""Import times, each in a fresh interpreter (best of N): ``llm_factory_core``, each installed plugin
on top of it, the server, and ``litellm`` when installed; and whether a factory configured for one
provider imports any other plugin (it must not)."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from typing import Any

__all__ = ["measure_imports"]

_TIMER = """
import sys, time
for name in {before!r}:
    __import__(name)
t = time.perf_counter()
__import__({module!r})
print("SECONDS", time.perf_counter() - t)
"""

_ONLY_CONFIGURED = """
import sys
from llm_factory_core import LLMFactory, ModelConfig
LLMFactory(ModelConfig(provider="openai", model_name="m", api_key="sk-bench-0000", api_base="http://127.0.0.1:9/v1"))
print("LOADED", sorted(m for m in sys.modules if m.startswith("llm_factory_") and "." not in m))
"""


def _seconds(python: str, module: str, before: list[str], repeats: int, env: dict[str, str] | None = None) -> float:
    best = float("inf")
    for _ in range(repeats):
        out = subprocess.run(
            [python, "-c", _TIMER.format(module=module, before=before)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=env,
        )
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("SECONDS ")), None)
        if line is None:
            raise RuntimeError(f"import {module} failed: {out.stderr[-300:]}")
        best = min(best, float(line.split()[1]))
    return best


def plugin_modules() -> dict[str, str]:
    """Provider key -> module, from the installed entry points."""
    return {ep.name: ep.value.split(":")[0] for ep in importlib.metadata.entry_points(group="llm_factory")}


def measure_imports(repeats: int, litellm_python: str | None) -> dict[str, Any]:
    import os

    results: dict[str, Any] = {"llm_factory_core": _seconds(sys.executable, "llm_factory_core", [], repeats)}
    plugins: dict[str, float] = {}
    for _key, module in sorted(plugin_modules().items()):
        try:
            plugins[module] = _seconds(sys.executable, module, ["llm_factory_core"], repeats)
        except RuntimeError:
            continue
    results["plugins_after_core"] = plugins
    try:
        results["llm_factory_server"] = _seconds(sys.executable, "llm_factory_server", [], repeats)
    except RuntimeError:
        results["llm_factory_server"] = None
    if litellm_python:
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        results["litellm"] = _seconds(litellm_python, "litellm", [], repeats, env)
    else:
        results["litellm"] = None
    out = subprocess.run([sys.executable, "-c", _ONLY_CONFIGURED], capture_output=True, text=True, timeout=120)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("LOADED ")), None)
    loaded = json.loads(line[len("LOADED ") :].replace("'", '"')) if line else None
    results["loaded_with_openai_configured"] = loaded
    results["plugins_only_when_configured"] = loaded is not None and set(loaded) <= {
        "llm_factory_core",
        "llm_factory_openai",
    }
    return results
