"""The one-time cost of copying a variant to the cloud a candidate runs on, in the decision record.

Each candidate gets ``artifact_transfer_usd``: the variant's size × the internet-egress price of the
cloud its artifact store is in (``artifacts.transfer.EGRESS_USD_PER_GB``, a documented constant
table: the price snapshot has no transfer rows), 0 when the store is in the candidate's cloud or on
this machine. It is paid once, at deploy, so it is shown beside ``usd_per_month`` and does not
change the ranking; the record's ``artifact_transfer`` says where the rates come from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from thrifty.artifacts.transfer import EGRESS_SOURCE, EGRESS_USD_PER_GB, egress_usd, store_cloud

if TYPE_CHECKING:
    from thrifty.planner.decision import Decision
    from thrifty.registry import Registry


def price_transfer(decision: Decision, sizes_bytes: Mapping[str, int], store_url: str) -> None:
    """Annotate ``decision`` (chosen and candidates) with the copy cost of each candidate's variant."""
    source = store_cloud(store_url)
    for candidate in [decision.chosen, *decision.candidates]:
        size = int(sizes_bytes.get(str(candidate.get("variant")), 0))
        candidate["artifact_transfer_usd"] = egress_usd(source, str(candidate.get("provider")), size)
    decision.artifact_transfer = {
        "source_store": store_url,
        "source_cloud": source,
        "variant_size_bytes": {k: int(v) for k, v in sizes_bytes.items()},
        "usd_per_gb": dict(EGRESS_USD_PER_GB),
        "rates_source": EGRESS_SOURCE,
        "note": "one-time, paid at deploy when the target cloud is not the store's; not in usd_per_month",
    }


def variant_sizes(registry: Registry, model_version_id: int) -> dict[str, int]:
    """Variant name → artifact size in bytes, for one model version."""
    return {v.name: int(v.artifact.size_bytes) for v in registry.list_variants(model_version_id)}


def transfer_lines(record: Mapping[str, Any]) -> list[str]:
    """What ``thrifty plan explain`` says about the copy (nothing for records made before it)."""
    info, chosen = record.get("artifact_transfer"), record["chosen"]
    if not info:
        return []
    usd = float(chosen.get("artifact_transfer_usd") or 0.0)
    where = f"{info['source_cloud']} store {info['source_store']}"
    if usd == 0.0:
        return [f"  artifact: served from {where}; no egress to pay for {chosen['provider']}"]
    size_gb = info["variant_size_bytes"].get(str(chosen["variant"]), 0) / 1e9
    rate = info["usd_per_gb"][info["source_cloud"]]
    return [
        f"  artifact copy {where} → {chosen['provider']}: {size_gb:.3f} GB × ${rate}/GB = ${usd:.4f} once"
    ]
