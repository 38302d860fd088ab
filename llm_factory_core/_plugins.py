"""Finding provider plugins and strategies: pluggy plus the ``llm_factory`` entry point group.

Entry points are listed without importing anything; a plugin is imported only when a configured
provider (or an unknown strategy name) needs it, which keeps start-up fast.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import threading
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from ._errors import PluginError

if TYPE_CHECKING:
    from ._balancing import Strategy
    from ._provider import Provider

__all__ = ["PluginRegistry", "default_registry"]

ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME


FIRST_PARTY = ("openai", "qwen", "deepseek", "claude", "gemini")
"""Providers published from this repository (their distribution is ``llm-factory-<key>``)."""


def install_hint(key: str) -> str:
    return f"pip install llm-factory-{key.replace('_', '-')}"


def missing_provider_message(key: str, installed: list[str]) -> str:
    """Why ``key`` is unknown and the likely fix: a typo of an installed provider, a first-party
    plugin not installed, or a third-party one. Never ``pip install llm-factory-<typo>``: that
    name may belong to anyone on PyPI."""
    listed = ", ".join(installed) or "none"
    close = difflib.get_close_matches(key, installed, n=1, cutoff=0.6)
    if close:
        return f"Provider {key!r} is not installed; did you mean {close[0]!r}? (installed providers: {listed})."
    if key in FIRST_PARTY:
        return f"Provider {key!r} is not installed: {install_hint(key)} (installed providers: {listed})."
    known = difflib.get_close_matches(key, FIRST_PARTY, n=1, cutoff=0.6)
    if known:
        return (
            f"Provider {key!r} is not installed; did you mean {known[0]!r}? That one needs "
            f"{install_hint(known[0])} (installed providers: {listed})."
        )
    return (
        f"Provider {key!r} is not installed and no installed plugin provides it (installed providers: "
        f"{listed}). If a plugin for it exists, install it: third-party provider plugins are usually "
        f"named llm-factory-<vendor> on PyPI."
    )


class PluginRegistry:
    """Providers and strategies known to this process."""

    def __init__(self, *, entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self._lock = threading.RLock()
        self._providers: dict[str, type[Provider]] = {}
        self._origins: dict[str, str] = {}
        self._strategies: dict[str, type[Strategy]] = {}
        self._current_origin = "code"
        self._entry_points: dict[str, list[importlib.metadata.EntryPoint]] | None = None if entry_points else {}
        self._loaded: set[str] = set()
        self._failed: dict[str, PluginError] = {}
        self.pm.hook.llm_factory_register_providers.call_historic(kwargs={"register": self._register_provider})
        self.pm.hook.llm_factory_register_strategies.call_historic(kwargs={"register": self._register_strategy})
        from . import _builtin_strategies

        self.register(_builtin_strategies, origin="llm-factory-core")

    # -- registration ---------------------------------------------------------------------------

    def register(self, plugin: ModuleType | object, *, origin: str | None = None) -> None:
        """Register a plugin object or module (its hooks run at once)."""
        with self._lock:
            previous, self._current_origin = self._current_origin, origin or _describe(plugin)
            try:
                self.pm.register(plugin)
            finally:
                self._current_origin = previous

    def _register_provider(self, cls: type[Provider]) -> None:
        key = getattr(cls, "key", None)
        if not isinstance(key, str) or not key:
            raise PluginError(f"{cls!r} from {self._current_origin} has no provider key")
        existing = self._providers.get(key)
        if existing is not None and existing is not cls:
            raise PluginError(
                f"Two plugins claim provider {key!r}: {self._origins[key]} and "
                f"{self._current_origin}. Uninstall one of them."
            )
        self._providers[key] = cls
        self._origins[key] = self._current_origin

    def _register_strategy(self, name: str, cls: type[Strategy]) -> None:
        self._strategies[name] = cls

    # -- lookup ---------------------------------------------------------------------------------

    def _eps(self) -> dict[str, list[importlib.metadata.EntryPoint]]:
        if self._entry_points is None:
            found: dict[str, list[importlib.metadata.EntryPoint]] = {}
            for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                found.setdefault(ep.name, []).append(ep)
            self._entry_points = found
        return self._entry_points

    def installed_provider_keys(self) -> list[str]:
        """Every provider key available: registered in code or installed as an entry point."""
        return sorted(set(self._providers) | set(self._eps()))

    def _load(self, name: str) -> None:
        with self._lock:
            if name in self._failed:
                raise self._failed[name]
            if name in self._loaded:
                return
            eps = self._eps().get(name, [])
            dists = {_dist_name(ep) for ep in eps}
            if len(dists) > 1:
                raise PluginError(
                    f"Two plugins claim provider {name!r}: {' and '.join(sorted(dists))}. Uninstall one of them."
                )
            for ep in eps:
                try:
                    plugin = ep.load()
                except Exception as exc:  # a broken plugin must name itself, every time
                    error = PluginError(
                        f"The plugin {_dist_name(ep)} (entry point {name!r}) failed to import: "
                        f"{type(exc).__name__}: {exc}"
                    )
                    self._failed[name] = error
                    raise error from exc
                if not self.pm.is_registered(plugin):
                    before = set(self._providers)
                    self.register(plugin, origin=_dist_name(ep))
                    added = sorted(set(self._providers) - before)
                    if added and name not in added:  # users configure the key; we import by entry point
                        error = PluginError(
                            f"The plugin {_dist_name(ep)} has an entry point named {name!r} but registers "
                            f"provider key(s) {', '.join(map(repr, added))}: the entry point must be named "
                            f"after the provider key (in its pyproject.toml: [project.entry-points.llm_factory] "
                            f"{added[0]} = ...)."
                        )
                        self._failed[name] = error
                        raise error
            self._loaded.add(name)

    def provider(self, key: str) -> type[Provider]:
        """The provider class for ``key``, importing its plugin on first use."""
        if key not in self._providers:
            self._load(key)
        try:
            return self._providers[key]
        except KeyError:
            raise PluginError(missing_provider_message(key, self.installed_provider_keys())) from None

    def strategy(self, name: str) -> type[Strategy] | None:
        if name not in self._strategies:
            self.load_all()
        return self._strategies.get(name)

    def strategy_names(self) -> list[str]:
        return sorted(self._strategies)

    def load_all(self) -> None:
        for name in list(self._eps()):
            self._load(name)

    def notify_state_changed(self, **kwargs: Any) -> None:
        self.pm.hook.llm_factory_deployment_state_changed(**kwargs)


def _dist_name(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else ep.value


def _describe(plugin: object) -> str:
    return getattr(plugin, "__name__", None) or type(plugin).__name__


_default: PluginRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> PluginRegistry:
    """The process-wide registry (entry points included), created on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = PluginRegistry()
        return _default
