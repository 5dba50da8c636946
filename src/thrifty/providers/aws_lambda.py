"""AWS Lambda target: one function per deployment, running the serving-runtime image.

- Package: the runtime image from ECR (``package="image"``, the default; its entrypoint speaks the
  Lambda Runtime API: ``thrifty.lambda_runtime``), or a .zip on the managed Python runtime
  (``package="zip"``: the folders in ``zip_roots`` — a site-packages with onnxruntime, numpy,
  tokenizers and thrifty — with the handler ``thrifty.lambda_runtime.handler``). The zip's
  unzipped size is checked against Lambda's 250 MB limit *before* any upload; over it, the error
  names the three largest parts. A zip over 50 MB goes through the ``code_bucket`` (S3), as
  Lambda's direct upload refuses it.
- Memory from the offer (``lambda-1769mb``: 1 vCPU); a size Lambda does not sell, or a region
  without Lambda (botocore's endpoint data), is refused before anything is created.
- Every deploy publishes a version and points the alias ``live`` at it; the function URL belongs
  to the alias. ``rollback`` points ``live`` at the previous version.
- Warm floor: the spec's ``replicas`` as provisioned concurrency on ``live`` (0 removes it: the
  platform scales to zero). ``max_concurrency`` (optional) reserves concurrency as the ceiling.
- Endpoint auth: the function URL's ``AuthType`` is ``NONE`` by default and the function checks
  the deployment's bearer token (by digest) as every target does; ``AWS_IAM`` makes callers sign.
- A deploy that fails after creating the function deletes it; one that fails updating an existing
  function points ``live`` back where it was. Ownership tags ``thrifty:managed`` /
  ``thrifty:deployment``.
"""

from __future__ import annotations

import io
import re
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from thrifty.errors import (
    ConfigError,
    CredentialsError,
    NotFoundError,
    ProviderError,
    QuotaExceededError,
    ThriftyError,
    UnsupportedFeatureError,
)
from thrifty.providers.base import DeploymentStatus, DeploySpec, Feature, ManagedResource, require
from thrifty.providers.boot import BootConfig
from thrifty.providers.gc import DEPLOYMENT_KEY, MANAGED_KEY
from thrifty.providers.serverless import (
    LAMBDA_ZIP_LIMIT_BYTES,
    Shape,
    check_package,
    lambda_memory_mb,
    package_parts,
    runtime_env,
    shape_of,
)

ALIAS = "live"
FLOOR_KEY = "thrifty:warm-floor"
HANDLER = "thrifty.lambda_runtime.handler"
DIRECT_UPLOAD_LIMIT_BYTES = 50 * 1024 * 1024
_ECR = re.compile(
    r"^\d{12}\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com/.+(@sha256:[0-9a-f]{64}|:[\w.-]+)$"
)
_CREDENTIAL_CODES = {"AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException"}
_QUOTA_CODES = {"TooManyRequestsException", "CodeStorageExceededException"}


@dataclass(frozen=True)
class LambdaTarget:
    """Where and how to run on Lambda (plain config; the block builds it)."""

    role_arn: str
    region: str = "us-east-1"
    endpoint_url: str | None = None
    package: str = "image"
    zip_roots: tuple[str, ...] = ()
    code_bucket: str | None = None
    url_auth_type: str = "NONE"
    timeout_s: int = 60
    max_concurrency: int | None = None
    poll_s: float = 1.0
    wait_timeout_s: float = 300.0
    boot: BootConfig = field(default_factory=lambda: BootConfig(artifact_store_url="s3://thrifty-artifacts"))

    def __post_init__(self) -> None:
        if self.package not in ("image", "zip"):
            raise ConfigError(f"Lambda package={self.package!r}", hint="use image or zip")
        if self.url_auth_type not in ("NONE", "AWS_IAM"):
            raise ConfigError(f"function URL auth {self.url_auth_type!r}", hint="use NONE or AWS_IAM")


