"""Settings from the environment (prefix ``THRIFTY_``) with embedded defaults.

Everything lives under ``THRIFTY_HOME`` (default ``~/.thrifty``) unless told otherwise:
the SQLite registry, the artifact folder, logs and pid files.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="THRIFTY_", extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path.home() / ".thrifty",
        description="Folder for the registry, artifacts, logs and pid files.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the registry; default: SQLite file under the home.",
    )
    artifact_store_url: str | None = Field(
        default=None,
        description="Local folder or s3://bucket/prefix; default: <home>/artifacts.",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3 endpoint override (moto, MinIO, a VPC endpoint)."
    )
    runtime_image: str = Field(
        default="",
        description="The serving-runtime image by digest that `thrifty deploy` starts on cloud VMs "
        "(`thrifty image build --push REGISTRY` prints it).",
    )
    control_plane_cidrs: list[str] = Field(
        default_factory=list,
        description="The control plane's own egress range(s): the default source range of every cloud "
        "deployment's network rule when its target sets no allowed_cidrs (never 0.0.0.0/0 by default).",
    )
    front_door_url: str | None = Field(
        default=None,
        description="The front door's URL as cloud VMs reach it (never 127.0.0.1): where a spot VM's "
        "watcher posts its interruption notice; a VM target block's front_door_url overrides it.",
    )
    front_door_listen: str | None = Field(
        default=None,
        description="HOST:PORT where the front door also serves HTTPS (its own certificate, pinned by "
        "the VMs' watchers; every request but health checks authenticated) for cloud VMs and remote "
        "clients; empty: loopback only. 0.0.0.0 / [::] are refused unless "
        "THRIFTY_FRONT_DOOR_LISTEN_ALL_INTERFACES=true.",
    )
    front_door_listen_all_interfaces: bool = Field(
        default=False,
        description="Allow THRIFTY_FRONT_DOOR_LISTEN on every interface (0.0.0.0 / [::]): say so only "
        "where a firewall limits who reaches the port.",
    )
    front_door_sha256: str | None = Field(
        default=None,
        description="The front door certificate's sha256 the VMs pin; default: the certificate this "
        "machine's front door serves (THRIFTY_HOME/secrets/front-door/).",
    )
    max_model_bytes: int = Field(
        default=4 * 1024**3, description="Ingest refuses model files above this size."
    )
    price_snapshot: Path | None = Field(
        default=None, description="Folder of price CSVs (snapshot) used instead of the reference table."
    )
    api_tokens: list[SecretStr] = Field(
        default_factory=list,
        description="Bearer tokens accepted by the inference server and gateway; none = loopback only.",
    )
    resolve: list[str] = Field(
        default_factory=list,
        description="Connect to a deployment's host elsewhere, as curl's --resolve: HOST:PORT:ADDRESS "
        "(HOST may be *), e.g. a tunnel's local port; the URL and the pinned certificate stay as they are.",
    )
    # -- catalog (issue 3: price catalog and planner) ----------------------------------------
    gcp_api_key: SecretStr | None = Field(
        default=None, description="API key for the GCP Cloud Billing Catalog (`thrifty prices refresh`)."
    )
    price_fetch_timeout_s: float = Field(
        default=30.0, description="Timeout of one HTTP call of the live price fetchers."
    )
    price_api_urls: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Endpoint overrides of the live price APIs (a proxy, a VPC endpoint, a local replay): keys "
            "aws_pricing, aws_ec2, spot_advisor, azure_prices, gcp_billing."
        ),
    )
    # -- end catalog ---------------------------------------------------------------------------
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8470

    # -- serving (issue 8: src/thrifty/serving, providers/local.py) ---------------------------
    serving_max_body_bytes: int = Field(
        default=16 * 1024 * 1024, description="Inference requests above this size get 413."
    )
    serving_max_batch_size: int = Field(default=32, description="Most rows run in one onnxruntime call.")
    serving_max_queue_delay_ms: float = Field(
        default=0.0, description="How long a short batch waits for more requests (0 = never waits)."
    )
    gateway_wake_timeout_s: float = Field(
        default=30.0, description="A request for a hibernated model gets 504 if no replica is ready by then."
    )
    gateway_warm_pool_size: int = Field(default=1, description="Pre-started replica workers kept ready.")

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'registry.db'}"

    @property
    def resolved_artifact_store_url(self) -> str:
        return self.artifact_store_url or str(self.home / "artifacts")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call ``get_settings.cache_clear()`` after env changes)."""
    return Settings()
