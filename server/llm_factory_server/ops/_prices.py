"""What a request cost: ``genai-prices`` (pydantic's maintained price table), or a price set in
the configuration (``server.prices``), which wins.

Pricing runs in the usage recorder's worker thread, never on the event loop: a table lookup costs
about 0.1-0.2 ms, more than the gateway's whole per-request overhead.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Price", "Pricing", "TokenCounts"]

log = logging.getLogger("llm_factory_server.ops")

# Our provider plugin keys -> genai-prices provider ids (None: let genai-prices match the model).
_PROVIDERS = {"openai": "openai", "claude": "anthropic", "gemini": "google", "deepseek": "deepseek"}
_CACHE_SECONDS = 3600.0  # prices can change by date (genai-prices' conditional prices)


class Price(BaseModel):
    """A deployment's price in USD per million tokens (``server.prices``)."""

    model_config = ConfigDict(extra="forbid")

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    cache_read_per_mtok: float | None = Field(default=None, ge=0)
    """Cached prompt tokens read; default: the input price."""
    cache_write_per_mtok: float | None = Field(default=None, ge=0)
    """Prompt tokens written to the cache; default: the input price."""

    def cost(self, t: TokenCounts) -> float:
        read = t.cache_read
        write = t.cache_write
        plain = max(0, t.prompt - read - write)  # OpenAI's prompt_tokens include cached ones
        total = (
            plain * self.input_per_mtok
            + read * (self.input_per_mtok if self.cache_read_per_mtok is None else self.cache_read_per_mtok)
            + write * (self.input_per_mtok if self.cache_write_per_mtok is None else self.cache_write_per_mtok)
            + t.completion * self.output_per_mtok  # reasoning tokens are part of completion tokens
        )
        return total / 1_000_000


class TokenCounts:
    __slots__ = ("cache_read", "cache_write", "completion", "prompt", "reasoning")

    def __init__(
        self, prompt: int = 0, completion: int = 0, cache_read: int = 0, cache_write: int = 0, reasoning: int = 0
    ) -> None:
        self.prompt = prompt
        self.completion = completion
        self.cache_read = cache_read
        self.cache_write = cache_write
        self.reasoning = reasoning

    @classmethod
    def from_usage(cls, usage: Any) -> TokenCounts:
        """From a ``CompletionUsage`` (or an embeddings' usage: prompt tokens only)."""
        prompt_details = getattr(usage, "prompt_tokens_details", None) or {}
        completion_details = getattr(usage, "completion_tokens_details", None) or {}
        return cls(
            int(getattr(usage, "prompt_tokens", 0) or 0),
            int(getattr(usage, "completion_tokens", 0) or 0),
            _int(prompt_details.get("cached_tokens")),
            _int(prompt_details.get("cache_write_tokens")),
            _int(completion_details.get("reasoning_tokens")),
        )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class Pricing:
    """Cost in USD of one request's tokens; None when no price is known for its model."""

    def __init__(self, overrides: dict[str, Price]) -> None:
        self.overrides = overrides
        """By deployment name (``openai/gpt-4o#0``), then model name, then upstream model."""
        self._table: dict[tuple[str, str], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def override(self, deployment: str | None, model: str | None, upstream_model: str | None) -> Price | None:
        for name in (deployment, model, upstream_model):
            if name is not None and name in self.overrides:
                return self.overrides[name]
        return None

    def cost(
        self,
        tokens: TokenCounts,
        *,
        deployment: str | None,
        model: str | None,
        provider: str | None,
        upstream_model: str | None,
    ) -> float | None:
        price = self.override(deployment, model, upstream_model)
        if price is not None:
            return price.cost(tokens)
        if not upstream_model:
            return None
        model_price = self._model_price(provider or "", upstream_model)
        if model_price is None:
            return None
        if isinstance(model_price, Price):  # flat prices: plain arithmetic, ~1 µs
            return model_price.cost(tokens)
        from genai_prices import Usage

        usage = Usage(
            input_tokens=tokens.prompt,
            output_tokens=tokens.completion,
            cache_read_tokens=tokens.cache_read or None,
            cache_write_tokens=tokens.cache_write or None,
        )
        try:
            return float(model_price.calc_price(usage)["total_price"])
        except Exception as exc:  # a price table quirk must never lose the record
            log.warning("could not price %s: %s", upstream_model, exc)
            return None

    def _model_price(self, provider: str, model: str) -> Any:
        now = time.monotonic()
        with self._lock:
            cached = self._table.get((provider, model))
        if cached is not None and now - cached[0] < _CACHE_SECONDS:
            return cached[1]
        found = _lookup(provider, model)
        with self._lock:
            self._table[(provider, model)] = (now, found)
        return found


def _lookup(provider: str, model: str) -> Any:
    from datetime import datetime

    from genai_prices import Usage, calc_price

    try:
        result = calc_price(Usage(input_tokens=0, output_tokens=0), model, provider_id=_PROVIDERS.get(provider))
    except LookupError:  # not in the table: the cost is recorded as unknown
        return None
    except Exception as exc:  # pragma: no cover - a broken table: price unknown, recorded as such
        log.warning("price table lookup failed for %s: %s", model, exc)
        return None
    model_price = result.model.get_prices(datetime.now(UTC))
    return _flat(model_price) or model_price


def _flat(model_price: Any) -> Price | None:
    """The table's token prices as a ``Price`` when none is tiered (genai-prices' own calculation
    costs ~0.1 ms a call, in the recorder's thread; other units, such as web searches, are not
    counted by the gateway)."""
    from decimal import Decimal

    values = {name: getattr(model_price, name, None) for name in _TOKEN_UNITS}
    if any(v is not None and not isinstance(v, Decimal) for v in values.values()) or values["input_mtok"] is None:
        return None
    as_float = {name: None if v is None else float(v) for name, v in values.items()}
    return Price(
        input_per_mtok=as_float["input_mtok"] or 0.0,
        output_per_mtok=as_float["output_mtok"] or 0.0,
        cache_read_per_mtok=as_float["cache_read_mtok"],
        cache_write_per_mtok=as_float["cache_write_mtok"],
    )


_TOKEN_UNITS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")
