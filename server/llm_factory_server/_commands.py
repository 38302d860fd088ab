"""``llm-factory models | plugins | chat | status``: the gateway's configuration, installed plugins,
a prompt streamed to the terminal, and deployment health, from the config directly or from a
running gateway (``--url``).

Exit codes: 0 done; 1 the call failed (an upstream or gateway error, said on stderr); 2 a usage or
configuration error (said on stderr, with what to fix).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import httpx

from llm_factory_core import ConfigurationError, LLMFactory, LLMFactoryError

__all__ = ["CommandError", "add_client_commands", "exit_code", "run_command"]

URL_ENV = "LLM_FACTORY_URL"
KEY_ENV = "LLM_FACTORY_API_KEY"


class CommandError(Exception):
    """A failure to report on stderr with an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def add_client_commands(sub: Any) -> None:
    """The sub-commands besides ``serve``, on ``sub`` (argparse sub-parsers)."""

    def common(parser: argparse.ArgumentParser, *, remote: bool = True) -> None:
        parser.add_argument("--config", help="YAML configuration file (as for serve)")
        parser.add_argument("--env-file", help=".env file read before the environment")
        if remote:
            parser.add_argument("--url", help=f"a running gateway instead of the config (${URL_ENV})")
            parser.add_argument("--key", help=f"the gateway's client key, with --url (${KEY_ENV})")
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")

    models = sub.add_parser("models", help="list the configured model names", description="List model names.")
    common(models)
    plugins = sub.add_parser(
        "plugins", help="list installed provider plugins", description="Installed provider plugins."
    )
    plugins.add_argument("--json", action="store_true", help="print JSON instead of a table")
    chat = sub.add_parser(
        "chat",
        help="send a prompt and stream the answer",
        description="Send a prompt (an argument, or stdin when absent or '-') and stream the answer.",
    )
    chat.add_argument("prompt", nargs="?", help="the prompt; '-' or nothing reads stdin")
    chat.add_argument("-m", "--model", help="the model name (default: the first configured)")
    chat.add_argument("-s", "--system", help="a system message")
    chat.add_argument("--no-stream", action="store_true", help="wait for the whole answer")
    common(chat)
    chat.set_defaults(json=False)
    status = sub.add_parser("status", help="deployment health", description="Every deployment's state.")
    common(status)


def exit_code(command: Callable[[], None], err: TextIO, failed: tuple[type[Exception], int]) -> int:
    """Run ``command``: 0 when done, else its failure said on ``err`` and its exit code. Shared by
    every sub-command so they say failures alike; ``failed`` is the one further kind of error each
    set of commands expects, with its code."""
    kind, code = failed
    try:
        command()
    except CommandError as exc:
        print(f"llm-factory: {exc}", file=err)
        return exc.code
    except ConfigurationError as exc:
        print(f"llm-factory: configuration error:\n{exc}", file=err)
        return 2
    except kind as exc:
        print(f"llm-factory: {exc}", file=err)
        return code
    return 0


