"""The anomaly detector on real traffic with seeded, labelled anomalies: precision, recall, delay.

    .venv/bin/python bench/anomaly.py [--deployments 30] [--seed 1] [--check-seeds 2] [--threshold 10 --also 8 14]

Normal traffic is real: busy functions of the Azure Functions 2019 sample (one real day, made
into 8 by a seeded per-day shift of up to ±15 minutes and binomial thinning to 85–100 %) and the
two Azure LLM 2023 services (per-second arrivals read as per-minute: about 2.4 days of real
burstiness, no daily cycle). Latency, errors and spend are modelled from that traffic (the traces
have none): replicas follow the last 10 minutes' traffic, p95 latency rises with utilisation and
is noisier when few requests fall in a minute, errors are 0.2 % Bernoulli. Day 0 is history;
anomalies start from day 1, so the detector works with 24 h of history or more.

Injected (labelled): traffic ×3 for 10 min, traffic +30 % for 30 min, spend +30 % for 30 min, spend
drifting to +60 % over 6 h, p95 latency +50 % for 60 min, errors at 5 % for 10 min. An alert is a
true positive when it is on a deployment and series the anomaly affects, between its start and 30
minutes after its end; every other alert is false. Recall counts an anomaly found when an alert on
its own series matched it. Recall is reported twice: over every injected anomaly, and over those
whose injected effect clears the detector's own floors (a +30 % traffic shift on 6 requests/min
is +1.8 requests/min, under the 5/min floor, so by design nobody is paged for it). The detector's
settings were tuned on seed 0 only (30 deployments); the recorded run uses seed 1 (other
functions, other injections) and seed 2 as a check. Writes the ``anomaly`` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/anomaly.py` finds bench._report

from bench._report import ROOT, machine_line, write_section
from thrifty.monitor.anomaly import DEFAULT_RULES, Alert, DetectorConfig, MinuteMetrics, detect
from thrifty.policies.trace import Trace, load_trace

TRACES = ROOT.parent / "shared" / "data" / "traces"
SAMPLE = TRACES / "azure_functions_2019_sample1000"
LLM = TRACES / "azure_llm_inference_2023"
DAYS = 8
DAY = 1440
WEEK = 7 * DAY
START = datetime(2026, 1, 5, tzinfo=UTC)
USD_PER_REPLICA_HOUR = 0.10
MATCH_TAIL_MIN = 30

# kind: (primary series, series it moves, minutes held)
KINDS: dict[str, tuple[str, tuple[str, ...], int]] = {
    "traffic ×3 spike": ("traffic", ("traffic", "cost", "latency"), 10),
    "traffic +30 % shift": ("traffic", ("traffic", "cost", "latency"), 30),
    "spend +30 % shift": ("cost", ("cost",), 30),
    "spend drift to +60 % in 6 h": ("cost", ("cost",), 360),
    "latency +50 % regression": ("latency", ("latency",), 60),
    "error burst 5 %": ("errors", ("errors",), 10),
}
GOALS = {"precision": 0.9, "recall": 0.9, "false_per_week": 1.0, "delay_min": 10.0}


@dataclass(frozen=True)
class Injected:
    deployment: str
    kind: str
    start: int
    stop: int
    actionable: bool = True  # the injected effect clears the detector's floors
    ordinary: bool = False  # traffic: the injected level was reached on its own in the past day


# -- normal traffic ----------------------------------------------------------------------------
def azure_weeks(sample: Trace, count: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Busy functions (≥ 5 requests/min on average), 8 days each from the one real day."""
    busy = np.flatnonzero(sample.counts.mean(axis=1) >= 5.0)
    chosen = rng.choice(busy, size=min(count, busy.size), replace=False)
    weeks = {}
    for row in sorted(chosen):
        days = [
            rng.binomial(np.roll(sample.counts[row], int(rng.integers(-15, 16))), rng.uniform(0.85, 1.0))
            for _ in range(DAYS)
        ]
        weeks[f"azure-{row}"] = np.concatenate(days).astype(np.float64)
    return weeks


