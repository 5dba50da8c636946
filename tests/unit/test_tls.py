"""HTTPS per deployment: the control plane's key and certificate, the runtime serving TLS with them,
and clients that trust only the pinned fingerprint (a real TLS handshake on loopback)."""

from __future__ import annotations

import json
import shutil
import ssl
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from thrifty import tls
from thrifty.errors import ConfigError, ServingError
from thrifty.reach import endpoint_client, parse_rules
from thrifty.serving.app import BackgroundServer
from thrifty.serving.http import Request, Response


def _ok(request: Request) -> Response:
    return Response(200, json.dumps({"path": request.path}).encode())


@pytest.fixture(scope="module")
def cert() -> tls.DeploymentCert:
    return tls.make_cert("tiny")


@pytest.fixture
def https_url(cert: tls.DeploymentCert) -> Iterator[str]:
    with BackgroundServer(lambda: _ok, ssl_context=tls.server_context(cert.cert_pem, cert.key_pem)) as url:
        yield url


def _spec(cert: tls.DeploymentCert, pin: str | None = None) -> dict[str, object]:
    return {"serving": {"tls_cert_pem": cert.cert_pem, "tls_cert_sha256": pin or cert.sha256}}


def test_issue_keeps_the_key_private_and_reuses_it(tmp_path: Path) -> None:
    first = tls.issue(tmp_path, "tiny")
    again = tls.issue(tmp_path, "tiny")
    assert again == first and len(first.sha256) == 64
    key_file = tmp_path / "secrets" / "deployments" / "tiny.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "PRIVATE KEY" in key_file.read_text() and "PRIVATE KEY" not in first.cert_pem
    tls.forget(tmp_path, "tiny")
    assert tls.issue(tmp_path, "tiny").sha256 != first.sha256


def test_a_pinned_client_reaches_the_deployment_over_https(cert: tls.DeploymentCert, https_url: str) -> None:
    assert https_url.startswith("https://")
    with endpoint_client(_spec(cert)) as client:
        answer = client.get(f"{https_url}/v2/health/ready")
    assert answer.status_code == 200 and answer.json() == {"path": "/v2/health/ready"}


def test_a_server_with_another_key_is_refused_before_any_request(https_url: str) -> None:
    other = tls.make_cert("tiny")  # same name, different key: an impostor
    with (
        endpoint_client(_spec(other)) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY"),
    ):
        client.get(f"{https_url}/v2/health/ready")


def test_a_certificate_that_is_not_the_pinned_one_is_refused(cert: tls.DeploymentCert) -> None:
    with pytest.raises(ServingError, match="fingerprint pinned"):
        endpoint_client(_spec(cert, pin="0" * 64))


def test_plain_http_client_without_a_pin_does_not_trust_a_self_signed_endpoint(https_url: str) -> None:
    with endpoint_client({"serving": {}}) as client, pytest.raises(httpx.ConnectError):
        client.get(f"{https_url}/v2/health/ready")


def test_resolve_rules_send_an_instance_address_to_loopback(cert: tls.DeploymentCert, https_url: str) -> None:
    port = int(https_url.rsplit(":", 1)[1])
    with endpoint_client(_spec(cert), [f"203.0.113.7:{port}:127.0.0.1"]) as client:
        answer = client.get(f"https://203.0.113.7:{port}/v2/health/live")
    assert answer.json() == {"path": "/v2/health/live"}
    assert parse_rules([f"*:{port}:127.0.0.1"]) == {("*", port): "127.0.0.1"}
    with pytest.raises(ConfigError, match="HOST:PORT:ADDRESS"):
        parse_rules(["203.0.113.7:https:127.0.0.1"])


def test_a_mismatched_key_does_not_load(cert: tls.DeploymentCert) -> None:
    other = tls.make_cert("tiny")
    with pytest.raises(ConfigError, match="do not load"):
        tls.server_context(cert.cert_pem, other.key_pem)


