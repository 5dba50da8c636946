"""The serving-runtime image and the rehearsed cloud boot, measured (writes BENCHMARKS.md "cloud-boot").

    python bench/cloud_boot.py [--boots 5] [--no-write]

1. the image: size, a rebuild of the image layer with the base and wheels cached, and a reuse of
   an unchanged tree (the content tag hits);
2. container start → first correct inference through HTTPS + the token, MiniLM int8 and fp32,
   ``--boots`` fresh containers each (the TLS key and token digest read from moto's Secrets Manager
   and the variant fetched from moto's S3 by sha256 at every start; the client trusts only the
   pinned certificate), p50/p95;
3. the same answer from the image and from the local runtime (max abs difference of the embedding);
4. one rehearsed VM boot: the AWS target's exact user data in a fresh Debian "VM" container,
   which pulls the image from a local registry into its own (vfs) storage, then serves HTTPS.

The cloud's own VM start is not in any of these numbers (a rehearsal cannot show it).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._minilm import export_minilm, model_folder
from bench._report import machine_line, write_section

TEXT = "thrifty keeps models cheap"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _podman(*args: str, check: bool = True) -> str:
    from thrifty.image import podman

    return (
        podman(*args) if check else subprocess.run(["podman", *args], capture_output=True, text=True).stdout
    )


def _remove(name: str) -> None:
    """``podman rm -f``, once more when podman races its own stop ("container state improper")."""
    from thrifty.image import ImageError

    try:
        _podman("rm", "-f", "-t", "1", name)
    except ImageError:
        time.sleep(1.0)
        _podman("rm", "-f", name)


def image_numbers() -> dict[str, Any]:
    from thrifty.image import build_image

    first = build_image()
    rebuilt = build_image(force=True)
    reused = build_image()
    return {
        "ref": first.ref,
        "size_mb": rebuilt.size_mb,
        "rebuild_s": rebuilt.build_s,
        "reuse_s": reused.build_s,
    }


def _reference(model: Path, tokenizer: Path) -> tuple[dict[str, Any], np.ndarray]:
    from thrifty.verify import reference_outputs

    feeds, outputs = reference_outputs(model, tokenizer)
    return feeds, np.asarray(next(iter(outputs.values())), dtype=np.float32)


def _first_answer(
    url: str, token: str, feeds: dict[str, Any], client: Any = None, deadline_s: float = 120.0
) -> np.ndarray:
    """The first correct answer from ``url``; ``client`` pins an HTTPS endpoint's certificate."""
    from thrifty.errors import ThriftyError
    from thrifty.verify import infer_over_http

    started = time.perf_counter()
    while time.perf_counter() - started < deadline_s:
        try:
            served, _ = infer_over_http(f"{url}/v2/models/minilm/infer", feeds, token, 5.0, client)
            return np.asarray(next(iter(served.values())), dtype=np.float32)
        except ThriftyError:
            time.sleep(0.05)
    raise RuntimeError(f"no answer from {url} in {deadline_s} s")


def _secured(endpoint: str, name: str, token: str) -> tuple[str, Any]:
    """A deployment's secret in moto's Secrets Manager (as the AWS target writes it); (reference, client)."""
    import boto3

    from thrifty import tls
    from thrifty.reach import endpoint_client

    cert = tls.make_cert(name)
    bundle = tls.secret_bundle(cert, hashlib.sha256(token.encode()).hexdigest())
    boto3.client("secretsmanager", endpoint_url=endpoint).create_secret(
        Name=f"thrifty-{name}", SecretString=bundle
    )
    spec = {"serving": {"tls_cert_pem": cert.cert_pem, "tls_cert_sha256": cert.sha256}}
    return f"aws-secretsmanager:thrifty-{name}", endpoint_client(spec, timeout_s=5.0)


