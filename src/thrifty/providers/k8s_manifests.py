"""Kubernetes manifests for one deployment, as plain dicts (pure functions; no cluster needed).

- ``Deployment`` (spot, ``replicas - floor``) + ``Deployment`` ``<name>-od`` (the on-demand floor)
  behind one ``Service``. Each pod runs the serving-runtime image by digest (``thrifty image build
  --push``), configured by environment like a VM's container: it fetches the variant by sha256
  itself. Its TLS key, certificate and token digest come from the deployment's ``Secret``
  (``<name>-tls``, mounted as files; made from the spec's bundle, never stored elsewhere); the
  kubelet probes ``/v2/health/live`` (startup, liveness) and ``/v2/health/ready`` (readiness).
- ``HorizontalPodAutoscaler`` (autoscaling/v2, CPU) on the spot Deployment, a ``PodDisruptionBudget``.
- Scale to zero (a setting): ``keda`` adds an ``HTTPScaledObject`` (KEDA HTTP add-on) instead of the
  HPA; ``knative`` replaces Deployment + Service + HPA with one Knative ``Service``
  (``min-scale: 0``).
- Spot placement by the node labels and taints of each platform (``SPOT_PLACEMENT``).

Every object carries ``app.kubernetes.io/managed-by: thrifty`` and ``thrifty-deployment: <name>``
labels, so ``list_managed`` finds it and a prune removes what a new apply no longer produces.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from thrifty.errors import ConfigError
from thrifty.providers.base import DeploySpec, PriceModel
from thrifty.providers.boot import MODEL_DIR, BootConfig
from thrifty.providers.boot import container_env as vm_container_env
from thrifty.providers.gc import DEPLOYMENT_LABEL, MANAGED_LABEL, label_value

ScaleToZero = Literal["none", "keda", "knative"]
SpotPlatform = Literal["karpenter", "gke", "aks"]
SPEC_ANNOTATION = "thrifty.dev/spec"
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")

#: (node selector, tolerations) that put a pod on spot capacity, per platform
SPOT_PLACEMENT: dict[str, tuple[dict[str, str], list[dict[str, str]]]] = {
    "karpenter": ({"karpenter.sh/capacity-type": "spot"}, []),
    "gke": (
        {"cloud.google.com/gke-spot": "true"},
        [{"key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true", "effect": "NoSchedule"}],
    ),
    "aks": (
        {"kubernetes.azure.com/scalesetpriority": "spot"},
        [
            {
                "key": "kubernetes.azure.com/scalesetpriority",
                "operator": "Equal",
                "value": "spot",
                "effect": "NoSchedule",
            }
        ],
    ),
}
#: node selector that keeps the on-demand floor off spot nodes
ON_DEMAND_PLACEMENT: dict[str, dict[str, str]] = {
    "karpenter": {"karpenter.sh/capacity-type": "on-demand"},
    "gke": {},
    "aks": {"kubernetes.azure.com/mode": "system"},
}


@dataclass(frozen=True)
class KubernetesTarget:
    """Where and how to run on a cluster (plain config; the block builds it)."""

    namespace: str = "default"
    #: the serving-runtime image by digest (``REGISTRY/thrifty-runtime@sha256:…``)
    image: str = ""
    artifact_store_url: str = "s3://thrifty-artifacts"
    s3_endpoint_url: str | None = None
    scale_to_zero: ScaleToZero = "none"
    spot_platform: SpotPlatform = "karpenter"
    port: int = 8080
    cpu: str = "1"
    memory: str = "2Gi"
    max_replicas: int = 10
    target_cpu_percent: int = 70
    service_account: str | None = None
    host: str | None = None
    extra_labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scale_to_zero not in ("none", "keda", "knative"):
            raise ConfigError(f"scale_to_zero={self.scale_to_zero!r}", hint="use none, keda or knative")
        if self.spot_platform not in SPOT_PLACEMENT:
            raise ConfigError(
                f"spot_platform={self.spot_platform!r}", hint=f"use one of {', '.join(SPOT_PLACEMENT)}"
            )


def labels(spec: DeploySpec, target: KubernetesTarget) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": label_value(spec.name),
        "app.kubernetes.io/managed-by": "thrifty",
        MANAGED_LABEL: "true",
        DEPLOYMENT_LABEL: label_value(spec.name),
        **target.extra_labels,
    }


def _meta(name: str, spec: DeploySpec, target: KubernetesTarget, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": target.namespace, "labels": labels(spec, target), **extra}


def spec_annotation(spec: DeploySpec) -> str:
    data = {
        "name": spec.name,
        "model_name": spec.model_name,
        "variant_id": spec.variant_id,
        "artifact_sha256": spec.artifact_sha256,
        "region": spec.region,
        "instance_type": spec.instance_type,
        "price_model": spec.price_model.value,
        "replicas": spec.replicas,
        "on_demand_floor": spec.on_demand_floor,
        "plan_id": spec.plan_id,
        "serving": spec.serving,  # token digest, pinned certificate: public, needed to re-render
    }
    return json.dumps(data, sort_keys=True)


def spec_from_annotation(text: str) -> DeploySpec:
    data = json.loads(text)
    data["price_model"] = PriceModel(data["price_model"])
    return DeploySpec(**data)


SECRET_DIR = "/var/run/thrifty/secret"


def secret_name(spec: DeploySpec) -> str:
    return f"{spec.name}-tls"


def tls_enabled(spec: DeploySpec) -> bool:
    return bool(spec.serving.get("tls_cert_sha256"))


def container_env(spec: DeploySpec, target: KubernetesTarget) -> list[dict[str, str]]:
    """The runtime container's environment, the same as on a VM (``boot.container_env``); the
    secret is the mounted Secret."""
    boot = BootConfig(
        artifact_store_url=target.artifact_store_url,
        s3_endpoint_url=target.s3_endpoint_url,
        port=target.port,
        image=target.image,
    )
    secret = f"dir:{SECRET_DIR}" if tls_enabled(spec) else ""
    env = vm_container_env(spec, boot, "kubernetes", secret)
    return [{"name": k, "value": v} for k, v in env.items()]


def probes(spec: DeploySpec, port: int | str) -> dict[str, Any]:
    """The kubelet's probes on the OIP health paths; startup allows the fetch and load (≤ 5 min)."""
    scheme = "HTTPS" if tls_enabled(spec) else "HTTP"

    def get(path: str) -> dict[str, Any]:
        return {"path": path, "port": port, "scheme": scheme}

    return {
        "startupProbe": {"httpGet": get("/v2/health/live"), "periodSeconds": 5, "failureThreshold": 60},
        "livenessProbe": {"httpGet": get("/v2/health/live"), "periodSeconds": 10, "failureThreshold": 3},
        "readinessProbe": {"httpGet": get("/v2/health/ready"), "periodSeconds": 5},
    }


