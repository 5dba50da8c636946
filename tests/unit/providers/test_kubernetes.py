"""Kubernetes provider: manifests validated against the Kubernetes schemas (kubernetes-validate,
offline), and the provider against a local HTTP server that answers the API calls it makes.

REPLAYED: there is no API server here. ``FakeApiServer`` answers with real-shaped objects and keeps
server-side-apply semantics for one field manager (create → 201, same apply → unchanged
generation, changed spec → generation + 1, a field dropped from the applied config disappears),
label-selector lists, deletes, and a Deployment controller. Like a real cluster, a Deployment
whose spec changed reports its new pods in ``readyReplicas`` only after ``reads_to_ready`` reads
(pods take time to start; until then the old ready count, or no field at all), so the provider
must wait for its rollout. Tests using it end in ``_replayed``.
"""

from __future__ import annotations

import copy
import itertools
import json
import time
from typing import Any

import kubernetes_validate
import pytest

from tests.unit.providers.conftest import RUNTIME_IMAGE
from tests.unit.providers.replay import ReplayServer, Request
from thrifty.errors import ConfigError, CredentialsError, QuotaExceededError
from thrifty.providers.base import PriceModel, Provider, provider_class
from thrifty.providers.k8s_manifests import SPOT_PLACEMENT, KubernetesTarget, manifests
from thrifty.providers.kubernetes import KubernetesProvider

K8S_VERSION = "1.33"
SECRET_TOKEN = "k8s-token-very-secret-1234"


