"""The one normalized price table every source produces and every query reads.

A price table is a pandas DataFrame with exactly the columns of :data:`COLUMNS`, one row per
(provider, region, zone, instance_type, price_model) observation:

=========================  ======================================================================
column                     meaning
=========================  ======================================================================
provider                   ``aws`` | ``gcp`` | ``azure``
region, zone               cloud region; zone ("" where the price is region-level)
instance_type              VM type (``m5.xlarge``), or a serverless configuration (``lambda-2048mb``)
vcpus, memory_gib          shape of one instance (NaN where the source does not say)
accelerator_name/_count    ``T4`` × 1, ``""`` × 0 for CPU-only; names are canonical (catalog.accelerators)
arch                       ``amd64`` | ``arm64``
price_model                ``on_demand`` | ``spot`` | ``serverless``
usd_per_hour               price of one instance-hour (NaN for serverless)
usd_per_gb_second          serverless: price of one GiB-second of configured memory
usd_per_million_requests   serverless: price per million invocations
interruption_bucket        spot only: ``<5%`` … ``>20%`` (AWS Spot Advisor), ``""`` unknown
derived                    True where the price was computed, not quoted (AWS spot from savings %)
observed_at                when the price was true (timezone-aware UTC)
source                     where the row came from (file + date, API + endpoint, reference list)
=========================  ======================================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from thrifty.errors import CatalogError
from thrifty.targets import clouds

if TYPE_CHECKING:
    import pandas as pd

PRICE_MODELS = ("on_demand", "spot", "serverless")
ARCHES = ("amd64", "arm64")
#: Spot Advisor interruption-frequency buckets, best first (index = the feed's ``r``)
INTERRUPTION_BUCKETS = ("<5%", "5-10%", "10-15%", "15-20%", ">20%")

STRING_COLUMNS = (
    "provider",
    "region",
    "zone",
    "instance_type",
    "accelerator_name",
    "arch",
    "price_model",
    "interruption_bucket",
    "source",
)
FLOAT_COLUMNS = (
    "vcpus",
    "memory_gib",
    "accelerator_count",
    "usd_per_hour",
    "usd_per_gb_second",
    "usd_per_million_requests",
)
COLUMNS = (
    "provider",
    "region",
    "zone",
    "instance_type",
    "vcpus",
    "memory_gib",
    "accelerator_name",
    "accelerator_count",
    "arch",
    "price_model",
    "usd_per_hour",
    "usd_per_gb_second",
    "usd_per_million_requests",
    "interruption_bucket",
    "derived",
    "observed_at",
    "source",
)
KEY = ("provider", "region", "zone", "instance_type", "price_model")


def empty_table() -> pd.DataFrame:
    """A price table with no rows and the right dtypes."""
    import pandas as pd

    return normalize(pd.DataFrame({column: [] for column in COLUMNS}))


def normalize(frame: pd.DataFrame) -> pd.DataFrame:
    """Coerce dtypes and fill defaults; missing optional columns are added, extra ones dropped."""
    import pandas as pd

    out = frame.copy()
    defaults: dict[str, Any] = {"zone": "", "accelerator_name": "", "arch": "amd64"}
    defaults |= {"interruption_bucket": "", "accelerator_count": 0.0, "derived": False}
    for column in COLUMNS:
        if column not in out.columns:
            if column not in defaults and column not in FLOAT_COLUMNS:
                raise CatalogError(
                    f"price table lacks the column {column!r}",
                    hint=f"a price table needs the columns {', '.join(COLUMNS)}",
                )
            out[column] = defaults.get(column, float("nan"))
    for column in STRING_COLUMNS:
        out[column] = out[column].fillna(defaults.get(column, "")).astype(object).map(str)
    for column in FLOAT_COLUMNS:
        out[column] = pd.to_numeric(out[column], errors="coerce").astype("float64")
    out["accelerator_count"] = out["accelerator_count"].fillna(0.0)
    out["accelerator_name"] = _canonical_names(out["accelerator_name"])
    out["derived"] = out["derived"].fillna(False).astype(bool)
    out["observed_at"] = pd.to_datetime(out["observed_at"], utc=True)
    return out.loc[:, list(COLUMNS)].reset_index(drop=True)


def _canonical_names(names: pd.Series) -> pd.Series:
    """Every accelerator spelling → its canonical name (computed once per distinct spelling)."""
    from thrifty.catalog.accelerators import canonical_accelerator

    distinct = {name: canonical_accelerator(name) for name in names.unique()}
    return names.map(distinct)


def validate(frame: pd.DataFrame) -> pd.DataFrame:
    """Normalize ``frame`` and check every row; raises CatalogError naming the first bad rows."""
    table = normalize(frame)
    _check_allowed(table, "provider", tuple(clouds()))
    _check_allowed(table, "price_model", PRICE_MODELS)
    _check_allowed(table, "arch", ARCHES)
    _check_allowed(table, "interruption_bucket", ("", *INTERRUPTION_BUCKETS))
    _check_prices(table)
    if table["observed_at"].isna().any():
        _fail(table, table["observed_at"].isna(), "has no observed_at time")
    if (table["instance_type"] == "").any() or (table["region"] == "").any():
        _fail(table, (table["instance_type"] == "") | (table["region"] == ""), "lacks region/instance_type")
    return table


def _check_allowed(table: pd.DataFrame, column: str, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    bad = ~table[column].isin(allowed)
    if bad.any():
        _fail(table, bad, f"has {column} outside {allowed}")


def _check_prices(table: pd.DataFrame) -> None:
    serverless = table["price_model"] == "serverless"
    hourly = table["usd_per_hour"]
    bad_hourly = ~serverless & ~(hourly >= 0)  # NaN fails too
    if bad_hourly.any():
        _fail(table, bad_hourly, "has a missing or negative usd_per_hour")
    unit = table["usd_per_gb_second"]
    per_request = table["usd_per_million_requests"]
    bad_serverless = serverless & ~((unit >= 0) & (per_request >= 0))
    if bad_serverless.any():
        _fail(table, bad_serverless, "is serverless without usd_per_gb_second/usd_per_million_requests")


def _fail(table: pd.DataFrame, mask: Any, problem: str) -> None:
    rows = table.loc[mask, list(KEY)].head(3).to_dict("records")
    count = int(mask.sum())
    raise CatalogError(
        f"{count} price row(s) {problem}, e.g. {rows}",
        hint="fix the source rows (or the fetcher that produced them); nothing was stored",
    )


def to_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain-Python dicts (float, str, bool, datetime; NaN → None) for the registry."""
    records: list[dict[str, Any]] = []
    for row in table.to_dict("records"):
        record: dict[str, Any] = {}
        for column in COLUMNS:
            value = row[column]
            if column in FLOAT_COLUMNS:
                value = None if value != value else float(value)
            elif column == "observed_at":
                value = value.to_pydatetime()
            elif column == "derived":
                value = bool(value)
            else:
                value = str(value)
            record[column] = value
        records.append(record)
    return records


def bucket_rank(buckets: Any) -> Any:
    """Index of each interruption bucket (0 best … 4 worst); unknown ("") ranks as the worst."""
    ranks = {label: index for index, label in enumerate(INTERRUPTION_BUCKETS)}
    return buckets.map(lambda label: ranks.get(label, len(INTERRUPTION_BUCKETS) - 1))
