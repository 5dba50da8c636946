"""Read a price snapshot folder (the CSVs described in ``../shared/data/pricing/README.md``).

Rules from that README, applied here:

* GCP rows with an empty ``instance_type`` price only the accelerator; a GPU VM costs the machine row
  plus the accelerator row in the same zone (:func:`attach_gcp_accelerators`). Every N1 host that
  GCP lets carry a GPU sold in that zone is paired with it (``n1-highmem-4+T4x1``), within GCP's
  vCPU/memory limits per GPU count.
* Accelerator names become canonical (``catalog.accelerators``): AWS's ``t4`` is ``T4``, its
  ``a100`` is A100-40GB or A100-80GB by the GPU memory column.
* AWS on-demand prices cover us-east-1 only. AWS spot comes as savings % + interruption bucket per
  region (Spot Advisor); a spot price is derived only where both an on-demand price and a Linux
  savings % exist, and such rows are marked ``derived=True``.
* Dates differ between files; each file gets its own ``observed_at`` (from ``as_of.json`` in the
  folder when present, else the dates the README gives for the shared snapshot).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from thrifty.catalog.accelerators import (
    N1_GPU_HOST,
    N1_GPU_LIMITS,
    canonical_accelerator,
    gcp_paired_type,
    n1_pairing_allowed,
)
from thrifty.catalog.schema import INTERRUPTION_BUCKETS, validate
from thrifty.errors import CatalogError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

#: dates of the shared snapshot (README "Sources"); a folder may override them with as_of.json
DEFAULT_AS_OF = {
    "gcp": "2026-05-20T04:50:00Z",
    "azure": "2026-05-20T04:50:00Z",
    "aws": "2026-07-20T13:44:30Z",
    "aws_spot_advisor": "2025-06-28T00:00:00Z",
}

#: GCP machine types that come with a fixed accelerator: family regex → (accelerator, count rule)
_GCP_BUNDLED = (
    (re.compile(r"^a2-highgpu-(\d+)g$"), "A100"),
    (re.compile(r"^a2-megagpu-(\d+)g$"), "A100"),
    (re.compile(r"^a2-ultragpu-(\d+)g$"), "A100-80GB"),
    (re.compile(r"^a3-(?:highgpu|edgegpu)-(\d+)g(?:-nolssd)?$"), "H100"),
    (re.compile(r"^a3-megagpu-(\d+)g$"), "H100-MEGA"),
    (re.compile(r"^a3-ultragpu-(\d+)g(?:-nolssd)?$"), "H200"),
    (re.compile(r"^a4-highgpu-(\d+)g$"), "B200"),
)
#: g2-standard-N carries a fixed number of L4 GPUs
_G2_L4_COUNT = {4: 1, 8: 1, 12: 1, 16: 1, 32: 1, 24: 2, 48: 4, 96: 8}


def read_snapshot(folder: Path | str) -> pd.DataFrame:
    """Every price row of a snapshot folder as one validated price table."""
    import pandas as pd

    root = Path(folder).expanduser()
    if not root.is_dir():
        raise CatalogError(
            f"price snapshot folder {root} does not exist",
            hint="pass a folder with aws.csv / gcp.csv / azure.csv (THRIFTY_PRICE_SNAPSHOT or --snapshot)",
        )
    as_of = _as_of(root)
    parts = []
    if (root / "gcp.csv").exists():
        parts.append(read_gcp(root / "gcp.csv", as_of["gcp"]))
    if (root / "azure.csv").exists():
        parts.append(read_azure(root / "azure.csv", as_of["azure"]))
    if (root / "aws.csv").exists():
        advisor = root / "aws_spot_advisor.csv"
        parts.append(read_aws(root / "aws.csv", advisor if advisor.exists() else None, as_of))
    if not parts:
        raise CatalogError(
            f"price snapshot folder {root} has none of aws.csv, gcp.csv, azure.csv",
            hint="point THRIFTY_PRICE_SNAPSHOT at a folder laid out like ../shared/data/pricing",
        )
    return validate(pd.concat(parts, ignore_index=True))


def _as_of(root: Path) -> dict[str, datetime]:
    dates = dict(DEFAULT_AS_OF)
    override = root / "as_of.json"
    if override.exists():
        try:
            dates |= {str(k): str(v) for k, v in json.loads(override.read_text()).items()}
        except (ValueError, AttributeError) as exc:
            raise CatalogError(
                f"{override} is not a JSON object of dates", hint='write e.g. {"gcp": "2026-05-20T00:00:00Z"}'
            ) from exc
    return {name: _utc(value) for name, value in dates.items()}


def _utc(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _read_csv(path: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        return pd.read_csv(path, dtype={"instance_type": str, "zone": str, "accelerator_name": str})
    except (OSError, ValueError) as exc:
        raise CatalogError(f"cannot read price file {path}: {exc}", hint="check the CSV header") from exc


def wide_to_long(wide: pd.DataFrame, provider: str, observed_at: datetime, source: str) -> pd.DataFrame:
    """On-demand + spot columns of a wide snapshot table → one row per price model."""
    import pandas as pd

    base = wide.drop(columns=["ondemand_usd_per_hour", "spot_usd_per_hour"])
    frames = []
    for model, column in (("on_demand", "ondemand_usd_per_hour"), ("spot", "spot_usd_per_hour")):
        part = base.assign(price_model=model, usd_per_hour=wide[column])
        frames.append(part[part["usd_per_hour"].notna()])
    out = pd.concat(frames, ignore_index=True)
    return out.assign(provider=provider, observed_at=observed_at, source=source)


# -- GCP ---------------------------------------------------------------------------------------


def read_gcp(path: Path, observed_at: datetime) -> pd.DataFrame:
    raw = _read_csv(path)
    raw["zone"] = raw["zone"].fillna("")
    combined = attach_gcp_accelerators(raw)
    return wide_to_long(combined, "gcp", observed_at, f"snapshot {path.name} ({observed_at:%Y-%m-%d})")


def attach_gcp_accelerators(raw: pd.DataFrame) -> pd.DataFrame:
    """Machine rows + accelerator-only rows (empty instance_type) → complete VM prices.

    Bundled GPU types (a2/a3/a4/g2) get their fixed accelerator; every valid N1 host + attachable
    GPU pairing of a zone is added as ``n1-highmem-4+T4x1`` (:func:`n1_pairings`). Accelerator rows
    without a matching machine (TPU slices) are dropped. Works on ``zone == ""`` (region-level)
    input too. Names are made canonical last (GCP's H100 and H100-MEGA are priced apart).
    """
    import pandas as pd

    raw = raw.copy()
    raw["accelerator_name"] = raw["accelerator_name"].fillna("")
    raw["accelerator_count"] = raw["accelerator_count"].fillna(0.0)
    machines = raw[raw["instance_type"].fillna("") != ""].copy()
    accels = raw[raw["instance_type"].fillna("") == ""]
    wanted = _gcp_accelerator_for(machines["instance_type"])
    machines["accelerator_name"] = wanted["accelerator_name"].where(
        wanted["accelerator_name"] != "", machines["accelerator_name"]
    )
    machines["accelerator_count"] = wanted["accelerator_count"].where(
        wanted["accelerator_name"] != "", machines["accelerator_count"]
    )
    machines = pd.concat([machines, n1_pairings(machines, accels)], ignore_index=True)
    priced = _add_accelerator_prices(machines, accels)
    priced["accelerator_name"] = priced["accelerator_name"].map(canonical_accelerator)
    return priced


def _gcp_accelerator_for(instance_types: pd.Series) -> pd.DataFrame:
    import pandas as pd

    names, counts = [], []
    for instance_type in instance_types:
        name, count = "", 0.0
        for pattern, accelerator in _GCP_BUNDLED:
            match = pattern.match(instance_type)
            if match:
                name, count = accelerator, float(match.group(1))
        g2 = re.match(r"^g2-standard-(\d+)$", instance_type)
        if g2:
            name, count = "L4", float(_G2_L4_COUNT.get(int(g2.group(1)), 1))
        names.append(name)
        counts.append(count)
    return pd.DataFrame({"accelerator_name": names, "accelerator_count": counts}, index=instance_types.index)


def n1_pairings(machines: pd.DataFrame, accels: pd.DataFrame) -> pd.DataFrame:
    """Every N1 host × attachable GPU count sold in the same zone, within GCP's limits.

    The machine rows keep their own prices; :func:`_add_accelerator_prices` adds the GPUs'.
    """
    import pandas as pd

    hosts = machines[machines["instance_type"].str.match(N1_GPU_HOST.pattern)]
    hosts = hosts.drop(columns=["accelerator_name", "accelerator_count"])
    names = accels["accelerator_name"].map(canonical_accelerator)
    sold = accels.assign(accelerator_name=names)[names.isin(list(N1_GPU_LIMITS))]
    sold = sold[["region", "zone", "accelerator_name", "accelerator_count"]].drop_duplicates()
    pairs = hosts.merge(sold, on=["region", "zone"], how="inner")
    allowed = [
        n1_pairing_allowed(name, int(count), vcpus, memory)
        for name, count, vcpus, memory in zip(
            pairs["accelerator_name"],
            pairs["accelerator_count"],
            pairs["vcpus"],
            pairs["memory_gib"],
            strict=True,
        )
    ]
    pairs = pairs[pd.Series(allowed, index=pairs.index, dtype=bool)].copy()
    pairs["instance_type"] = [
        gcp_paired_type(machine, name, int(count))
        for machine, name, count in zip(
            pairs["instance_type"], pairs["accelerator_name"], pairs["accelerator_count"], strict=True
        )
    ]
    return pairs


def _add_accelerator_prices(machines: pd.DataFrame, accels: pd.DataFrame) -> pd.DataFrame:
    """Machine price + accelerator price in the same region/zone; GPU machines without one drop out."""
    keys = ["region", "zone", "accelerator_name", "accelerator_count"]
    prices = accels[[*keys, "ondemand_usd_per_hour", "spot_usd_per_hour", "accelerator_memory_mib"]]
    prices = prices.drop_duplicates(subset=keys).rename(
        columns={
            "ondemand_usd_per_hour": "acc_od",
            "spot_usd_per_hour": "acc_spot",
            "accelerator_memory_mib": "acc_mem",
        }
    )
    merged = machines.merge(prices, on=keys, how="left")
    has_gpu = merged["accelerator_name"] != ""
    missing = has_gpu & merged["acc_od"].isna()
    if missing.any():
        log.debug("dropping %d GCP GPU machine rows with no accelerator price in their zone", missing.sum())
    merged = merged[~missing].copy()
    gpu = merged["accelerator_name"] != ""
    merged.loc[gpu, "ondemand_usd_per_hour"] += merged.loc[gpu, "acc_od"]
    # spot VM = spot machine + spot accelerator; unknown if either is missing
    merged.loc[gpu, "spot_usd_per_hour"] = merged.loc[gpu, "spot_usd_per_hour"] + merged.loc[gpu, "acc_spot"]
    return merged.drop(columns=["acc_od", "acc_spot", "acc_mem"])


# -- Azure -------------------------------------------------------------------------------------


def read_azure(path: Path, observed_at: datetime) -> pd.DataFrame:
    raw = _read_csv(path)
    raw["zone"] = ""
    return wide_to_long(raw, "azure", observed_at, f"snapshot {path.name} ({observed_at:%Y-%m-%d})")


# -- AWS ---------------------------------------------------------------------------------------


def read_aws(path: Path, advisor_path: Path | None, as_of: dict[str, datetime]) -> pd.DataFrame:
    """us-east-1 on-demand rows, plus spot rows derived from the Spot Advisor savings %."""
    import pandas as pd

    raw = _read_csv(path)
    raw["zone"] = ""
    raw["accelerator_name"] = [
        canonical_accelerator(name, memory)
        for name, memory in zip(
            raw["accelerator_name"].fillna(""), raw["accelerator_memory_mib"], strict=True
        )
    ]
    on_demand = raw[raw["ondemand_usd_per_hour"].notna()].drop(
        columns=["spot_usd_per_hour", "spot_savings_pct_vs_ondemand", "spot_interruption_bucket"]
    )
    day = as_of["aws"]
    od = on_demand.rename(columns={"ondemand_usd_per_hour": "usd_per_hour"}).assign(
        provider="aws",
        price_model="on_demand",
        observed_at=day,
        source=f"snapshot {path.name} ({day:%Y-%m-%d})",
    )
    if advisor_path is None:
        return od
    spot = derive_aws_spot(od, pd.read_csv(advisor_path), as_of["aws_spot_advisor"], advisor_path.name)
    return pd.concat([od, spot], ignore_index=True)


def derive_aws_spot(
    on_demand: pd.DataFrame, advisor: pd.DataFrame, advisor_at: datetime, advisor_name: str
) -> pd.DataFrame:
    """Spot ≈ on-demand × (1 − savings/100) where both exist (same type, region, Linux); derived=True."""
    linux = advisor[advisor["os"] == "Linux"]
    linux = linux[linux["interruption_bucket"].isin(INTERRUPTION_BUCKETS)]
    linux = linux[["instance_type", "region", "interruption_bucket", "savings_pct_vs_ondemand"]]
    merged = on_demand.merge(linux, on=["instance_type", "region"], how="inner")
    merged = merged[merged["savings_pct_vs_ondemand"].notna()]
    newest = max(advisor_at, *merged["observed_at"]) if len(merged) else advisor_at
    od_day = on_demand["observed_at"].iloc[0] if len(on_demand) else advisor_at
    return merged.assign(
        usd_per_hour=merged["usd_per_hour"] * (1.0 - merged["savings_pct_vs_ondemand"] / 100.0),
        price_model="spot",
        derived=True,
        observed_at=newest,
        source=(
            f"derived: on-demand ({od_day:%Y-%m-%d}) x (1 - Spot Advisor savings %) "
            f"({advisor_name}, {advisor_at:%Y-%m-%d})"
        ),
    ).drop(columns=["savings_pct_vs_ondemand"])
