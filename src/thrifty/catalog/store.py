"""Price history in the registry, and the choice of which price table a command uses.

* :func:`save_prices` validates a fetched table and appends it to ``price_quotes`` (history is never
  overwritten; a bad table raises before anything is written).
* :func:`read_prices` returns the newest row per (provider, region, zone, instance_type, price_model)
  as of a time.
* :func:`load_catalog` picks the table: registry history if it has rows, else the snapshot folder
  (``THRIFTY_PRICE_SNAPSHOT`` / ``settings.price_snapshot``), else the embedded reference table.
  Serverless rows are added when the chosen table has none.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from thrifty.catalog.schema import COLUMNS, empty_table, to_records, validate

if TYPE_CHECKING:
    import pandas as pd

    from thrifty.registry import Registry
    from thrifty.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Catalog:
    """A price table and where it came from (``registry`` | ``snapshot:<dir>`` | ``reference``)."""

    table: pd.DataFrame
    origin: str


def save_prices(registry: Registry, table: pd.DataFrame) -> int:
    """Validate ``table`` and append it to the registry's price history; returns rows written."""
    checked = validate(table)
    if checked.empty:
        return 0
    return registry.append_price_quotes(to_records(checked))


def read_prices(registry: Registry, as_of: datetime | None = None) -> pd.DataFrame:
    """The newest price row per key at ``as_of`` (default: now), as a price table."""
    import pandas as pd

    rows = registry.latest_price_rows(COLUMNS, as_of)
    if not rows:
        return empty_table()
    return validate(pd.DataFrame(rows, columns=list(COLUMNS)))


def load_catalog(
    settings: Settings, registry: Registry | None = None, as_of: datetime | None = None
) -> Catalog:
    """Registry history if any, else the snapshot folder, else the reference table (+ serverless rows)."""
    from thrifty.catalog.reference import reference_table
    from thrifty.catalog.snapshot import read_snapshot

    if registry is not None and registry.count_price_quotes() > 0:
        table = read_prices(registry, as_of)
        if not table.empty:
            return _with_serverless(Catalog(table, "registry"))
    if settings.price_snapshot is not None:
        folder = settings.price_snapshot
        return _with_serverless(Catalog(read_snapshot(folder), f"snapshot:{folder}"))
    return _with_serverless(Catalog(reference_table(), "reference"))


def _with_serverless(catalog: Catalog) -> Catalog:
    import pandas as pd

    from thrifty.catalog.serverless import serverless_table

    if (catalog.table["price_model"] == "serverless").any():
        return catalog
    table = pd.concat([catalog.table, serverless_table()], ignore_index=True)
    return Catalog(table, catalog.origin)
