"""``thrifty plan explain``: a decision record as text a person can check with a calculator."""

from __future__ import annotations

from typing import Any

from thrifty.planner.transfer import transfer_lines


def explain_text(record: dict[str, Any], plan_id: int | None = None) -> str:
    """The chosen offer with its arithmetic, the baseline, the runners-up, the exclusions, assumptions."""
    lines = [_title(record, plan_id), ""]
    lines += _inputs(record)
    lines += ["", "CHOSEN", *_arithmetic(record["chosen"], record["traffic"]), *transfer_lines(record)]
    lines += _front_door(record.get("front_door"), record["chosen"])
    baseline = record.get("baseline")
    if baseline:
        lines += ["", "BASELINE (" + str(baseline.get("label", "naive")) + ")"]
        lines += _arithmetic(baseline, record["traffic"])
        saved = baseline["usd_per_month"] - record["chosen"]["usd_per_month"]
        ratio = baseline["usd_per_month"] / record["chosen"]["usd_per_month"]
        lines.append(f"  plan vs baseline: ${saved:,.2f}/month less ({ratio:.1f}x cheaper)")
    lines += _break_even(record.get("break_even"))
    lines += ["", "RUNNERS-UP (why they lost)", *_runners_up(record["candidates"])]
    lines += [
        "",
        f"EXCLUDED ({record['candidates_evaluated']:,} pairs evaluated)",
        *_excluded(record["excluded"]),
        *_accelerators(record.get("accelerators")),
    ]
    lines += ["", "ASSUMPTIONS", *(f"  - {note}" for note in record["assumptions"].get("notes", []))]
    return "\n".join(lines)


def _front_door(front_door: dict[str, Any] | None, chosen: dict[str, Any]) -> list[str]:
    """The always-on gateway a VM plan needs (planner.front_door); nothing for serverless."""
    if not front_door:
        return []
    if front_door.get("usd_per_month") is None:
        return [f"  front door: {front_door['note']}"]
    return [
        f"  + front door {front_door['instance_type']} on-demand ${front_door['usd_per_hour']:.4f}/h = "
        f"${front_door['usd_per_month']:,.2f}/month → ${chosen['usd_per_month_with_front_door']:,.2f}/month "
        f"in all ({front_door['note']})"
    ]


def _title(record: dict[str, Any], plan_id: int | None) -> str:
    name = f"plan {plan_id}" if plan_id is not None else "plan"
    return f"{name} for {record.get('model') or '(unnamed model)'} — decided {record.get('created_at', '?')}"


def _inputs(record: dict[str, Any]) -> list[str]:
    slo, traffic, catalog = record["slo"], record["traffic"], record["catalog"]
    filters = [f"p95 ≤ {slo['latency_ms_p95']:g} ms", "spot ok" if slo.get("spot_ok") else "no spot"]
    filters.append("serverless ok" if slo.get("serverless_ok") else "no serverless")
    if slo.get("min_fidelity") is not None:
        filters.append(f"fidelity ≥ {slo['min_fidelity']:g}")
    if slo.get("providers"):
        filters.append("providers " + ",".join(slo["providers"]))
    if slo.get("max_interruption_bucket"):
        filters.append(f"interruptions ≤ {slo['max_interruption_bucket']}")
    if slo.get("accelerator") is not None:
        filters.append(f"accelerator {slo['accelerator'] or 'none (CPU only)'}")
    return [
        "SLO: " + "; ".join(filters),
        f"traffic: {traffic['rps']:g} req/s, active {traffic['active_fraction']:.0%} of the month"
        f"{', scale to zero' if traffic.get('scale_to_zero') else ''} → {traffic['requests_per_month']:,.0f} "
        "requests/month",
        f"prices: {catalog['origin'] or '?'} ({catalog['rows']:,} rows, observed "
        f"{catalog['observed_at_oldest']} … {catalog['observed_at_newest']})",
    ]


def _arithmetic(c: dict[str, Any], traffic: dict[str, Any]) -> list[str]:
    lines = [
        f"  {c['variant']} (fidelity {_fidelity(c)}) on {c['provider']} {c['instance_type']} {c['region']}{_zone(c)} "
        f"({c['option']})",
        f"  price row: {_price(c)} — {c['source']}, observed {c['observed_at']}"
        + (" [derived]" if c.get("derived") else ""),
        f"  benchmark: batch {c['batch_size']}, {c['threads']} threads: {c['bench_throughput_rps']:.1f} req/s, "
        f"p95 {c['bench_latency_ms_p95']:.1f} ms on {c.get('bench_accelerator') or c['bench_cpu'] or '?'}"
        + (" (recorded numbers)" if c.get("bench_recorded") else ""),
    ]
    if c["option"] == "serverless":
        return lines + _serverless_lines(c, traffic)
    return lines + _dedicated_lines(c, traffic)


def _fidelity(c: dict[str, Any]) -> str:
    score = c.get("fidelity_score")
    return "unknown" if score is None else f"{score:.4f}"


def _zone(c: dict[str, Any]) -> str:
    return f"/{c['zone']}" if c.get("zone") else ""


def _price(c: dict[str, Any]) -> str:
    if c["option"] == "serverless":
        return (
            f"${c['usd_per_gb_second']:.10f}/GiB-s + ${c['usd_per_million_requests_unit']:g}/million requests"
        )
    return f"${c['usd_per_hour']:.5f}/h"


