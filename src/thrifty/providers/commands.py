"""CLI: ``thrifty deploy``, ``thrifty gc`` and ``thrifty spot-watch`` (cloud targets).

``thrifty deploy VARIANT|plan:PLAN_ID --target aws|gcp|azure|kubernetes [--dry-run]`` deploys a
variant (id or MODEL/VARIANT; or a plan's chosen offer, falling back to its next candidates on the
same target when one has no capacity). ``--dry-run`` needs no credentials: it prints the Kubernetes
manifests as YAML, or the EC2 launch template / GCE instance / Azure VM body as JSON with the user
data decoded. Without it, credentials come from each SDK's usual chain (boto3, Application Default
Credentials, DefaultAzureCredential, kubeconfig); flows use the credential blocks instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from thrifty.providers.base import DeploySpec
    from thrifty.registry import Registry
    from thrifty.registry.models import Plan, Variant

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
TargetOpt = Annotated[
    str, typer.Option("--target", help="A target: aws, gcp, azure, kubernetes, … (`thrifty targets`).")
]


def _check_target(name: str) -> None:
    """A cloud target the CLI can build (every registered target but this machine)."""
    from thrifty.errors import ConfigError
    from thrifty.targets import TargetKind, target

    if target(name).kind is TargetKind.LOCAL:
        raise ConfigError("the local target has its own command", hint="use `thrifty deploy-local VARIANT`")


def _boot(require_s3: bool, allowed_cidrs: Any = None, *, vm: bool = False) -> Any:
    """The boot settings from the environment; a VM target's also carry THRIFTY_FRONT_DOOR_URL (checked)."""
    from thrifty.errors import ConfigError
    from thrifty.providers.boot import BootConfig, front_door_pin, vm_front_door_url
    from thrifty.settings import get_settings

    settings = get_settings()
    store_url = settings.resolved_artifact_store_url
    if require_s3 and not store_url.startswith("s3://"):
        raise ConfigError(
            f"artifact store {store_url!r} is a local folder a cloud VM cannot read",
            hint="set THRIFTY_ARTIFACT_STORE_URL=s3://bucket/prefix, then `thrifty ingest` and "
            "`thrifty optimize` the model again: they write its variants to that bucket",
        )
    image = settings.runtime_image or ("IMAGE@sha256:<set THRIFTY_RUNTIME_IMAGE>" if not require_s3 else "")
    front_door = vm_front_door_url(settings.front_door_url) if vm else None
    return BootConfig(
        artifact_store_url=store_url,
        s3_endpoint_url=settings.s3_endpoint_url,
        image=image,
        allowed_cidrs=tuple(allowed_cidrs or ()),
        front_door_url=front_door,
        front_door_sha256=front_door_pin(front_door, settings.front_door_sha256, settings.home),
    )


def build_provider(
    target: str, options: Mapping[str, Any], *, dry_run: bool = False, require_s3: bool = True
) -> Any:
    """A provider from the command line / environment (no Prefect): the target class's ``from_options``.

    ``dry_run`` builds no client that needs a key.
    """
    from thrifty.providers.base import provider_class
    from thrifty.targets import TargetKind
    from thrifty.targets import target as descriptor

    _check_target(target)
    cls: Any = provider_class(target)
    vm = descriptor(target).kind is TargetKind.VM
    boot = _boot(require_s3 and not dry_run, options.get("allow_cidr"), vm=vm)
    return cls.from_options(options, boot=boot, dry_run=dry_run)


