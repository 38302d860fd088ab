"""The status page's "Usage and cost" contract, for the usage accounting to fill.

The page shows that section only when ``GET /ui/api/usage`` says ``"enabled": true``. Today
nothing records usage, so the answer is ``{"enabled": false}``. To fill it, put an object with a
``usage_report(since)`` method on the app (``app.state.llm_factory_usage = source``) that returns a
``UsageReport``; the route validates it (a wrong shape is a logged 500, not a broken page).

Series are columnar like the timeseries endpoint: one time axis ``t`` (each point covers the
``interval`` seconds ending at it) and, per (client key label, model), one value per point.
``key`` is a label for the client key (a name or a masked key), never a key itself.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["USAGE_ATTR", "UsageReport", "UsageSeries", "UsageSource", "usage_report"]

USAGE_ATTR = "llm_factory_usage"


class UsageSeries(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(max_length=200)
    """Who called: a label for the client key (name or masked key), never the key."""
    model: str = Field(max_length=200)
    requests: list[int | None]
    prompt_tokens: list[int | None]
    completion_tokens: list[int | None]
    cost: list[float | None]
    """In ``UsageReport.currency``; None where the price is unknown."""


class UsageReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    interval: float = Field(gt=0)
    currency: str = Field(default="USD", max_length=8)
    t: list[float]
    series: list[UsageSeries]

    @model_validator(mode="after")
    def _aligned(self) -> UsageReport:
        n = len(self.t)
        for s in self.series:
            for field in ("requests", "prompt_tokens", "completion_tokens", "cost"):
                if len(getattr(s, field)) != n:
                    raise ValueError(
                        f"series {s.key!r}/{s.model!r}: {field} has {len(getattr(s, field))} values for {n} times"
                    )
        return self


@runtime_checkable
class UsageSource(Protocol):
    def usage_report(self, since: float | None) -> UsageReport | dict[str, Any]: ...


def usage_report(source: object | None, since: float | None) -> dict[str, Any]:
    """The JSON the page reads: ``{"enabled": false}`` without a source."""
    if source is None:
        return {"enabled": False}
    if not isinstance(source, UsageSource):
        raise TypeError(f"app.state.{USAGE_ATTR} must have a usage_report(since) method, not {type(source).__name__}")
    report = source.usage_report(since)
    if not isinstance(report, UsageReport):
        report = UsageReport.model_validate(report)
    return report.model_dump(mode="json")