def _dedicated_lines(c: dict[str, Any], traffic: dict[str, Any]) -> list[str]:
    factor, copies, machines = c["family_factor"], c["copies_per_machine"], c["machines"]
    per_machine = copies * c["bench_throughput_rps"] * factor * c["max_utilization"]
    estimate = " (estimate: not measured on this type)" if c.get("estimated") else ""
    gpus = f", {c['accelerator_count']:g} x {c['accelerator_name']}" if c.get("bench_accelerator") else ""
    lines = [
        f"  copies per machine = min(floor({c['vcpus']:g} vCPUs / {c['threads']} threads), memory{gpus}) = "
        f"{copies:g}",
        f"  req/s per machine = {copies:g} x {c['bench_throughput_rps']:.1f} x factor {factor:g} x "
        f"{c['max_utilization']:g} = {per_machine:.1f}; machines = max(1, ceil({traffic['rps']:g} / "
        f"{per_machine:.1f})) = {machines:g}",
        f"  p95 here ≈ {c['bench_latency_ms_p95']:.1f} / {factor:g} = {c['latency_ms_p95_est']:.1f} ms{estimate}",
    ]
    if c["option"] == "spot+on_demand_floor":
        lines.append(
            f"  {c['floor_machines']:g} on-demand at ${c['on_demand_usd_per_hour']:.5f}/h + "
            f"{machines - c['floor_machines']:g} spot x {c['billed_hours_per_month']:g} h"
        )
    else:
        lines.append(
            f"  compute = {machines:g} x ${c['usd_per_hour']:.5f} x {c['billed_hours_per_month']:g} h"
        )
    if c["price_model"] == "spot":
        lines.append(
            f"  spot risk (bucket {c['interruption_bucket'] or 'unknown'}): {c['requests_at_risk_per_month']:,.0f} "
            f"requests at risk → ${c['spot_risk_usd_per_month']:.2f}/month"
        )
    return [*lines, _totals(c, traffic)]


def _serverless_lines(c: dict[str, Any], traffic: dict[str, Any]) -> list[str]:
    duration_s = c["bench_latency_ms_p50"] / c["family_factor"] / 1000.0
    per_request = duration_s * c["memory_gib"] * c["usd_per_gb_second"]
    return [
        f"  per request = {duration_s:.4f} s x {c['memory_gib']:.3f} GiB x ${c['usd_per_gb_second']:.10f} = "
        f"${per_request:.10f}; + ${c['usd_per_million_requests_unit']:g} per million requests",
        f"  p95 ≈ {c['latency_ms_p95_est']:.1f} ms with cold starts ({(c.get('cold_start_fraction') or 0):.3%} "
        f"of requests start cold; warm floor {c.get('warm_floor') or 0:g} instance(s) = "
        f"${c.get('warm_floor_usd_per_month') or 0:,.2f}/month)",
        _totals(c, traffic),
    ]


def _totals(c: dict[str, Any], traffic: dict[str, Any]) -> str:
    return (
        f"  = ${c['usd_per_month']:,.2f}/month; / {traffic['requests_per_month'] / 1e6:,.2f} M requests = "
        f"${c['usd_per_million_requests']:.4f} per million"
    )


def _break_even(entry: dict[str, Any] | None) -> list[str]:
    if not entry:
        return []
    s, d = entry["serverless"], entry["dedicated"]
    return [
        "",
        "SERVERLESS BREAK-EVEN",
        f"  {s['provider']} {s['instance_type']}: ${entry['usd_per_request_serverless']:.9f} per request vs "
        f"{d['provider']} {d['instance_type']} ({d['option']}) ${d['usd_per_month']:,.2f}/month",
        f"  break-even ≈ {entry['break_even_rps']:.2f} req/s: serverless cheaper below, dedicated above "
        f"(now: {entry['cheaper_now']} is cheaper)",
        *(
            f"  {v['variant']}: break-even ≈ {v['break_even_rps']:.2f} req/s ({v['serverless']['instance_type']} "
            f"vs {v['dedicated']['instance_type']})"
            for v in entry.get("per_variant", [])
        ),
    ]


def _runners_up(candidates: list[dict[str, Any]]) -> list[str]:
    lines = []
    for c in candidates[1:16]:
        lines.append(
            f"  #{c['rank']:<5} {c['variant']:<22} {c['provider']:<5} {c['instance_type']:<24} "
            f"{c['region']:<22} {c['option']:<20} ${c['usd_per_month']:>10,.2f}/mo  {c['why_lost']}"
        )
    return lines or ["  (none)"]


def _accelerators(summary: dict[str, Any] | None) -> list[str]:
    if not summary:
        return []
    lacking = summary.get("offers_without_benchmark") or {}
    line = ", ".join(f"{name} ({count:,} offers)" for name, count in lacking.items()) or "none"
    return [
        f"  benchmarks ran on: {', '.join(summary.get('benchmarked_on') or []) or '?'}; accelerator offers "
        f"left out for want of a benchmark on them: {line}"
    ]


def _excluded(excluded: list[dict[str, Any]]) -> list[str]:
    lines = []
    for entry in excluded:
        ex = entry["closest"]
        p95 = ex.get("latency_ms_p95_est")
        detail = f"p95 {p95:.1f} ms" if isinstance(p95, float) else ""
        accelerator = f" [{ex['accelerator_name']}]" if ex.get("accelerator_name") else ""
        lines.append(
            f"  {entry['reason']}: {entry['count']:,} — e.g. {ex['variant']} on {ex['provider']} "
            f"{ex['instance_type']}{accelerator} {ex['region']} ({ex['option']}) {detail}"
        )
    return lines or ["  (none)"]
