from __future__ import annotations

import pytest

from llm_factory_server.ops._prices import Price, Pricing, TokenCounts


def test_genai_prices_table_prices_known_models_and_counts_cache_reads() -> None:
    pricing = Pricing({})
    plain = pricing.cost(TokenCounts(1000, 100), deployment="d", model="m", provider="openai", upstream_model="gpt-4o")
    cached = pricing.cost(
        TokenCounts(1000, 100, cache_read=800), deployment="d", model="m", provider="openai", upstream_model="gpt-4o"
    )
    assert plain == pytest.approx(1000 * 2.5e-6 + 100 * 10e-6)
    assert cached is not None and plain is not None and cached < plain
    assert pricing.cost(TokenCounts(1, 1), deployment="d", model="m", provider="qwen", upstream_model="no-such") is None


def test_a_configured_price_wins_by_deployment_then_model() -> None:
    price = Price(input_per_mtok=1, output_per_mtok=2, cache_read_per_mtok=0.1, cache_write_per_mtok=1.25)
    pricing = Pricing({"gpt-4o": price})
    tokens = TokenCounts(prompt=1_000_000, completion=1_000_000, cache_read=400_000, cache_write=100_000)
    cost = pricing.cost(tokens, deployment="x", model="gpt-4o", provider="openai", upstream_model="gpt-4o")
    assert cost == pytest.approx(0.5 * 1 + 0.4 * 0.1 + 0.1 * 1.25 + 1 * 2)


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-4o"),
        ("claude", "claude-sonnet-4-5"),
        ("gemini", "gemini-2.5-flash"),
        ("deepseek", "deepseek-chat"),
    ],
)
def test_the_fast_path_agrees_with_genai_prices_own_calculation(provider: str, model: str) -> None:
    from genai_prices import Usage, calc_price

    from llm_factory_server.ops._prices import _PROVIDERS

    tokens = TokenCounts(prompt=12_000, completion=3_000, cache_read=4_000, cache_write=1_000)
    ours = Pricing({}).cost(tokens, deployment="d", model="m", provider=provider, upstream_model=model)
    theirs = calc_price(
        Usage(input_tokens=12_000, output_tokens=3_000, cache_read_tokens=4_000, cache_write_tokens=1_000),
        model,
        provider_id=_PROVIDERS[provider],
    ).total_price
    assert ours == pytest.approx(float(theirs), rel=1e-9)


def test_budget_periods_are_utc_days_and_calendar_months() -> None:
    from datetime import UTC, datetime

    from llm_factory_server.ops._queries import period_bounds

    def ts(*args: int) -> float:
        return datetime(*args, tzinfo=UTC).timestamp()

    assert period_bounds("day", ts(2026, 12, 31, 23, 59, 30)) == (ts(2026, 12, 31), ts(2027, 1, 1), "2026-12-31")
    assert period_bounds("month", ts(2026, 12, 15, 8)) == (ts(2026, 12, 1), ts(2027, 1, 1), "2026-12")
    assert period_bounds("month", ts(2027, 2, 28, 23, 59)) == (ts(2027, 2, 1), ts(2027, 3, 1), "2027-02")
    assert period_bounds("day", ts(2027, 1, 1)) == (ts(2027, 1, 1), ts(2027, 1, 2), "2027-01-01")
