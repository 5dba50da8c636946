"""AWS EC2 prices: Price List API (on-demand) and spot price history, via boto3.

* On-demand: the ``pricing`` client (its endpoints live in us-east-1 / ap-south-1),
  ``get_products(ServiceCode="AmazonEC2", Filters=[TERM_MATCH ...])``. Each ``PriceList`` element is a
  JSON *string*; the price sits at ``terms.OnDemand.*.priceDimensions.*.pricePerUnit.USD`` (unit
  ``Hrs``). Filters keep shared-tenancy Linux without pre-installed software, capacity "Used".
  The Price List counts GPUs but does not name them: the name comes from the instance family
  (``catalog.accelerators.AWS_FAMILIES``: g4dn → T4, g5 → A10G, ...).
* Spot: ``ec2.describe_spot_price_history(ProductDescriptions=["Linux/UNIX"], StartTime=now)`` per
  region; the newest price per (zone, type) is kept. Shapes come from the on-demand rows; the
  interruption bucket from a Spot Advisor feed when one is given.

Reading prices needs no special permission, but boto3 signs requests, so some credentials must be
configured; none are read here beyond what boto3 itself resolves (tests use fake keys).
Throttling and timeouts are retried by botocore (standard mode); what is left becomes CatalogError.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from thrifty.catalog.accelerators import aws_accelerator
from thrifty.catalog.schema import INTERRUPTION_BUCKETS, empty_table, validate
from thrifty.errors import CatalogError

if TYPE_CHECKING:
    import pandas as pd

    from thrifty.settings import Settings

log = logging.getLogger(__name__)

PRICING_REGION = "us-east-1"
_ON_DEMAND_FILTERS = {
    "operatingSystem": "Linux",
    "tenancy": "Shared",
    "preInstalledSw": "NA",
    "capacitystatus": "Used",
    "licenseModel": "No License required",
}


def make_client(
    service: str,
    region: str,
    *,
    endpoint_url: str | None = None,
    timeout_s: float = 30.0,
    max_attempts: int = 5,
) -> Any:
    """A boto3 client with standard-mode retries (throttling, 5xx) and explicit timeouts."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": max_attempts, "mode": "standard"},
        connect_timeout=timeout_s,
        read_timeout=timeout_s,
    )
    factory: Any = boto3.client  # typed overloads want a literal service name
    return factory(service, region_name=region, endpoint_url=endpoint_url, config=config)


def fetch_aws_on_demand(
    region: str = "us-east-1", *, instance_types: Iterable[str] | None = None, client: Any = None
) -> pd.DataFrame:
    """Linux on-demand prices of ``region`` (optionally only ``instance_types``) as a price table."""
    import pandas as pd

    client = client or make_client("pricing", PRICING_REGION)
    filters = [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in _ON_DEMAND_FILTERS.items()]
    filters.append({"Type": "TERM_MATCH", "Field": "regionCode", "Value": region})
    wanted = set(instance_types or [])
    observed_at = datetime.now(UTC)
    items = _call(lambda: _price_list(client, filters), "pricing.get_products")
    if not items:
        raise CatalogError(
            f"AWS pricing.get_products returned no price items for region {region!r}",
            hint="check the region code and the endpoint; the previous prices stay in force",
        )
    rows = []
    for item in items:
        row = parse_price_list_item(item, region)
        if row is not None and (not wanted or row["instance_type"] in wanted):
            rows.append(row | {"observed_at": observed_at, "source": "AWS Price List API get_products"})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return empty_table()
    return validate(frame.sort_values("usd_per_hour").drop_duplicates(["region", "instance_type"]))


def _price_list(client: Any, filters: list[dict[str, str]]) -> list[Any]:
    items: list[Any] = []
    for page in client.get_paginator("get_products").paginate(ServiceCode="AmazonEC2", Filters=filters):
        items.extend(page.get("PriceList") or [])
    return items


