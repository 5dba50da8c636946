"""Faults on the way to a cloud endpoint: each is a ThriftyError naming the cause and the fix, leaves
nothing running (the gc sweep finds nothing), and leaves an earlier good deployment of the same
name as it was. AWS faults run on moto (the refusal raised by a botocore hook with AWS's own error
code, as in test_aws); readiness and token faults talk real HTTP to a loopback server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.unit.providers.test_aws import _fail_nth_run
from thrifty.errors import QuotaExceededError, ServingError
from thrifty.providers.aws import AwsProvider
from thrifty.providers.gc import sweep
from thrifty.verify import infer_over_http, wait_ready


@pytest.fixture
def artifact_sha(s3_artifact: tuple[str, str]) -> str:
    return s3_artifact[1]


def _live_ids(aws: AwsProvider) -> set[str]:
    return {r.id for r in aws.replicas("minilm") if r.live}


def _default_data(aws: AwsProvider) -> dict[str, Any]:
    versions = aws.ec2.describe_launch_template_versions(
        LaunchTemplateName="thrifty-minilm", Versions=["$Default"]
    )
    return dict(versions["LaunchTemplateVersions"][0]["LaunchTemplateData"])


def test_a_quota_error_on_a_new_deployment_leaves_nothing(aws: AwsProvider, make_spec: Any) -> None:
    _fail_nth_run(aws, 1, "VcpuLimitExceeded")
    with pytest.raises(QuotaExceededError) as info:
        aws.deploy(make_spec())
    assert (
        "VcpuLimitExceeded" in info.value.message and info.value.hint and "Service Quotas" in info.value.hint
    )
    assert sweep([aws], [], grace_s=0, dry_run=True) == [], "gc finds nothing left"


def test_a_quota_error_scaling_up_leaves_the_earlier_deployment_as_it_was(
    aws: AwsProvider, make_spec: Any
) -> None:
    aws.deploy(make_spec(replicas=1))
    before, data = _live_ids(aws), _default_data(aws)
    _fail_nth_run(aws, 2, "InstanceLimitExceeded")
    with pytest.raises(QuotaExceededError):
        aws.deploy(make_spec(replicas=3))
    assert _live_ids(aws) == before and _default_data(aws) == data
    status = aws.status("minilm")
    assert (status.state, status.replicas_desired, status.replicas_ready) == ("running", 1, 1)
    assert sweep([aws], [("aws", "minilm")], grace_s=0, dry_run=True) == []
    assert aws.reconcile("minilm") == [], "the intent was put back: nothing more to launch"


def test_a_quota_error_on_a_changed_revision_keeps_the_old_one_serving(
    aws: AwsProvider, make_spec: Any, moto: str
) -> None:
    import boto3

    aws.deploy(make_spec(replicas=1))
    before = _live_ids(aws)
    _fail_nth_run(aws, 1, "VcpuLimitExceeded")
    with pytest.raises(QuotaExceededError):
        aws.deploy(
            make_spec(replicas=1, instance_type="c7g.xlarge", serving={"allowed_cidrs": ["192.0.2.0/24"]})
        )
    assert _live_ids(aws) == before
    assert _default_data(aws)["InstanceType"] == "c7g.large", "the default version is the earlier one again"
    ec2 = boto3.client("ec2", endpoint_url=moto, region_name="us-east-1")
    group = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["thrifty-minilm"]}])
    ranges = [r["CidrIp"] for p in group["SecurityGroups"][0]["IpPermissions"] for r in p["IpRanges"]]
    assert ranges == ["198.51.100.0/24"], "the earlier source range is back"
    assert aws.roll_stale("minilm") == [], "nothing is stale against the restored revision"


# -- readiness and token faults, over real HTTP ------------------------------------------------
@pytest.fixture
def replica() -> Iterator[tuple[str, dict[str, Any]]]:
    """A loopback 'replica' answering every request with ``state['status']`` (JSON body)."""
    state: dict[str, Any] = {"status": 503, "seen": []}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            state["seen"].append((self.path, self.headers.get("Authorization")))
            body = b'{"error": "not yet"}'
            self.send_response(state["status"])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v2/models/minilm", state
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def test_a_boot_that_never_becomes_ready_fails_at_the_deadline(replica: tuple[str, dict[str, Any]]) -> None:
    import time

    url, state = replica
    started = time.perf_counter()
    with pytest.raises(ServingError, match=r"not ready within 1 s \(HTTP 503") as info:
        wait_ready(url, "tok", deadline_s=1.0, poll_s=0.2)
    assert info.value.hint and "boot log" in info.value.hint and "rolled back" in info.value.hint
    assert state["seen"] and time.perf_counter() - started >= 0.8, "it polled until the deadline"


@pytest.mark.parametrize("status", [401, 403])
def test_a_wrong_token_fails_at_once_naming_the_token(
    replica: tuple[str, dict[str, Any]], status: int
) -> None:
    url, state = replica
    state["status"] = status
    with pytest.raises(ServingError, match=f"HTTP {status}: the token sent is not the one") as info:
        wait_ready(url, "wrong-token", deadline_s=30.0, poll_s=0.2)
    assert info.value.hint and "THRIFTY_API_TOKEN_SHA256" in info.value.hint
    assert len(state["seen"]) == 1, "a refused token is not retried until the deadline"
    with pytest.raises(ServingError, match="no token was sent"):
        infer_over_http(f"{url}/infer", {}, None, timeout_s=5)
    assert "wrong-token" not in str(info.value), "the token never appears in the error"


@pytest.mark.parametrize(
    ("verb", "stderr", "fix"),
    [
        ("push", "Error: dial tcp 127.0.0.1:5999: connect: connection refused", "does not answer"),
        ("push", "Error: writing blob: unauthorized: authentication required", "podman login"),
        ("push", "http: server gave HTTP response to HTTPS client", "--no-tls-verify"),
        ("build", 'Error: building at STEP "RUN make": exit status 2', "Containerfile failed"),
        ("pull", "Error: something new", "output are above"),
    ],
)
def test_podman_failures_name_the_fix(verb: str, stderr: str, fix: str) -> None:
    from thrifty.image import podman_hint

    assert fix in podman_hint(verb, stderr)