def test_secret_bundle_holds_the_key_and_the_token_digest_not_the_token(cert: tls.DeploymentCert) -> None:
    from thrifty.secret_fetch import SecretBundle

    bundle = SecretBundle.from_json(tls.secret_bundle(cert, "ab" * 32), "test")
    assert (bundle.cert_pem, bundle.key_pem, bundle.token_sha256) == (cert.cert_pem, cert.key_pem, "ab" * 32)
    assert isinstance(tls.server_context(bundle.cert_pem, bundle.key_pem), ssl.SSLContext)


def test_a_mounted_kubernetes_secret_is_read_as_files(cert: tls.DeploymentCert, tmp_path: Path) -> None:
    from thrifty.secret_fetch import read_bundle

    (tmp_path / "tls.crt").write_text(cert.cert_pem)
    (tmp_path / "tls.key").write_text(cert.key_pem)
    (tmp_path / "token_sha256").write_text("ef" * 32 + "\n")
    bundle = read_bundle(f"dir:{tmp_path}", {})
    assert (bundle.cert_pem, bundle.key_pem, bundle.token_sha256) == (cert.cert_pem, cert.key_pem, "ef" * 32)
    (tmp_path / "tls.key").unlink()
    with pytest.raises(ConfigError, match=r"lacks tls\.key"):
        read_bundle(f"dir:{tmp_path}", {})


@pytest.mark.parametrize("ref", ["vault:thrifty-tiny", "aws-secretsmanager:", "thrifty-tiny"])
def test_an_unknown_secret_reference_says_which_stores_exist(ref: str) -> None:
    from thrifty.secret_fetch import read_bundle

    with pytest.raises(ConfigError, match="names no known secret store") as raised:
        read_bundle(ref, {})
    assert "aws-secretsmanager" in (raised.value.hint or "")


def test_a_secret_that_is_not_a_bundle_is_refused() -> None:
    from thrifty.secret_fetch import SecretBundle

    with pytest.raises(ConfigError, match="not a thrifty deployment bundle"):
        SecretBundle.from_json('{"tls_cert_pem": "x"}', "aws-secretsmanager:thrifty-tiny")


def test_the_front_door_forwards_to_an_https_replica_only_through_its_pinned_certificate(
    cert: tls.DeploymentCert, https_url: str
) -> None:
    import asyncio

    from thrifty.serving.remote import RemoteReplica

    port = int(https_url.rsplit(":", 1)[1])
    request = f"GET /v2/health/ready HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()

    async def forward(context: ssl.SSLContext) -> int:
        replica = RemoteReplica(f"https://127.0.0.1:{port}", context)
        try:
            status, _, _ = await replica.upstream.request(request, 10.0)
            return status
        finally:
            replica.upstream.close()

    assert asyncio.run(forward(tls.client_context(cert.cert_pem, cert.sha256))) == 200
    impostor = tls.make_cert("tiny")
    with pytest.raises(ssl.SSLCertVerificationError):
        asyncio.run(forward(tls.client_context(impostor.cert_pem, impostor.sha256)))
    with pytest.raises(ServingError, match="pinned certificate"):
        RemoteReplica(f"https://127.0.0.1:{port}")


def _pasted(curl: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", curl + " -o /dev/null -w '%{http_code}'"], capture_output=True, text=True
    )


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (apt-get install curl)")
def test_the_summarys_curl_reaches_a_pinned_https_endpoint_and_refuses_another_key(
    cert: tls.DeploymentCert, https_url: str, tmp_path: Path
) -> None:
    from thrifty.report import curl_example

    token_file = tmp_path / "tiny.token"
    token_file.write_text("s3cret")
    pasted = curl_example(
        https_url, "tiny", pinned_pubkey=tls.pubkey_pin(cert.cert_pem), token_file=str(token_file)
    )
    assert "s3cret" not in pasted and str(token_file) in pasted  # the token is read, never printed
    answer = _pasted(pasted)
    assert answer.returncode == 0 and answer.stdout == "200", answer.stderr
    other = curl_example(https_url, "tiny", pinned_pubkey=tls.pubkey_pin(tls.make_cert("other").cert_pem))
    refused = _pasted(other)
    assert refused.returncode != 0 and refused.stdout in ("", "000")  # curl aborts before any request
