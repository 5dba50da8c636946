"""The serving-runtime image's entrypoint: fetch one variant by sha256, serve it (Open Inference
Protocol v2) until stopped. Every cloud target runs this, configured only by environment:

    THRIFTY_MODEL_NAME          the name in URLs (/v2/models/NAME/infer); the deployment's name
    THRIFTY_ARTIFACT_STORE_URL  s3://bucket/prefix, gs://bucket/prefix, az://account/container/prefix,
                                or a folder mounted into the container
    THRIFTY_ARTIFACT_SHA256     the variant's blob (an .onnx file, or a packed folder with tokenizer.json)
    THRIFTY_TOKENIZER_SHA256    optional: a blob holding tokenizer.json (or a folder with it)
    THRIFTY_OPTIMIZED_SHA256    optional: the variant's graph optimized at deploy time
                                (``thrifty.serving.prebuilt``), loaded with optimizations off
                                instead of the variant when it fits this onnxruntime
    THRIFTY_S3_ENDPOINT_URL     optional S3 endpoint (tests: moto on loopback)
    THRIFTY_STORE_ENDPOINT_URL  optional GCS / Azure Blob endpoint (tests: the loopback doubles)
    THRIFTY_STORE_WAIT_S        how long a 403 from the store is asked again (default 600: a read
                                role granted at deploy takes a while to reach the data plane)
    THRIFTY_METADATA_URL        optional metadata server (GCP) / IMDS (Azure) address for the VM's
                                token (default: the cloud's own; the rehearsal's stand-ins)
    THRIFTY_API_TOKEN_SHA256    comma-separated sha256 hex digests of the accepted bearer tokens
    THRIFTY_API_TOKENS_FILE     or a mounted secret file with one token per line
    THRIFTY_SECRET              the deployment's secret (thrifty.secret_fetch): its TLS key and
                                certificate (the container then serves HTTPS) and its token digest
    PORT, THRIFTY_HOST          where to listen (default 8080 on 0.0.0.0)
    THRIFTY_THREADS             onnxruntime threads (default: the vCPUs the platform allots, below)
    THRIFTY_CPU_LIMIT           the CPU limit a serverless platform set (Cloud Run, Container Apps)
    AWS_LAMBDA_RUNTIME_API      set by Lambda: serve invocations through the Runtime API instead of
                                a port (``thrifty.lambda_runtime``); threads from
                                AWS_LAMBDA_FUNCTION_MEMORY_SIZE (1,769 MB per vCPU)

Credentials for the store come from the platform (instance profile, the GCP service account's
metadata token, the Azure managed identity's IMDS token, workload identity): nothing
secret is passed in the environment, and the token digests cannot be turned back into tokens.
Every blob is verified against its sha256 before anything loads it. Imports only the serving code,
onnxruntime, numpy, tokenizers, prometheus_client, httpx (GCS, Azure) and (for S3) boto3 — no
torch, no Prefect, no pydantic (tests/unit/serving/test_runtime_imports.py holds it to that).
Each start logs its phases as one JSON line (``thrifty.coldstart``).
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from thrifty.coldstart import COLD_START
from thrifty.errors import ConfigError, ThriftyError

if TYPE_CHECKING:
    import ssl

    from thrifty.serving.server import InferenceServer

log = logging.getLogger("thrifty.container")


@dataclass(frozen=True)
class ContainerConfig:
    model_name: str
    store_url: str
    artifact_sha256: str
    tokenizer_sha256: str | None
    s3_endpoint_url: str | None
    tokens: tuple[str, ...]
    host: str
    port: int
    threads: int
    model_dir: Path
    secret: str | None = None
    optimized_sha256: str | None = None
    store_endpoint_url: str | None = None
    #: how long a 403 from the store is asked again: a read role granted at deploy (GCS bucket IAM,
    #: Azure "Storage Blob Data Reader") can take minutes to reach the data plane
    store_wait_s: float = 600.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ContainerConfig:
        missing = [k for k in _REQUIRED if not env.get(k)]
        if missing:
            raise ConfigError(
                f"the runtime container lacks {', '.join(missing)}",
                hint="the deploy step sets them; for a manual run pass -e NAME=VALUE for each",
            )
        return cls(
            model_name=env["THRIFTY_MODEL_NAME"],
            store_url=env["THRIFTY_ARTIFACT_STORE_URL"],
            artifact_sha256=env["THRIFTY_ARTIFACT_SHA256"],
            tokenizer_sha256=env.get("THRIFTY_TOKENIZER_SHA256") or None,
            s3_endpoint_url=env.get("THRIFTY_S3_ENDPOINT_URL") or None,
            tokens=_tokens(env),
            host=env.get("THRIFTY_HOST", "0.0.0.0"),
            port=int(env.get("PORT", "8080")),
            threads=platform_threads(env),
            model_dir=Path(env.get("THRIFTY_MODEL_DIR", "/var/lib/thrifty/models")),
            secret=env.get("THRIFTY_SECRET") or None,
            optimized_sha256=env.get("THRIFTY_OPTIMIZED_SHA256") or None,
            store_endpoint_url=env.get("THRIFTY_STORE_ENDPOINT_URL") or None,
            store_wait_s=float(env.get("THRIFTY_STORE_WAIT_S") or 600.0),
        )


_REQUIRED = ("THRIFTY_MODEL_NAME", "THRIFTY_ARTIFACT_STORE_URL", "THRIFTY_ARTIFACT_SHA256")


def _tokens(env: Mapping[str, str]) -> tuple[str, ...]:
    digests = [
        f"sha256:{d.strip().lower()}" for d in env.get("THRIFTY_API_TOKEN_SHA256", "").split(",") if d.strip()
    ]
    path = env.get("THRIFTY_API_TOKENS_FILE")
    if path:
        digests += [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    return tuple(digests)


#: Lambda allots one vCPU per 1,769 MB of memory
LAMBDA_MB_PER_VCPU = 1769


def platform_threads(env: Mapping[str, str], cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """onnxruntime threads: as set, else the vCPUs the platform allots (never more than we may use)."""
    if env.get("THRIFTY_THREADS"):
        return max(1, int(env["THRIFTY_THREADS"]))
    allotted = allotted_cpus(cgroup_root)
    if env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"):
        return max(1, min(allotted, int(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]) // LAMBDA_MB_PER_VCPU))
    if env.get("THRIFTY_CPU_LIMIT"):
        return max(1, min(allotted, math.floor(float(env["THRIFTY_CPU_LIMIT"]))))
    return allotted


def allotted_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this container may use: the cgroup v2 quota (``cpu.max``), else the affinity mask."""
    available = len(os.sched_getaffinity(0))
    try:
        quota, period = (cgroup_root / "cpu.max").read_text().split()
    except (OSError, ValueError):
        return max(1, available)
    if quota == "max":
        return max(1, available)
    return max(1, min(available, math.ceil(int(quota) / int(period))))


