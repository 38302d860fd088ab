"""Every secret a deployment holds or derives, and masking text with them.

A provider's secrets are found, not listed: every ``SecretStr`` / ``SecretBytes`` anywhere in its
settings (so a plugin's own token fields are covered without code), every configured ``headers:``
value, the userinfo of ``api_base`` (and the Basic credentials derived from it), plus what the
plugin registers at runtime (environment fallbacks, refreshed tokens, resolved cloud credentials).
``Provider.error`` masks all of them, in every field, before anything is truncated.
"""

from __future__ import annotations

import base64
import json
import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from pydantic import BaseModel, SecretBytes, SecretStr

__all__ = [
    "MAX_RUNTIME_SECRETS",
    "MIN_SECRET_LENGTH",
    "SHOWN_SUFFIX_MIN_LENGTH",
    "SecretSet",
    "display_url",
    "mask_secret",
    "safe_repr_value",
    "settings_secrets",
]

MIN_SECRET_LENGTH = 6
"""Shorter values are not masked in text: masking ``"1"`` or ``"true"`` everywhere would garble
every message, and a credential that short protects nothing anyway."""
SHOWN_SUFFIX_MIN_LENGTH = 16
"""Only a secret at least this long shows its last 4 characters when masked (then at least 12
stay hidden); a shorter one is shown as ``****`` alone."""
_CUT_PREFIX = 4
"""A secret's first characters at the very end of a text are masked from this many on."""
MAX_RUNTIME_SECRETS = 64
"""Runtime-registered secrets kept (newest win): refreshed tokens must not grow without bound,
yet a token replaced a moment ago may still be echoed by a request signed with it."""


def mask_secret(secret: SecretStr | str | None) -> str:
    """``sk-abc...wxyz`` -> ``****wxyz``: enough to tell keys apart, never enough to use one.
    At most 4 characters are shown, and none of a secret shorter than 16."""
    if secret is None:
        return "<none>"
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    return "****" + value[-4:] if len(value) >= SHOWN_SUFFIX_MIN_LENGTH else "****"


_SECRET_NAME = re.compile(r"key|token|secret|password|credential", re.IGNORECASE)


def safe_repr_value(name: str | None, value: object) -> object:
    """A settings field as ``repr`` may show it: header values and plain-string fields named
    like a credential (``aws_access_key_id``) masked; ``SecretStr`` masks itself."""
    if name == "headers" and isinstance(value, Mapping):
        return {k: mask_secret(str(v)) for k, v in value.items()}
    if isinstance(value, str) and name and _SECRET_NAME.search(name):
        return mask_secret(value)
    return value


def _walk(value: object, out: list[str]) -> None:
    if isinstance(value, SecretStr):
        out.append(value.get_secret_value())
    elif isinstance(value, SecretBytes):
        out.append(value.get_secret_value().decode("utf-8", "replace"))
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _walk(getattr(value, name, None), out)
    elif isinstance(value, Mapping):
        for item in value.values():
            _walk(item, out)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _walk(item, out)


def _userinfo(url: str | None) -> list[str]:
    """``https://user:pass@host``: the parts, and the Basic credentials httpx/aiohttp derive."""
    if not url or "@" not in url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    raw = parts.netloc.rpartition("@")[0]
    if not raw:
        return []
    user, _, password = raw.partition(":")
    found = [raw, user, password, unquote(raw), unquote(user), unquote(password)]
    for pair in {raw, f"{unquote(user)}:{unquote(password)}"}:
        for encoding in ("utf-8", "latin-1"):
            try:
                found.append(base64.b64encode(pair.encode(encoding)).decode("ascii"))
            except UnicodeEncodeError:
                continue
    return found


def settings_secrets(settings: BaseModel) -> list[str]:
    """Every secret in a provider's settings (see the module docstring)."""
    found: list[str] = []
    _walk(settings, found)
    headers = getattr(settings, "headers", None)
    if isinstance(headers, Mapping):
        found.extend(str(v) for v in headers.values())
    api_base = getattr(settings, "api_base", None)
    found.extend(_userinfo(api_base))
    if isinstance(api_base, str) and "?" in api_base:  # ``?key=...`` in a base URL
        found.extend(value for _, value in parse_qsl(api_base.split("?", 1)[1].split("#", 1)[0]))
    return found


def _variants(secret: str) -> Iterator[str]:
    """How an upstream may echo a secret: as is, JSON-escaped, percent-encoded."""
    yield secret
    yield json.dumps(secret)[1:-1]
    yield json.dumps(secret, ensure_ascii=False)[1:-1]
    yield quote(secret, safe="")


class SecretSet:
    """The secrets of one deployment; ``mask(text)`` replaces each by ``mask_secret(it)``."""

    __slots__ = ("_fixed", "_ordered", "_runtime")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._fixed = frozenset(v for s in secrets if len(s) >= MIN_SECRET_LENGTH for v in _variants(s))
        self._runtime: deque[str] = deque(maxlen=MAX_RUNTIME_SECRETS)
        self._ordered: tuple[str, ...] = ()
        self._order()

    def _order(self) -> None:
        runtime = {v for s in self._runtime for v in _variants(s)}
        # Longest first: a header value "Bearer <key>" is masked whole, not around its key.
        self._ordered = tuple(sorted(self._fixed | runtime, key=len, reverse=True))

    def add(self, secret: str | SecretStr | None) -> None:
        value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        if not value or len(value) < MIN_SECRET_LENGTH or value in self._fixed or value in self._runtime:
            return
        self._runtime.append(value)
        self._order()

    def __iter__(self) -> Iterator[str]:
        return iter(self._ordered)

    def __len__(self) -> int:
        return len(self._ordered)

    def mask(self, text: str) -> str:
        for secret in self._ordered:
            if secret in text:
                text = text.replace(secret, mask_secret(secret))
        return self._mask_cut_tail(text)

    def _mask_cut_tail(self, text: str) -> str:
        """A secret cut in half by a truncation that happened before masking (a plugin's own
        ``body[:300]``) leaves its beginning at the end of the text: mask that too."""
        for secret in self._ordered:
            tail = text[-len(secret) :]
            if secret[:_CUT_PREFIX] not in tail:
                continue
            for n in range(len(secret) - 1, _CUT_PREFIX - 1, -1):
                if tail.endswith(secret[:n]):
                    return text[:-n] + "****"
        return text


# Up to the last "@" before the path: a password with an unencoded "?" or "#" is still userinfo.
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/]*@")


def display_url(url: str | None) -> str | None:
    """A URL for status pages: userinfo replaced by ``****``, query and fragment dropped (both
    may carry credentials)."""
    if not url:
        return url
    return _USERINFO.sub(r"\1****@", url).split("#", 1)[0].split("?", 1)[0]
