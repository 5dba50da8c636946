"""Test configuration shared by every test.

The environment below is set before anything imports boto3, google or azure SDKs, so no test can
reach a credential chain or the instance-metadata address: AWS gets fake keys and metadata is off,
Hugging Face is offline, Prefect analytics are off.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

_SAFE_ENV = {
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GOOGLE_APPLICATION_CREDENTIALS": os.devnull,
    "NO_PROXY": "127.0.0.1,localhost,::1",
    "no_proxy": "127.0.0.1,localhost,::1",
}
os.environ.update(_SAFE_ENV)
for _var in ("AWS_PROFILE", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID"):
    os.environ.pop(_var, None)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def thrifty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh THRIFTY_HOME (SQLite registry + local artifact folder) for one test."""
    from thrifty import runtime

    home = tmp_path / "thrifty-home"
    monkeypatch.setenv("THRIFTY_HOME", str(home))
    for var in ("THRIFTY_DATABASE_URL", "THRIFTY_ARTIFACT_STORE_URL", "THRIFTY_PRICE_SNAPSHOT"):
        monkeypatch.delenv(var, raising=False)
    runtime.reset()
    yield home
    runtime.reset()


def _postgres_url() -> str | None:
    url = os.environ.get("THRIFTY_TEST_POSTGRES_URL")
    if not url and os.environ.get("THRIFTY_REQUIRE_POSTGRES") == "1":
        pytest.fail("THRIFTY_REQUIRE_POSTGRES=1 but THRIFTY_TEST_POSTGRES_URL is not set")
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on SQLite and on the PostgreSQL server `make test` starts."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    admin_url = _postgres_url()
    if admin_url is None:
        pytest.skip("no PostgreSQL: THRIFTY_TEST_POSTGRES_URL is unset (make test starts one)")
    from sqlalchemy import create_engine, text

    name = f"thrifty_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    from thrifty.registry.db import forget_upgrades

    forget_upgrades()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def registry(database_url: str) -> Iterator[object]:
    from thrifty.registry import Registry

    reg = Registry.from_url(database_url)
    yield reg
    reg.engine.dispose()


@pytest.fixture
def local_store(tmp_path: Path) -> object:
    from thrifty.artifacts.local import LocalStore

    return LocalStore(tmp_path / "artifacts")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's real HTTP server on loopback; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is missing (it sits beside the checkout)")
    return SHARED_DATA
