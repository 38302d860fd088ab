"""The conformance kit as a pytest plugin (entry point ``pytest11``, installed with the core).

It only asks pytest to rewrite the kit's assertions, as it does for test modules: a failing check
then shows the values it compared, not a bare ``AssertionError``. Importing the kit stays lazy."""

import pytest

pytest.register_assert_rewrite(
    "llm_factory_core.testing._conformance",
    "llm_factory_core.testing._conformance_hooks",
)
