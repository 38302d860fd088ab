"""``llm-factory serve [--config config.yaml] [--env-file .env] [--host] [--port] [--workers]``, and
``llm-factory models | plugins | chat | status`` (``_commands``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from llm_factory_core import ConfigurationError

from ._commands import add_client_commands, run_command
from .ops._cli import add_admin_commands

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llm-factory", description="llm-factory: an OpenAI-compatible LLM gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="run the gateway",
        description="Run the OpenAI-compatible gateway. Configuration: --config, else $LLM_FACTORY_CONFIG, "
        "else ./config.yaml, else the environment and .env.",
    )
    add_serve_arguments(serve)
    add_client_commands(sub)
    add_admin_commands(sub)  # keys, usage
    return parser


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML configuration file")
    parser.add_argument("--env-file", help=".env file read before the environment (default ./.env if present)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1; server.host, LLM_FACTORY_HOST)")
    parser.add_argument("--port", type=int, help="port (default 8000; server.port, LLM_FACTORY_PORT)")
    parser.add_argument("--workers", type=int, help="worker processes (default 1)")
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"], help="default info"
    )


def run_serve(args: argparse.Namespace) -> int:
    from ._serve import serve

    try:
        serve(
            config=args.config,
            env_file=args.env_file,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
        )
    except ConfigurationError as exc:
        print(f"llm-factory: configuration error:\n{exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return run_serve(args)
    if hasattr(args, "run"):  # the admin commands carry their own runner
        return int(args.run(args))
    return run_command(args)


def serve_main(argv: Sequence[str] | None = None) -> int:
    """``python -m llm_factory_server`` / ``python main.py``: ``serve`` without the sub-command."""
    parser = argparse.ArgumentParser(prog="llm-factory-server", description="Run the llm-factory gateway")
    add_serve_arguments(parser)
    return run_serve(parser.parse_args(argv))
