"""Where a spot VM's watcher posts its interruption notice: the front door's URL, from a VM target
block's ``front_door_url`` or ``THRIFTY_FRONT_DOOR_URL``, checked (a loopback address is refused:
on the VM it is the VM itself), and carried in the user data with the notice token, never the
deployment's token; an https front door's certificate fingerprint beside them (the watcher pins it).
EC2 on moto's real HTTP server."""

from __future__ import annotations

import base64
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.providers.conftest import ALLOWED_CIDRS, RUNTIME_IMAGE
from thrifty.errors import ConfigError
from thrifty.providers.boot import script_of

DOOR = "https://door.example.com"


@pytest.fixture
def env_door(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str | None], None]]:
    """Set (or clear) THRIFTY_FRONT_DOOR_URL for this test; the cached settings follow."""
    from thrifty.settings import get_settings

    def set_door(url: str | None) -> None:
        if url is None:
            monkeypatch.delenv("THRIFTY_FRONT_DOOR_URL", raising=False)
        else:
            monkeypatch.setenv("THRIFTY_FRONT_DOOR_URL", url)
        get_settings.cache_clear()

    set_door(None)
    yield set_door
    monkeypatch.delenv("THRIFTY_FRONT_DOOR_URL", raising=False)
    get_settings.cache_clear()


def aws_block(moto: str, store_url: str, **fields: Any) -> Any:
    from blocks.credentials import AwsCredentials
    from blocks.targets import AwsDeployTarget

    return AwsDeployTarget(
        credentials=AwsCredentials(endpoint_url=moto),
        artifact_store_url=store_url,
        s3_endpoint_url=moto,
        image=RUNTIME_IMAGE,
        allowed_cidrs=list(ALLOWED_CIDRS),
        **fields,
    )


def watcher_env(provider: Any, name: str) -> tuple[str, dict[str, str]]:
    """(the whole user data, the spot watcher's -e environment) of ``name``'s launch template."""
    data = provider.ec2.describe_launch_template_versions(LaunchTemplateName=f"thrifty-{name}")
    user_data = base64.b64decode(data["LaunchTemplateVersions"][0]["LaunchTemplateData"]["UserData"]).decode()
    (watch,) = [line for line in script_of(user_data).splitlines() if " watch " in line]
    argv = shlex.split(watch)
    return user_data, dict(argv[i + 1].split("=", 1) for i, arg in enumerate(argv) if arg == "-e")


@pytest.mark.parametrize("source", ["block", "env"])
def test_a_spot_vms_user_data_carries_the_front_door_and_not_the_token(
    source: str,
    moto: str,
    s3_artifact: tuple[str, str],
    make_spec: Any,
    thrifty_home: Path,
    env_door: Callable[[str | None], None],
) -> None:
    from thrifty import tls, tokens
    from thrifty.providers.base import PriceModel

    env_door(DOOR + "/" if source == "env" else "https://elsewhere.example.com")  # the block's field wins
    block = aws_block(moto, s3_artifact[0], front_door_url=DOOR if source == "block" else None)
    provider = block.build_provider()
    token_sha256 = tokens.issue(thrifty_home, "spotty")
    token = tokens.token_for(thrifty_home, "spotty")
    notice = tokens.notice_token(token, "spotty")
    spec = make_spec("spotty", replicas=1, price_model=PriceModel.SPOT).with_changes(
        serving={"token_sha256": token_sha256, "notice_token": notice}
    )
    provider.deploy(spec)
    user_data, env = watcher_env(provider, "spotty")
    front_door = tls.front_door_cert(thrifty_home)  # an https front door: the watcher pins its certificate
    assert env == {
        "THRIFTY_FRONT_DOOR_URL": DOOR,
        "THRIFTY_NOTICE_TOKEN": notice,
        "THRIFTY_FRONT_DOOR_SHA256": front_door.sha256,
    }
    assert token not in user_data, "the deployment's token never travels in user data"
    assert front_door.key_pem not in user_data
    provider.delete("spotty")


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("http://127.0.0.1:8470", "cannot reach 127.0.0.1"),
        ("http://localhost:8470/", "cannot reach 127.0.0.1"),
        ("https://[::1]/", "cannot reach 127.0.0.1"),
        ("http://0.0.0.0:8470", "cannot reach 127.0.0.1"),
        ("ftp://door.example.com", "not an http"),
        ("door.example.com:8470", "not an http"),
        ("https://door.example.com:port", "not an http"),
    ],
)
def test_a_front_door_a_vm_cannot_reach_is_refused_with_what_to_set(
    url: str, match: str, moto: str, env_door: Callable[[str | None], None]
) -> None:
    block = aws_block(moto, "s3://thrifty-artifacts", front_door_url=url)
    with pytest.raises(ConfigError, match=match) as refused:
        block.build_provider()
    assert "front_door_url" in str(refused.value) and "https://" in (refused.value.hint or "")
    env_door(url)  # the same value in the setting: the CLI refuses it for a VM target …
    from thrifty.providers.commands import build_provider

    with pytest.raises(ConfigError, match="THRIFTY_FRONT_DOOR_URL"):
        build_provider("aws", {"endpoint_url": moto}, dry_run=True)
    lam = build_provider("aws-lambda", {"endpoint_url": moto}, dry_run=True)  # … not for a serverless one
    assert lam.target.boot.front_door_url is None
