"""Cross-cloud artifacts: copy a variant to the store its target reads from, and price that copy.

A cloud VM fetches its variant (and tokenizer) from the target's artifact store
(``BootConfig.artifact_store_url``). When the variant lives elsewhere — this machine's folder, or
another bucket — ``copy_for_deploy`` copies the blobs there at deploy time, checked by sha256 (the
store is content-addressed, so a second deploy copies nothing).

Any backend to any backend: a local folder, S3, GCS (``gs://``) or Azure Blob (``az://``). A GCP
or Azure target configured with its own cloud's store (``artifact_bucket`` /
``artifact_storage_account`` on its block) gets the variant copied there, so its VMs read it with
their service account / managed identity; each copy carries what its egress costs.

Egress prices: the shared price snapshot has no data-transfer rows, so ``EGRESS_USD_PER_GB`` is a
constant table, the first internet-egress tier of each cloud's public price page (see
``EGRESS_SOURCE``). Moving bytes *into* a cloud is free on all three; the source cloud bills the
egress. A local folder as source is this machine's own uplink: priced at 0 (not a cloud bill).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from thrifty.artifacts.base import ArtifactStore

if TYPE_CHECKING:
    from thrifty.artifacts.bearer import BearerSource

#: USD per GB sent from a cloud to the internet (another cloud), first paid tier, per source cloud
EGRESS_USD_PER_GB: dict[str, float] = {"aws": 0.09, "gcp": 0.12, "azure": 0.087}
EGRESS_SOURCE = (
    "public price pages, first internet-egress tier: AWS EC2/S3 'Data Transfer OUT to Internet' "
    "first 10 TB/month $0.09/GB (us-east-1); GCP Premium Tier internet egress 0–1 TiB/month "
    "$0.12/GB (North America); Azure 'Internet egress, Microsoft premium global network' first "
    "10 TB/month $0.087/GB (North America). Constants, not live prices: refresh them when they change."
)
GB = 1e9
#: GiB a month of internet egress each cloud does not bill, per account (all services and regions
#: together); the spend ledger applies it to the month's responses of the deployments on that cloud
EGRESS_FREE_GIB_PER_MONTH: dict[str, float] = {"aws": 100.0, "gcp": 0.0, "azure": 100.0}
EGRESS_FREE_SOURCE = (
    "AWS: 100 GB/month of data transfer out to the internet free, aggregated over all services and "
    "regions (AWS Free Tier expansion, 1 Dec 2021; EC2 On-Demand pricing, 'Data Transfer'); Azure: "
    "first 100 GB/month of internet egress free (Bandwidth pricing page); GCP: none on the Premium "
    "Tier whose rate is used here (the 200 GB/month free allowance is Standard Tier's). The ledger "
    "bills per GiB (2^30 bytes: GCP's pages say GiB; AWS's and Azure's transfer 'GB' is read the same "
    "way); the plan's one-time artifact copy keeps its own figure (GB = 10^9 bytes)."
)


def store_cloud(url: str) -> str:
    """Which cloud bills egress for a store URL: ``s3://`` → aws, a local folder → local."""
    if url.startswith("s3://"):
        return "aws"
    if url.startswith("gs://"):
        return "gcp"
    if url.startswith(("az://", "abfs://")) or ".blob.core.windows.net" in url:
        return "azure"
    return "local"


def egress_usd(source_cloud: str, target_cloud: str, size_bytes: int) -> float:
    """What moving ``size_bytes`` from ``source_cloud`` to ``target_cloud`` costs (0 within a cloud)."""
    if source_cloud == target_cloud or source_cloud == "local":
        return 0.0
    return float(EGRESS_USD_PER_GB.get(source_cloud, 0.0) * size_bytes / GB)


@dataclass(frozen=True)
class Copied:
    """One blob's trip to the target store (``copied`` False: it was there already)."""

    sha256: str
    size_bytes: int
    from_url: str
    to_url: str
    copied: bool
    #: what the copy's egress costs (0 when nothing moved, within a cloud, or from this machine)
    egress_usd: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def copy_for_deploy(source: ArtifactStore, target: ArtifactStore, sha256s: Iterable[str]) -> list[Copied]:
    """Put every blob of ``sha256s`` into ``target`` (from ``source``, verified on fetch) unless it is
    there already. The same store on both sides copies nothing; nor does a blob ``source`` does not
    hold (it was put in the target's store some other way: the VM checks its sha256 at boot)."""
    out = []
    for sha in dict.fromkeys(sha256s):
        if source.url == target.url or not source.exists(sha) or target.exists(sha):
            out.append(Copied(sha, 0, source.url, target.url, copied=False))
            continue
        stored = target.put_file(source.fetch(sha))
        usd = egress_usd(store_cloud(source.url), store_cloud(target.url), stored.size_bytes)
        out.append(Copied(sha, stored.size_bytes, source.url, target.url, copied=True, egress_usd=usd))
    return out


def copy_to_target_store(
    sha256s: Iterable[str],
    target_url: str,
    *,
    target_endpoint_url: str | None = None,
    target_credentials: BearerSource | None = None,
) -> list[Copied]:
    """Copy blobs from thrifty's own store (``THRIFTY_ARTIFACT_STORE_URL``) to a target's store;
    ``target_credentials``: the target provider's own (a GCS / Azure store), never a chain."""
    from thrifty.artifacts.base import open_store
    from thrifty.settings import get_settings

    settings = get_settings()
    source = open_store(settings.resolved_artifact_store_url, s3_endpoint_url=settings.s3_endpoint_url)
    target = open_store(target_url, endpoint_url=target_endpoint_url, credentials=target_credentials)
    return copy_for_deploy(source, target, [s for s in sha256s if s])