def _translate(exc: Exception, what: str, region: str) -> ThriftyError:
    from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return CredentialsError(
            f"Lambda {what}: no usable credentials", hint="configure an AwsCredentials block"
        )
    if not isinstance(exc, ClientError):
        return ProviderError(
            f"Lambda {what} in {region} failed: {type(exc).__name__}", hint="check the endpoint"
        )
    error = exc.response.get("Error", {})
    code, message = str(error.get("Code", "")), str(error.get("Message", ""))
    text = f"Lambda {what} in {region} refused: {code}: {message}"
    if code in _CREDENTIAL_CODES or "cannot be assumed" in message:
        return CredentialsError(
            text,
            hint="grant lambda:* on thrifty-* functions and iam:PassRole on an execution role Lambda may assume",
        )
    if code in _QUOTA_CODES:
        return QuotaExceededError(text, hint=f"raise the Lambda concurrency/storage quota in {region}")
    if code == "ResourceNotFoundException":
        return NotFoundError(text, hint="it may have been deleted outside thrifty")
    return ProviderError(text, hint="see the Lambda error code in the message")


def lambda_regions() -> frozenset[str]:
    """Regions that have Lambda, from botocore's endpoint data (no network)."""
    import boto3

    session = boto3.session.Session()
    return frozenset(session.get_available_regions("lambda"))