def _validate(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


# -- manifests ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("platform", ["karpenter", "gke", "aks"])
@pytest.mark.parametrize("floor", [0, 1])
def test_manifests_validate_and_place_pods_on_spot(make_spec: Any, platform: str, floor: int) -> None:
    target = KubernetesTarget(image=RUNTIME_IMAGE, spot_platform=platform)  # type: ignore[arg-type]
    objects = manifests(make_spec(replicas=3, on_demand_floor=floor), target)
    kinds = [o["kind"] for o in objects]
    expected = ["Deployment", "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"]
    assert kinds == (expected if floor else expected[:1] + expected[2:])
    for obj in objects:
        _validate(obj)
    spot_pod = objects[0]["spec"]["template"]["spec"]
    selector, tolerations = SPOT_PLACEMENT[platform]
    assert spot_pod["nodeSelector"] == selector
    assert spot_pod["tolerations"] == tolerations
    assert "replicas" not in objects[0]["spec"], "the HPA owns the spot Deployment's replicas"
    if floor:
        assert objects[1]["spec"]["replicas"] == 1
        assert "tolerations" not in objects[1]["spec"]["template"]["spec"]


def _tls_spec(make_spec: Any, **overrides: Any) -> Any:
    from pydantic import SecretStr

    from thrifty import tls

    cert = tls.make_cert("minilm")
    serving = {"token_sha256": "cd" * 32, "tls_cert_sha256": cert.sha256, "tls_cert_pem": cert.cert_pem}
    bundle = SecretStr(tls.secret_bundle(cert, "cd" * 32))
    return make_spec(serving=serving, secret_bundle=bundle, **overrides), cert


def test_pods_run_the_runtime_image_by_digest_with_the_secret_mounted_and_oip_probes(make_spec: Any) -> None:
    import base64

    spec, cert = _tls_spec(make_spec)
    objects = manifests(spec, KubernetesTarget(image=RUNTIME_IMAGE))
    for obj in objects:
        _validate(obj)
    secret, main = objects[0], objects[1]
    assert (secret["kind"], secret["metadata"]["name"]) == ("Secret", "minilm-tls")
    assert base64.b64decode(secret["data"]["tls.key"]).decode() == cert.key_pem
    assert base64.b64decode(secret["data"]["token_sha256"]).decode() == "cd" * 32
    pod = main["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    (server,) = pod["containers"]
    assert server["image"] == RUNTIME_IMAGE and "command" not in server  # the image's own entrypoint
    env = {e["name"]: e["value"] for e in server["env"]}
    assert env["THRIFTY_SECRET"] == "dir:/var/run/thrifty/secret" and "THRIFTY_API_TOKEN_SHA256" not in env
    assert env["THRIFTY_ARTIFACT_SHA256"] == spec.artifact_sha256
    assert cert.key_pem.splitlines()[1] not in json.dumps(main), "the key is only in the Secret"
    assert {"name": "secret", "secret": {"secretName": "minilm-tls", "defaultMode": 0o400}} in pod["volumes"]
    assert server["readinessProbe"]["httpGet"] == {
        "path": "/v2/health/ready",
        "port": "serve",
        "scheme": "HTTPS",
    }
    assert server["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert server["startupProbe"]["httpGet"]["scheme"] == "HTTPS"


def test_an_image_without_a_digest_is_refused(make_spec: Any) -> None:
    with pytest.raises(ConfigError, match="not pinned by digest"):
        manifests(make_spec(), KubernetesTarget(image="ghcr.io/thrifty-ml/thrifty:0.1.0"))


def test_aks_spot_toleration_matches_the_aks_taint(make_spec: Any) -> None:
    pod = manifests(make_spec(), KubernetesTarget(image=RUNTIME_IMAGE, spot_platform="aks"))[0]["spec"][
        "template"
    ]["spec"]
    assert {"key": "kubernetes.azure.com/scalesetpriority", "operator": "Equal", "value": "spot",
            "effect": "NoSchedule"} in pod["tolerations"]  # fmt: skip


def test_keda_scale_to_zero_uses_an_http_scaled_object(make_spec: Any) -> None:
    objects = manifests(make_spec(), KubernetesTarget(image=RUNTIME_IMAGE, scale_to_zero="keda"))
    kinds = [o["kind"] for o in objects]
    assert "HorizontalPodAutoscaler" not in kinds
    scaled = objects[kinds.index("HTTPScaledObject")]
    assert scaled["apiVersion"] == "http.keda.sh/v1alpha1"
    assert scaled["spec"]["replicas"]["min"] == 0
    assert scaled["spec"]["scaleTargetRef"] == {
        "name": "minilm", "kind": "Deployment", "apiVersion": "apps/v1", "service": "minilm", "port": 80,
    }  # fmt: skip
    for obj in objects:
        if obj["kind"] != "HTTPScaledObject":  # a CRD: kubernetes-validate has no schema for it
            _validate(obj)


def test_knative_scale_to_zero_is_one_knative_service(make_spec: Any) -> None:
    (ksvc,) = manifests(make_spec(), KubernetesTarget(image=RUNTIME_IMAGE, scale_to_zero="knative"))
    assert (ksvc["apiVersion"], ksvc["kind"]) == ("serving.knative.dev/v1", "Service")
    template = ksvc["spec"]["template"]
    assert template["metadata"]["annotations"]["autoscaling.knative.dev/min-scale"] == "0"
    # the pod template is a core PodSpec: validate it through a Pod
    _validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": template["spec"]})


def test_hibernated_manifests_scale_to_zero_without_hpa(make_spec: Any) -> None:
    objects = manifests(make_spec(on_demand_floor=1), KubernetesTarget(image=RUNTIME_IMAGE), hibernated=True)
    assert [o["kind"] for o in objects] == ["Deployment", "Service", "PodDisruptionBudget"]
    assert objects[0]["spec"]["replicas"] == 0
    _validate(objects[0])


@pytest.mark.parametrize("name", ["Upper", "under_score", "x" * 51, "-lead"])
def test_invalid_kubernetes_names_are_refused(make_spec: Any, name: str) -> None:
    with pytest.raises(ConfigError, match="not a valid Kubernetes name"):
        manifests(make_spec(name), KubernetesTarget(image=RUNTIME_IMAGE))


def test_serverless_needs_scale_to_zero(make_spec: Any) -> None:
    with pytest.raises(ConfigError, match="scale_to_zero"):
        manifests(make_spec(price_model=PriceModel.SERVERLESS), KubernetesTarget(image=RUNTIME_IMAGE))


# -- the fake API server -------------------------------------------------------------------------------
def _merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = _merge(base.get(key), value)
        return out
    return copy.deepcopy(patch)


class FakeApiServer:
    """Server-side apply for one field manager, lists by label, deletes, a ready controller."""

    def __init__(self, server: ReplayServer) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.applied: dict[str, dict[str, Any]] = {}
        self.counter = itertools.count(1)
        self.fail_kind: tuple[str, int, str] | None = None
        #: reads of a Deployment (GET or list) after a change before its pods report ready
        self.reads_to_ready = 3
        self.starting: dict[str, int] = {}
        #: how often a Deployment was read while some of its pods were not ready yet
        self.unready_reads = 0
        server.route("PATCH", "/", self.patch)
        server.route("GET", "/", self.get)
        server.route("DELETE", "/", self.delete)

    def _check(self, req: Request) -> tuple[int, Any] | None:
        if req.headers.get("Authorization") != f"Bearer {SECRET_TOKEN}":
            return 401, {"kind": "Status", "code": 401, "message": "Unauthorized"}
        return None

    def patch(self, req: Request) -> tuple[int, Any]:
        if denied := self._check(req):
            return denied
        assert req.headers["Content-Type"] == "application/apply-patch+yaml"
        assert req.query == {"fieldManager": ["thrifty"], "force": ["true"]}
        kind = req.body["kind"]
        if self.fail_kind and self.fail_kind[0] == kind:
            return self.fail_kind[1], {
                "kind": "Status",
                "code": self.fail_kind[1],
                "message": self.fail_kind[2],
            }
        existing = self.objects.get(req.path)
        # SSA: the object's fields are what thrifty last applied, plus the fields other managers
        # own (here: .spec.replicas of a Deployment, owned by the HPA controller when thrifty omits it)
        obj = copy.deepcopy(req.body)
        if existing is not None and "status" in existing:  # status is the controllers', not the applier's
            obj["status"] = existing["status"]
        if kind == "Deployment" and "replicas" not in obj["spec"]:
            obj["spec"]["replicas"] = existing["spec"]["replicas"] if existing else 1
        if existing is None:
            obj["metadata"].update(
                uid=f"uid-{next(self.counter)}", generation=1, creationTimestamp="2026-11-26T10:00:00Z"
            )
            status = 201
        else:
            meta = existing["metadata"]
            changed = existing.get("spec") != obj.get("spec")
            obj["metadata"].update(
                uid=meta["uid"],
                generation=meta["generation"] + int(changed),
                creationTimestamp=meta["creationTimestamp"],
            )
            status = 200
        obj["metadata"]["managedFields"] = [{"manager": "thrifty", "operation": "Apply"}]
        self.objects[req.path] = obj
        self._controllers()
        return status, self.objects[req.path]

    def _controllers(self) -> None:
        """The HPA keeps its target within [min, max]; a changed Deployment starts its pods."""
        for path, obj in self.objects.items():
            if obj["kind"] == "HorizontalPodAutoscaler":
                ns_path = path.split("/horizontalpodautoscalers/")[0].replace("/autoscaling/v2/", "/apps/v1/")
                target = self.objects[f"{ns_path}/deployments/{obj['spec']['scaleTargetRef']['name']}"]
                low, high = obj["spec"]["minReplicas"], obj["spec"]["maxReplicas"]
                target["spec"]["replicas"] = min(max(target["spec"]["replicas"], low), high)
        for path, obj in self.objects.items():
            if obj["kind"] != "Deployment":
                continue
            replicas, generation = obj["spec"]["replicas"], obj["metadata"]["generation"]
            old = obj.get("status") or {}
            if (old.get("observedGeneration"), old.get("replicas")) == (generation, replicas):
                continue
            # the pods still ready (the old ones, at most the new count) stay; the new ones start
            ready = min(old.get("readyReplicas", 0), replicas)
            obj["status"] = {
                "observedGeneration": generation,
                "replicas": replicas,
                "updatedReplicas": replicas,
            }
            obj["status"] |= {"readyReplicas": ready, "availableReplicas": ready} if ready else {}
            self.starting[path] = self.reads_to_ready

    def _read(self, path: str) -> None:
        """One more read of a Deployment whose pods are starting: after enough, they are ready."""
        if path not in self.starting:
            return
        self.unready_reads += 1
        self.starting[path] -= 1
        if self.starting[path] <= 0:
            del self.starting[path]
            obj = self.objects[path]
            ready = obj["spec"]["replicas"]
            obj["status"] = {
                k: v for k, v in obj["status"].items() if k not in ("readyReplicas", "availableReplicas")
            }
            obj["status"] |= {"readyReplicas": ready, "availableReplicas": ready} if ready else {}

    def get(self, req: Request) -> tuple[int, Any]:
        if denied := self._check(req):
            return denied
        if req.path in self.objects:
            self._read(req.path)
            return 200, self.objects[req.path]
        if req.path.startswith(("/apis/http.keda.sh", "/apis/serving.knative.dev")) and not self.crds:
            return 404, {
                "kind": "Status",
                "code": 404,
                "message": "the server could not find the requested resource",
            }
        wanted = dict(pair.split("=") for pair in req.query.get("labelSelector", [""])[0].split(",") if pair)
        paths = [
            path
            for path, obj in self.objects.items()
            if path.rsplit("/", 1)[0] == req.path
            and all(obj["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
        ]
        for path in paths:
            self._read(path)
        return 200, {"kind": "List", "items": [self.objects[path] for path in paths]}

    crds = False

    def delete(self, req: Request) -> tuple[int, Any]:
        if denied := self._check(req):
            return denied
        self.starting.pop(req.path, None)
        if self.objects.pop(req.path, None) is None:
            return 404, {"kind": "Status", "code": 404, "message": "not found"}
        return 200, {"kind": "Status", "status": "Success"}


@pytest.fixture
def apiserver(replay_server: ReplayServer) -> FakeApiServer:
    return FakeApiServer(replay_server)


def _provider(
    url: str, token: str = SECRET_TOKEN, ready_timeout_s: float = 30.0, **target: Any
) -> KubernetesProvider:
    from kubernetes import client

    config = client.Configuration(host=url)
    config.api_key = {"BearerToken": token}
    config.api_key_prefix = {"BearerToken": "Bearer"}
    return KubernetesProvider(
        client.ApiClient(config),
        KubernetesTarget(namespace="ml", image=RUNTIME_IMAGE, **target),
        ready_timeout_s=ready_timeout_s,
        poll_s=0.05,
    )


@pytest.fixture
def k8s(replay_server: ReplayServer, apiserver: FakeApiServer) -> KubernetesProvider:
    return _provider(replay_server.url)


def test_registered_and_protocol_replayed(k8s: KubernetesProvider) -> None:
    assert provider_class("kubernetes") is KubernetesProvider
    assert isinstance(k8s, Provider)


def test_deploy_applies_every_object_server_side_replayed(
    k8s: KubernetesProvider, apiserver: FakeApiServer, make_spec: Any
) -> None:
    status = k8s.deploy(make_spec(replicas=2, on_demand_floor=1))
    assert sorted(apiserver.objects) == [
        "/api/v1/namespaces/ml/services/minilm",
        "/apis/apps/v1/namespaces/ml/deployments/minilm",
        "/apis/apps/v1/namespaces/ml/deployments/minilm-od",
        "/apis/autoscaling/v2/namespaces/ml/horizontalpodautoscalers/minilm",
        "/apis/policy/v1/namespaces/ml/poddisruptionbudgets/minilm",
    ]
    assert (status.state, status.replicas_desired, status.replicas_ready) == ("running", 2, 2)
    assert status.endpoint_url == "http://minilm.ml.svc.cluster.local"


def test_deploy_and_scale_wait_for_the_pods_to_be_ready_replayed(
    k8s: KubernetesProvider, apiserver: FakeApiServer, make_spec: Any
) -> None:
    status = k8s.deploy(make_spec(replicas=2, on_demand_floor=1))
    assert apiserver.unready_reads > 0, "the double served Deployments whose pods were still starting"
    assert (status.state, status.replicas_ready) == ("running", 2) and apiserver.starting == {}
    apiserver.unready_reads = 0
    status = k8s.scale("minilm", 4)
    assert apiserver.unready_reads > 0 and (status.state, status.replicas_ready) == ("running", 4)


def test_pods_that_never_become_ready_leave_the_deployment_pending_replayed(
    replay_server: ReplayServer, apiserver: FakeApiServer, make_spec: Any
) -> None:
    apiserver.reads_to_ready = 10**6
    k8s = _provider(replay_server.url, ready_timeout_s=0.3)
    started = time.monotonic()
    status = k8s.deploy(make_spec(replicas=2))
    assert (status.state, status.replicas_ready) == ("pending", 0)
    assert 0.2 <= time.monotonic() - started < 10, "waited up to the deadline, not for ever"


def test_applying_twice_changes_nothing_replayed(
    k8s: KubernetesProvider, apiserver: FakeApiServer, make_spec: Any
) -> None:
    k8s.deploy(make_spec())
    before = copy.deepcopy(apiserver.objects)
    k8s.deploy(make_spec())
    assert apiserver.objects == before
    assert {o["metadata"]["generation"] for o in apiserver.objects.values()} == {1}


def test_scale_hibernate_wake_prune_and_delete_replayed(
    k8s: KubernetesProvider, apiserver: FakeApiServer, make_spec: Any
) -> None:
    hpa = "/apis/autoscaling/v2/namespaces/ml/horizontalpodautoscalers/minilm"
    k8s.deploy(make_spec(replicas=2))
    assert k8s.scale("minilm", 4).replicas_desired == 4
    assert apiserver.objects[hpa]["spec"]["minReplicas"] == 4
    assert apiserver.objects[hpa]["metadata"]["generation"] == 2
    hibernated = k8s.hibernate("minilm")
    assert (hibernated.state, hibernated.replicas_ready) == ("hibernated", 0)
    assert hpa not in apiserver.objects, "the HPA must be pruned while hibernated"
    woken = k8s.wake("minilm")
    assert (woken.state, woken.replicas_desired) == ("running", 4)
    assert hpa in apiserver.objects
    k8s.delete("minilm")
    k8s.delete("minilm")
    assert apiserver.objects == {}
    assert k8s.status("minilm").state == "deleted"


def test_the_secret_survives_scale_and_hibernate_and_goes_with_delete_replayed(
    k8s: KubernetesProvider, apiserver: FakeApiServer, make_spec: Any
) -> None:
    path = "/api/v1/namespaces/ml/secrets/minilm-tls"
    spec, _ = _tls_spec(make_spec, replicas=2)
    assert k8s.deploy(spec).endpoint_url == "https://minilm.ml.svc.cluster.local"
    assert path in apiserver.objects
    k8s.scale("minilm", 3)
    k8s.hibernate("minilm")
    k8s.wake("minilm")
    assert path in apiserver.objects, "a re-render without the bundle must not prune the Secret"
    deployment = apiserver.objects["/apis/apps/v1/namespaces/ml/deployments/minilm"]
    env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["THRIFTY_SECRET"].startswith("dir:"), "the re-rendered pods still read the Secret"
    k8s.delete("minilm")
    assert apiserver.objects == {}


def test_keda_without_the_crd_says_what_to_install_and_leaves_nothing_replayed(
    replay_server: ReplayServer, apiserver: FakeApiServer, make_spec: Any
) -> None:
    apiserver.fail_kind = ("HTTPScaledObject", 404, "the server could not find the requested resource")
    k8s = _provider(replay_server.url, scale_to_zero="keda")
    with pytest.raises(ConfigError, match="HTTPScaledObject") as info:
        k8s.deploy(make_spec())
    assert info.value.hint == "install the KEDA HTTP add-on first"
    assert apiserver.objects == {}, "a first deploy failing half-way must delete what it created"


def test_quota_and_rbac_errors_are_translated_replayed(
    k8s: KubernetesProvider, apiserver: FakeApiServer, make_spec: Any
) -> None:
    apiserver.fail_kind = ("Deployment", 403, 'deployments "minilm" is forbidden: exceeded quota: compute')
    with pytest.raises(QuotaExceededError, match="exceeded quota"):
        k8s.deploy(make_spec())
    apiserver.fail_kind = ("Service", 403, 'services is forbidden: User "thrifty" cannot patch')
    with pytest.raises(CredentialsError, match="cannot patch") as info:
        k8s.deploy(make_spec())
    assert info.value.hint == "grant thrifty's service account RBAC for: apply Service/minilm"


def test_a_rejected_token_is_a_credentials_error_without_the_token_replayed(
    replay_server: ReplayServer, apiserver: FakeApiServer, make_spec: Any, caplog: pytest.LogCaptureFixture
) -> None:
    k8s = _provider(replay_server.url, token="wrong-" + SECRET_TOKEN)
    with pytest.raises(CredentialsError) as info:
        k8s.deploy(make_spec())
    assert SECRET_TOKEN not in str(info.value)
    assert SECRET_TOKEN not in caplog.text


def test_list_managed_and_delete_resource_replayed(
    k8s: KubernetesProvider, apiserver: FakeApiServer, make_spec: Any
) -> None:
    k8s.deploy(make_spec("a", replicas=1))
    found = k8s.list_managed()
    assert sorted(r.kind for r in found) == [
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Service",
    ]
    assert {r.deployment_name for r in found} == {"a"}
    for resource in found:
        k8s.delete_resource(resource)
    assert apiserver.objects == {}


def test_knative_service_is_applied_and_reports_ready_replayed(
    replay_server: ReplayServer, apiserver: FakeApiServer, make_spec: Any
) -> None:
    apiserver.crds = True
    k8s = _provider(replay_server.url, scale_to_zero="knative")
    assert k8s.deploy(make_spec()).state == "pending"  # no Ready condition yet
    path = "/apis/serving.knative.dev/v1/namespaces/ml/services/minilm"
    assert list(apiserver.objects) == [path]
    apiserver.objects[path]["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    status = k8s.status("minilm")
    assert (status.state, status.replicas_ready) == ("running", 2)
    k8s.delete("minilm")
    assert apiserver.objects == {}
