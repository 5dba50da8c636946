"""A T4 plan deployed on each cloud: the planner's chosen GPU offer reaches every provider as sold.

AWS runs on moto; Azure and GCP on their replay doubles (``replayed``). The plan is made from the
embedded reference table with a variant benchmarked on a T4, and each provider's cheapest T4
candidate goes through ``spec_from_candidate`` → ``deploy`` unchanged.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.providers.conftest import TEST_BOOT
from tests.unit.providers.replay import ReplayServer
from tests.unit.providers.test_azure import FakeArm, StaticToken, _target
from tests.unit.providers.test_gcp import PROJECT, FakeGce
from thrifty.catalog.reference import reference_table
from thrifty.planner.decision import plan
from thrifty.planner.types import Slo, Traffic, VariantPerf, perf_frame
from thrifty.providers.base import PriceModel
from thrifty.providers.specs import spec_from_candidate


@pytest.fixture(scope="module")
def t4_candidates() -> dict[str, dict[str, Any]]:
    """The cheapest on-demand T4 candidate per cloud for a variant benchmarked on a T4."""
    measured = VariantPerf(
        variant_name="minilm-fp16", batch_size=1, threads=1, latency_ms_p50=3.0, latency_ms_p95=4.0,
        throughput_rps=300.0, status="accepted", fidelity_score=0.999, bench_accelerator="Tesla T4",
    )  # fmt: skip
    decision = plan(perf_frame([measured]), reference_table(), Slo(20, accelerator="T4"), Traffic(rps=50))
    cheapest: dict[str, dict[str, Any]] = {}
    for candidate in decision.candidates:
        if candidate["option"] == "on_demand":
            cheapest.setdefault(candidate["provider"], candidate)
    return cheapest


def _spec(candidate: dict[str, Any], artifact_sha256: str = "ab" * 32) -> Any:
    return spec_from_candidate(
        candidate, name="minilm", model_name="all-MiniLM-L6-v2", variant_id=7, artifact_sha256=artifact_sha256
    )


def test_every_cloud_offers_a_t4(t4_candidates: dict[str, dict[str, Any]]) -> None:
    types = {provider: c["instance_type"] for provider, c in t4_candidates.items()}
    assert types == {"aws": "g4dn.xlarge", "azure": "Standard_NC4as_T4_v3", "gcp": "n1-standard-4+T4x1"}
    assert {c["accelerator_name"] for c in t4_candidates.values()} == {"T4"}


def test_aws_launches_the_gpu_type_as_sold(
    t4_candidates: dict[str, dict[str, Any]], aws: Any, s3_artifact: tuple[str, str]
) -> None:
    spec = _spec(t4_candidates["aws"], s3_artifact[1])
    assert spec.price_model is PriceModel.ON_DEMAND
    aws.deploy(spec)
    reservations = aws.ec2.describe_instances()["Reservations"]
    assert {i["InstanceType"] for r in reservations for i in r["Instances"]} == {"g4dn.xlarge"}


@pytest.mark.replayed
def test_azure_creates_the_gpu_size_as_sold_replayed(
    t4_candidates: dict[str, dict[str, Any]], replay_server: ReplayServer
) -> None:
    from thrifty.providers.azure import AzureProvider

    arm = FakeArm(replay_server)
    AzureProvider(_target(arm), credential=StaticToken()).deploy(_spec(t4_candidates["azure"]))
    sizes = {vm["properties"]["hardwareProfile"]["vmSize"] for vm in arm.vms.values()}
    locations = {vm["location"] for vm in arm.vms.values()}
    assert (sizes, locations) == ({"Standard_NC4as_T4_v3"}, {"eastus"})


@pytest.mark.replayed
def test_gcp_attaches_the_t4_in_the_planned_zone_replayed(
    t4_candidates: dict[str, dict[str, Any]], replay_server: ReplayServer
) -> None:
    from google.auth.credentials import AnonymousCredentials

    from thrifty.providers.gcp import GcpProvider, GcpTarget

    gce = FakeGce(replay_server)
    gce.accelerator_types["us-central1-a"] = {"nvidia-tesla-t4"}
    target = GcpTarget(project=PROJECT, api_endpoint=gce.url, poll_s=0.01, boot=TEST_BOOT)
    GcpProvider(target, credentials=AnonymousCredentials()).deploy(_spec(t4_candidates["gcp"]))
    (inst,) = gce.instances["us-central1-a"].values()
    assert inst["machineType"] == "zones/us-central1-a/machineTypes/n1-standard-4"
    assert inst["guestAccelerators"][0]["acceleratorType"].endswith("/acceleratorTypes/nvidia-tesla-t4")
    assert inst["scheduling"]["onHostMaintenance"] == "TERMINATE"