def _boot_once(
    image: str, store: tuple[str, str], env: dict[str, str], tls: bool, feeds: Any
) -> tuple[float, Any]:
    """One fresh container: (seconds from ``podman run`` to the first correct answer, the answer).
    ``tls``: the secret from Secrets Manager and HTTPS; else the token digest in env and HTTP."""
    token, port, name = secrets.token_urlsafe(16), _free_port(), f"thrifty-bench-{uuid.uuid4().hex[:8]}"
    env = {**env, "PORT": str(port)}
    if tls:
        secret, client = _secured(store[1], name, token)
        env |= {"THRIFTY_SECRET": secret, "THRIFTY_SECRETS_ENDPOINT_URL": store[1]}
    else:
        from thrifty.reach import endpoint_client

        client = endpoint_client(None, timeout_s=5.0)
        env["THRIFTY_API_TOKEN_SHA256"] = hashlib.sha256(token.encode()).hexdigest()
    flags = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
    started = time.perf_counter()
    _podman("run", "-d", "--name", name, "--network", "host", *flags, image)
    try:
        answer = _first_answer(f"{'https' if tls else 'http'}://127.0.0.1:{port}", token, feeds, client)
        return time.perf_counter() - started, answer
    finally:
        client.close()
        _remove(name)


def container_boots(image: str, store: tuple[str, str], blobs: dict[str, str], boots: int) -> dict[str, Any]:
    """Per variant, ``boots`` HTTPS starts interleaved with as many plain-HTTP starts (the same
    image, the token digest in env instead of the secret store): the TLS path's cost side by side."""
    rows: dict[str, Any] = {}
    for variant in ("int8", "fp32"):
        feeds, expected = _reference(Path(blobs[f"{variant}_path"]), Path(blobs["tokenizer_path"]))
        env = {
            "THRIFTY_MODEL_NAME": "minilm", "THRIFTY_ARTIFACT_STORE_URL": store[0],
            "THRIFTY_ARTIFACT_SHA256": blobs[variant], "THRIFTY_TOKENIZER_SHA256": blobs["tokenizer"],
            "THRIFTY_S3_ENDPOINT_URL": store[1],
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        }  # fmt: skip
        times: dict[bool, list[float]] = {True: [], False: []}
        diffs = []
        for _ in range(boots):
            for tls in (True, False):
                elapsed_s, answer = _boot_once(image, store, env, tls, feeds)
                times[tls].append(elapsed_s)
                diffs.append(float(np.max(np.abs(answer - expected))))
        rows[variant] = {
            "p50_s": statistics.median(times[True]), "p95_s": max(times[True]),
            "http_p50_s": statistics.median(times[False]), "http_p95_s": max(times[False]),
            "max_abs_diff": max(diffs),
        }  # fmt: skip
    return rows


def rehearsed_vm_boot(pushed: str, store: tuple[str, str], blobs: dict[str, str]) -> float:
    from thrifty.providers.base import DeploySpec
    from thrifty.providers.boot import BootConfig, boot_script
    from thrifty.rehearsal import boot_vm, metadata_server

    token, port = secrets.token_urlsafe(16), _free_port()
    secret, client = _secured(store[1], "minilm-vm", token)
    spec = DeploySpec(
        name="minilm", model_name="minilm", variant_id=1, artifact_sha256=blobs["int8"], region="us-east-1",
        serving={"tokenizer_sha256": blobs["tokenizer"]},
    )  # fmt: skip
    boot = BootConfig(
        store[0],
        s3_endpoint_url=store[1],
        port=port,
        image=pushed,
        insecure_registry=True,
        secrets_endpoint_url=store[1],
    )
    feeds, _ = _reference(Path(blobs["int8_path"]), Path(blobs["tokenizer_path"]))
    with metadata_server() as imds, client:
        vm = boot_vm(boot_script(spec, boot, cloud="aws", secret=secret), metadata_url=imds)
        try:
            _first_answer(f"https://127.0.0.1:{port}", token, feeds, client, deadline_s=400.0)
            elapsed_s: float = time.perf_counter() - vm.started_at
            return elapsed_s
        finally:
            vm.stop()