# -- specs from a variant or a plan --------------------------------------------------------------
def specs_for(ref: str, target: str, name: str | None, overrides: dict[str, Any]) -> list[DeploySpec]:
    """The spec(s) to try, in order: one for a variant, the plan's candidates on ``target`` for a plan."""
    from thrifty import read, runtime
    from thrifty.errors import ConfigError
    from thrifty.providers.base import PriceModel
    from thrifty.providers.specs import candidates_for, default_name, spec_for_variant, spec_from_candidate
    from thrifty.targets import target as target_named

    registry = runtime.registry()
    if ref.startswith("plan:"):
        plan = registry.get_plan(int(ref.removeprefix("plan:")))
        record = plan.record or {"chosen": plan.chosen, "candidates": []}
        candidates = candidates_for(record, target_named(target))
        if not candidates:
            raise ConfigError(
                f"plan {plan.id} has no candidate on {target}", hint="plan with that provider allowed"
            )
        variant = _variant_of_plan(registry, plan, str(candidates[0]["variant"]))
        version = registry.get_model_version_by_id(variant.model_version_id)
        return [
            spec_from_candidate(
                c,
                name=name or default_name(version.model.name, variant.name),
                model_name=version.model.name,
                variant_id=variant.id,
                artifact_sha256=variant.artifact.sha256,
                plan_id=plan.id,
            )
            for c in candidates
        ]
    serverless = target_named(target).kind.value == "serverless"  # replicas = the warm floor there
    market = PriceModel.SPOT if overrides.get("spot") else PriceModel.ON_DEMAND
    spec = spec_for_variant(
        registry,
        read.resolve_variant(registry, ref).id,
        name=name,
        region=overrides.get("region") or "us-east-1",
        instance_type=overrides.get("instance_type") or "c7g.large",
        price_model=PriceModel.SERVERLESS if serverless else market,
        replicas=overrides.get("replicas") if serverless else overrides.get("replicas") or 1,
        on_demand_floor=overrides.get("on_demand_floor") or 0,
    )
    return [spec]


def _variant_of_plan(registry: Registry, plan: Plan, variant_name: str) -> Variant:
    from thrifty.errors import NotFoundError

    if plan.model_version_id is None:
        raise NotFoundError(
            f"plan {plan.id} was made from recorded numbers, not a registered model",
            hint="deploy a variant id instead: `thrifty deploy VARIANT_ID --target …`",
        )
    for variant in registry.list_variants(plan.model_version_id):
        if variant.name == variant_name:
            return variant
    raise NotFoundError(f"plan {plan.id} chose variant {variant_name!r}, which is not registered")


# -- dry run -------------------------------------------------------------------------------------
def dry_run_document(provider: Any, spec: DeploySpec) -> str:
    """What ``--dry-run`` prints: YAML manifests for Kubernetes, the request body for a cloud."""
    import yaml

    body = provider.dry_run_document(spec)
    if isinstance(body, list) and body and isinstance(body[0], dict) and "apiVersion" in body[0]:
        return str(yaml.safe_dump_all(body, sort_keys=False))
    return json.dumps(_decoded(body), indent=2, default=str)


#: request fields that carry the cloud-init user data base64-encoded (AWS, Azure)
ENCODED_USER_DATA = ("UserData", "customData", "custom_data")


def _decoded(body: Any) -> Any:
    """``body`` with its user data as readable text: --dry-run shows what the VM boots with."""
    import base64
    import binascii
    import contextlib

    if isinstance(body, list):
        return [_decoded(item) for item in body]
    if not isinstance(body, dict):
        return body
    out = {}
    for key, value in body.items():
        if key in ENCODED_USER_DATA and isinstance(value, str):
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                value = base64.b64decode(value, validate=True).decode()
        out[key] = _decoded(value)
    return out


