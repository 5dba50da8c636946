"""HTTPS per deployment: a key and a self-signed certificate made by the control plane, pinned by
the certificate's sha256 fingerprint in the deployment's spec (the registry), and trusted by that
pin alone — no certificate authority is involved.

    control plane   ``issue(home, name)``: an EC P-256 key and a certificate (valid one year),
                    written 0600 under ``THRIFTY_HOME/secrets/deployments/``; the provider hands
                    the key to the replicas through the cloud's secret store (``secret_bundle``)
    replica         ``server_context(cert_pem, key_pem)``: the runtime container serves TLS
    clients         ``client_context(cert_pem, sha256)``: trusts exactly the certificate whose
                    fingerprint the registry pinned (the smoke test, verify, the gateway, the CLI)
    front door      ``front_door_cert(home)``: the gateway's public HTTPS listener, made the same
                    way; a VM's watcher knows only its fingerprint and checks the certificate the
                    front door presents against it (``pinned_context``) before sending anything

The certificate is public (it travels in the spec with its fingerprint); the private key and the
API token travel only through the secret store: never in user data, logs or artifacts.
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from thrifty.errors import ConfigError, NotFoundError, ServingError

#: how long a deployment's certificate is valid; a redeploy after that makes a new one
VALID_DAYS = 365


@dataclass(frozen=True)
class DeploymentCert:
    cert_pem: str
    key_pem: str

    @property
    def sha256(self) -> str:
        return fingerprint(self.cert_pem)


def fingerprint(cert_pem: str) -> str:
    """The sha256 hex digest of the certificate's DER bytes (what ``openssl x509 -fingerprint`` shows)."""
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert_pem)).hexdigest()


def pubkey_pin(cert_pem: str) -> str:
    """curl's ``--pinnedpubkey sha256//…`` value: base64 of the sha256 of the certificate's public key."""
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = x509.load_pem_x509_certificate(cert_pem.encode()).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256//" + base64.b64encode(hashlib.sha256(der).digest()).decode()


def make_cert(name: str) -> DeploymentCert:
    """A fresh EC P-256 key and a self-signed certificate naming the deployment."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"thrifty-{name}"[:64])])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(f"{name}.thrifty.invalid")]), False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return DeploymentCert(cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode())


def _paths(home: Path, deployment: str) -> tuple[Path, Path]:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in deployment)
    folder = home / "secrets" / "deployments"
    return folder / f"{safe}.crt", folder / f"{safe}.key"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(path.suffix + ".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    tmp.replace(path)


def issue(home: Path, deployment: str) -> DeploymentCert:
    """The deployment's key and certificate: made once, kept 0600 under ``home``, reused after."""
    return _issue_at(*_paths(home, deployment), deployment)


def _issue_at(cert_path: Path, key_path: Path, name: str) -> DeploymentCert:
    if cert_path.is_file() and key_path.is_file():
        return DeploymentCert(cert_path.read_text(), key_path.read_text())
    made = make_cert(name)
    _write_private(key_path, made.key_pem)
    _write_private(cert_path, made.cert_pem)
    return made


def front_door_cert(home: Path) -> DeploymentCert:
    """The front door's own key and certificate (its public HTTPS listener), made like a
    deployment's, once, 0600 under ``home/secrets/front-door/`` (apart from the deployments', so no
    deployment name can collide with it). VM watchers pin its fingerprint (their user data)."""
    folder = home / "secrets" / "front-door"
    return _issue_at(folder / "front-door.crt", folder / "front-door.key", "front-door")


def cert_for(home: Path, deployment: str) -> DeploymentCert:
    cert_path, key_path = _paths(home, deployment)
    if not key_path.is_file():
        raise NotFoundError(
            f"no TLS key for deployment {deployment!r} on this machine",
            hint="redeploy it from here (each deployment's key lives under THRIFTY_HOME/secrets)",
        )
    return DeploymentCert(cert_path.read_text(), key_path.read_text())


def forget(home: Path, deployment: str) -> None:
    for path in _paths(home, deployment):
        path.unlink(missing_ok=True)


def secret_bundle(cert: DeploymentCert, token_sha256: str) -> str:
    """What the cloud's secret store holds for one deployment (JSON): the replica's TLS key and
    certificate and the digest of the API token it accepts. The token itself stays here."""
    return json.dumps(
        {"tls_cert_pem": cert.cert_pem, "tls_key_pem": cert.key_pem, "token_sha256": token_sha256}
    )


def server_context(cert_pem: str, key_pem: str) -> ssl.SSLContext:
    """The runtime's TLS context; the key is loaded from a private temp file that is removed at once."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(prefix="thrifty-tls-") as folder:
        cert_file, key_file = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        cert_file.write_text(cert_pem)
        _write_private(key_file, key_pem)
        try:
            context.load_cert_chain(cert_file, key_file)
        except ssl.SSLError as exc:
            raise ConfigError(
                f"the deployment's TLS key and certificate do not load ({exc.reason})",
                hint="redeploy: the control plane makes a new pair",
            ) from exc
    return context


def client_context(cert_pem: str, sha256: str) -> ssl.SSLContext:
    """A client context that trusts only the pinned certificate (no CA, no host name: the pin is
    the identity). A certificate whose fingerprint is not the pin is refused before any use."""
    try:
        matches = fingerprint(cert_pem) == sha256.lower()
    except ValueError:
        matches = False
    if not matches:
        raise ServingError(
            "the deployment's certificate does not match the fingerprint pinned in the registry",
            hint="the registry or the secrets folder was changed outside thrifty: redeploy",
        )
    context = ssl.create_default_context(cadata=cert_pem)
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def pinned_context(host: str, port: int, sha256: str, timeout_s: float = 5.0) -> ssl.SSLContext:
    """A client context for a server known only by its certificate's fingerprint (a VM's watcher
    posting to the front door): the certificate the server presents is fetched, checked against
    the pin, and then trusted alone. A server presenting any other certificate is refused before a
    request (and its token) is sent; one that swaps certificates afterwards fails the handshake."""
    presented = ssl.get_server_certificate((host, port), timeout=timeout_s)  # OSError: unreachable
    if fingerprint(presented) != sha256.lower():
        raise ServingError(
            f"https://{host}:{port} presented a certificate whose sha256 is not the pinned one",
            hint="the address is not thrifty's front door, or its certificate was replaced: "
            "redeploy so the VMs get the current fingerprint",
        )
    return client_context(presented, sha256)