def server_container(spec: DeploySpec, target: KubernetesTarget) -> dict[str, Any]:
    mounts: list[dict[str, Any]] = [{"name": "models", "mountPath": MODEL_DIR}]
    if tls_enabled(spec):
        mounts.append({"name": "secret", "mountPath": SECRET_DIR, "readOnly": True})
    return {
        "name": "server",
        "image": target.image,
        "env": container_env(spec, target),
        "ports": [{"name": "serve", "containerPort": target.port}],
        **probes(spec, "serve"),
        "resources": {
            "requests": {"cpu": target.cpu, "memory": target.memory},
            "limits": {"memory": target.memory},
        },
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
        "volumeMounts": mounts,
    }


def pod_spec(spec: DeploySpec, target: KubernetesTarget, *, on_spot: bool) -> dict[str, Any]:
    volumes: list[dict[str, Any]] = [{"name": "models", "emptyDir": {}}]
    if tls_enabled(spec):
        volumes.append({"name": "secret", "secret": {"secretName": secret_name(spec), "defaultMode": 0o400}})
    pod: dict[str, Any] = {
        "containers": [server_container(spec, target)],
        "volumes": volumes,
        "securityContext": {"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001},
        "terminationGracePeriodSeconds": 25,
    }
    if target.service_account:
        pod["serviceAccountName"] = target.service_account
    selector, tolerations = SPOT_PLACEMENT[target.spot_platform]
    if on_spot:
        pod["nodeSelector"] = dict(selector)
        pod["tolerations"] = list(tolerations)
    elif ON_DEMAND_PLACEMENT[target.spot_platform]:
        pod["nodeSelector"] = dict(ON_DEMAND_PLACEMENT[target.spot_platform])
    return pod


def secret(spec: DeploySpec, target: KubernetesTarget) -> dict[str, Any]:
    """The deployment's Secret from the spec's bundle (only at deploy time: the bundle is never stored)."""
    import base64

    if spec.secret_bundle is None:
        raise ConfigError(f"deployment {spec.name!r} has no secret bundle", hint="deploy it through thrifty")
    bundle = json.loads(spec.secret_bundle.get_secret_value())
    files = {
        "tls.crt": bundle["tls_cert_pem"],
        "tls.key": bundle["tls_key_pem"],
        "token_sha256": bundle["token_sha256"],
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(secret_name(spec), spec, target),
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in files.items()},
    }


