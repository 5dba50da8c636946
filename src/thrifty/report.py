"""What a person reads after a run: the summary, the variants and offers tables, an HTML report.

Pure functions of the registry's rows and the plan's decision record; the deploy-model flow turns
them into Prefect artifacts, the CLI prints them with rich, ``thrifty report`` writes the HTML.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thrifty.bench.load import load_note
from thrifty.errors import NotFoundError
from thrifty.registry import Registry

HOURS_PER_MONTH = 730.0


@dataclass
class RunReport:
    """Everything the summary, tables and HTML need, gathered from the registry."""

    model: str
    decision: dict[str, Any]
    variants: list[dict[str, Any]]
    deployment: dict[str, Any] = field(default_factory=dict)
    plan_id: int | None = None

    @property
    def chosen(self) -> dict[str, Any]:
        return dict(self.decision.get("chosen") or {})

    @property
    def baseline(self) -> dict[str, Any]:
        return dict(self.decision.get("baseline") or {})


def _bench_row(results: list[Any]) -> dict[str, Any]:
    """The batch-1 result with the most threads (what a single request sees), else the first."""
    if not results:
        return {}
    batch1 = [r for r in results if r.batch_size == 1] or results
    best = max(batch1, key=lambda r: (r.threads, -r.latency_ms_p50))
    return {
        "latency_ms_p50": best.latency_ms_p50,
        "latency_ms_p95": best.latency_ms_p95,
        "throughput_rps": best.throughput_rps,
        "load_ms": best.load_ms,
        "peak_memory_mib": best.peak_memory_mib,
        "threads": best.threads,
        "seq_len": best.seq_len,
        "noisy": load_note(best.details),
    }


def variant_rows(registry: Registry, model_version_id: int) -> list[dict[str, Any]]:
    variants = registry.list_variants(model_version_id)
    results = registry.list_benchmark_results([v.id for v in variants])
    rows = []
    for v in variants:
        bench = _bench_row([r for r in results if r.variant_id == v.id])
        rows.append(
            {
                "variant": v.name,
                "technique": v.technique,
                "size_mb": round(v.artifact.size_bytes / 1e6, 2),
                **bench,
                "fidelity": _fidelity_text(v.fidelity),
                "status": v.status,
                "rejection_reason": v.rejection_reason,
            }
        )
    return rows


#: fidelity keys in the words a reader uses
FIDELITY_LABELS = {
    "cosine_mean": "cosine (mean)",
    "cosine_min": "cosine (min)",
    "nn_agreement": "nearest-neighbour agreement",
    "top1_agreement": "top-1 agreement",
    "accuracy": "accuracy",
    "max_abs_error": "max abs error",
}


def _fidelity_text(fidelity: dict[str, Any]) -> str:
    shown = [
        f"{label} {float(fidelity[key]):.3f}"
        for key, label in FIDELITY_LABELS.items()
        if fidelity.get(key) is not None
    ]
    return ", ".join(shown) or "-"


def collect(registry: Registry, ref: str) -> RunReport:
    """A report for a deployment name, or a plan id (``plan:7`` or ``7``)."""
    deployment = registry.find_deployment(ref)
    if deployment is not None:
        if deployment.plan_id is None:
            raise NotFoundError(f"deployment {ref!r} has no plan", hint="re-run the deploy-model flow")
        plan = registry.get_plan(deployment.plan_id)
        info = {
            "name": deployment.name,
            "provider": deployment.provider,
            "state": deployment.state,
            "endpoint_url": deployment.endpoint_url,
            "replicas": deployment.replicas,
        }
    else:
        plan_id = ref.removeprefix("plan:")
        if not plan_id.isdigit():
            raise NotFoundError(
                f"{ref!r} is neither a deployment nor a plan id",
                hint="see `thrifty status` and `thrifty plan list`",
            )
        plan = registry.get_plan(int(plan_id))
        info = {}
    record = dict(plan.record)
    rows = variant_rows(registry, plan.model_version_id) if plan.model_version_id else []
    return RunReport(
        model=str(record.get("model", "")), decision=record, variants=rows, deployment=info, plan_id=plan.id
    )


# -- text --------------------------------------------------------------------------------------


def _money(value: Any) -> str:
    return "-" if value is None else f"${float(value):,.2f}"


def offer_label(row: dict[str, Any]) -> str:
    return f"{row.get('provider')} {row.get('instance_type')} {row.get('region')} ({row.get('option') or row.get('price_model')})"


def savings_line(report: RunReport) -> str:
    chosen, base = report.chosen, report.baseline
    if not base or not chosen.get("usd_per_month") or not base.get("usd_per_month"):
        return "no baseline to compare with"
    ratio = float(base["usd_per_month"]) / float(chosen["usd_per_month"])
    saved = float(base["usd_per_month"]) - float(chosen["usd_per_month"])
    return f"{ratio:.1f}× cheaper than the naive baseline ({_money(saved)}/month saved)"


#: numpy dtype names in a model signature → Open Inference Protocol datatypes
OIP_DATATYPES = {"float32": "FP32", "float16": "FP16", "float64": "FP64", "int64": "INT64", "int32": "INT32"}
OIP_DATATYPES |= {"int8": "INT8", "uint8": "UINT8", "bool": "BOOL"}


def example_inputs(signature: dict[str, Any]) -> list[dict[str, Any]]:
    """OIP inputs shaped like a model's signature (symbolic dimensions → 1), filled with zeros."""
    inputs = []
    for item in signature.get("inputs", []):
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in item.get("shape") or []]
        count = 1
        for d in shape:
            count *= d
        datatype = OIP_DATATYPES.get(str(item.get("dtype")), "FP32")
        zero: float | int | bool = False if datatype == "BOOL" else 0.0 if datatype.startswith("FP") else 0
        inputs.append({"name": item["name"], "shape": shape, "datatype": datatype, "data": [zero] * count})
    return inputs