class LambdaProvider:
    name: ClassVar[str] = "aws-lambda"
    unsupported: ClassVar[Mapping[Feature, str]] = {
        Feature.SPOT: "Lambda has no spot market",
        Feature.GPU: "Lambda has no GPUs",
    }

    def __init__(self, target: LambdaTarget, *, session: Any = None) -> None:
        import boto3

        session = session or boto3.session.Session()
        self.target = target
        self.client = session.client("lambda", region_name=target.region, endpoint_url=target.endpoint_url)
        self.s3 = session.client("s3", region_name=target.region, endpoint_url=target.endpoint_url)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, boot: BootConfig, dry_run: bool) -> LambdaProvider:
        """The provider the CLI builds: the execution role from THRIFTY_LAMBDA_ROLE_ARN."""
        import os

        role = str(options.get("role_arn") or os.environ.get("THRIFTY_LAMBDA_ROLE_ARN") or "")
        if not role and not dry_run:
            raise ConfigError(
                "no Lambda execution role", hint="set THRIFTY_LAMBDA_ROLE_ARN to a role Lambda may assume"
            )
        target = LambdaTarget(
            role_arn=role or "arn:aws:iam::000000000000:role/ROLE",
            region=options.get("region") or "us-east-1",
            endpoint_url=options.get("endpoint_url"),
            boot=boot,
        )
        return cls(target)

    def dry_run_document(self, spec: DeploySpec) -> Any:
        """What ``thrifty deploy --dry-run`` prints: the function's configuration (no code)."""
        return self._config(spec, self._checks(spec))

    def _call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, what, self.target.region) from exc

    @staticmethod
    def function_name(name: str) -> str:
        return f"thrifty-{name}"

    # -- checks before anything is created --------------------------------------------------------
    def _checks(self, spec: DeploySpec) -> Shape:
        require(self, spec)
        if spec.region not in lambda_regions():
            raise UnsupportedFeatureError(
                f"Lambda is not offered in region {spec.region!r}",
                hint="deploy the plan's next candidate, or plan with --region set to a Lambda region",
            )
        if spec.region != self.target.region:
            raise UnsupportedFeatureError(
                f"the Lambda target runs in {self.target.region}, the offer is in {spec.region}",
                hint="save a Lambda target block for that region, or deploy the plan's next candidate",
            )
        if not re.fullmatch(r"[a-zA-Z0-9-_]{1,56}", spec.name):
            raise ConfigError(
                f"deployment name {spec.name!r} is not a valid Lambda name", hint="use [a-zA-Z0-9-_]"
            )
        shape = shape_of(spec.instance_type, "lambda")
        lambda_memory_mb(shape)
        return shape

    def code(self) -> dict[str, Any]:
        """The ``Code`` of the function: the image by digest, or the zip (size-checked first)."""
        if self.target.package == "image":
            image = self.target.boot.image
            match = _ECR.match(image)
            if match is None or match["region"] != self.target.region:
                raise ConfigError(
                    f"Lambda needs the runtime image in ECR of {self.target.region}, got {image!r}",
                    hint="push it: thrifty image build --push <account>.dkr.ecr.<region>.amazonaws.com/thrifty",
                )
            return {"ImageUri": image}
        parts = package_parts(Path(root) for root in self.target.zip_roots)
        if not parts:
            raise ConfigError("package='zip' with no zip_roots", hint="name the site-packages folder to ship")
        check_package(parts, LAMBDA_ZIP_LIMIT_BYTES, "the Lambda .zip package")
        data = build_zip([Path(root) for root in self.target.zip_roots])
        if len(data) <= DIRECT_UPLOAD_LIMIT_BYTES:
            return {"ZipFile": data}
        return self._staged(data)

    def _staged(self, data: bytes) -> dict[str, Any]:
        if not self.target.code_bucket:
            raise ConfigError(
                f"the .zip is {len(data) / 2**20:.0f} MiB, over the 50 MiB direct upload",
                hint="set code_bucket (an S3 bucket in the target's region) to stage it",
            )
        import hashlib

        key = f"thrifty/lambda/{hashlib.sha256(data).hexdigest()}.zip"
        self._call("stage the .zip", self.s3.put_object, Bucket=self.target.code_bucket, Key=key, Body=data)
        return {"S3Bucket": self.target.code_bucket, "S3Key": key}

    # -- the function -----------------------------------------------------------------------------
    def _config(self, spec: DeploySpec, shape: Shape) -> dict[str, Any]:
        config: dict[str, Any] = {
            "FunctionName": self.function_name(spec.name),
            "Role": self.target.role_arn,
            "MemorySize": shape.memory_mib,
            "Timeout": self.target.timeout_s,
            # only /tmp is writable on Lambda
            "Environment": {
                "Variables": runtime_env(spec, self.target.boot, shape)
                | {"THRIFTY_MODEL_DIR": "/tmp/thrifty"}
            },
        }
        if self.target.package == "zip":
            config |= {"Runtime": "python3.11", "Handler": HANDLER}
        return config

    def _existing(self, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self._call("get function", self.client.get_function, FunctionName=name)
        except NotFoundError:
            return None
        return found

    def _wait_ready(self, function: str) -> None:
        deadline = time.monotonic() + self.target.wait_timeout_s
        while True:
            config = self._call(
                "get configuration", self.client.get_function_configuration, FunctionName=function
            )
            if config.get("State") == "Failed" or config.get("LastUpdateStatus") == "Failed":
                raise ProviderError(
                    f"Lambda function {function} failed: {config.get('StateReason') or config.get('LastUpdateStatusReason')}",
                    hint="see the function's state reason in the console",
                )
            if config.get("State") in (None, "Active") and config.get("LastUpdateStatus") in (
                None,
                "Successful",
            ):
                return
            if time.monotonic() > deadline:
                raise ProviderError(f"Lambda function {function} still pending", hint="look in the console")
            time.sleep(self.target.poll_s)

    def _create_or_update(self, spec: DeploySpec, shape: Shape, code: dict[str, Any]) -> bool:
        """Create the function, or update its configuration and code; True when it was created."""
        config = self._config(spec, shape)
        function = config["FunctionName"]
        if self._existing(function) is None:
            tags = {MANAGED_KEY: "true", DEPLOYMENT_KEY: spec.name, FLOOR_KEY: str(spec.replicas)}
            package = {"PackageType": "Image"} if "ImageUri" in code else {"PackageType": "Zip"}
            self._call(
                "create function", self.client.create_function, Code=code, Tags=tags, **package, **config
            )
            self._wait_ready(function)
            return True
        self._call("update configuration", self.client.update_function_configuration, **config)
        self._wait_ready(function)
        self._call("update code", self.client.update_function_code, FunctionName=function, **code)
        self._wait_ready(function)
        return False

    def _publish(self, function: str) -> str:
        version = self._call("publish version", self.client.publish_version, FunctionName=function)
        return str(version["Version"])

    def _alias_version(self, function: str) -> str | None:
        try:
            alias = self._call("get alias", self.client.get_alias, FunctionName=function, Name=ALIAS)
        except NotFoundError:
            return None
        return str(alias["FunctionVersion"])

    def _point_alias(self, function: str, version: str) -> None:
        verb = self.client.update_alias if self._alias_version(function) else self.client.create_alias
        self._call(
            f"point {ALIAS} at {version}", verb, FunctionName=function, Name=ALIAS, FunctionVersion=version
        )

    def _existing_url(self, function: str) -> str | None:
        try:
            found = self._call(
                "get URL", self.client.get_function_url_config, FunctionName=function, Qualifier=ALIAS
            )
        except NotFoundError:
            return None
        return str(found["FunctionUrl"]).rstrip("/")

    def _url(self, function: str) -> str:
        """The function URL of ``live``, made once (auth as the target says)."""
        existing = self._existing_url(function)
        if existing is None:
            found = self._call(
                "create URL",
                self.client.create_function_url_config,
                FunctionName=function,
                Qualifier=ALIAS,
                AuthType=self.target.url_auth_type,
            )
            existing = str(found["FunctionUrl"]).rstrip("/")
        return existing

    def _set_floor(self, function: str, floor: int, previous: int | None = None) -> None:
        """Provisioned concurrency on ``live`` = the warm floor; 0 removes it (scale to zero).

        ``previous`` (the floor tagged on the function) saves a removal call when none was set."""
        if floor == 0 and previous == 0:
            return
        if floor > 0:
            self._call(
                "set provisioned concurrency",
                self.client.put_provisioned_concurrency_config,
                FunctionName=function,
                Qualifier=ALIAS,
                ProvisionedConcurrentExecutions=floor,
            )
            return
        try:
            self._call(
                "remove provisioned concurrency",
                self.client.delete_provisioned_concurrency_config,
                FunctionName=function,
                Qualifier=ALIAS,
            )
        except NotFoundError:
            return

    def _tag_floor(self, function: str, floor: int) -> None:
        arn = self._call("get function", self.client.get_function, FunctionName=function)["Configuration"]
        self._call("tag", self.client.tag_resource, Resource=arn["FunctionArn"], Tags={FLOOR_KEY: str(floor)})

    # -- Provider protocol ------------------------------------------------------------------------
    def deploy(self, spec: DeploySpec) -> DeploymentStatus:
        shape = self._checks(spec)
        code = self.code()
        function = self.function_name(spec.name)
        previous = self._alias_version(function)
        created = False
        try:
            created = self._create_or_update(spec, shape, code)
            self._point_alias(function, self._publish(function))
            self._url(function)
            self._set_floor(function, spec.replicas, self._floor(spec.name))
            if self.target.max_concurrency:
                self._call(
                    "reserve concurrency",
                    self.client.put_function_concurrency,
                    FunctionName=function,
                    ReservedConcurrentExecutions=self.target.max_concurrency,
                )
            self._tag_floor(function, spec.replicas)
        except ThriftyError:
            self._undo(function, created, previous)
            raise
        return self.status(spec.name)

    def _undo(self, function: str, created: bool, previous: str | None) -> None:
        if created:
            self._delete_function(function)
        elif previous is not None:
            self._point_alias(function, previous)

    def _delete_function(self, function: str) -> None:
        try:
            self._call("delete function", self.client.delete_function, FunctionName=function)
        except NotFoundError:
            return

    def rollback(self, name: str) -> DeploymentStatus:
        """Point ``live`` at the version published before the one it serves."""
        function = self.function_name(name)
        current = self._alias_version(function)
        listed = self._call("list versions", self.client.list_versions_by_function, FunctionName=function)
        versions = sorted(int(v["Version"]) for v in listed["Versions"] if v["Version"] != "$LATEST")
        older = [v for v in versions if current is not None and v < int(current)]
        if not older:
            raise NotFoundError(
                f"Lambda function {function} has no version before {current}", hint="nothing to roll back to"
            )
        self._point_alias(function, str(older[-1]))
        return self.status(name)

    def scale(self, name: str, replicas: int) -> DeploymentStatus:
        if replicas < 0:
            raise ConfigError(f"replicas={replicas} is negative", hint="pass 0 or more")
        function = self.function_name(name)
        if self._existing(function) is None:
            raise NotFoundError(f"no Lambda deployment named {name!r}", hint="deploy it first")
        self._set_floor(function, replicas)
        self._tag_floor(function, replicas)
        return self.status(name)

    def hibernate(self, name: str) -> DeploymentStatus:
        """Drop the warm floor: Lambda itself scales to zero between requests."""
        return self.scale(name, 0)

    def wake(self, name: str) -> DeploymentStatus:
        return self.scale(name, max(1, self._floor(name)))

    def _floor(self, name: str) -> int:
        found = self._existing(self.function_name(name))
        return int((found or {}).get("Tags", {}).get(FLOOR_KEY, "0"))

    def status(self, name: str) -> DeploymentStatus:
        function = self.function_name(name)
        found = self._existing(function)
        if found is None:
            return DeploymentStatus(name, self.name, "deleted", 0, 0)
        config = found["Configuration"]
        floor = int(found.get("Tags", {}).get(FLOOR_KEY, "0"))
        version = self._alias_version(function)
        active = config.get("State") in (None, "Active") and version is not None
        return DeploymentStatus(
            name=name,
            provider=self.name,
            state="running" if active else "pending",
            replicas_desired=floor,
            replicas_ready=floor if active else 0,
            endpoint_url=self._existing_url(function) if version is not None else None,
            resources=(self._resource(config, found.get("Tags", {})),),
            details={"version": version, "memory_mb": config.get("MemorySize"), "warm_floor": floor},
        )

    def delete(self, name: str) -> None:
        self._delete_function(self.function_name(name))

    def list_managed(self) -> list[ManagedResource]:
        found = []
        pages = self.client.get_paginator("list_functions").paginate()
        for page in self._call("list functions", lambda: list(pages)):
            for config in page["Functions"]:
                tags = self._call("list tags", self.client.list_tags, Resource=config["FunctionArn"])["Tags"]
                if tags.get(MANAGED_KEY) == "true":
                    found.append(self._resource(config, tags))
        return found

    def _resource(self, config: Mapping[str, Any], tags: Mapping[str, str]) -> ManagedResource:
        return ManagedResource(
            provider=self.name,
            kind="function",
            id=str(config["FunctionName"]),
            region=self.target.region,
            deployment_name=tags.get(DEPLOYMENT_KEY, ""),
            details={"memory_mb": config.get("MemorySize"), "package": config.get("PackageType", "")},
        )

    def delete_resource(self, resource: ManagedResource) -> None:
        self._delete_function(resource.id)


def build_zip(roots: list[Path]) -> bytes:
    """The .zip of every file under ``roots`` (paths relative to each root), deterministic order."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for root in roots:
            files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
            for path in files:
                arcname = path.name if path == root else str(path.relative_to(root))
                info = zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                archive.writestr(info, path.read_bytes(), compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()