def llm_series() -> dict[str, np.ndarray]:
    """Each LLM service's per-second arrivals, read as per-minute counts."""
    if not LLM.is_dir():
        return {}
    import pandas as pd

    series = {}
    for file in sorted(LLM.glob("AzureLLMInferenceTrace_*.csv")):
        stamps = pd.to_datetime(pd.read_csv(file, usecols=["TIMESTAMP"])["TIMESTAMP"])
        seconds = (stamps - stamps.min()).dt.total_seconds().to_numpy()
        series[f"llm-{file.stem.rsplit('_', 1)[-1]}"] = np.bincount(seconds.astype(np.int64)).astype(
            np.float64
        )
    return series


# -- modelled latency, errors and spend --------------------------------------------------------
def metrics_for(
    name: str, requests: np.ndarray, effects: dict[str, np.ndarray], rng: np.random.Generator
) -> MinuteMetrics:
    """Spend from replicas that follow the past 10 minutes; latency from utilisation and noise."""
    peak = max(float(np.percentile(requests[:DAY], 99)), 1.0)
    capacity = peak / 4.0  # requests/min one replica serves at 70 % utilisation: the peak needs 4
    recent = np.convolve(requests, np.ones(10) / 10.0)[: len(requests)]
    replicas = np.maximum(1.0, np.ceil(np.concatenate([[recent[0]], recent[:-1]]) / capacity))
    usd = replicas * USD_PER_REPLICA_HOUR / 60.0 * effects["spend"]
    utilisation = requests / (replicas * capacity / 0.7)
    base_ms = float(rng.uniform(40.0, 300.0))
    noise = rng.normal(0.0, 1.0, len(requests)) / np.sqrt(np.maximum(requests, 1.0))
    latency = base_ms * (1.0 + 0.3 * np.minimum(utilisation, 3.0) ** 2) * np.exp(noise) * effects["latency"]
    latency = np.where(requests > 0, latency, np.nan)
    errors = rng.binomial(requests.astype(np.int64), np.minimum(0.002 * effects["errors"], 1.0)).astype(float)
    return MinuteMetrics(name, START, requests, errors, latency, usd, replicas)


def inject(
    name: str, requests: np.ndarray, rng: np.random.Generator, per_week: int
) -> tuple[np.ndarray, dict[str, np.ndarray], list[Injected]]:
    """Place ``per_week`` anomalies (each kind in turn) after day 0, at least 4 h apart."""
    minutes = len(requests)
    effects = {k: np.ones(minutes) for k in ("spend", "latency", "errors")}
    traffic = np.ones(minutes)
    kinds = list(KINDS)
    count = max(1, round(per_week * (minutes - DAY) / WEEK))
    slots = np.sort(rng.choice(np.arange(DAY, minutes - 420, 240 + 360), size=count, replace=False))
    labels = []
    for i, start in enumerate(slots + rng.integers(0, 120, size=count)):
        kind = kinds[(i + int(rng.integers(0, len(kinds)))) % len(kinds)]
        stop = int(start) + KINDS[kind][2]
        _apply(kind, int(start), stop, traffic, effects)
        labels.append(Injected(name, kind, int(start), stop))
    extra = rng.poisson(requests * (traffic - 1.0)).astype(np.float64)  # added arrivals, only where injected
    return requests + extra, effects, labels


def _apply(kind: str, start: int, stop: int, traffic: np.ndarray, effects: dict[str, np.ndarray]) -> None:
    span = slice(start, stop)
    if kind == "traffic ×3 spike":
        traffic[span] = 3.0
    elif kind == "traffic +30 % shift":
        traffic[span] = 1.3
    elif kind == "spend +30 % shift":
        effects["spend"][span] = 1.3
    elif kind.startswith("spend drift"):
        effects["spend"][span] = 1.0 + 0.6 * np.arange(stop - start) / (stop - start)
    elif kind.startswith("latency"):
        effects["latency"][span] = 1.5
    else:
        effects["errors"][span] = 25.0  # 0.2 % × 25 = 5 %