def curl_example(
    endpoint_url: str,
    model: str,
    sample: str = "thrifty keeps models cheap",
    inputs: list[dict[str, Any]] | None = None,
    *,
    pinned_pubkey: str | None = None,
    token_file: str | None = None,
) -> str:
    """A ready-to-paste request: one sentence for text models, else ``inputs`` (see example_inputs).

    A cloud endpoint needs the deployment's token (``token_file``: read where the request is sent,
    never printed) and, over HTTPS, trusts only the pinned key: ``-k`` skips the CA and host-name
    checks a self-signed certificate cannot pass, ``--pinnedpubkey`` still refuses any other key.
    """
    text = [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [sample]}]
    body = {"inputs": inputs or text}
    tls = f"-k --pinnedpubkey '{pinned_pubkey}' " if pinned_pubkey else ""
    auth = f'-H "Authorization: Bearer $(cat {token_file})" ' if token_file else ""
    return (
        f"curl -s {tls}-X POST {endpoint_url.rstrip('/')}/v2/models/{model}/infer "
        f"{auth}-H 'Content-Type: application/json' -d '{json.dumps(body)}'"
    )


def summary_markdown(report: RunReport, *, local_endpoint: str | None = None, curl: str | None = None) -> str:
    c, b = report.chosen, report.baseline
    lines = [
        f"# thrifty: {report.model}",
        "",
        f"**Chosen plan:** variant `{c.get('variant')}` on {offer_label(c)}",
        "",
        "| | cost / 1M requests | cost / month | p95 (est.) |",
        "|---|---:|---:|---:|",
        f"| chosen | {_money(c.get('usd_per_million_requests'))} | {_money(c.get('usd_per_month'))} | "
        f"{_ms(c.get('latency_ms_p95_est'))} |",
    ]
    if b:
        lines.append(
            f"| naive baseline (fp32, on-demand m5.xlarge us-east-1) | {_money(b.get('usd_per_million_requests'))} | "
            f"{_money(b.get('usd_per_month'))} | {_ms(b.get('latency_ms_p95_est'))} |"
        )
    lines += ["", savings_line(report), ""]
    for fact in _facts(report, local_endpoint):  # one paragraph each, so Markdown keeps them apart
        lines += [fact, ""]
    if curl:
        lines += ["```bash", curl, "```"]
    return "\n".join(lines).rstrip("\n") + "\n"


