"""The dashboard's login in a real browser: a viewer sees no write button and a forged write is
refused naming the role; a deployer deploys and applies; a wrong token is an error; logout goes
back to the login page. The tokens live only during each test (revoked after it), so the other
page tests keep the no-token, loopback-only dashboard."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def registry() -> Any:
    from thrifty import runtime

    return runtime.registry()


@pytest.fixture
def tokens(base_url: str) -> Iterator[dict[str, str]]:
    """A viewer and a deployer token (``thrifty tokens create --role``), revoked when the test ends."""
    from thrifty import access

    made = {role: access.create_token(registry(), f"web-{role}", role) for role in ("viewer", "deployer")}
    yield {role: secret for role, (_, secret) in made.items()}
    for row, _ in made.values():
        access.revoke_token(registry(), row.id)


def log_in(page: Any, token: str, path: str = "/") -> None:
    """Open ``path``, be sent to the login page, log in, land on ``path``."""
    page.goto(path)
    page.wait_for_url(re.compile(r"/login\?next="))
    page.fill("#login input[name=token]", token)
    page.click("#login button")
    page.wait_for_url(re.compile(re.escape(path) + "$"), timeout=60_000)


def csrf(page: Any) -> str:
    return str(next(c["value"] for c in page.context.cookies() if c["name"] == "thrifty_csrf"))


def latest_audit() -> Any:
    from thrifty import access

    return access.list_audit(registry(), limit=1)[0][0]


def held_run(page: Any, launcher: Any, button: Any) -> str:
    """Click a button that starts deploy-model; the run's id, recorded but not run (the one-click
    deploy test runs one for real: the launcher holds every other run)."""
    known = set(launcher.runs)
    assert launcher.hold
    button.click()
    page.wait_for_url(re.compile(r"/runs/"), timeout=60_000)
    (started,) = set(launcher.runs) - known
    assert launcher.runs[started]["state"] == "SCHEDULED"
    return str(started)


def test_a_viewer_sees_no_write_buttons_and_a_forged_write_is_refused(
    page: Any, tokens: dict[str, str], launcher: Any
) -> None:
    log_in(page, tokens["viewer"], "/deploy")
    assert page.locator("#who").inner_text().startswith("web-viewer (viewer)")
    assert page.locator("#deploy").count() == 0 and "deployer" in page.locator(".needs-role").inner_text()
    page.goto("/models")
    assert page.locator("#upload").count() == 0 and page.locator("#models tbody tr").count() >= 1
    page.goto("/deployments/fleet-0001")
    assert page.locator("#playground").count() == 0 and page.locator("#charts svg").count() == 4
    before = len(launcher.runs)
    # the form's own CSRF token, so only the role stands in the way
    forged = page.request.post("/deploy", form={"csrf_token": csrf(page), "model": "fleet-model"})
    text = html.unescape(forged.text())
    assert forged.status == 403 and "needs the 'deployer' role" in text
    assert "token 'web-viewer' has 'viewer'" in text and "Traceback" not in text
    apply = page.request.post(
        "/recommendations/apply",
        form={"csrf_token": csrf(page), "deployment": "fleet-0001", "kind": "serverless"},
    )
    assert apply.status == 403 and "'deployer'" in html.unescape(apply.text())
    assert len(launcher.runs) == before  # nothing started
    entry = latest_audit()
    assert (entry.actor, entry.action, entry.outcome) == ("web-viewer", "dashboard POST /recommendations/apply",
                                                          "refused")  # fmt: skip


def test_a_deployer_deploys_and_the_write_is_audited_with_its_name(
    page: Any, tokens: dict[str, str], launcher: Any
) -> None:
    log_in(page, tokens["deployer"], "/deploy")
    page.fill("#deploy input[name=model]", "fleet-model")
    page.fill("#deploy input[name=name]", "login-made")
    started = held_run(page, launcher, page.locator("#deploy button"))
    assert launcher.runs[started]["parameters"]["model"] == "fleet-model"
    entry = latest_audit()
    assert (entry.actor, entry.action, entry.target) == ("web-deployer", "dashboard.deploy", "login-made")
    assert entry.after["run_id"] == started
    page.goto("/models")
    assert page.locator("#upload").count() == 1  # the other write buttons show too
    page.goto("/deployments/fleet-0001")
    assert page.locator("#playground button").count() == 1


def test_a_deployer_applies_a_recommendation(
    page: Any, tokens: dict[str, str], launcher: Any, shared_data: Path
) -> None:
    log_in(page, tokens["deployer"], "/recommendations?deployment=minilm-prod&days=1")
    row = page.locator("#advice tr.recommendation:not([data-kind=hibernation]):has(form.apply)").first
    row.wait_for(timeout=60_000)
    started = held_run(page, launcher, row.locator("form.apply button"))
    entry = latest_audit()
    assert (entry.actor, entry.action, entry.target) == ("web-deployer", "dashboard.recommendations.apply",
                                                         "minilm-prod")  # fmt: skip
    assert entry.after["run_id"] == started


def test_a_wrong_token_is_an_error_on_the_login_page(page: Any, tokens: dict[str, str]) -> None:
    page.goto("/costs")
    page.wait_for_url(re.compile(r"/login\?next=%2Fcosts"))
    page.fill("#login input[name=token]", "thr_" + "x" * 43)
    page.click("#login button")
    alert = page.locator("[role=alert]")
    assert "invalid or revoked API token" in alert.inner_text() and "tokens create" in alert.inner_text()
    assert "thrifty_session" not in {c["name"] for c in page.context.cookies()}
    page.goto("/costs")
    page.wait_for_url(re.compile(r"/login\?"))  # still not in


def test_logout_goes_back_to_the_login_page(page: Any, tokens: dict[str, str]) -> None:
    log_in(page, tokens["viewer"], "/alerts")
    page.click("#logout button")
    page.wait_for_url(re.compile(r"/login$"))
    assert page.locator("#login input[name=token]").count() == 1
    page.goto("/alerts")
    page.wait_for_url(re.compile(r"/login\?next=%2Falerts"))