def actionable(label: Injected, clean: MinuteMetrics) -> bool:
    """Whether the injected effect clears the detector's own floors, judged on the clean series."""
    span = slice(label.start, label.stop)
    requests = clean.requests[span]
    rules = DEFAULT_RULES
    if label.kind.startswith("traffic"):
        factor = 3.0 if "×3" in label.kind else 1.3
        return float(requests.mean()) * (factor - 1.0) >= rules["traffic"].floor
    if label.kind.startswith("spend"):
        rise = 0.3  # the shift is +30 %; the drift to +60 % averages +30 % over its 6 h
        return float(clean.usd[span].mean()) * rise * DAY >= rules["cost"].floor
    if label.kind.startswith("latency"):
        latency = clean.latency_ms_p95[span]
        has = np.isfinite(latency)
        return has.mean() >= 0.5 and float(np.median(latency[has])) * 0.5 >= rules["latency"].floor
    extra = (0.05 - 0.002) * float(requests.sum())
    return extra >= rules["errors"].min_events


def ordinary(label: Injected, clean: MinuteMetrics) -> bool:
    """Whether a traffic anomaly's injected level (its mean over its span) stays under the busiest
    span of the same length in the clean series' past day: such a rise is the function's own weather."""
    if not label.kind.startswith("traffic"):
        return False
    length = label.stop - label.start
    factor = 3.0 if "×3" in label.kind else 1.3
    level = float(clean.requests[label.start : label.stop].mean()) * factor
    past = clean.requests[max(label.start - DAY, 0) : label.start]
    spans = np.convolve(past, np.ones(length) / length, mode="valid")
    return bool(spans.size and level <= float(spans.max()))


# -- scoring -----------------------------------------------------------------------------------
def score(alerts: list[Alert], labels: list[Injected]) -> tuple[int, int, dict[int, int]]:
    """(true alerts, false alerts, first matching delay per label index on its own series)."""
    true = false = 0
    delays: dict[int, int] = {}
    for alert in alerts:
        matched = [
            i
            for i, lab in enumerate(labels)
            if lab.deployment == alert.deployment
            and alert.series in KINDS[lab.kind][1]
            and lab.start <= alert.minute <= lab.stop + MATCH_TAIL_MIN
        ]
        true, false = (true + 1, false) if matched else (true, false + 1)
        for i in matched:
            if alert.series == KINDS[labels[i].kind][0]:
                delays.setdefault(i, alert.minute - labels[i].start)
    return true, false, delays


def evaluated(alerts: list[Alert]) -> list[Alert]:
    """Alerts from day 1 on: day 0 is the 24 h of history."""
    return [a for a in alerts if a.minute >= DAY]


@dataclass(frozen=True)
class Outcome:
    threshold: float
    labels: list[Injected]
    alerts: list[Alert]
    clean_false: int
    weeks: float
    elapsed_s: float

    def measures(self) -> dict[str, float]:
        """precision, recall (all / above the floors), false alerts per week, step delays."""
        true, false, delays = score(self.alerts, self.labels)
        acting = [i for i, lab in enumerate(self.labels) if lab.actionable]
        steps = [d for i, d in delays.items() if not self.labels[i].kind.startswith("spend drift")]
        return {
            "precision": true / max(true + false, 1),
            "recall": len(delays) / max(len(self.labels), 1),
            "recall_actionable": sum(i in delays for i in acting) / max(len(acting), 1),
            "actionable": float(len(acting)),
            "false_clean": self.clean_false / self.weeks,
            "false_with": false / self.weeks,
            "delay_median": float(np.median(steps)) if steps else float("nan"),
            "delay_p90": float(np.percentile(steps, 90)) if steps else float("nan"),
        }


def evaluate(normal: dict[str, np.ndarray], threshold: float, seed: int, per_week: int) -> Outcome:
    """One detector setting over every deployment: a clean run and one with injected anomalies."""
    rng = np.random.default_rng(seed + 1)  # the same injections and noise for every setting
    config = DetectorConfig(threshold=threshold)
    labels: list[Injected] = []
    alerts: list[Alert] = []
    clean_false = 0
    started = time.perf_counter()
    for name, requests in normal.items():
        ones = {k: np.ones(len(requests)) for k in ("spend", "latency", "errors")}
        clean = metrics_for(name, requests, ones, rng)
        clean_false += len(evaluated(detect(clean, config)))
        traffic, effects, injected = inject(name, requests, rng, per_week)
        labels += [
            replace(label, actionable=actionable(label, clean), ordinary=ordinary(label, clean))
            for label in injected
        ]
        alerts += evaluated(detect(metrics_for(name, traffic, effects, rng), config))
    weeks = sum((len(r) - DAY) / WEEK for r in normal.values())
    return Outcome(threshold, labels, alerts, clean_false, weeks, time.perf_counter() - started)


