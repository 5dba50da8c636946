"""Azure VM prices from the public Retail Prices API (no credentials needed).

``GET https://prices.azure.com/api/retail/prices?$filter=...`` returns ``Items`` and a
``NextPageLink`` (absolute URL, followed until null). Rules:

* only ``type == "Consumption"``, ``unitOfMeasure == "1 Hour"``, USD rows;
* ``productName`` containing "Windows" is skipped (Linux prices only);
* ``skuName`` ending in " Spot" → ``spot``; " Low Priority" (the older Batch/VMSS meter) is skipped;
* the API has no shapes: vCPUs/memory come from the size name for the D/E/F families and from a
  ``shapes`` table (e.g. the snapshot or reference table) otherwise; NaN where unknown.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
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

AZURE_PRICES_URL = "https://prices.azure.com/api/retail/prices"
DEFAULT_REGIONS = ("eastus", "westeurope")
_MAX_PAGES = 500
_GIB_PER_VCPU = {"D": 4.0, "E": 8.0, "F": 2.0}
_SIZE = re.compile(r"^Standard_(?P<family>[DEF])(?P<vcpus>\d+)(?:-\d+)?(?P<features>[a-z]*)_v(?P<gen>\d)$")


def azure_filter(region: str) -> str:
    """The OData ``$filter`` for Linux-or-Windows VM consumption prices in one region."""
    return f"serviceName eq 'Virtual Machines' and priceType eq 'Consumption' and armRegionName eq '{region}'"


def fetch_azure(
    regions: Iterable[str] = DEFAULT_REGIONS,
    *,
    base_url: str = AZURE_PRICES_URL,
    client: httpx.Client | None = None,
    timeout_s: float = 30.0,
    shapes: pd.DataFrame | None = None,
    backoff_s: float = 1.0,
) -> pd.DataFrame:
    """Every Linux VM price (on-demand + spot) in ``regions`` as a validated price table."""
    import pandas as pd

    owned = client is None
    http = client or httpx.Client(timeout=timeout_s, follow_redirects=True)
    observed_at = datetime.now(UTC)
    try:
        rows: list[dict[str, Any]] = []
        for region in regions:
            items = list(iter_items(http, base_url, azure_filter(region), backoff_s=backoff_s))
            if not items:
                raise CatalogError(
                    f"Azure Retail Prices API returned no items for region {region!r}",
                    hint="check the region name (armRegionName, e.g. eastus); the previous prices stay in force",
                )
            rows.extend(parse_items(items, observed_at, f"Azure Retail Prices API {base_url}"))
    finally:
        if owned:
            http.close()
    frame = pd.DataFrame(rows)
    if frame.empty:
        return empty_table()
    frame = _fill_shapes(frame, shapes)
    frame = frame.sort_values("usd_per_hour").drop_duplicates(["region", "instance_type", "price_model"])
    return validate(frame)


def iter_items(
    client: httpx.Client, base_url: str, odata_filter: str, *, backoff_s: float = 1.0
) -> Iterator[Any]:
    """Follow ``NextPageLink`` from the first page; yields the raw ``Items``."""
    url: str | None = base_url
    params: dict[str, Any] | None = {"$filter": odata_filter, "currencyCode": "USD"}
    for _ in range(_MAX_PAGES):
        if url is None:
            return
        page = get_json(client, url, params, backoff_s=backoff_s)
        yield from page.get("Items") or []
        url, params = page.get("NextPageLink") or None, None
    log.warning("stopped after %d pages of %s", _MAX_PAGES, base_url)


def parse_items(items: Iterable[Any], observed_at: datetime, source: str) -> list[dict[str, Any]]:
    rows = []
    for item in items:
        row = parse_item(item)
        if row is not None:
            rows.append(row | {"observed_at": observed_at, "source": source})
    return rows


def parse_item(item: Any) -> dict[str, Any] | None:
    """One retail price item → a row, or None when it is not a Linux VM hourly consumption price."""
    if not isinstance(item, dict):
        return None
    sku_name = str(item.get("skuName", ""))
    if (
        item.get("type") != "Consumption"
        or item.get("unitOfMeasure") != "1 Hour"
        or item.get("currencyCode", "USD") != "USD"
        or "Windows" in str(item.get("productName", ""))
        or sku_name.endswith(" Low Priority")
        or not item.get("armSkuName")
    ):
        return None
    price = item.get("retailPrice", item.get("unitPrice"))
    if not isinstance(price, int | float) or price < 0:
        return None
    return {
        "provider": "azure",
        "region": str(item.get("armRegionName", "")),
        "instance_type": str(item["armSkuName"]),
        "price_model": "spot" if sku_name.endswith(" Spot") else "on_demand",
        "usd_per_hour": float(price),
    }


def shape_from_name(instance_type: str) -> tuple[float, float] | None:
    """(vcpus, memory_gib) for Dsv5/Esv5/Fsv2-style names; None for families we cannot parse."""
    match = _SIZE.match(instance_type)
    if not match:
        return None
    vcpus = float(match.group("vcpus"))
    return vcpus, vcpus * _GIB_PER_VCPU[match.group("family")]


def _fill_shapes(frame: pd.DataFrame, shapes: pd.DataFrame | None) -> pd.DataFrame:
    parsed = frame["instance_type"].map(shape_from_name)
    frame = frame.assign(
        vcpus=parsed.map(lambda s: s[0] if s else float("nan")),
        memory_gib=parsed.map(lambda s: s[1] if s else float("nan")),
    )
    if shapes is None or shapes.empty:
        return frame
    known = shapes[shapes["provider"] == "azure"].drop_duplicates("instance_type").set_index("instance_type")
    for column in ("vcpus", "memory_gib", "accelerator_name", "accelerator_count"):
        if column in known.columns:
            looked_up = frame["instance_type"].map(known[column])
            frame[column] = looked_up.where(looked_up.notna(), frame.get(column))
    return frame


def fetch_live(settings: Settings) -> pd.DataFrame:
    """The Azure target's price fetcher: Retail Prices API (``price_api_urls['azure_prices']`` overrides)."""
    url = settings.price_api_urls.get("azure_prices", AZURE_PRICES_URL)
    return fetch_azure(base_url=url, timeout_s=settings.price_fetch_timeout_s, shapes=known_shapes(settings))


def known_shapes(settings: Settings) -> pd.DataFrame:
    """Sizes the Retail Prices API does not describe (vCPUs, memory, GPU: ``Standard_NC4as_T4_v3``
    is 4 vCPUs + one T4): the snapshot's Azure rows when one is configured, else the reference table's.
    Without them a GPU size would have no accelerator and no shape, and so never be planned."""
    import pandas as pd

    from thrifty.catalog.reference import reference_table
    from thrifty.catalog.snapshot import read_azure

    parts = [reference_table()]
    folder = settings.price_snapshot
    if folder is not None and (folder / "azure.csv").exists():
        parts.insert(0, read_azure(folder / "azure.csv", datetime.now(UTC)))
    return pd.concat(parts, ignore_index=True)
