"""Serverless price rows: AWS Lambda, Google Cloud Run, Azure Functions.

Each row is one *configuration* (memory size, and the vCPUs that size gets) so the planner can check
that a variant fits and estimate its duration. Unit prices are the providers' published list prices
(free tiers ignored):

* AWS Lambda (x86, us-east-1 tier 1): $0.0000166667 per GB-second, $0.20 per million requests;
  1,769 MB of memory = 1 vCPU.
* Cloud Run (request-based billing, tier 1): $0.000024 per vCPU-second + $0.0000025 per GiB-second,
  $0.40 per million requests. The table has one unit price per GiB-second, so the vCPU price is
  folded in for the fixed shape of the row: (vcpus × 0.000024 + memory_gib × 0.0000025) / memory_gib.
* Azure Functions (Consumption plan): $0.000016 per GB-second, $0.20 per million executions;
  at most 1.5 GB and (assumed) one vCPU per instance. No thrifty target runs Functions.
* Azure Container Apps (Consumption, active usage): $0.000024 per vCPU-second + $0.000003 per
  GiB-second, $0.40 per million requests; folded into GiB-seconds like Cloud Run. The
  ``azure-container-apps`` target runs these rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from thrifty.catalog.schema import validate

if TYPE_CHECKING:
    import pandas as pd

SERVERLESS_AS_OF = datetime(2026, 5, 1, tzinfo=UTC)
_LAMBDA_USD_PER_GB_SECOND = 0.0000166667
_RUN_USD_PER_VCPU_SECOND = 0.000024
_RUN_USD_PER_GIB_SECOND = 0.0000025
_FUNCTIONS_USD_PER_GB_SECOND = 0.000016
_APPS_USD_PER_VCPU_SECOND = 0.000024
_APPS_USD_PER_GIB_SECOND = 0.000003

#: (provider, instance_type, vcpus, memory_gib, usd_per_gb_second, usd_per_million_requests)
_CONFIGS: tuple[tuple[str, str, float, float, float, float], ...] = (
    ("aws", "lambda-1769mb", 1.0, 1769 / 1024, _LAMBDA_USD_PER_GB_SECOND, 0.20),
    ("aws", "lambda-3538mb", 2.0, 3538 / 1024, _LAMBDA_USD_PER_GB_SECOND, 0.20),
    (
        "gcp",
        "cloud-run-1vcpu-2gib",
        1.0,
        2.0,
        (_RUN_USD_PER_VCPU_SECOND + 2 * _RUN_USD_PER_GIB_SECOND) / 2,
        0.40,
    ),
    (
        "gcp",
        "cloud-run-2vcpu-4gib",
        2.0,
        4.0,
        (2 * _RUN_USD_PER_VCPU_SECOND + 4 * _RUN_USD_PER_GIB_SECOND) / 4,
        0.40,
    ),
    ("azure", "functions-consumption-1.5gb", 1.0, 1.5, _FUNCTIONS_USD_PER_GB_SECOND, 0.20),
    (
        "azure",
        "container-apps-1vcpu-2gib",
        1.0,
        2.0,
        (_APPS_USD_PER_VCPU_SECOND + 2 * _APPS_USD_PER_GIB_SECOND) / 2,
        0.40,
    ),
)
_REGIONS = {
    "aws": ("us-east-1", "eu-west-1"),
    "gcp": ("us-central1", "europe-west4"),
    "azure": ("eastus", "westeurope"),
}
_SOURCES = {
    "aws": "reference list price: AWS Lambda pricing page",
    "gcp": "reference list price: Cloud Run pricing page (vCPU-second folded into GiB-second)",
    "azure": "reference list price: Azure Functions / Container Apps pricing pages (Consumption)",
}


def serverless_table(observed_at: datetime = SERVERLESS_AS_OF) -> pd.DataFrame:
    """The serverless rows (same unit prices in each listed region) as a validated price table."""
    import pandas as pd

    rows = []
    for provider, instance_type, vcpus, memory_gib, usd_per_gb_second, usd_per_million in _CONFIGS:
        for region in _REGIONS[provider]:
            rows.append(
                {
                    "provider": provider,
                    "region": region,
                    "instance_type": instance_type,
                    "vcpus": vcpus,
                    "memory_gib": memory_gib,
                    "price_model": "serverless",
                    "usd_per_gb_second": usd_per_gb_second,
                    "usd_per_million_requests": usd_per_million,
                    "observed_at": observed_at,
                    "source": f"{_SOURCES[provider]} ({observed_at:%Y-%m-%d})",
                }
            )
    return validate(pd.DataFrame(rows))