def _facts(report: RunReport, local_endpoint: str | None) -> list[str]:
    chosen, facts = report.chosen, []
    variant = next((v for v in report.variants if v["variant"] == chosen.get("variant")), None)
    if variant:
        facts.append(f"**Fidelity vs the original:** {variant['fidelity']}")
    facts += _noisy_lines(report)
    slo = report.decision.get("slo", {})
    traffic = report.decision.get("traffic", {})
    facts.append(f"**SLO:** p95 ≤ {slo.get('latency_ms_p95')} ms at {traffic.get('rps')} req/s")
    if report.deployment:
        d = report.deployment
        facts.append(
            f"**Deployed:** {d['name']} on `{d['provider']}`, state {d['state']}, endpoint {d['endpoint_url']}"
        )
        fallback = fallback_line(report)
        if fallback:
            facts.append(f"**Local fallback:** {fallback}")
    if local_endpoint:
        facts.append(f"**Endpoint:** {local_endpoint}")
    return facts


def local_capacity_rps(report: RunReport) -> float | None:
    """What the local replicas carry at the plan's utilisation: replicas × measured req/s × max util."""
    chosen = report.chosen
    mine = next((v for v in report.variants if v["variant"] == chosen.get("variant")), {})
    per_replica = mine.get("throughput_rps") or chosen.get("bench_throughput_rps")
    if not per_replica:
        return None
    utilisation = float(chosen.get("max_utilization") or 1.0)
    return float(report.deployment.get("replicas") or 0) * float(per_replica) * utilisation


def fallback_line(report: RunReport) -> str | None:
    """When the plan chose a cloud but the model runs locally on fewer replicas than the plan's
    machines: how much of the planned traffic the local replicas carry, e.g. "1 replica ≈ 41 req/s
    of the 200 req/s planned"."""
    chosen, deployed = report.chosen, report.deployment
    if deployed.get("provider") != "local" or chosen.get("provider") in (None, "local"):
        return None
    replicas = int(deployed.get("replicas") or 0)
    planned = float(chosen.get("machines") or 0)
    rps = report.decision.get("traffic", {}).get("rps")
    capacity = local_capacity_rps(report)
    if planned <= replicas or capacity is None or not rps:
        return None
    share = capacity / float(rps)
    return (
        f"{replicas} replica{'s' if replicas != 1 else ''} ≈ {capacity:,.0f} req/s of the {float(rps):,.0f} req/s "
        f"planned ({share:.0%}; the plan wanted {planned:g} × {chosen.get('instance_type')}): "
        "save a target block for the plan's cloud to carry the full load"
    )


def _noisy_lines(report: RunReport) -> list[str]:
    """Which variants' numbers were measured on a busy machine (and so may be too slow)."""
    noisy = [v for v in report.variants if v.get("noisy")]
    if not noisy:
        return []
    names = ", ".join(f"`{v['variant']}`" for v in noisy)
    return [
        f"**Noisy benchmarks:** {names}: measured while {noisy[0]['noisy']}; "
        f"re-measure on a quiet machine with `thrifty bench {report.model}`"
    ]


def _ms(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f} ms"