def _call(fn: Any, what: str) -> Any:
    """Run a boto3 call; botocore/credential/timeouts errors become CatalogError."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        raise CatalogError(
            f"AWS {what} failed: {code}: {exc}",
            hint="check the credentials/endpoint; the previous prices stay in force",
        ) from exc
    except (BotoCoreError, ValueError) as exc:
        raise CatalogError(
            f"AWS {what} failed: {exc}", hint="check the network/endpoint; the previous prices stay in force"
        ) from exc


def parse_price_list_item(item: str | dict[str, Any], region: str) -> dict[str, Any] | None:
    """One PriceList element (a JSON string, or already decoded) → a price row; None if unusable."""
    try:
        product = json.loads(item) if isinstance(item, str) else item
        attributes = product["product"]["attributes"]
        price = _on_demand_usd_per_hour(product["terms"]["OnDemand"])
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("skipping an unparsable AWS PriceList item: %s", exc)
        return None
    if price is None or "instanceType" not in attributes:
        return None
    return {
        "provider": "aws",
        "region": region,
        "instance_type": attributes["instanceType"],
        "vcpus": _number(attributes.get("vcpu")),
        "memory_gib": _number(str(attributes.get("memory", "")).replace(",", "").split(" ")[0]),
        "accelerator_name": aws_accelerator(attributes["instanceType"]),
        "accelerator_count": _number(attributes.get("gpu")) or 0.0,
        "arch": "arm64" if "arm" in str(attributes.get("processorArchitecture", "")).lower() else "amd64",
        "price_model": "on_demand",
        "usd_per_hour": price,
    }


def _on_demand_usd_per_hour(terms: dict[str, Any]) -> float | None:
    for term in terms.values():
        for dimension in term["priceDimensions"].values():
            if dimension.get("unit") == "Hrs" and "USD" in dimension.get("pricePerUnit", {}):
                value = float(dimension["pricePerUnit"]["USD"])
                return value if value > 0 else None
    return None


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def fetch_aws_spot(
    region: str,
    *,
    instance_types: Iterable[str] | None = None,
    client: Any = None,
    shapes: pd.DataFrame | None = None,
    advisor: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Newest Linux spot price per (zone, type) in ``region`` as a price table."""
    client = client or make_client("ec2", region)
    kwargs: dict[str, Any] = {"ProductDescriptions": ["Linux/UNIX"], "StartTime": datetime.now(UTC)}
    if instance_types:
        kwargs["InstanceTypes"] = list(instance_types)

    def history() -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        for page in client.get_paginator("describe_spot_price_history").paginate(**kwargs):
            entries.extend(page.get("SpotPriceHistory") or [])
        return entries

    return parse_spot_history(_call(history, "ec2.describe_spot_price_history"), region, shapes, advisor)


