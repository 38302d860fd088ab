"""``llm-factory keys create | list | revoke`` and ``llm-factory usage``: on the usage database the
configuration names (``--config`` as for ``serve``), or through a running gateway's admin API
(``--url`` with ``--admin-key`` or ``$LLM_FACTORY_ADMIN_KEY``).

Exit codes as the other commands: 0 done, 1 the gateway refused or failed, 2 a usage or
configuration error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, TextIO

import httpx
from pydantic import ValidationError

from .._commands import URL_ENV, CommandError, _error_text, _print, exit_code
from ._keys import KeyRecord, KeySpec, KeyStore, parse_expiry
from ._queries import GROUPS, period_bounds, spend_by_key, usage_totals

__all__ = ["add_admin_commands", "run_admin_command"]

ADMIN_ENV = "LLM_FACTORY_ADMIN_KEY"
_KEY_COLUMNS = (
    "id",
    "name",
    "hint",
    "status",
    "models",
    "rpm",
    "tpm",
    "budget",
    "budget_period",
    "spend",
    "expires_at",
)
_USAGE_COLUMNS = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost",
)


def add_admin_commands(sub: Any) -> None:
    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--config", help="YAML configuration file (as for serve): its usage database")
        parser.add_argument("--env-file", help=".env file read before the environment")
        parser.add_argument("--url", help=f"a running gateway's admin API instead (${URL_ENV})")
        parser.add_argument("--admin-key", help=f"the gateway's server.admin_key, with --url (${ADMIN_ENV})")
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
        parser.set_defaults(run=run_admin_command)

    keys = sub.add_parser("keys", help="manage client keys", description="Create, list and revoke client keys.")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="a new client key (shown once)", description="Create a client key.")
    create.add_argument("name", help="who the key is for (shown in usage)")
    create.add_argument("--models", help="comma-separated model names the key may use (default: all)")
    create.add_argument("--rpm", type=int, help="requests per minute")
    create.add_argument("--tpm", type=int, help="tokens per minute")
    create.add_argument("--budget", type=float, help="USD per period")
    create.add_argument("--period", choices=["day", "month"], default="month", help="budget period (default month)")
    create.add_argument("--expires", help="30d, 12h, 90m or an ISO date (UTC)")
    common(create)
    listing = actions.add_parser("list", help="every key with its limits and spend", description="List client keys.")
    common(listing)
    revoke = actions.add_parser("revoke", help="revoke a key at once", description="Revoke a client key.")
    revoke.add_argument("id", help="the key's id (key_...)")
    common(revoke)
    usage = sub.add_parser("usage", help="usage and cost", description="Requests, tokens and cost from the records.")
    usage.add_argument("--by", choices=GROUPS, default="key", help="group by (default key)")
    usage.add_argument("--since", help="30d, 12h, 90m ago or an ISO date (default: everything)")
    usage.add_argument("--key-id", help="only this key")
    common(usage)


def run_admin_command(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    stdout, stderr = out or sys.stdout, err or sys.stderr
    return exit_code(lambda: _run(args, stdout, stderr), stderr, (ValueError, 2))


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
    remote = _Remote(args) if (args.url or os.environ.get(URL_ENV)) else None
    local = None if remote is not None else _local(args, err)
    if args.command == "keys" and args.action == "create":
        spec = _spec(args)
        if remote is not None:
            created = remote.call("POST", "/admin/keys", json=spec.model_dump())
            key = created.pop("key")
        else:
            assert local is not None
            key, record = local.create(spec)
            created = record.public()
        if args.json:
            out.write(json.dumps({"key": key, **created}, indent=2) + "\n")
        else:
            out.write(f"{key}\n")
            err.write(f"Created {created['id']} ({created['name']}). Store the key now: it is not shown again.\n")
    elif args.command == "keys" and args.action == "list":
        rows = remote.call("GET", "/admin/keys")["data"] if remote is not None else _local_list(local)
        _print(out, rows if args.json else [_shown(r) for r in rows], args.json, _KEY_COLUMNS)
    elif args.command == "keys" and args.action == "revoke":
        if remote is not None:
            revoked = remote.call("DELETE", f"/admin/keys/{args.id}")
        else:
            assert local is not None
            gone = local.revoke(args.id)
            if gone is None:
                raise CommandError(f"no client key with id {args.id!r} (llm-factory keys list shows them)", 1)
            revoked = gone.public()
        err.write(f"Revoked {revoked['id']} ({revoked['name']}).\n")
    elif args.command == "usage":
        since = _since(args.since) if args.since else None
        if remote is not None:
            params: dict[str, Any] = {"group_by": args.by}
            if since is not None:
                params["since"] = since
            if args.key_id:
                params["key_id"] = args.key_id
            rows = remote.call("GET", "/admin/usage", params=params)["data"]
        else:
            assert local is not None
            rows = usage_totals(local.path, args.by, since=since, key_id=args.key_id)
        columns = (args.by, *(("name",) if args.by == "key" else ()), *_USAGE_COLUMNS)
        _print(out, rows, args.json, columns)


def _spec(args: argparse.Namespace) -> KeySpec:
    try:
        return KeySpec(
            name=args.name,
            models=[m.strip() for m in args.models.split(",") if m.strip()] if args.models else None,
            rpm=args.rpm,
            tpm=args.tpm,
            budget=args.budget,
            budget_period=args.period,
            expires_at=parse_expiry(args.expires) if args.expires else None,
        )
    except ValidationError as exc:
        parts = [f"--{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)]
        raise CommandError("; ".join(parts), 2) from None


def _since(text: str) -> float:
    """``7d`` / ``12h`` / ``90m`` ago, or an ISO date (UTC unless it says otherwise)."""
    when = parse_expiry(text)  # durations are read as from now: turn them into ago
    return 2 * time.time() - when if text.strip()[-1:] in ("d", "h", "m") and text.strip()[:-1].isdigit() else when


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    if row.get("models"):
        row["models"] = ",".join(row["models"])
    if row.get("expires_at"):
        row["expires_at"] = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(row["expires_at"]))
    return row


def _local(args: argparse.Namespace, err: TextIO) -> KeyStore:
    from .._discovery import discover
    from .._settings import load_settings

    found = discover(args.config, args.env_file)
    try:
        settings = load_settings(found.factory.config.server, found.env, source=found.source)
    finally:
        found.factory.close()
    if settings.admin_key is None and args.command == "keys" and args.action == "create":
        err.write("note: the gateway uses managed keys only when server.admin_key is set.\n")
    return KeyStore(settings.usage_db)


def _local_list(store: KeyStore | None) -> list[dict[str, Any]]:
    assert store is not None
    records: list[KeyRecord] = store.all()
    since = {}
    for r in records:
        if r.budget is not None:
            since[r.id] = period_bounds(r.budget_period)[0]
    spent = spend_by_key(store.path, since)
    return [{**r.public(), **({"spend": round(spent[r.id], 6)} if r.id in spent else {})} for r in records]


class _Remote:
    def __init__(self, args: argparse.Namespace) -> None:
        self.url = (args.url or os.environ[URL_ENV]).rstrip("/")
        key = args.admin_key or os.environ.get(ADMIN_ENV)
        if not key:
            raise CommandError(f"--url needs the admin key: --admin-key or ${ADMIN_ENV}", 2)
        self.headers = {"authorization": f"Bearer {key}"}

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            reply = httpx.request(method, self.url + path, headers=self.headers, timeout=30, **kwargs)
        except httpx.HTTPError as exc:
            raise CommandError(f"cannot reach the gateway at {self.url}: {type(exc).__name__}: {exc}", 1) from None
        if reply.status_code >= 400:
            raise CommandError(f"the gateway answered {reply.status_code}: {_error_text(reply)}", 1)
        return reply.json()