def fetch_files(config: ContainerConfig) -> tuple[Path, Path | None, Path | None]:
    """(graph, tokenizer, saved optimized graph or None) as local files, fetched from the store and
    verified by sha256. With a saved optimized graph that fits, the graph is that one and the
    variant itself is not fetched."""
    optimized = _optimized_graph(config) if config.optimized_sha256 else None
    model_path = optimized or _onnx_blob(config, config.artifact_sha256)
    tokenizer = _tokenizer_near(model_path)
    if config.tokenizer_sha256:
        fetched = _fetch(config, config.tokenizer_sha256)
        tokenizer = _tokenizer_in(fetched, config.model_dir / f"{config.tokenizer_sha256}.d")
    return model_path, tokenizer, optimized


def _fetch(config: ContainerConfig, sha256: str) -> Path:
    """The verified blob; a 403 (the VM's read role still propagating) is asked again, 1, 2, 4 …
    15 s apart, for up to ``store_wait_s``, as the secret's read is."""
    from thrifty.artifacts.fetch import verified_blob
    from thrifty.errors import PermissionDeniedError

    deadline, delay = time.monotonic() + config.store_wait_s, 1.0
    while True:
        try:
            return verified_blob(
                config.store_url,
                sha256,
                config.model_dir / ".cache",
                endpoint_url=config.store_endpoint_url or config.s3_endpoint_url,
            )
        except PermissionDeniedError as exc:
            if time.monotonic() + delay > deadline:
                raise
            print(
                f"thrifty: {exc.message}; waiting {delay:.0f} s for the role to take effect", file=sys.stderr
            )
            time.sleep(delay)
            delay = min(delay * 2, 15.0)


