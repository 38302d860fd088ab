"""The markdown report of one bench run, and the issue's targets as ratios within that run."""

from __future__ import annotations

import math
from typing import Any

from streams import marginal

__all__ = ["render", "targets"]


def _f(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _cell(results: dict[str, Any], target: str, mode: str, concurrency: int) -> dict[str, Any] | None:
    for cell in results["cells"]:
        if (cell["target"], cell["mode"], cell["concurrency"]) == (target, mode, concurrency):
            return cell  # type: ignore[no-any-return]
    return None


def _load_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| target | mode | conc. | req/s | p50 ms | p99 ms | added p50 ms | added p99 ms | TTFB p50 ms "
        "| CPU µs/req | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cell in results["cells"]:
        direct = _cell(results, "direct", cell["mode"], cell["concurrency"])
        added = cell["p50_ms"] - direct["p50_ms"] if direct and cell["target"] != "direct" else None
        added99 = cell["p99_ms"] - direct["p99_ms"] if direct and cell["target"] != "direct" else None
        mode = "stream (20 chunks)" if cell["mode"] == "stream" else "non-streaming"
        ttfb = cell.get("ttfb_p50_ms") if cell["mode"] == "stream" else None
        lines.append(
            f"| {cell['target']} | {mode} | {cell['concurrency']} | {_f(cell['rps'], 0)} | {_f(cell['p50_ms'])} | "
            f"{_f(cell['p99_ms'])} | {_f(added)} | {_f(added99)} | {_f(ttfb)} | "
            f"{_f(cell.get('cpu_us_per_request'), 0)} | {cell['errors']} |"
        )
    return lines


def _gateway_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| target | start-up to first 200 s | peak RSS MB | chunks per read (paced stream) | gap between reads ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, info in results["gateways"].items():
        paced = info.get("paced") or {}
        lines.append(
            f"| {name} | {_f(info.get('startup_s'))} | {_f(info.get('peak_rss_mb'), 1)} | "
            f"{_f(paced.get('events_per_piece'))} | {_f(paced.get('median_gap_ms'), 1)} |"
        )
    soak = results["gateways"].get("llm-factory", {}).get("soak")
    if soak:
        at, rss_at = soak["rss_mb_at"]
        lines.append("")
        lines.append(
            f"llm-factory RSS after {at:,} requests: {_f(rss_at, 1)} MB; after {soak['requests']:,}: "
            f"{_f(soak['rss_mb_after'], 1)} MB."
        )
    return lines


def _streams_table(results: dict[str, Any]) -> list[str]:
    cells = results.get("streams") or []
    if not cells:
        return []
    direct = {(c["concurrency"], c["chunks"], c.get("arrivals")): c for c in cells if c["target"] == "direct"}
    lines = [
        "Realistic streams (first token after 20 ms, chunks 20 ms apart; full-stream latency; the "
        'connections start spread over one stream\'s length, as steady load arrives; "all at once": '
        "every connection starts in the same instant, so each round of streams arrives together):",
        "",
        "| target | path | chunks | conc. | streams/s | vs direct | p50 ms | p99 ms | added p50 ms | first byte p50 ms "
        "| CPU µs/chunk | RSS MB | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cells:
        ref = direct.get((c["concurrency"], c["chunks"], c.get("arrivals")))
        path = c.get("path", "-") if c["target"] == "llm-factory" else "-"
        if c.get("arrivals"):
            path = "all at once" if path == "-" else f"{path}, all at once"
        added = ratio = None
        if ref is not None and c["target"] != "direct":
            added = c["p50_ms"] - ref["p50_ms"] if c["requests"] and ref["requests"] else None
            ratio = _ratio(c["rps"], ref["rps"])
        lines.append(
            f"| {c['target']} | {path} | {c['chunks']} | "
            f"{c['concurrency']:,} | {_f(c['rps'], 0)} | "
            f"{_f(ratio * 100, 0) + '%' if ratio is not None else '-'} | {_f(c['p50_ms'], 1)} | {_f(c['p99_ms'], 1)} | "
            f"{_f(added, 1)} | {_f(c.get('ttfb_p50_ms'), 1)} | {_f(c.get('cpu_us_per_chunk'), 1)} | "
            f"{_f(c.get('rss_mb'), 1)} | {c['errors']} |"
        )
    lines.append("")
    for path in ("pass-through", "translated"):
        found = marginal(cells, "llm-factory", path)
        if found:
            lines.append(
                f"llm-factory, {path}: {_f(found[1], 1)} µs CPU per extra streamed chunk "
                f"(longest vs shortest streams at {found[0]} concurrent; per-request costs cancel out)."
            )
    return lines


def _p99_table(results: dict[str, Any]) -> list[str]:
    sweep = results.get("p99_sweep") or []
    if not sweep:
        return []
    from profiles import P99_BOUNDS_MS, p99_bounds

    heads = " | ".join(f"req/s at p99 ≤ {b:g} ms" for b in P99_BOUNDS_MS)
    lines = [f"| target | {heads} |", "|---|" + "---:|" * len(P99_BOUNDS_MS)]
    for target in dict.fromkeys(c["target"] for c in sweep):
        bounds = p99_bounds(sweep, target)
        lines.append(f"| {target} | " + " | ".join(_f(bounds[b], 0) for b in P99_BOUNDS_MS) + " |")
    workers = results.get("workers")
    if workers:
        one, many = workers.get("rps_1"), workers.get(f"rps_{workers['cores']}")
        lines += [
            "",
            f"`--workers {workers['cores']}`: {_f(many, 0)} req/s vs {_f(one, 0)} with one worker "
            f"({_f(workers.get('ratio'))}x); {workers['note']}.",
        ]
    return lines


def _library_table(results: dict[str, Any]) -> list[str]:
    lines = ["| library path (sequential calls) | p50 µs | p99 µs | CPU µs/call |", "|---|---:|---:|---:|"]
    for name, r in results.get("library", {}).items():
        if isinstance(r, dict):
            lines.append(f"| {name} | {_f(r['p50_us'], 0)} | {_f(r['p99_us'], 0)} | {_f(r['cpu_us_per_call'], 0)} |")
        else:
            lines.append(f"| {name} | {r} | | |")
    return lines


def _import_table(results: dict[str, Any]) -> list[str]:
    imp = results.get("imports") or {}
    lines = ["| import | ms |", "|---|---:|"]
    if not imp:
        return lines
    lines.append(f"| llm_factory_core | {_f(imp['llm_factory_core'] * 1000, 0)} |")
    for module, seconds in imp.get("plugins_after_core", {}).items():
        lines.append(f"| {module} (after the core) | {_f(seconds * 1000, 0)} |")
    if imp.get("llm_factory_server") is not None:
        lines.append(f"| llm_factory_server (with the core) | {_f(imp['llm_factory_server'] * 1000, 0)} |")
    if imp.get("litellm") is not None:
        lines.append(f"| litellm | {_f(imp['litellm'] * 1000, 0)} |")
    lines.append("")
    lines.append(
        f"A factory configured for openai only imports: {', '.join(imp.get('loaded_with_openai_configured') or [])}."
    )
    return lines


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for each of the issue's targets; met is None when a comparison is
    missing from this run (LiteLLM or nginx not installed)."""
    out: list[tuple[str, str, bool | None]] = []
    ours = "llm-factory"
    top = max(c["concurrency"] for c in results["cells"]) if results["cells"] else 0

    def rps(target: str, mode: str) -> float | None:
        cell = _cell(results, target, mode, top)
        return cell["rps"] if cell else None

    def p50(target: str, mode: str, field: str = "p50_ms") -> float | None:
        cell = _cell(results, target, mode, 1)
        return cell.get(field) if cell else None

    r = _ratio(rps(ours, "json"), rps("litellm", "json"))
    out.append((f"non-streaming req/s at c={top} ≥ 30x LiteLLM", f"{_f(r, 1)}x", None if r is None else r >= 30))
    r = _ratio(rps(ours, "json"), rps("nginx", "json"))
    out.append(
        (
            f"non-streaming req/s at c={top} ≥ 10% of nginx",
            f"{_f((r or 0) * 100, 1)}%" if r else "-",
            None if r is None else r >= 0.10,
        )
    )
    direct = p50("direct", "json")
    ours_p50, nginx_p50 = p50(ours, "json"), p50("nginx", "json")
    added = ours_p50 - direct if ours_p50 is not None and direct is not None else None
    nginx_added = nginx_p50 - direct if nginx_p50 is not None and direct is not None else None
    if added is not None:
        met = added < 1.0 and (nginx_added is None or added <= 3 * max(nginx_added, 0.0))
        out.append(
            (
                "added p50 latency at c=1 ≤ 3x nginx's, < 1 ms",
                f"{_f(added * 1000, 0)} µs (nginx {_f(nginx_added * 1000 if nginx_added is not None else None, 0)} µs)",
                met if nginx_added is not None else None,
            )
        )
    c1_ours, c1_direct = p50(ours, "json", "p99_ms"), p50("direct", "json", "p99_ms")
    if c1_ours is not None and c1_direct is not None:
        added99 = c1_ours - c1_direct
        out.append(("added p99 latency at c=1 ≤ 0.5 ms", f"{_f(added99 * 1000, 0)} µs", added99 <= 0.5))
    real = {
        (c["target"], c["concurrency"], c["chunks"], c.get("arrivals")): c
        for c in results.get("streams") or []
        if c.get("path", "pass-through") == "pass-through"
    }
    for arrivals, label in ((None, ""), ("burst", ", all starting at once")):
        mine, ref = real.get((ours, 512, 20, arrivals)), real.get(("direct", 512, 20, arrivals))
        if mine and ref and mine["requests"] and ref["requests"]:
            added = mine["p50_ms"] - ref["p50_ms"]
            out.append(
                (
                    f"512 realistic streams{label}: full-stream overhead p50 ≤ 10 ms, no errors",
                    f"{'+' if added >= 0 else ''}{_f(added, 1)} ms, {mine['errors']} errors",
                    added <= 10 and not mine["errors"],
                )
            )
    for path, bound in (("pass-through", 15.0), ("translated", 30.0)):
        found = marginal(results.get("streams") or [], ours, path)
        if found:
            out.append(
                (f"gateway CPU per streamed chunk ≤ {bound:g} µs ({path})", f"{_f(found[1], 1)} µs", found[1] <= bound)
            )
    workers = results.get("workers") or {}
    if workers.get("ratio") is not None:
        out.append(
            (f"--workers {workers['cores']} ≥ 1.8x one worker", f"{_f(workers['ratio'])}x", workers["ratio"] >= 1.8)
        )
    r = _ratio(rps(ours, "stream"), rps("litellm", "stream"))
    out.append((f"streams/s at c={top} ≥ 30x LiteLLM", f"{_f(r, 1)}x", None if r is None else r >= 30))
    t_ours, t_direct = p50(ours, "stream", "ttfb_p50_ms"), p50("direct", "stream", "ttfb_p50_ms")
    if t_ours is not None and t_direct is not None:
        out.append(
            ("time-to-first-byte overhead ≤ 1 ms", f"{_f((t_ours - t_direct) * 1000, 0)} µs", t_ours - t_direct <= 1.0)
        )
    paced = results["gateways"].get(ours, {}).get("paced") or {}
    per_read = paced.get("events_per_piece")
    out.append(
        (
            "each upstream chunk forwarded without batching",
            f"{_f(per_read)} chunks per read",
            None if per_read is None else per_read <= 1.05,
        )
    )
    gws = results["gateways"]
    r = _ratio(gws.get(ours, {}).get("peak_rss_mb"), gws.get("litellm", {}).get("peak_rss_mb"))
    out.append(("peak RSS ≤ 1/4 of LiteLLM's", f"{_f(r)}x", None if r is None else r <= 0.25))
    soak = gws.get(ours, {}).get("soak")
    if soak and soak["rss_mb_at"][1] and soak["rss_mb_after"]:
        growth = soak["rss_mb_after"] - soak["rss_mb_at"][1]
        out.append(
            (
                f"RSS flat after {soak['requests']:,} requests",
                f"{growth:+.1f} MB since {soak['rss_mb_at'][0]:,}",
                growth <= max(5.0, 0.05 * soak["rss_mb_at"][1]),
            )
        )
    r = _ratio(gws.get(ours, {}).get("startup_s"), gws.get("litellm", {}).get("startup_s"))
    out.append(("start-up to first 200 ≤ 1/5 of LiteLLM's", f"{_f(r)}x", None if r is None else r <= 0.2))
    imp = results.get("imports") or {}
    r = _ratio(imp.get("llm_factory_core"), imp.get("litellm"))
    out.append(("import llm_factory_core ≤ 1/8 of import litellm", f"{_f(r, 3)}x", None if r is None else r <= 0.125))
    if "plugins_only_when_configured" in imp:
        out.append(
            (
                "plugins imported only when configured",
                str(imp["plugins_only_when_configured"]),
                bool(imp["plugins_only_when_configured"]),
            )
        )
    lib = results.get("library") or {}
    ours_cpu = lib.get("chat_async", {}).get("cpu_us_per_call") if isinstance(lib.get("chat_async"), dict) else None
    bare = lib.get("bare_httpx", {}).get("cpu_us_per_call") if isinstance(lib.get("bare_httpx"), dict) else None
    r = _ratio(ours_cpu, bare)
    out.append(("library: chat_async CPU/call ≤ bare httpx's", f"{_f(r)}x", None if r is None else r <= 1.0))
    return out


def render(results: dict[str, Any]) -> str:
    env = results.get("environment", {})
    parts = [
        f"Run {env.get('date')}: {env.get('cpu')}, {env.get('cores')} cores, Python {env.get('python')}, "
        f"driver {env.get('driver')}, gateway pinned to its own core: {env.get('pinned')}, "
        f"gateway workers: {env.get('gateway_workers')}"
        + (f", LiteLLM {env['litellm']}" if env.get("litellm") else "")
        + f", profile {env.get('profile')}.",
        "",
        *_load_table(results),
        "",
        *_gateway_table(results),
        "",
        *_streams_table(results),
        "",
        *_p99_table(results),
        "",
        *_library_table(results),
        "",
        *_import_table(results),
        "",
        "| target | this run | met |",
        "|---|---|---|",
    ]
    for name, measured, met in targets(results):
        verdict = "yes" if met else ("no" if met is False else "n/a (not in this run)")
        parts.append(f"| {name} | {measured} | {verdict} |")
    if results.get("notes"):
        parts.append("")
        parts.extend(f"- {note}" for note in results["notes"])
    return "\n".join(parts)