def offers_rows(report: RunReport, top: int = 10) -> list[dict[str, Any]]:
    """The ``top`` cheapest offers, one row each with its best variant (candidates are ranked, so
    the first row of an offer is its best), and why each lost to the chosen plan."""
    rows: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    chosen = report.chosen
    for cand in report.decision.get("candidates", []):
        key = tuple(cand.get(k) for k in ("provider", "instance_type", "region", "option"))
        if key in seen:
            continue
        seen.add(key)
        rows.append(
            {
                "rank": cand.get("rank"),
                "variant": cand.get("variant"),
                "offer": offer_label(cand),
                "usd_per_million_requests": cand.get("usd_per_million_requests"),
                "usd_per_month": cand.get("usd_per_month"),
                "machines": cand.get("machines"),
                "p95_ms_est": cand.get("latency_ms_p95_est"),
                "estimated": cand.get("estimated"),
                "why_lost": "chosen" if not rows else why_lost(cand, chosen),
            }
        )
        if len(rows) == top:
            break
    return rows


#: two monthly costs closer than this (half a cent) are the same cost to a reader
_SAME_USD = 0.005


def why_lost(cand: dict[str, Any], chosen: dict[str, Any]) -> str:
    """Why a candidate lost, in words: cost first; on a cost tie, the tie-break (fidelity, p95)."""
    usd, best = cand.get("usd_per_month"), chosen.get("usd_per_month")
    if usd is None or best is None:
        return str(cand.get("why_lost") or "ranked lower")
    delta = float(usd) - float(best)
    if delta >= _SAME_USD:
        more = f" (+{delta / float(best):.0%})" if best else ""
        return f"costs {_money(delta)}/month more{more}"
    fid, best_fid = cand.get("fidelity_score"), chosen.get("fidelity_score")
    if fid is not None and best_fid is not None and float(fid) < float(best_fid):
        return f"same cost, less faithful ({float(fid):.3f} vs {float(best_fid):.3f})"
    p95, best_p95 = cand.get("latency_ms_p95_est"), chosen.get("latency_ms_p95_est")
    if p95 is not None and best_p95 is not None and float(p95) > float(best_p95):
        return f"same cost, slower (p95 {float(p95):.1f} vs {float(best_p95):.1f} ms)"
    return "same cost and speed (listed after the chosen plan)"


def _round(value: Any, digits: int = 2) -> Any:
    return (
        round(float(value), digits)
        if isinstance(value, int | float) and not isinstance(value, bool)
        else value
    )


def offers_table(report: RunReport, top: int = 10) -> list[dict[str, Any]]:
    """``offers_rows`` for people (Prefect table artifact, HTML): human headers, rounded numbers."""
    return [
        {
            "#": r["rank"],
            "offer": r["offer"],
            "variant": r["variant"],
            "$/month": _round(r["usd_per_month"]),
            "$/1M requests": _round(r["usd_per_million_requests"], 4),
            "machines": _round(r["machines"], 1),
            "p95 ms (est.)": _round(r["p95_ms_est"], 1),
            "why it lost": r["why_lost"],
        }
        for r in offers_rows(report, top)
    ]


def _verdict(row: dict[str, Any]) -> str:
    if row.get("status") == "rejected":
        return f"rejected: {row.get('rejection_reason') or 'outside tolerance'}"
    return str(row.get("status") or "")


def variants_table(report: RunReport) -> list[dict[str, Any]]:
    """The variants for people: verdict right after the name, human headers, rounded numbers."""
    return [
        {
            "variant": v["variant"],
            "verdict": _verdict(v),
            "fidelity": v["fidelity"],
            "size MB": _round(v.get("size_mb"), 1),
            "p50 ms": _round(v.get("latency_ms_p50"), 1),
            "p95 ms": _round(v.get("latency_ms_p95"), 1),
            "req/s": _round(v.get("throughput_rps"), 1),
            "peak MiB": _round(v.get("peak_memory_mib"), 0),
            "technique": v["technique"],
        }
        for v in report.variants
    ]