# -- commands ------------------------------------------------------------------------------------
def deploy(
    ref: Annotated[
        str,
        typer.Argument(
            help="A variant id or MODEL/VARIANT (see `thrifty variants`), or plan:ID for a plan's chosen offer."
        ),
    ],
    target: TargetOpt = "aws",
    name: Annotated[str | None, typer.Option(help="Deployment name (default: model-variant).")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be created; send nothing.")
    ] = False,
    region: Annotated[str | None, typer.Option(help="Region or zone (variant deploys).")] = None,
    instance_type: Annotated[str | None, typer.Option(help="Instance/VM type (variant deploys).")] = None,
    spot: Annotated[bool, typer.Option("--spot/--on-demand", help="Price model (variant deploys).")] = False,
    replicas: Annotated[int, typer.Option(min=0, help="Replicas (variant deploys).")] = 1,
    on_demand_floor: Annotated[int, typer.Option(min=0, help="Replicas kept on-demand.")] = 0,
    endpoint_url: Annotated[
        str | None, typer.Option(envvar="THRIFTY_AWS_ENDPOINT_URL", help="AWS endpoint.")
    ] = None,
    project: Annotated[str | None, typer.Option(envvar="THRIFTY_GCP_PROJECT", help="GCP project.")] = None,
    subscription_id: Annotated[str | None, typer.Option(envvar="THRIFTY_AZURE_SUBSCRIPTION_ID")] = None,
    resource_group: Annotated[str | None, typer.Option(envvar="THRIFTY_AZURE_RESOURCE_GROUP")] = None,
    subnet_id: Annotated[str | None, typer.Option(envvar="THRIFTY_AZURE_SUBNET_ID")] = None,
    ssh_public_key: Annotated[str | None, typer.Option(envvar="THRIFTY_SSH_PUBLIC_KEY")] = None,
    namespace: Annotated[str | None, typer.Option(envvar="THRIFTY_K8S_NAMESPACE")] = None,
    context: Annotated[
        str | None, typer.Option(envvar="THRIFTY_K8S_CONTEXT", help="kubeconfig context.")
    ] = None,
    scale_to_zero: Annotated[
        str | None, typer.Option(envvar="THRIFTY_K8S_SCALE_TO_ZERO", help="none|keda|knative")
    ] = None,
    spot_platform: Annotated[
        str | None, typer.Option(envvar="THRIFTY_K8S_SPOT_PLATFORM", help="karpenter|gke|aks")
    ] = None,
    allow_cidr: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-cidr",
            help="Source range of the deployment's network rule (repeat); default: "
            "THRIFTY_CONTROL_PLANE_CIDRS. Never open to 0.0.0.0/0 unless given here.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Deploy a variant or a plan to a cloud or a cluster (spot where the plan says so)."""
    from thrifty.cli import console, print_json
    from thrifty.providers.specs import copy_artifacts, deploy_first_available

    opts = {k: v for k, v in locals().items() if k not in ("ref", "target", "name")}
    overrides = {
        "region": region,
        "instance_type": instance_type,
        "spot": spot,
        "replicas": replicas,
        "on_demand_floor": on_demand_floor,
    }
    _check_target(target)
    specs = specs_for(ref, target, name, overrides)
    provider = build_provider(target, opts, dry_run=dry_run)
    if dry_run:
        typer.echo(dry_run_document(provider, specs[0]), nl=False)
        return
    copy_artifacts(specs[0], provider)  # the variant, into the store the target's VMs read
    spec, status, skipped = deploy_first_available(specs, lambda _spec: provider)
    _record(status, spec)
    if as_json:
        print_json(
            {
                "name": spec.name,
                "state": status.state,
                "endpoint_url": status.endpoint_url,
                "skipped": skipped,
            }
        )
        return
    for why in skipped:
        console.print(f"[yellow]skipped[/] {why}")
    console.print(f"{spec.name}: {status.state} on {target} {spec.region} ({status.replicas_ready} ready)")


def _record(status: Any, spec: DeploySpec) -> None:
    from thrifty import runtime
    from thrifty.providers.base import record_deployment

    registry = runtime.registry()
    record_deployment(registry, status, spec, {"ids": [r.id for r in status.resources]})
    registry.add_event(
        spec.name,
        "deployed",
        reason=f"thrifty deploy --target {status.provider}",
        details={"variant_id": spec.variant_id, "artifact_sha256": spec.artifact_sha256},
    )


def gc(
    target: Annotated[list[str] | None, typer.Option("--target", help="Targets to sweep (repeat).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be deleted.")] = False,
    grace_s: Annotated[float, typer.Option(min=0.0, help="Leave resources younger than this.")] = 900.0,
    region: Annotated[str | None, typer.Option(help="AWS region.")] = None,
    endpoint_url: Annotated[str | None, typer.Option(envvar="THRIFTY_AWS_ENDPOINT_URL")] = None,
    project: Annotated[str | None, typer.Option(envvar="THRIFTY_GCP_PROJECT")] = None,
    namespace: Annotated[str | None, typer.Option(envvar="THRIFTY_K8S_NAMESPACE")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete cloud resources thrifty tagged whose deployment is gone (after a grace period)."""
    from rich.table import Table

    from thrifty import read, runtime
    from thrifty.cli import console, print_json
    from thrifty.providers.gc import sweep

    opts = {"region": region, "endpoint_url": endpoint_url, "project": project, "namespace": namespace}
    providers = [build_provider(t, opts, require_s3=False) for t in target or ["aws"]]
    live = [(d.provider, d.name) for d in read.deployments(runtime.registry()) if d.state != "deleted"]
    orphans = sweep(providers, live, grace_s=grace_s, dry_run=dry_run)
    rows = [
        {
            "provider": o.resource.provider,
            "kind": o.resource.kind,
            "id": o.resource.id,
            "deployment": o.resource.deployment_name,
            "reason": o.reason,
        }
        for o in orphans
    ]
    if as_json:
        print_json({"dry_run": dry_run, "orphans": rows})
        return
    table = Table(title=f"orphans ({'would delete' if dry_run else 'deleted'})")
    for column in ("provider", "kind", "id", "deployment", "reason"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c]) for c in ("provider", "kind", "id", "deployment", "reason")))
    console.print(table)


def spot_watch(
    deployment: Annotated[str, typer.Option(help="The deployment this VM serves.")],
    cloud: Annotated[str, typer.Option(help="aws, gcp or azure.")] = "aws",
    metadata_url: Annotated[
        str | None, typer.Option(help="Metadata base URL (default: the cloud's).")
    ] = None,
    poll_s: Annotated[float, typer.Option(min=0.1, help="Seconds between polls.")] = 5.0,
) -> None:
    """On a spot VM: wait for the interruption notice and emit thrifty.spot.interruption."""
    from thrifty.providers.aws_interruption import installed_emitter, metadata_client, probe_for, watch

    # the Prefect layer registers its event emitter as a plugin; without one, print the notice
    emit = installed_emitter() or (lambda notice: typer.echo(json.dumps(notice.payload())))
    with metadata_client() as client:
        watch(probe_for(cloud, client, metadata_url), deployment, emit, poll_s=poll_s)


def targets(as_json: JsonOpt = False) -> None:
    """The deploy targets: name, kind, the clouds each serves and the block that configures it."""
    from rich.table import Table

    from thrifty.cli import console, print_json
    from thrifty.targets import all_targets

    rows: list[dict[str, Any]] = [
        {
            "name": d.name,
            "kind": d.kind.value,
            "clouds": list(d.clouds),
            "block": d.default_block,
            "interruption_notice_s": d.interruption_notice_s,
            "description": d.description,
        }
        for d in all_targets().values()
    ]
    if as_json:
        print_json(rows)
        return
    table = Table(title="deploy targets")
    for column in ("name", "kind", "clouds", "block (default)", "notice s", "what"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(
            r["name"], r["kind"], ", ".join(r["clouds"]), r["block"] or "—", str(r["interruption_notice_s"]),
            r["description"],
        )  # fmt: skip
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("targets")(targets)
    app.command("deploy")(deploy)
    app.command("gc")(gc)
    app.command("spot-watch")(spot_watch)