def _registry(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = _free_port()
    config = root / "registry.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root / 'reg'}\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    process = subprocess.Popen(["docker-registry", "serve", str(config)], stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1.0)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    return process, f"127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--boots", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    os.environ.update({"AWS_EC2_METADATA_DISABLED": "true", "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"})  # fmt: skip
    subprocess.run(["bash", str(Path(__file__).resolve().parents[1] / ".ci" / "podman.sh")], check=True)
    import boto3
    from moto.server import ThreadedMotoServer

    from thrifty.artifacts.s3 import S3Store
    from thrifty.image import push_image

    load = os.getloadavg()[0]
    image = image_numbers()
    moto_port = _free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    work = Path(tempfile.mkdtemp(prefix="thrifty-cloud-boot-"))
    registry, reg_addr = _registry(work)
    try:
        endpoint = f"http://127.0.0.1:{moto_port}"
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="artifacts")
        s3 = S3Store("s3://artifacts/blobs", endpoint_url=endpoint, cache_dir=work / "cache")
        fp32, int8 = export_minilm(work / "minilm")
        tokenizer = model_folder() / "tokenizer.json"
        blobs = {"fp32": s3.put_file(fp32).sha256, "int8": s3.put_file(int8).sha256,
                 "tokenizer": s3.put_file(tokenizer).sha256, "fp32_path": str(fp32), "int8_path": str(int8),
                 "tokenizer_path": str(tokenizer)}  # fmt: skip
        store = ("s3://artifacts/blobs", endpoint)
        boots = container_boots(image["ref"], store, blobs, args.boots)
        pushed = push_image(image["ref"], f"{reg_addr}/thrifty", tls_verify=False)
        vm_s = rehearsed_vm_boot(pushed, store, blobs)
    finally:
        registry.terminate()
        moto.stop()
    sizes = {v: Path(blobs[f"{v}_path"]).stat().st_size / 1e6 for v in ("int8", "fp32")}
    lines = [
        "## Cloud boot: the serving-runtime image and the rehearsed VM (bench/cloud_boot.py)",
        "",
        f"{time.strftime('%Y-%m-%d')}, {machine_line()}, load average {load:.1f} at the start.",
        "",
        "| image | size | build without layer cache (base + wheels cached) | unchanged tree (reused) |",
        "|---|---:|---:|---:|",
        f"| `{image['ref']}` | {image['size_mb']:.0f} MB (goal ≤ 400) | {image['rebuild_s']:.0f} s | {image['reuse_s']:.1f} s |",
        "",
        f"Container start → first correct inference through HTTPS + the token, {args.boots} fresh containers each,"
        " interleaved with as many plain-HTTP starts (token digest in env, no secret store) for comparison"
        " (TLS key and token digest read from moto's Secrets Manager, the variant fetched from moto's S3 and"
        " verified at every start; the client trusts only the pinned certificate; goal ≤ 10 s p50):",
        "",
        "| variant | size MB | HTTPS p50 s | HTTPS worst s | same run, plain HTTP p50 s | plain HTTP worst s"
        " | max abs diff vs the local runtime (the gateway replicas' runner) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for variant in ("int8", "fp32"):
        row = boots[variant]
        lines.append(
            f"| MiniLM {variant} | {sizes[variant]:.1f} | {row['p50_s']:.2f} | {row['p95_s']:.2f}"
            f" | {row['http_p50_s']:.2f} | {row['http_p95_s']:.2f} | {row['max_abs_diff']:.1e} |"
        )
    lines += [
        "",
        "Rehearsed VM boot (the AWS target's user data in a fresh Debian container: podman pull of the"
        " image from a local registry into vfs storage, secret from Secrets Manager with the IMDSv2"
        f" stand-in's role credentials, variant fetch, serve HTTPS), MiniLM int8: **{vm_s:.1f} s** to the"
        " first correct answer through HTTPS + token. The cloud's own VM start is not included.",
    ]
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    if not args.no_write:
        write_section("cloud-boot", markdown)


if __name__ == "__main__":
    main()
