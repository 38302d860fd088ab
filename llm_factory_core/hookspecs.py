"""The hooks a plugin may implement (pluggy, project name ``llm_factory``).

Hooks register things and observe rare events; none sits on the request path (pluggy is sync).
A plugin is a module listed under the ``llm_factory`` entry point group; the entry point's name is
the provider key it registers::

    [project.entry-points.llm_factory]
    acme = "llm_factory_acme"

    # llm_factory_acme.py
    from llm_factory_core import hookimpl

    @hookimpl
    def llm_factory_register_providers(register):
        register(AcmeProvider)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ._balancing import Strategy
    from ._provider import Provider

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]

PROJECT_NAME = "llm_factory"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec(historic=True)
def llm_factory_register_providers(register: Callable[[type[Provider]], None]) -> None:
    """Register provider classes.

    :param register: call ``register(ProviderClass)`` once per provider; the class's ``key`` must
        be the plugin's entry point name.
    """


@hookspec(historic=True)
def llm_factory_register_strategies(register: Callable[[str, type[Strategy]], None]) -> None:
    """Register load-balancing strategies by name.

    :param register: call ``register("name", StrategyClass)``; the class is instantiated once per
        model group and asked to order that group's healthy deployments for each request.
    """


@hookspec
def llm_factory_deployment_state_changed(
    deployment: str, model: str, state: str, reason: str | None, until: float | None
) -> None:
    """Observe a deployment entering or leaving cooldown / disabled (rare; not per request).

    :param deployment: the deployment's name (keys masked).
    :param model: the model name it serves.
    :param state: ``"healthy"``, ``"cooldown"`` or ``"disabled"``.
    :param reason: why (the error's message), or None when it recovered.
    :param until: wall-clock time the state ends, when known.
    """
