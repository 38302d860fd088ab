"""Faults for ``FaultyUpstream``: what the fake upstream does with one request, and the rules that
choose a fault per request (the model, the key, or the default). Pure data; the socket side is in
``_faulty_server``.

    from llm_factory_core.testing import Fault, FaultyUpstream

    rules = {"primary": Fault.rate_limit(retry_after=1), "backup": Fault.ok()}
    with FaultyUpstream(rules) as upstream:
        config = ModelConfig(provider="openai", model_name="primary",
                             api_base=upstream.base_url, api_key="sk-test")
        ...
        assert upstream.count("primary") == 2

Each request's fault is chosen by the body's ``model``, else by its key (``Authorization: Bearer``
or Azure's ``api-key``), else ``default``. A rule is one fault or a list of faults served in
turn, per rule, the last repeating (``[Fault.server_error(500), Fault.ok()]``: 5xx once then
healthy).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

__all__ = ["DEFAULT_TEXT", "Fault", "UpstreamRequest"]

DEFAULT_TEXT = "This is a complete reply from {model}, sent one word at a time."
"""The reply text; ``{model}`` becomes the requested model. Streams send one word per chunk."""


@dataclass(frozen=True, slots=True)
class Fault:
    """What the fake upstream does with one request. Build one with the class methods."""

    kind: str
    status: int = 200
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    text: str = DEFAULT_TEXT
    delay: float = 0.0
    """Seconds before the first byte of the body (``slow_first_token``)."""
    token_delay: float = 0.0
    """Seconds between stream events."""
    after_tokens: int = 0
    """Content tokens sent before a ``cut`` / ``stall`` / ``malformed_event``."""
    rst: bool = False
    """``cut`` with a TCP reset instead of a clean close."""
    seconds: float | None = None
    until: float | None = None
    during: Fault | None = None
    then: Fault | None = None
    choices: tuple[Fault, ...] = ()
    """``mix``: the faults drawn from, with ``weights``."""
    weights: tuple[float, ...] = ()
    seed: int | None = None

    # -- healthy -------------------------------------------------------------------------------

    @classmethod
    def ok(cls, text: str = DEFAULT_TEXT, *, token_delay: float = 0.0) -> Fault:
        """A healthy reply (a stream ends with ``[DONE]``), usage included."""
        return cls("ok", text=text, token_delay=token_delay)

    # -- error replies -------------------------------------------------------------------------

    @classmethod
    def error(
        cls, status: int, body: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None
    ) -> Fault:
        """Any error reply; ``body`` defaults to OpenAI's envelope for the status."""
        return cls("error", status=status, body=body or _error_body(status), headers=dict(headers or {}))

    def _named(self, kind: str) -> Fault:
        return Fault(kind, status=self.status, body=self.body, headers=self.headers)

    @classmethod
    def rate_limit(cls, retry_after: float | None = None, *, retry_after_ms: float | None = None) -> Fault:
        """429, with ``Retry-After`` (seconds) and/or ``retry-after-ms`` (Azure) when given."""
        headers = {}
        if retry_after is not None:
            headers["retry-after"] = _number(retry_after)
        if retry_after_ms is not None:
            headers["retry-after-ms"] = _number(retry_after_ms)
        body = {
            "error": {
                "message": "Rate limit reached for requests. Please try again later.",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }
        return cls("rate_limit", status=429, body=body, headers=headers)

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        """A 5xx reply in OpenAI's envelope."""
        return cls.error(status)._named("server_error")

    @classmethod
    def context_length(cls) -> Fault:
        """400 ``context_length_exceeded``, as OpenAI sends it."""
        body = {
            "error": {
                "message": "This model's maximum context length is 8192 tokens. However, your messages "
                "resulted in 9000 tokens. Please reduce the length of the messages.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        }
        return cls.error(400, body)._named("context_length")

    @classmethod
    def content_filter(cls) -> Fault:
        """400 ``content_filter``, as Azure OpenAI sends it for a filtered prompt."""
        body = {
            "error": {
                "message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
                "management policy. Please modify your prompt and retry.",
                "type": None,
                "param": "prompt",
                "code": "content_filter",
                "status": 400,
                "innererror": {
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": {
                        "hate": {"filtered": True, "severity": "high"},
                        "self_harm": {"filtered": False, "severity": "safe"},
                        "sexual": {"filtered": False, "severity": "safe"},
                        "violence": {"filtered": False, "severity": "safe"},
                    },
                },
            }
        }
        return cls.error(400, body)._named("content_filter")

    # -- connection faults ---------------------------------------------------------------------

    @classmethod
    def reset(cls) -> Fault:
        """Read the request, then reset the TCP connection (RST) before any response byte."""
        return cls("reset")

    @classmethod
    def hang(cls) -> Fault:
        """Accept and read the request, then never answer (until the client gives up)."""
        return cls("hang")

    @classmethod
    def slow_first_token(cls, delay: float, text: str = DEFAULT_TEXT) -> Fault:
        """A stream sends its headers at once and its first event after ``delay`` seconds; a
        non-streaming reply comes after ``delay`` seconds."""
        return cls("slow_first_token", delay=delay, text=text)

    @classmethod
    def cut(cls, after_tokens: int, *, reset: bool = False, text: str = DEFAULT_TEXT) -> Fault:
        """Close the connection mid-body: a stream after ``after_tokens`` content events, a JSON
        reply half-way. ``reset=True`` resets (RST) instead of closing (FIN)."""
        return cls("cut", after_tokens=after_tokens, rst=reset, text=text)

    @classmethod
    def stall(cls, after_tokens: int, text: str = DEFAULT_TEXT) -> Fault:
        """Stop sending, connection open: a stream after ``after_tokens`` content events, a JSON
        reply half-way."""
        return cls("stall", after_tokens=after_tokens, text=text)

    @classmethod
    def malformed_event(cls, after_tokens: int = 1, text: str = DEFAULT_TEXT) -> Fault:
        """A healthy stream with one unparseable event after ``after_tokens`` content events
        (non-streaming replies are healthy)."""
        return cls("malformed_event", after_tokens=after_tokens, text=text)

    @classmethod
    def no_done(cls, text: str = DEFAULT_TEXT) -> Fault:
        """A complete stream (finish reason, usage if asked) whose body ends without ``[DONE]``."""
        return cls("no_done", text=text)

    # -- time-dependent ------------------------------------------------------------------------

    @classmethod
    def down(cls, seconds: float, *, during: Fault | None = None, then: Fault | None = None) -> Fault:
        """Down for ``seconds`` from the first request this rule serves (``during``, default 503),
        then ``then`` (default healthy): a primary that flaps."""
        return cls("down", seconds=seconds, during=during or cls.server_error(503), then=then or cls.ok())

    @classmethod
    def down_until(cls, until: float, *, during: Fault | None = None, then: Fault | None = None) -> Fault:
        """Down until the ``time.monotonic()`` instant ``until``, then ``then``."""
        return cls("down", until=until, during=during or cls.server_error(503), then=then or cls.ok())

    @classmethod
    def mix(cls, choices: Sequence[Fault], weights: Sequence[float] | None = None, *, seed: int | None = None) -> Fault:
        """A fault drawn at random, with ``weights`` (default: equally likely), for each request
        this rule serves: load and soak tests. ``seed`` makes the draws repeatable (per rule; with
        concurrent requests, which request gets which draw is up to timing)."""
        faults = tuple(choices)
        if not faults or not all(isinstance(f, Fault) for f in faults):
            raise TypeError("Fault.mix needs one or more Faults")
        chances = tuple(float(w) for w in weights) if weights is not None else (1.0,) * len(faults)
        if len(chances) != len(faults) or any(w < 0 for w in chances) or not sum(chances) > 0:
            raise ValueError("Fault.mix needs one non-negative weight per fault, with a positive sum")
        return cls("mix", choices=faults, weights=chances, seed=seed)

    def __repr__(self) -> str:
        defaults = Fault(self.kind)
        changed = [
            f"{name}={getattr(self, name)!r}"
            for name in (
                "status",
                "delay",
                "after_tokens",
                "rst",
                "seconds",
                "until",
                "during",
                "then",
                "choices",
                "weights",
                "seed",
            )
            if getattr(self, name) != getattr(defaults, name)
        ]
        return f"Fault.{self.kind}({', '.join(changed)})"


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """One request the fake upstream received (keys are kept out of the repr)."""

    model: str | None
    rule: str | None
    """The rule that chose the fault (the model or the key), or None for the default."""
    fault: str
    """The kind of the fault served (``down`` resolved to what it served): ``ok``,
    ``rate_limit``, ``server_error``, ``reset``, ``hang``, ``cut``..."""
    stream: bool
    at: float
    """``time.monotonic()`` when the request had been read."""
    method: str = "POST"
    path: str = ""
    body: Any = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    key: str | None = field(default=None, repr=False)


class _RuleState:
    """A rule's faults and how far through them it is (stateful faults count per rule)."""

    __slots__ = ("calls", "faults", "rngs", "started")

    def __init__(self, faults: Sequence[Fault]) -> None:
        if not faults:
            raise ValueError("a rule needs at least one Fault")
        self.faults = list(faults)
        self.calls = 0
        self.started: dict[int, float] = {}
        self.rngs: dict[int, random.Random] = {}

    def next(self, now: float) -> Fault:
        index = min(self.calls, len(self.faults) - 1)
        self.calls += 1
        fault = self.faults[index]
        while fault.kind in ("down", "mix"):
            if fault.kind == "mix":
                rng = self.rngs.setdefault(index, random.Random(fault.seed))
                fault = rng.choices(fault.choices, fault.weights)[0]
                continue
            end = fault.until
            if end is None:
                end = self.started.setdefault(index, now) + (fault.seconds or 0.0)
            chosen = fault.during if now < end else fault.then
            assert chosen is not None
            fault = chosen
        return fault


# -- small pure helpers -------------------------------------------------------------------------


def _as_list(faults: Fault | Sequence[Fault]) -> list[Fault]:
    if isinstance(faults, Fault):
        return [faults]
    out = list(faults)
    if not all(isinstance(f, Fault) for f in out):
        raise TypeError("a rule is a Fault or a list of Faults")
    return out


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _error_body(status: int, message: str | None = None) -> dict[str, Any]:
    """OpenAI's error envelope for a status."""
    kinds = {
        400: ("invalid_request_error", None),
        401: ("invalid_request_error", "invalid_api_key"),
        403: ("invalid_request_error", "unsupported_country_region_territory"),
        404: ("invalid_request_error", "model_not_found"),
        429: ("requests", "rate_limit_exceeded"),
        503: ("server_error", None),
    }
    err_type, code = kinds.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    if message is None:
        message = {
            500: "The server had an error while processing your request. Sorry about that!",
            503: "The engine is currently overloaded, please try again later.",
        }.get(status, f"HTTP {status} {HTTPStatus(status).phrase}")
    return {"error": {"message": message, "type": err_type, "param": None, "code": code}}