def _onnx_blob(config: ContainerConfig, sha256: str) -> Path:
    from thrifty.serving.resolve import onnx_in

    return onnx_in(_fetch(config, sha256), config.model_dir / f"{sha256}.d")


def _tokenizer_near(model_path: Path) -> Path | None:
    from thrifty.serving.resolve import tokenizer_near

    return tokenizer_near(model_path)


def _optimized_graph(config: ContainerConfig) -> Path | None:
    """The deploy-time optimized graph, when it was made from this variant by this onnxruntime."""
    from thrifty.artifacts.base import unpack_tree
    from thrifty.serving.prebuilt import usable_graph

    assert config.optimized_sha256 is not None
    blob = _fetch(config, config.optimized_sha256)
    folder = unpack_tree(blob, config.model_dir / f"{config.optimized_sha256}.d")
    return usable_graph(folder, config.artifact_sha256)


def _tokenizer_in(blob: Path, unpack_dir: Path) -> Path:
    import tarfile

    from thrifty.artifacts.base import unpack_tree

    if not tarfile.is_tarfile(blob):
        return blob
    found = sorted(unpack_tree(blob, unpack_dir).rglob("tokenizer.json"))
    if not found:
        raise ConfigError(
            f"tokenizer blob {blob.name[:12]} holds no tokenizer.json", hint="attach the tokenizer folder"
        )
    return found[0]


def secured(config: ContainerConfig) -> tuple[tuple[str, ...], ssl.SSLContext | None]:
    """(accepted token digests, TLS context): with a secret, its token digest joins the list and
    the server speaks HTTPS with its key; without one, plain HTTP (a local run)."""
    if not config.secret:
        return config.tokens, None
    from thrifty.secret_fetch import read_bundle
    from thrifty.tls import server_context

    bundle = read_bundle(config.secret)
    digests = (*config.tokens, f"sha256:{bundle.token_sha256.lower()}")
    return digests, server_context(bundle.cert_pem, bundle.key_pem)


def load_server(config: ContainerConfig, tokens: tuple[str, ...]) -> InferenceServer:
    """The OIP server with the variant loaded, each phase marked for the cold-start record.

    A saved optimized graph is loaded with optimizations off; the first request is the warm-up.
    """
    import numpy  # noqa: F401  (imported here so the record's "imported" phase holds all imports)
    import onnxruntime  # noqa: F401
    import tokenizers  # noqa: F401

    from thrifty.serving.runner import RunnerConfig
    from thrifty.serving.server import InferenceServer, ServerConfig

    COLD_START.mark("imported")
    model_path, tokenizer, optimized = fetch_files(config)
    COLD_START.mark("fetched")
    runner = RunnerConfig(intra_op_threads=config.threads, optimized_graph_path=optimized, warm_up=False)
    server = InferenceServer(
        ServerConfig(host=config.host, port=config.port, api_tokens=tokens, runner=runner)
    )
    loaded = server.load(config.model_name, model_path, tokenizer_path=tokenizer)
    COLD_START.mark("loaded")
    COLD_START.note(session_ms=loaded.create_ms, tokenizer_ms=loaded.tokenizer_ms, warmup_ms=loaded.warmup_ms)
    return server


def serve(config: ContainerConfig) -> None:
    from thrifty.serving.app import bind_socket, serve_until_stopped
    from thrifty.serving.http import run
    from thrifty.serving.server import ServerConfig

    started = time.perf_counter()
    tokens, tls = secured(config)
    server = load_server(config, tokens)
    sock = bind_socket(config.host, config.port)
    COLD_START.mark("ready")
    log.warning(
        "serving %s on %s://%s:%d (%d threads, fetched and loaded in %.0f ms)",
        config.model_name, "https" if tls else "http", config.host, config.port, config.threads,
        (time.perf_counter() - started) * 1000,
    )  # fmt: skip
    body = ServerConfig().max_body_bytes
    handle = first_answer_reported(server.handle)
    run(serve_until_stopped(handle, sock, max_body_bytes=body, ssl_context=tls))