def parse_spot_history(
    entries: list[dict[str, Any]],
    region: str,
    shapes: pd.DataFrame | None = None,
    advisor: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """SpotPriceHistory entries → newest price per (zone, type), with shapes and buckets joined."""
    import pandas as pd

    frame = pd.DataFrame(entries)
    if frame.empty:
        return empty_table()
    frame = frame[frame["ProductDescription"].astype(str).str.startswith("Linux/UNIX")]
    frame = frame.assign(
        observed_at=pd.to_datetime(frame["Timestamp"], utc=True, format="ISO8601"),
        usd_per_hour=pd.to_numeric(frame["SpotPrice"], errors="coerce"),
    )
    newest = frame.sort_values("observed_at").drop_duplicates(
        ["AvailabilityZone", "InstanceType"], keep="last"
    )
    table = pd.DataFrame(
        {
            "provider": "aws",
            "region": region,
            "zone": newest["AvailabilityZone"],
            "instance_type": newest["InstanceType"],
            "accelerator_name": newest["InstanceType"].map(aws_accelerator),
            "price_model": "spot",
            "usd_per_hour": newest["usd_per_hour"],
            "observed_at": newest["observed_at"],
            "source": "AWS EC2 describe_spot_price_history",
        }
    )
    return validate(_join_shapes_and_buckets(table, shapes, advisor, region))


def _join_shapes_and_buckets(
    table: pd.DataFrame, shapes: pd.DataFrame | None, advisor: pd.DataFrame | None, region: str
) -> pd.DataFrame:
    if shapes is not None and not shapes.empty:
        known = shapes.drop_duplicates("instance_type").set_index("instance_type")
        for column in ("vcpus", "memory_gib", "accelerator_name", "accelerator_count", "arch"):
            if column in known.columns:
                mapped = table["instance_type"].map(known[column])
                table[column] = mapped.where(mapped.notna(), table.get(column))
    if advisor is not None and not advisor.empty:
        here = advisor[(advisor["region"] == region) & (advisor["os"] == "Linux")]
        buckets = here.drop_duplicates("instance_type").set_index("instance_type")["interruption_bucket"]
        table["interruption_bucket"] = table["instance_type"].map(buckets).fillna("")
    return table


def parse_spot_advisor(feed: dict[str, Any]) -> pd.DataFrame:
    """The Spot Advisor feed (``spot_advisor[region][os][type] = {s, r}``) → one row per entry."""
    import pandas as pd

    labels = {r["index"]: r["label"] for r in feed.get("ranges", []) if isinstance(r, dict)}
    rows = []
    for region, by_os in (feed.get("spot_advisor") or {}).items():
        for os_name, by_type in by_os.items():
            for instance_type, entry in by_type.items():
                label = labels.get(entry.get("r"), "")
                rows.append(
                    {
                        "instance_type": instance_type,
                        "region": region,
                        "os": os_name,
                        "interruption_bucket": label if label in INTERRUPTION_BUCKETS else "",
                        "savings_pct_vs_ondemand": float(entry.get("s", float("nan"))),
                    }
                )
    return pd.DataFrame(
        rows, columns=["instance_type", "region", "os", "interruption_bucket", "savings_pct_vs_ondemand"]
    )


SPOT_ADVISOR_URL = "https://spot-bid-advisor.s3.amazonaws.com/spot-advisor-data.json"


def fetch_spot_advisor(
    url: str = SPOT_ADVISOR_URL, *, client: Any = None, timeout_s: float = 30.0, backoff_s: float = 1.0
) -> pd.DataFrame:
    """AWS's public Spot Advisor feed (no credentials): interruption bucket + savings % per type/region."""
    import httpx

    from thrifty.catalog._http import get_json

    owned = client is None
    http = client or httpx.Client(timeout=timeout_s)
    try:
        feed = get_json(http, url, backoff_s=backoff_s)
    finally:
        if owned:
            http.close()
    advisor = parse_spot_advisor(feed)
    if advisor.empty:
        raise CatalogError(f"Spot Advisor feed {url} has no entries", hint="the feed layout may have changed")
    return advisor


def fetch_aws(
    region: str = "us-east-1",
    *,
    instance_types: Iterable[str] | None = None,
    pricing_client: Any = None,
    ec2_client: Any = None,
    advisor: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """On-demand (Price List) + spot (price history) rows of one region."""
    import pandas as pd

    types = list(instance_types) if instance_types else None
    on_demand = fetch_aws_on_demand(region, instance_types=types, client=pricing_client)
    spot = fetch_aws_spot(region, instance_types=types, client=ec2_client, shapes=on_demand, advisor=advisor)
    return validate(pd.concat([on_demand, spot], ignore_index=True))


def fetch_live(settings: Settings) -> pd.DataFrame:
    """The AWS target's price fetcher: Price List + spot history + Spot Advisor buckets.

    ``price_api_urls`` overrides the endpoints (``aws_pricing``, ``aws_ec2``, ``spot_advisor``)."""
    urls, timeout_s = settings.price_api_urls, settings.price_fetch_timeout_s
    pricing = make_client(
        "pricing", PRICING_REGION, endpoint_url=urls.get("aws_pricing"), timeout_s=timeout_s
    )
    ec2 = make_client("ec2", "us-east-1", endpoint_url=urls.get("aws_ec2"), timeout_s=timeout_s)
    try:
        advisor = fetch_spot_advisor(urls.get("spot_advisor", SPOT_ADVISOR_URL), timeout_s=timeout_s)
    except CatalogError as exc:  # buckets are optional: spot rows then carry an unknown bucket
        log.warning("Spot Advisor feed unavailable, spot rows get no interruption bucket: %s", exc)
        advisor = None
    return fetch_aws("us-east-1", pricing_client=pricing, ec2_client=ec2, advisor=advisor)