def normal_traffic(seed: int, deployments: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return azure_weeks(load_trace(SAMPLE), deployments, rng) | llm_series()


def run(args: argparse.Namespace) -> str:
    normal = normal_traffic(args.seed, args.deployments)
    outcomes = [evaluate(normal, t, args.seed, args.per_week) for t in [args.threshold, *args.also]]
    checks = [
        evaluate(normal_traffic(seed, args.deployments), args.threshold, seed, args.per_week)
        for seed in args.check_seeds
    ]
    return report(normal, outcomes, checks, args)


def report(
    normal: dict[str, np.ndarray], outcomes: list[Outcome], checks: list[Outcome], args: argparse.Namespace
) -> str:
    main = outcomes[0]
    m = main.measures()
    _, _, delays = score(main.alerts, main.labels)
    lines = [
        "## Anomaly detection (bench/anomaly.py)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine_line()}; seed {args.seed} (thresholds were "
        f"tuned on seed 0). {len(normal)} deployments ({sum(n.startswith('azure') for n in normal)} busy "
        f"Azure Functions 2019 rows, {sum(n.startswith('llm') for n in normal)} Azure LLM 2023 services), "
        f"{main.weeks:.1f} deployment-weeks after 24 h of history, {len(main.labels)} injected anomalies, "
        f"{m['actionable']:.0f} of them above the detector's floors; detection took {main.elapsed_s:.1f} s "
        f"(CUSUM threshold {main.threshold:g}). Normal traffic is real; latency, errors and spend are "
        "modelled from it (the script's docstring says how, and how 8 days were made from the sample's one).",
        "",
        "| measure | result | goal | met |",
        "|---|---:|---:|---|",
        _row("precision", f"{m['precision']:.3f}", "≥ 0.9", m["precision"] >= GOALS["precision"]),
        _row(
            "recall, anomalies above the floors (worth a person's time)",
            f"{m['recall_actionable']:.3f}",
            "≥ 0.9",
            m["recall_actionable"] >= GOALS["recall"],
        ),
        _row("recall, every injected anomaly", f"{m['recall']:.3f}", "≥ 0.9", m["recall"] >= GOALS["recall"]),
        _row(
            "false alerts per deployment-week, no anomalies injected",
            f"{m['false_clean']:.2f}",
            "≤ 1",
            m["false_clean"] <= GOALS["false_per_week"],
        ),
        _row(
            "false alerts per deployment-week, with anomalies",
            f"{m['false_with']:.2f}",
            "≤ 1",
            m["false_with"] <= GOALS["false_per_week"],
        ),
        _row(
            "detection delay of steps (not drifts), median / p90 (min)",
            f"{m['delay_median']:.0f} / {m['delay_p90']:.0f}",
            "≤ 10",
            m["delay_median"] <= GOALS["delay_min"],
        ),
        "",
        per_kind(main.labels, delays),
        "",
        sensitivity(
            [main, *checks],
            f"The same detector on other seeds (other functions, other injections; threshold {main.threshold:g}; "
            "no setting was tuned on any of them):",
            "seed",
            [f"{seed}" for seed in [args.seed, *args.check_seeds]],
        ),
        "",
        sensitivity(
            outcomes,
            f"Seed {args.seed} at other CUSUM thresholds (log-likelihood ratio that makes an alert):",
            "threshold",
            [f"{o.threshold:g}" for o in outcomes],
        ),
        "",
        reading(m),
    ]
    return "\n".join(lines)


def reading(m: dict[str, float]) -> str:
    met = all(
        (
            m["precision"] >= GOALS["precision"],
            m["recall_actionable"] >= GOALS["recall"],
            m["false_clean"] <= GOALS["false_per_week"],
            m["delay_median"] <= GOALS["delay_min"],
        )
    )
    verdict = (
        "the goals are met for anomalies above the floors"
        if met
        else "some goals are not met (marked **no** above)"
    )
    return (
        f"Reading it: {verdict}. Recall over every injected anomaly stays lower because many fall "
        "on quiet functions (a few requests a minute): a +30 % traffic shift there is under the "
        "5 requests/min floor, a 5 % error burst is two or three failures, a p95 from three requests "
        "a minute is mostly noise — a detector that paged on those would page on noise too. Most "
        "traffic anomalies still missed above the floors fall on functions that burst by nature (the "
        "bracketed count: their own past day reached the injected level unaided), where a 10-minute ×3 "
        "or a +30 % half hour is what they do anyway; the detector excuses a burst only near the hour "
        "it came yesterday, so the rest are within the noise it learnt. Drifts are found once their rise "
        "is distinct from the recent baseline, typically 1–2 h into a 6-h drift; their delays are in "
        "the per-kind table, not in the step delay."
    )


def sensitivity(outcomes: list[Outcome], title: str, column: str, labels: list[str]) -> str:
    lines = [
        title,
        "",
        f"| {column} | precision | recall above floors | recall, all | false alerts / deployment-week (clean) "
        "| step delay median (min) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for label, outcome in zip(labels, outcomes, strict=True):
        m = outcome.measures()
        lines.append(
            f"| {label} | {m['precision']:.3f} | {m['recall_actionable']:.3f} | {m['recall']:.3f} "
            f"| {m['false_clean']:.2f} | {m['delay_median']:.0f} |"
        )
    return "\n".join(lines)


def _row(name: str, value: str, goal: str, met: bool) -> str:
    return f"| {name} | {value} | {goal} | {'yes' if met else '**no**'} |"


def per_kind(labels: list[Injected], delays: dict[int, int]) -> str:
    lines = [
        "| injected anomaly | count | above floors | found (all) | recall above floors | "
        "missed above floors (level seen in its past day) | delay median / max (min) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in KINDS:
        index = [i for i, lab in enumerate(labels) if lab.kind == kind]
        acting = [i for i in index if labels[i].actionable]
        found = [delays[i] for i in index if i in delays]
        missed = [i for i in acting if i not in delays]
        ordinary_missed = sum(labels[i].ordinary for i in missed)
        delay = f"{np.median(found):.0f} / {max(found)}" if found else "—"
        recall = sum(i in delays for i in acting) / max(len(acting), 1)
        lines.append(
            f"| {kind} | {len(index)} | {len(acting)} | {len(found)} | {recall:.2f} "
            f"| {len(missed)} ({ordinary_missed}) | {delay} |"
        )
    first_day = [i for i, lab in enumerate(labels) if lab.start < 2 * DAY and lab.actionable]
    found_first = sum(i in delays for i in first_day)
    lines += [
        "",
        f"Anomalies above the floors in the first day after the 24 h of history: {found_first} of "
        f"{len(first_day)} found. In brackets: missed traffic anomalies whose injected level the "
        "function had reached on its own, over a span as long, in the past day (its bursts look the same).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=30, help="busy Azure Functions rows to use")
    parser.add_argument("--per-week", type=int, default=12, help="anomalies injected per deployment-week")
    parser.add_argument("--seed", type=int, default=1, help="seed 0 is the one the thresholds were tuned on")
    parser.add_argument(
        "--threshold", type=float, default=DetectorConfig().threshold, help="CUSUM threshold to report"
    )
    parser.add_argument(
        "--also", type=float, nargs="*", default=[8.0, 14.0], help="other thresholds to report"
    )
    parser.add_argument(
        "--check-seeds",
        type=int,
        nargs="*",
        default=[2],
        help="other seeds reported as a check (never tuned on)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    if not (SAMPLE / "invocations_per_minute.csv").is_file():
        raise SystemExit(
            f"needs the Azure Functions 2019 sample in {SAMPLE} (shared data beside the checkout)"
        )
    markdown = run(args)
    print(markdown)
    if not args.no_write:
        write_section("anomaly", markdown)


if __name__ == "__main__":
    main()