def first_answer_reported(handle: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``handle``, logging the cold-start record once the first inference answer is ready."""

    async def reported(pending: Any) -> Any:
        response = await pending
        COLD_START.report()
        return response

    def wrapped(request: Any) -> Any:
        result = handle(request)
        if COLD_START.reported or not request.path.endswith("/infer"):
            return result
        if hasattr(result, "__await__"):
            return reported(result)
        COLD_START.report()
        return result

    return wrapped


def watch(argv: list[str]) -> None:
    """``watch --deployment NAME --cloud CLOUD``: on a spot VM, print the interruption notice as JSON.

    The same image runs it beside the server; the notice lands in the container's log.
    """
    import argparse
    import json

    from thrifty.providers.aws_interruption import metadata_client, probe_for
    from thrifty.providers.aws_interruption import watch as watch_notices

    parser = argparse.ArgumentParser(prog="thrifty-runtime watch")
    parser.add_argument("--deployment", required=True)
    parser.add_argument("--cloud", required=True, choices=("aws", "gcp", "azure"))
    parser.add_argument("--poll-s", type=float, default=5.0)
    parser.add_argument("--notify-url", default=os.environ.get("THRIFTY_FRONT_DOOR_URL"))
    parser.add_argument("--metadata-url", default=None, help="metadata base URL (default: the cloud's)")
    args = parser.parse_args(argv)
    notify = front_door_notifier(
        args.notify_url, os.environ.get("THRIFTY_NOTICE_TOKEN"), os.environ.get("THRIFTY_FRONT_DOOR_SHA256")
    )

    def emit(notice: Any) -> None:
        print(json.dumps(notice.payload()), flush=True)
        if notify is not None:
            notify(notice.payload())

    with metadata_client() as client:
        watch_notices(
            probe_for(args.cloud, client, args.metadata_url), args.deployment, emit, poll_s=args.poll_s
        )


def front_door_notifier(
    url: str | None, token: str | None, sha256: str | None = None
) -> Callable[[dict[str, Any]], None] | None:
    """Post a notice to the front door (``POST URL/v2/deployments/NAME/interruption``), retried for
    a few seconds: the notice window is short, a lost post costs all of it. None without a URL.

    With ``sha256`` (an https front door) the certificate it presents must have that fingerprint
    (``thrifty.tls.pinned_context``); another one is refused before the notice token is sent."""
    if not url:
        return None

    def post(payload: dict[str, Any]) -> None:
        target = f"{url.rstrip('/')}/v2/deployments/{payload['deployment']}/interruption"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        for delay_s in (0.0, 0.5, 1.0, 2.0, 4.0):
            time.sleep(delay_s)
            answer = _post_notice(target, payload, headers, sha256)
            if answer == "refused":
                return
            if answer is not None and answer.status_code < 500:
                log.warning("front door answered %s: %s", answer.status_code, answer.text[:200])
                return

    return post


def _post_notice(target: str, payload: dict[str, Any], headers: dict[str, str], sha256: str | None) -> Any:
    """One post: the answer, None when unreachable (retried), "refused" for a certificate that is
    not the pinned one (never retried: the token is not sent to it)."""
    import httpx

    from thrifty.tls import pinned_context

    verify: Any = True
    parts = urlsplit(target)
    try:
        if sha256 and parts.scheme == "https":
            verify = pinned_context(parts.hostname or "", parts.port or 443, sha256)
        return httpx.post(target, json=payload, headers=headers, timeout=5.0, trust_env=False, verify=verify)
    except ThriftyError as exc:
        log.warning("front door %s refused: %s", target, exc.message)
        return "refused"
    except (httpx.HTTPError, OSError) as exc:
        log.warning("front door %s unreachable: %s", target, exc)
        return None


def main(env: Mapping[str, str] | None = None, argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    COLD_START.mark("main")
    try:
        if argv[:1] == ["watch"]:
            watch(argv[1:])
            return 0
        env = os.environ if env is None else env
        if env.get("AWS_LAMBDA_RUNTIME_API"):
            from thrifty.lambda_runtime import run_loop

            return run_loop(env["AWS_LAMBDA_RUNTIME_API"], env)
        serve(ContainerConfig.from_env(env))
    except ThriftyError as exc:
        print(f"thrifty runtime: {exc.message}" + (f" — {exc.hint}" if exc.hint else ""), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
