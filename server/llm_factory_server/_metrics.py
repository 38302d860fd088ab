"""Prometheus metrics, one registry per gateway (several apps in one process never collide).

Per-request series are updated on the hot path through cached label children; per-deployment
state is read from ``factory.status()`` at scrape time; state transitions (cooldowns, disables,
recoveries) come from the core's ``llm_factory_deployment_state_changed`` hook.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from llm_factory_core import LLMFactory
from llm_factory_core.providers import Deployment

__all__ = ["CONTENT_TYPE", "MULTIPROC_ENV", "Metrics"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""Set (by ``llm-factory serve --workers N``, or by you) to share series between worker processes."""

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# LLM calls last from ~100 ms to minutes: the default buckets (5 ms .. 10 s) would lump them together.
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
_TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30)
# The gateway's own time per request is sub-millisecond when all is well: fine buckets down there.
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
_STATES = ("healthy", "cooldown", "disabled")


class _DeploymentCollector(Collector):
    def __init__(self, factory: LLMFactory) -> None:
        self.factory = factory

    def collect(self) -> Iterator[Any]:
        labels = ["deployment", "model", "provider"]
        state = GaugeMetricFamily(
            "llm_factory_deployment_state", "1 for the deployment's current state", labels=[*labels, "state"]
        )
        in_flight = GaugeMetricFamily("llm_factory_deployment_in_flight", "Requests in flight", labels=labels)
        ok = CounterMetricFamily("llm_factory_deployment_successes", "Successful attempts", labels=labels)
        failed = CounterMetricFamily(
            "llm_factory_deployment_failures", "Failed attempts (each failed over or failed the call)", labels=labels
        )
        latency = GaugeMetricFamily(
            "llm_factory_deployment_latency_seconds",
            "Moving average time to answer (to first token for streams)",
            labels=labels,
        )
        for s in self.factory.status():
            values = [s.name, s.model_name, s.provider]
            for name in _STATES:
                state.add_metric([*values, name], 1.0 if s.state == name else 0.0)
            in_flight.add_metric(values, s.in_flight)
            ok.add_metric(values, s.successes)
            failed.add_metric(values, s.failures)
            if s.avg_latency_ms is not None:
                latency.add_metric(values, s.avg_latency_ms / 1000)
        yield from (state, in_flight, ok, failed, latency)


class Metrics:
    def __init__(self, factory: LLMFactory) -> None:
        self.factory = factory
        self.registry = CollectorRegistry(auto_describe=False)
        self.own_collectors: list[Collector] = []
        """Collectors of this process's state (also shown with --workers N, not added up)."""
        r = self.registry
        self._requests = Counter(
            "llm_factory_requests",
            "Chat completion requests by final HTTP status",
            ["model", "stream", "status"],
            registry=r,
        )
        self._latency = Histogram(
            "llm_factory_request_duration_seconds",
            "Time from request to last byte",
            ["model", "stream"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._ttft = Histogram(
            "llm_factory_time_to_first_token_seconds",
            "Time from request to the first content chunk",
            ["model", "deployment"],
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self._tokens = Counter(
            "llm_factory_tokens", "Tokens reported by upstreams", ["model", "deployment", "type"], registry=r
        )
        self._failovers = Counter(
            "llm_factory_failovers",
            "Failed attempts after which another deployment was tried or the call failed",
            ["model"],
            registry=r,
        )
        self._state_changes = Counter(
            "llm_factory_deployment_state_changes",
            "Deployments entering cooldown / disabled or recovering",
            ["deployment", "model", "state"],
            registry=r,
        )
        self._overhead = Histogram(
            "llm_factory_gateway_overhead_seconds",
            "The gateway's own time per reply: total time minus time waiting on upstreams, up to the "
            "reply's start (for streams: the first chunk); as the x-llm-factory-overhead-ms header",
            ["stream"],
            buckets=_OVERHEAD_BUCKETS,
            registry=r,
        )
        r.register(_DeploymentCollector(factory))
        self._known_models = set(factory.model_names)
        self._stop_listening = factory.add_state_listener(self._state_changed)
        self._children: dict[tuple[Any, ...], Any] = {}

    def _state_changed(self, deployment: Deployment, state: str, reason: str | None, until: float | None) -> None:
        self._state_changes.labels(deployment.name, deployment.model_name, state).inc()

    def close(self) -> None:
        self._stop_listening()

    def model_label(self, model: str | None) -> str:
        # Only configured names become labels: arbitrary client input must not explode cardinality.
        return model if model is not None and model in self._known_models else "unknown"

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe(
        self,
        model: str,
        stream: bool,
        status: int,
        duration: float,
        *,
        deployment: str | None = None,
        ttft: float | None = None,
        usage: tuple[int, int] | None = None,
        failed_attempts: int = 0,
        overhead: float | None = None,
    ) -> None:
        flag = "true" if stream else "false"
        self._child(self._requests, model, flag, str(status)).inc()
        self._child(self._latency, model, flag).observe(duration)
        if ttft is not None and deployment is not None:
            self._child(self._ttft, model, deployment).observe(ttft)
        if usage is not None and deployment is not None:
            self._child(self._tokens, model, deployment, "prompt").inc(usage[0])
            self._child(self._tokens, model, deployment, "completion").inc(usage[1])
        if failed_attempts:
            self._child(self._failovers, model).inc(failed_attempts)
        if overhead is not None:
            self._child(self._overhead, flag).observe(overhead)

    def render(self) -> bytes:
        if os.environ.get(MULTIPROC_ENV):  # --workers N: the series of every worker, added up
            registry = CollectorRegistry(auto_describe=False)
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            registry.register(_DeploymentCollector(self.factory))
            for collector in self.own_collectors:  # this worker's own (the usage recorder's)
                registry.register(collector)
            return generate_latest(registry)
        return generate_latest(self.registry)
