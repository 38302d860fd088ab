"""Sessions: each distribution installed alone with only its declared dependencies and tested,
everything together, lint, types and the benchmarks.

    nox -s core openai qwen deepseek claude gemini server   # one distribution each
    nox -s all                                              # everything (the README's test command)
    nox -s lint types bench
"""

from __future__ import annotations

import nox

nox.options.sessions = ["core", "openai", "qwen", "deepseek", "claude", "gemini", "server", "lint"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"
TEST_TOOLS = ["pytest>=8", "hypothesis>=6.100"]
PLUGINS = {
    "openai": ["openai>=1.40"],
    "qwen": ["dashscope>=1.20", "openai>=1.40"],
    "deepseek": ["openai>=1.40"],
    "claude": ["boto3>=1.34", "anthropic>=0.40"],
    "gemini": ["google-genai>=1.0"],
}


@nox.session(python=PYTHON)
def core(session: nox.Session) -> None:
    """The core alone (no extras): its tests use the openai plugin as the reference provider and
    the openai SDK as the oracle of the fault-injecting fake upstream."""
    # opentelemetry-sdk: a test tool (the tracing tests read spans back through its in-memory exporter)
    session.install("-e", ".", "-e", "plugins/llm-factory-openai", *TEST_TOOLS, "openai>=1.40", "opentelemetry-sdk")
    session.run("pytest", "tests/core", *session.posargs)


def _plugin_session(name: str) -> None:
    @nox.session(python=PYTHON, name=name)
    def plugin(session: nox.Session) -> None:
        session.install("-e", ".", "-e", f"plugins/llm-factory-{name}", *TEST_TOOLS, *PLUGINS[name])
        session.run("pytest", f"tests/plugins/{name}", *session.posargs)


for _name in PLUGINS:
    _plugin_session(_name)


@nox.session(python=PYTHON)
def server(session: nox.Session) -> None:
    session.install(
        "-e",
        ".",
        "-e",
        "plugins/llm-factory-openai",
        "-e",
        "server[otel]",
        *TEST_TOOLS,
        "openai>=1.40",
        "langchain-openai>=0.2",
    )
    session.run("pytest", "tests/server", *session.posargs)


@nox.session(python=PYTHON, name="all")
def all_(session: nox.Session) -> None:
    session.install("-r", "requirements-dev.txt")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def types(session: nox.Session) -> None:
    # pytest: llm_factory_core.testing (the conformance kit) is typed against it.
    session.install("-r", "requirements.txt", "mypy", "pytest")
    packages = ["llm_factory_core", "server/llm_factory_server"]
    packages += [f"plugins/llm-factory-{name}/llm_factory_{name}" for name in PLUGINS]
    session.run("mypy", *packages)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    session.install("-r", "requirements.txt")
    session.run("python", "bench/run.py", *session.posargs)
