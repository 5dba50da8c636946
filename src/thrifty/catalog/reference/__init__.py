"""The embedded reference price table (hand-curated list prices shipped with the package)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from thrifty.catalog.schema import validate

if TYPE_CHECKING:
    import pandas as pd

REFERENCE_CSV = Path(__file__).with_name("reference_prices.csv")


def reference_table() -> pd.DataFrame:
    """Reference list prices (tens of rows, each with its as_of date), labelled as such in ``source``."""
    import pandas as pd

    raw = pd.read_csv(REFERENCE_CSV, comment="#", dtype={"zone": str, "accelerator_name": str})
    raw["derived"] = raw["derived"].astype(str).str.lower() == "true"
    raw["observed_at"] = pd.to_datetime(raw["as_of"], utc=True)
    raw["source"] = "reference list price (as_of " + raw["as_of"].astype(str) + ")"
    return validate(raw.drop(columns=["as_of"]))
