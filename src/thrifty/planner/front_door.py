"""The price of the always-on front door that a VM plan needs.

Instances hibernate; the gateway that holds requests and wakes them cannot. A plan that chose a
VM offer therefore carries one more line: the cheapest on-demand instance in the same provider
and region with at least ``FRONT_DOOR_MIN_VCPUS`` vCPUs and ``FRONT_DOOR_MIN_MEMORY_GIB`` of memory
(a proxy needs little: an event loop and keep-alive connections), kept on all month. Serverless
offers need none: the platform's own endpoint holds and wakes. The front door may also run on a
machine the user already keeps on (the control plane): the line is then an upper bound.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

FRONT_DOOR_MIN_VCPUS = 2.0
FRONT_DOOR_MIN_MEMORY_GIB = 1.0


def front_door_cost(
    catalog: pd.DataFrame, chosen: dict[str, Any], hours_per_month: float
) -> dict[str, Any] | None:
    """The front door's instance and price for ``chosen`` (a plan's winner); None for serverless."""
    if chosen.get("price_model") == "serverless":
        return None
    rows = catalog[
        (catalog["provider"] == chosen.get("provider"))
        & (catalog["region"] == chosen.get("region"))
        & (catalog["price_model"] == "on_demand")
        & (catalog["accelerator_count"].fillna(0) == 0)
        & (catalog["vcpus"] >= FRONT_DOOR_MIN_VCPUS)
        & (catalog["memory_gib"] >= FRONT_DOOR_MIN_MEMORY_GIB)
        & catalog["usd_per_hour"].notna()
    ]
    if rows.empty:
        return {
            "instance_type": None,
            "usd_per_hour": None,
            "usd_per_month": None,
            "note": f"no on-demand instance of ≥ {FRONT_DOOR_MIN_VCPUS:g} vCPUs in "
            f"{chosen.get('provider')} {chosen.get('region')} in the catalog: front door not priced",
        }
    row = rows.sort_values(["usd_per_hour", "instance_type"]).iloc[0]
    usd_per_hour = float(row["usd_per_hour"])
    return {
        "instance_type": str(row["instance_type"]),
        "usd_per_hour": usd_per_hour,
        "usd_per_month": usd_per_hour * hours_per_month,
        "note": f"always-on gateway: the cheapest on-demand ≥ {FRONT_DOOR_MIN_VCPUS:g} vCPU / "
        f"{FRONT_DOOR_MIN_MEMORY_GIB:g} GiB instance in the plan's region (an upper bound when "
        "the gateway runs on a machine that is on anyway)",
    }


def with_front_door(chosen: dict[str, Any], front_door: dict[str, Any] | None) -> dict[str, Any]:
    """``chosen`` plus ``usd_per_month_with_front_door`` (its monthly cost + the front door's)."""
    month = chosen.get("usd_per_month")
    extra = (front_door or {}).get("usd_per_month")
    if front_door is None or not isinstance(month, int | float) or math.isnan(float(month)):
        return chosen
    return chosen | {"usd_per_month_with_front_door": float(month) + float(extra or 0.0)}