# -- HTML --------------------------------------------------------------------------------------


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def cost_chart(report: RunReport, top: int = 15) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cands = [
        c for c in report.decision.get("candidates", []) if c.get("usd_per_million_requests") is not None
    ]
    cands = sorted(cands, key=lambda c: c["usd_per_million_requests"])[:top]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(cands) + 1.5))
    labels = [f"{c['variant']} · {offer_label(c)}" for c in cands]
    ax.barh(labels[::-1], [c["usd_per_million_requests"] for c in cands][::-1], color="#3b82f6")
    if report.baseline.get("usd_per_million_requests"):
        ax.axvline(
            report.baseline["usd_per_million_requests"],
            color="#ef4444",
            linestyle="--",
            label="naive baseline",
        )
        ax.legend(loc="lower right")  # "best" searches the data and warns when slow
    ax.set_xlabel("USD per million requests")
    ax.set_title("Cost per offer (cheapest feasible candidates)")
    out = _png(fig)
    plt.close(fig)
    return out


def latency_chart(report: RunReport) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in report.variants:
        if row.get("latency_ms_p50") is None:
            continue
        color = (
            "#16a34a"
            if row["status"] == "accepted"
            else "#dc2626"
            if row["status"] == "rejected"
            else "#6b7280"
        )
        ax.scatter(row["size_mb"], row["latency_ms_p50"], color=color, s=60)
        ax.annotate(
            row["variant"],
            (row["size_mb"], row["latency_ms_p50"]),
            fontsize=8,
            xytext=(4, 4),
            textcoords="offset points",
        )
    ax.set_xlabel("size (MB)")
    ax.set_ylabel("latency p50 at batch 1 (ms)")
    ax.set_title("Latency vs size per variant (green accepted, red rejected)")
    out = _png(fig)
    plt.close(fig)
    return out


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row.values()) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    """A value as a person reads it: no Python reprs (True, None, [...]) and rounded numbers."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".")  # 13.81, 0.2627, 1,024: at most 4 decimals
    if isinstance(value, list | tuple):
        return "; ".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {_cell(v)}" for k, v in value.items())
    return str(value)


def assumptions_html(assumptions: dict[str, Any]) -> str:
    """The planner's assumptions: a two-column table, then its notes as a list."""
    notes = assumptions.get("notes") or []
    rows = [{"assumption": k.replace("_", " "), "value": v} for k, v in assumptions.items() if k != "notes"]
    items = "".join(f"<li>{html.escape(str(n))}</li>" for n in notes)
    return _table(rows) + (f"<ul>{items}</ul>" if items else "")


def summary_html(markdown: str) -> str:
    """The summary Markdown rendered (markdown-it, which rich already installs); raw HTML is escaped."""
    from markdown_it import MarkdownIt

    return str(MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown))


STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#111}
table{border-collapse:collapse;margin:1rem 0;font-size:.85rem;width:100%}
td,th{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f3f4f6}img{max-width:100%}pre{background:#f3f4f6;padding:1rem;overflow:auto;white-space:pre-wrap}
"""


def write_html(report: RunReport, path: Path) -> Path:
    """A standalone HTML file (plots embedded as PNG data URIs), written atomically."""
    summary = summary_markdown(report).split("\n", 1)[1]  # the page has its own title
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>thrifty report: {html.escape(report.model)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>thrifty report: {html.escape(report.model)}</h1>",
        summary_html(summary),
        "<h2>Cost per offer</h2>",
        f"<img alt='cost per offer' src='data:image/png;base64,{cost_chart(report)}'>",
        "<h2>Variants</h2>",
        f"<img alt='latency vs size' src='data:image/png;base64,{latency_chart(report)}'>",
        _table(variants_table(report)),
        "<h2>Top offers</h2>",
        _table(offers_table(report, top=20)),
        "<h2>Assumptions</h2>",
        assumptions_html(dict(report.decision.get("assumptions", {}))),
        "</body></html>",
    ]
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(parts))
    tmp.replace(path)
    return path