def run_command(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    return exit_code(lambda: _run(args, out or sys.stdout), err or sys.stderr, (LLMFactoryError, 1))


def _run(args: argparse.Namespace, out: TextIO) -> None:
    if args.command == "plugins":
        _print(out, _plugins(), args.json, ("key", "distribution", "version", "capabilities"))
    elif args.command == "models":
        _print(out, _models(args), args.json, ("id", "owned_by"))
    elif args.command == "status":
        columns = ("name", "state", "until", "reason", "in_flight", "successes", "failures", "avg_latency_ms")
        _print(out, _status(args), args.json, columns)
    elif args.command == "chat":
        _chat(args, out)


# -- data -----------------------------------------------------------------------------------------


def _plugins() -> list[dict[str, Any]]:
    from llm_factory_core.providers import default_registry

    registry = default_registry()
    rows = []
    for ep in sorted(importlib.metadata.entry_points(group="llm_factory"), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        row: dict[str, Any] = {"key": ep.name, "distribution": dist.name if dist else "?"}
        row["version"] = dist.version if dist else "?"
        try:
            caps = registry.provider(ep.name).capabilities
            row["capabilities"] = ",".join(f.name for f in dataclasses.fields(caps) if getattr(caps, f.name) is True)
        except LLMFactoryError as exc:
            row["capabilities"] = f"(broken: {exc})"
        rows.append(row)
    return rows


def _factory(args: argparse.Namespace) -> LLMFactory:
    from ._discovery import HOW_TO_CONFIGURE, discover

    factory = discover(args.config, args.env_file).factory
    if not factory.deployments:
        factory.close()
        raise CommandError(HOW_TO_CONFIGURE, 2)
    return factory


def _remote(args: argparse.Namespace) -> str | None:
    url = getattr(args, "url", None) or os.environ.get(URL_ENV)
    return url.rstrip("/") if url else None


def _headers(args: argparse.Namespace) -> dict[str, str]:
    key = getattr(args, "key", None) or os.environ.get(KEY_ENV)
    return {"authorization": f"Bearer {key}"} if key else {}


def _get(args: argparse.Namespace, url: str, path: str) -> Any:
    try:
        reply = httpx.get(f"{url}{path}", headers=_headers(args), timeout=30)
    except httpx.HTTPError as exc:
        raise CommandError(f"cannot reach the gateway at {url}: {type(exc).__name__}: {exc}", 1) from None
    if reply.status_code >= 400:
        raise CommandError(f"the gateway answered {reply.status_code}: {_error_text(reply)}", 1)
    return reply.json()


def _error_text(reply: httpx.Response) -> str:
    try:
        error = reply.json().get("error") or {}
        return str(error.get("message") or reply.text)[:2000]
    except ValueError:
        return reply.text[:2000]


def _models(args: argparse.Namespace) -> list[dict[str, Any]]:
    url = _remote(args)
    if url is not None:
        return [{"id": m["id"], "owned_by": m.get("owned_by")} for m in _get(args, url, "/v1/models")["data"]]
    with _factory(args) as factory:
        return factory.models()


def _status(args: argparse.Namespace) -> list[dict[str, Any]]:
    url = _remote(args)
    if url is not None:
        rows: list[dict[str, Any]] = _get(args, url, "/v1/providers/status")["data"]
    else:
        with _factory(args) as factory:
            rows = [s.model_dump(mode="json") for s in factory.status()]
    for row in rows:
        if row.get("until"):
            row["until"] = time.strftime("%H:%M:%S", time.localtime(row["until"]))
    return rows


def _messages(args: argparse.Namespace) -> list[dict[str, str]]:
    prompt = args.prompt
    if prompt is None or prompt == "-":
        if sys.stdin.isatty() and prompt is None:
            raise CommandError('give a prompt: llm-factory chat -m MODEL "prompt" (or pipe it on stdin)', 2)
        prompt = sys.stdin.read()
    if not prompt.strip():
        raise CommandError("the prompt is empty", 2)
    messages = [{"role": "system", "content": args.system}] if args.system else []
    return [*messages, {"role": "user", "content": prompt}]


def _chat(args: argparse.Namespace, out: TextIO) -> None:
    messages = _messages(args)
    url = _remote(args)
    pieces = _remote_chat(args, url, messages) if url is not None else _local_chat(args, messages)
    for piece in pieces:
        out.write(piece)
        out.flush()
    out.write("\n")


def _local_chat(args: argparse.Namespace, messages: list[dict[str, str]]) -> Iterator[str]:
    with _factory(args) as factory:
        if args.no_stream:
            yield factory.chat(messages, model=args.model).choices[0].message.content or ""
            return
        with factory.stream(messages, model=args.model) as stream:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content


def _remote_chat(args: argparse.Namespace, url: str, messages: list[dict[str, str]]) -> Iterator[str]:
    body: dict[str, Any] = {"messages": messages, "stream": not args.no_stream}
    if args.model:
        body["model"] = args.model
    try:
        with httpx.stream(
            "POST", f"{url}/v1/chat/completions", json=body, headers=_headers(args), timeout=600
        ) as reply:
            if reply.status_code >= 400:
                reply.read()
                raise CommandError(f"the gateway answered {reply.status_code}: {_error_text(reply)}", 1)
            if args.no_stream:
                reply.read()
                yield reply.json()["choices"][0]["message"]["content"] or ""
                return
            for line in reply.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                data = json.loads(line[6:])
                if "error" in data:
                    raise CommandError(f"the stream failed: {data['error'].get('message')}", 1)
                for choice in data.get("choices") or []:
                    if (choice.get("delta") or {}).get("content"):
                        yield choice["delta"]["content"]
    except httpx.HTTPError as exc:
        raise CommandError(f"cannot reach the gateway at {url}: {type(exc).__name__}: {exc}", 1) from None


# -- output ---------------------------------------------------------------------------------------


def _print(out: TextIO, rows: list[dict[str, Any]], as_json: bool, columns: tuple[str, ...]) -> None:
    if as_json:
        out.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        return
    if not rows:
        out.write("(none)\n")
        return
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    out.write("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip() + "\n")
    for r in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() + "\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    text = str(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."
