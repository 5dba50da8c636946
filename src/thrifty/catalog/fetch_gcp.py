"""GCE prices from the Cloud Billing Catalog API (plain httpx + an API key; no credential chain).

``GET {base}/v1/services/6F81-5844-456A/skus?key=...`` pages with ``nextPageToken``. Each SKU has
``category.usageType`` (``OnDemand``; ``Preemptible`` = spot; commitments are skipped), a
``description`` naming the machine family ("N2 Instance Core running in Americas", "Spot Preemptible
N2 Instance Ram running in ...", "Nvidia L4 GPU running in ..."), ``serviceRegions``, and
``pricingInfo[0].pricingExpression.tieredRates[0].unitPrice`` as ``units`` + ``nanos``/1e9 per
``usageUnit`` (``h`` for a vCPU-hour or GPU-hour, ``GiBy.h`` for a GiB-hour).

The catalog prices vCPUs and RAM, not machine types, so a VM price is composed for each known shape:
``vcpus × core price + memory_gib × ram price`` of its family in its region. Shapes come from
:data:`DEFAULT_SHAPES` (standard sizes of common families) or a ``shapes`` table. GPUs become
accelerator rows that are added to the machine rows like the snapshot's GCP rows.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from thrifty.catalog._http import get_json
from thrifty.catalog.schema import empty_table, validate
from thrifty.errors import CatalogError

if TYPE_CHECKING:
    import pandas as pd

    from thrifty.settings import Settings

log = logging.getLogger(__name__)

GCP_BILLING_URL = "https://cloudbilling.googleapis.com"
COMPUTE_SERVICE = "services/6F81-5844-456A"
_MAX_PAGES = 1000
_CPU_RAM = re.compile(
    r"^(?:Spot Preemptible )?(?P<family>[A-Z][A-Z0-9]*)(?: AMD| Intel| Arm)?(?: Predefined)?"
    r" Instance (?P<kind>Core|Ram) running in "
)
_GPU = re.compile(r"^Nvidia (?:Tesla )?(?P<gpu>[A-Z0-9]+(?: 80GB)?) GPU (?:running in|attached to Spot)")
_GPU_NAMES = {"A100 80GB": "A100-80GB", "H100 80GB": "H100"}
#: GiB per vCPU by (family, kind); n1 has its own ratios
_RATIOS = {"standard": 4.0, "highcpu": 1.0, "highmem": 8.0}
_N1_RATIOS = {"standard": 3.75, "highcpu": 0.9, "highmem": 6.5}


def _default_shapes() -> list[tuple[str, float, float]]:
    shapes: list[tuple[str, float, float]] = []
    for family in ("n1", "n2", "n2d", "e2", "c2", "c3"):
        ratios = _N1_RATIOS if family == "n1" else _RATIOS
        for kind, gib_per_vcpu in ratios.items():
            if family in ("c2",) and kind != "standard":
                continue
            for vcpus in (2, 4, 8, 16, 32):
                shapes.append((f"{family}-{kind}-{vcpus}", float(vcpus), vcpus * gib_per_vcpu))
    shapes += [(f"g2-standard-{v}", float(v), 4.0 * v) for v in (4, 8, 12, 16, 24, 32, 48, 96)]
    shapes += [(f"a2-highgpu-{g}g", 12.0 * g, 85.0 * g) for g in (1, 2, 4, 8)]
    return shapes


#: (instance_type, vcpus, memory_gib) priced by the live fetcher when no shapes table is given
DEFAULT_SHAPES = tuple(_default_shapes())


def fetch_gcp(
    api_key: str,
    *,
    base_url: str = GCP_BILLING_URL,
    client: httpx.Client | None = None,
    timeout_s: float = 30.0,
    regions: tuple[str, ...] | None = None,
    backoff_s: float = 1.0,
) -> pd.DataFrame:
    """GCE on-demand + spot VM prices composed from the billing catalog, as a validated price table."""
    if not api_key:
        raise CatalogError(
            "no API key for the GCP Cloud Billing Catalog",
            hint="set THRIFTY_GCP_API_KEY (an API key with the Cloud Billing API enabled)",
        )
    owned = client is None
    http = client or httpx.Client(timeout=timeout_s)
    try:
        unit_prices = [row for sku in iter_skus(http, base_url, api_key, backoff_s) for row in parse_sku(sku)]
    finally:
        if owned:
            http.close()
    source = f"GCP Cloud Billing Catalog {base_url}/v1/{COMPUTE_SERVICE}/skus"
    return compose_prices(unit_prices, datetime.now(UTC), source, regions)


def iter_skus(client: httpx.Client, base_url: str, api_key: str, backoff_s: float = 1.0) -> Iterator[Any]:
    url = f"{base_url.rstrip('/')}/v1/{COMPUTE_SERVICE}/skus"
    token = ""
    for _ in range(_MAX_PAGES):
        params = {"key": api_key, "currencyCode": "USD", "pageSize": "5000"}
        if token:
            params["pageToken"] = token
        page = get_json(client, url, params, backoff_s=backoff_s)
        yield from page.get("skus") or []
        token = str(page.get("nextPageToken") or "")
        if not token:
            return
    log.warning("stopped after %d pages of %s", _MAX_PAGES, url)


def unit_price_usd(sku: dict[str, Any]) -> float | None:
    """units + nanos/1e9 of the first tier of the first pricing info; None when absent."""
    try:
        rate = sku["pricingInfo"][0]["pricingExpression"]["tieredRates"][0]["unitPrice"]
        return float(rate.get("units") or 0) + float(rate.get("nanos") or 0) / 1e9
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def parse_sku(sku: Any) -> list[dict[str, Any]]:
    """One SKU → unit-price rows {kind: core|ram|gpu, family/accelerator, price_model, region, usd}."""
    if not isinstance(sku, dict):
        return []
    category = sku.get("category") or {}
    usage = category.get("usageType")
    if category.get("resourceFamily") != "Compute" or usage not in ("OnDemand", "Preemptible"):
        return []
    price = unit_price_usd(sku)
    description = str(sku.get("description", ""))
    kind, name = _classify(description)
    if price is None or kind is None:
        return []
    model = "spot" if usage == "Preemptible" else "on_demand"
    regions = [r for r in sku.get("serviceRegions") or [] if isinstance(r, str)]
    return [{"kind": kind, "name": name, "price_model": model, "region": r, "usd": price} for r in regions]


def _classify(description: str) -> tuple[str | None, str]:
    if "Custom" in description or "Sole Tenancy" in description:
        return None, ""
    cpu_ram = _CPU_RAM.match(description)
    if cpu_ram:
        return cpu_ram.group("kind").lower(), cpu_ram.group("family").lower()
    gpu = _GPU.match(description)
    if gpu:
        name = gpu.group("gpu")
        return "gpu", _GPU_NAMES.get(name, name)
    return None, ""


def compose_prices(
    unit_prices: list[dict[str, Any]],
    observed_at: datetime,
    source: str,
    regions: tuple[str, ...] | None = None,
    shapes: tuple[tuple[str, float, float], ...] = DEFAULT_SHAPES,
) -> pd.DataFrame:
    """Unit prices → machine rows (vCPU + RAM) + accelerator rows → complete VM price table."""
    import pandas as pd

    from thrifty.catalog.snapshot import attach_gcp_accelerators, wide_to_long

    units = pd.DataFrame(unit_prices, columns=["kind", "name", "price_model", "region", "usd"])
    if regions:
        units = units[units["region"].isin(regions)]
    wide = units.pivot_table(
        index=["kind", "name", "region"], columns="price_model", values="usd", aggfunc="min"
    )
    wide = wide.reindex(columns=["on_demand", "spot"]).reset_index()
    machines = _machine_rows(wide, shapes)
    accels = _accelerator_rows(wide)
    raw = pd.concat([machines, accels], ignore_index=True)
    if raw.empty:
        return empty_table()
    raw["zone"] = ""
    return validate(wide_to_long(attach_gcp_accelerators(raw), "gcp", observed_at, source))


def _machine_rows(wide: pd.DataFrame, shapes: tuple[tuple[str, float, float], ...]) -> pd.DataFrame:
    import pandas as pd

    core = wide[wide["kind"] == "core"].drop(columns=["kind"])
    ram = wide[wide["kind"] == "ram"].drop(columns=["kind"])
    joined = core.merge(ram, on=["name", "region"], suffixes=("_core", "_ram"), how="inner")
    shape_frame = pd.DataFrame(shapes, columns=["instance_type", "vcpus", "memory_gib"])
    shape_frame["name"] = shape_frame["instance_type"].str.split("-").str[0]
    rows = shape_frame.merge(joined, on="name", how="inner")
    for model, column in (("on_demand", "ondemand_usd_per_hour"), ("spot", "spot_usd_per_hour")):
        rows[column] = rows["vcpus"] * rows[f"{model}_core"] + rows["memory_gib"] * rows[f"{model}_ram"]
    keep = ["instance_type", "vcpus", "memory_gib", "region", "ondemand_usd_per_hour", "spot_usd_per_hour"]
    return rows[keep].assign(accelerator_name="", accelerator_count=0.0, accelerator_memory_mib=float("nan"))


def _accelerator_rows(wide: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    gpus = wide[wide["kind"] == "gpu"]
    frames = []
    for count in (1, 2, 4, 8):
        frames.append(
            pd.DataFrame(
                {
                    "instance_type": "",
                    "accelerator_name": gpus["name"],
                    "accelerator_count": float(count),
                    "accelerator_memory_mib": float("nan"),
                    "region": gpus["region"],
                    "ondemand_usd_per_hour": gpus["on_demand"] * count,
                    "spot_usd_per_hour": gpus["spot"] * count,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def fetch_live(settings: Settings) -> pd.DataFrame:
    """The GCP target's price fetcher: Cloud Billing Catalog (``price_api_urls['gcp_billing']`` overrides)."""
    key = settings.gcp_api_key.get_secret_value() if settings.gcp_api_key else ""
    url = settings.price_api_urls.get("gcp_billing", GCP_BILLING_URL)
    return fetch_gcp(key, base_url=url, timeout_s=settings.price_fetch_timeout_s)