def deployment(
    spec: DeploySpec, target: KubernetesTarget, *, name: str, replicas: int, on_spot: bool
) -> dict[str, Any]:
    pod_labels = {**labels(spec, target), "thrifty-capacity": "spot" if on_spot else "on-demand"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, spec, target, annotations={SPEC_ANNOTATION: spec_annotation(spec)}),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": pod_labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec(spec, target, on_spot=on_spot)},
        },
    }


def service(spec: DeploySpec, target: KubernetesTarget) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(spec.name, spec, target),
        "spec": {
            "selector": labels(spec, target),
            "ports": [{"name": "serve", "port": 443 if tls_enabled(spec) else 80, "targetPort": "serve"}],
        },
    }


def hpa(spec: DeploySpec, target: KubernetesTarget, *, min_replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(spec.name, spec, target),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
            "minReplicas": max(1, min_replicas),
            "maxReplicas": max(target.max_replicas, min_replicas, 1),
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": target.target_cpu_percent},
                    },
                }
            ],
        },
    }


def pdb(spec: DeploySpec, target: KubernetesTarget) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(spec.name, spec, target),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels(spec, target)}},
    }


def http_scaled_object(spec: DeploySpec, target: KubernetesTarget) -> dict[str, Any]:
    return {
        "apiVersion": "http.keda.sh/v1alpha1",
        "kind": "HTTPScaledObject",
        "metadata": _meta(spec.name, spec, target),
        "spec": {
            "hosts": [target.host or f"{spec.name}.{target.namespace}.svc.cluster.local"],
            "scaleTargetRef": {
                "name": spec.name,
                "kind": "Deployment",
                "apiVersion": "apps/v1",
                "service": spec.name,
                "port": 80,
            },
            "replicas": {"min": 0, "max": max(target.max_replicas, spec.replicas)},
            "scaledownPeriod": 300,
        },
    }


def knative_service(spec: DeploySpec, target: KubernetesTarget) -> dict[str, Any]:
    pod = pod_spec(spec, target, on_spot=spec.price_model is PriceModel.SPOT)
    pod["containers"][0]["ports"] = [{"containerPort": target.port}]
    pod["containers"][0].update(probes(spec, target.port))
    annotations = {
        "autoscaling.knative.dev/min-scale": "0",
        "autoscaling.knative.dev/max-scale": str(max(target.max_replicas, spec.replicas)),
    }
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": _meta(spec.name, spec, target, annotations={SPEC_ANNOTATION: spec_annotation(spec)}),
        "spec": {
            "template": {
                "metadata": {"labels": labels(spec, target), "annotations": annotations},
                "spec": pod,
            }
        },
    }


def manifests(
    spec: DeploySpec, target: KubernetesTarget, *, hibernated: bool = False
) -> list[dict[str, Any]]:
    """Every object of the deployment, in apply order."""
    if not _DNS_LABEL.fullmatch(spec.name) or len(spec.name) > 50:
        raise ConfigError(
            f"deployment name {spec.name!r} is not a valid Kubernetes name",
            hint="use at most 50 lowercase letters, digits and '-', starting and ending alphanumeric",
        )
    if "@sha256:" not in target.image:
        raise ConfigError(
            f"the Kubernetes target's image {target.image!r} is not pinned by digest",
            hint="build and push the runtime image (`thrifty image build --push REGISTRY`) and set "
            "the printed REGISTRY/thrifty-runtime@sha256:… as the target's image",
        )
    if spec.price_model is PriceModel.SERVERLESS and target.scale_to_zero == "none":
        raise ConfigError(
            "price model 'serverless' on Kubernetes needs scale to zero",
            hint="set scale_to_zero to keda or knative on the Kubernetes target",
        )
    first = [secret(spec, target)] if spec.secret_bundle is not None else []
    if target.scale_to_zero == "knative":
        return [*first, knative_service(spec, target)]
    floor = 0 if hibernated else min(spec.on_demand_floor, spec.replicas)
    spot_replicas = 0 if hibernated else spec.replicas - floor
    on_spot = spec.price_model is PriceModel.SPOT
    main = deployment(spec, target, name=spec.name, replicas=spot_replicas, on_spot=on_spot)
    autoscaled = target.scale_to_zero == "keda" or (not hibernated and spot_replicas > 0)
    if autoscaled:  # the autoscaler owns .spec.replicas; applying it too would fight it
        del main["spec"]["replicas"]
    objects = [*first, main]
    if floor:
        objects.append(deployment(spec, target, name=f"{spec.name}-od", replicas=floor, on_spot=False))
    objects += [service(spec, target), pdb(spec, target)]
    if target.scale_to_zero == "keda":
        objects.append(http_scaled_object(spec, target))
    elif not hibernated and spot_replicas > 0:
        objects.append(hpa(spec, target, min_replicas=spot_replicas))
    return objects
