"""The dashboard in a real browser: Debian's chromium-headless-shell driven by Playwright.

Set-up: the browser is installed with apt when missing (``playwright install`` downloads browser
builds and cannot work here). The app is served by uvicorn on loopback from a thread, over a fresh
THRIFTY_HOME seeded with a small fleet (``bench.fleet``). Every page the tests open may reach
loopback only: other requests are aborted and fail the test. A failing test leaves a screenshot
under pytest's base temp folder (``web-screenshots/``; the path is printed).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import free_port

BROWSER = "chromium-headless-shell"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
WEB_DIR = Path(__file__).resolve().parent
#: the deploy-model run the form starts, cut to the fp32 export (one variant, one benchmark process):
#: what shows form → flow → live endpoint → playground in seconds (see InProcessLauncher)
QUICK_DEPLOY = {"techniques": ["export"], "bench_runs": 3}


def _apt(*args: str) -> None:
    subprocess.run(["apt-get", *args], check=False, capture_output=True, timeout=600)


def _browser_path() -> str:
    found = shutil.which(BROWSER)
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        _apt("install", "-y", "--no-install-recommends", BROWSER)
        if shutil.which(BROWSER) is None:  # a fresh machine's package lists may not know it yet
            _apt("update", "-qq")
            _apt("install", "-y", "--no-install-recommends", BROWSER)
        found = shutil.which(BROWSER)
    if found is None:
        pytest.skip(f"{BROWSER} is not installed and `apt-get install -y {BROWSER}` could not install it")
    return found


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    path = _browser_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def web_home(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A THRIFTY_HOME for the whole session (the server thread reads it), seeded with three deployments.

    When the one-click deploy test is selected, the local gateway daemon is started here without
    waiting, as ``thrifty up`` does, so that its processes boot beside the page tests (~8 s at load 9
    inside the deploy step otherwise). The deploy-model run still deploys through it, the smoke test
    and the playground still call the model through it; the flow starting a stopped gateway itself is
    tested in tests/flows/test_deploy_model.py.
    """
    from bench.fleet import seed_fleet
    from thrifty import runtime

    home = tmp_path_factory.mktemp("web-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("THRIFTY_HOME", str(home))
        mp.setenv("THRIFTY_GATEWAY_PORT", str(free_port()))
        for var in ("THRIFTY_DATABASE_URL", "THRIFTY_ARTIFACT_STORE_URL", "THRIFTY_API_TOKENS"):
            mp.delenv(var, raising=False)
        runtime.reset()
        registry = runtime.registry()
        seed_fleet(registry, 3, 600)
        registry.add_event(
            "fleet-0001",
            "cheaper-plan",
            "gcp e2-small us-central1 (spot) is $12.00/month cheaper",
            usd_saved_per_month=12.0,
        )
        seed_ledger_and_alert(registry)
        seed_observed_traffic(registry)
        if any(_needs_prefect(item) for item in request.session.items):
            _start_gateway()
        yield home
        _stop_gateway()
        runtime.reset()


#: the spend the ledger holds for fleet-0001 this month (one hour's compute and storage)
LEDGER_USD = {"compute": 3.5, "storage": 0.25}


def seed_ledger_and_alert(registry: Any) -> None:
    """One hour of fleet-0001's spend in the ledger (as the monitor's rollup writes it) and a
    latency anomaly on fleet-0002 (as the monitor's detector stores it)."""
    from datetime import UTC, datetime, timedelta

    from thrifty.monitor.ledger import month_start
    from thrifty.registry import fleet

    now = datetime.now(UTC)
    hour = max(month_start(now), now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1))
    spend = [
        {"hour_start": hour, "kind": kind, "quantity": 1.0, "unit": "replica-hour", "usd": usd,
         "source": "seeded"}
        for kind, usd in LEDGER_USD.items()
    ]  # fmt: skip
    fleet.replace_buckets(registry, "fleet-0001", 3600, (hour, hour + timedelta(hours=1)), [], spend)
    fleet.add_alerts(registry, [{
        "deployment": "fleet-0002", "kind": "latency.p95", "at": hour, "observed": 180.0, "baseline": 50.0,
        "deviation_rel": 2.6, "unit": "ms", "action": "roll back to the previous revision",
        "message": "p95 latency 180 ms against a baseline of 50 ms",
    }])  # fmt: skip


def seed_observed_traffic(registry: Any) -> None:
    """``minilm-prod``: planned for 5 req/s steady, then a day of a bursty Azure Functions 2019
    function replayed into its request log (what ``thrifty recommend`` learns from)."""
    from datetime import UTC, datetime

    from tests.conftest import SHARED_DATA
    from tests.unit.monitor.test_recommend import deploy_planned, replay_functions_day

    if SHARED_DATA.is_dir():  # the recommendation test skips on its own without it
        now = datetime.now(UTC)
        deploy_planned(registry, days=1.0, now=now)
        replay_functions_day(registry, SHARED_DATA, now=now)


def _start_gateway() -> None:
    from thrifty.serving.daemon import start_daemon
    from thrifty.settings import get_settings

    start_daemon(get_settings(), wait=False)


def _stop_gateway() -> None:
    from thrifty.serving.daemon import stop_daemon
    from thrifty.settings import get_settings

    stop_daemon(get_settings())


class InProcessLauncher:
    """Runs deploy-model in this process (a thread) instead of on a Prefect worker.

    The cheapest real path from the form to a live endpoint here: a worker would start a Prefect
    server, apply prefect.yaml and run the flow in a subprocess (minutes on 2 cores). The flow, its
    tasks and the local gateway are the real ones; ``QUICK_DEPLOY`` narrows the techniques tried.
    The run id is this launcher's own (the flow run's Prefect id is known only once it ends).

    Runs are held by default: recorded as SCHEDULED with their parameters, not run. Only the
    one-click deploy test runs one (``running_launcher``), so a form that a slow test submits late
    (its click timed out on a busy machine) can never start a real run in a later test.
    """

    def __init__(self) -> None:
        self.runs: dict[str, dict[str, Any]] = {}
        #: record runs as SCHEDULED without running them (what every test but the deploy test checks)
        self.hold = True

    def start(self, parameters: dict[str, Any]) -> str:
        run_id = str(uuid.uuid4())
        self.runs[run_id] = {"state": "SCHEDULED" if self.hold else "RUNNING", "message": None,
                             "parameters": parameters}  # fmt: skip
        if self.hold:
            return run_id
        threading.Thread(target=self._run, args=(run_id, parameters | QUICK_DEPLOY), daemon=True).start()
        return run_id

    def _run(self, run_id: str, parameters: dict[str, Any]) -> None:
        from flows.deploy_model import DeployModelParams, deploy_model

        state = deploy_model(DeployModelParams(**parameters), return_state=True)
        self.runs[run_id] |= {"state": state.type.value, "message": state.message}

    def status(self, run_id: str) -> Any:
        from thrifty.client import FlowRunResult
        from thrifty.errors import NotFoundError

        if run_id not in self.runs:
            raise NotFoundError(f"no run {run_id!r}", hint="start one from /deploy")
        run = self.runs[run_id]
        return FlowRunResult(run_id, f"deploy-model {run_id[:8]}", run["state"], run["message"])


@pytest.fixture(scope="session")
def launcher() -> InProcessLauncher:
    return InProcessLauncher()


@pytest.fixture
def running_launcher(launcher: InProcessLauncher) -> Iterator[InProcessLauncher]:
    """The session's launcher, running the deploy-model runs it is given for this one test."""
    launcher.hold = False
    yield launcher
    launcher.hold = True


@pytest.fixture(scope="session")
def base_url(web_home: Path, launcher: InProcessLauncher) -> Iterator[str]:
    import uvicorn

    from thrifty.web.app import create_app

    port = free_port()
    config = uvicorn.Config(create_app(launcher), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start within 30 s"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


class Guard:
    """Requests the page made to anything but loopback (aborted), and errors its scripts threw."""

    def __init__(self) -> None:
        self.outside: list[str] = []
        self.script_errors: list[str] = []

    def route(self, route: Any) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK or route.request.url.startswith("data:"):
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()


@pytest.fixture
def guard() -> Guard:
    return Guard()


@pytest.fixture
def page(
    browser: Any,
    base_url: str,
    guard: Guard,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Any]:
    context = browser.new_context(base_url=base_url)
    context.route("**/*", guard.route)
    opened = context.new_page()
    opened.on("pageerror", lambda exc: guard.script_errors.append(str(exc)))
    # a deadline for each wait, not a time limit on the page: at load 14 on 2 cores a page that
    # recomputes recommendations took over 15 s to answer a click
    opened.set_default_timeout(60_000)
    yield opened
    failed = getattr(request.node, "report_call", None)
    if failed is not None and failed.failed:
        folder = tmp_path_factory.getbasetemp() / "web-screenshots"
        folder.mkdir(exist_ok=True)
        shot = folder / f"{request.node.name}.png"
        opened.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the failing page: {shot}")
    context.close()
    assert not guard.outside, f"the page asked for non-loopback URLs: {guard.outside}"
    assert not guard.script_errors, f"the page's scripts threw: {guard.script_errors}"


class PrefectServer:
    """A temporary Prefect API for the session, started first so that it boots beside the page tests.

    It is the server ``prefect_test_harness`` runs (Prefect's app in a uvicorn subprocess over a fresh
    SQLite database, UI off), started without waiting: booting it (importing the server, migrating the
    database) was the suite's longest step, ~33 s at load 5 and over 80 s at load 9, and only the
    one-click deploy test needs it. That test runs last in tests/web (``pytest_collection_modifyitems``)
    and waits for ``/api/health`` in ``prefect_harness``. Nothing of Prefect runs in a thread of the
    test process meanwhile: ``warnings.catch_warnings`` is not thread-safe, and a harness importing
    Prefect in a thread undid FastAPI's own warning filter in the dashboard's server thread.
    """

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.log_path = folder / "prefect-server.log"
        env = os.environ | {
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{folder / 'prefect.db'}",
        }
        command = ["-m", "uvicorn", "--factory", "prefect.server.api.server:create_app", "--lifespan", "on"]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    *command,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "error",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout_s: float = 300.0) -> str:
        """Poll ``/api/health`` until it answers (a deadline, generous for a busy machine); the API URL."""
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the Prefect API exited with {self.process.returncode}: {self._log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.api_url}/health", timeout=5.0).status_code == 200:
                    return self.api_url
            time.sleep(0.2)
        pytest.fail(f"the Prefect API did not answer within {timeout_s:g} s: {self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


def _needs_prefect(item: pytest.Item) -> bool:
    return Path(str(item.path)).is_relative_to(WEB_DIR) and "prefect_harness" in getattr(
        item, "fixturenames", ()
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Within tests/web, the tests that need the Prefect API run last (its start overlaps the rest)."""
    web = [i for i, item in enumerate(items) if Path(str(item.path)).is_relative_to(WEB_DIR)]
    block = [items[i] for i in web]
    ordered = [t for t in block if not _needs_prefect(t)] + [t for t in block if _needs_prefect(t)]
    for i, item in zip(web, ordered, strict=True):
        items[i] = item


@pytest.fixture(scope="session", autouse=True)
def _prefect_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrefectServer | None]:
    """The first tests/web test starts the Prefect API when a selected test needs it (see PrefectServer)."""
    if not any(_needs_prefect(item) for item in request.session.items):
        yield None
        return
    server = PrefectServer(tmp_path_factory.mktemp("prefect"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def prefect_harness(
    _prefect_server: PrefectServer | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The Prefect API, once it answers, as the process's settings (what ``prefect_test_harness`` sets up
    around its server): the deploy-model run in ``InProcessLauncher``'s thread reads the process-global
    settings context. Only the deploy test asks for it; its URL is returned.

    Task results persist in this session's own folder, not in ~/.prefect/storage: the benchmark's
    cache key names the registry's path, so a run with the same ``--basetemp`` found the last
    session's cached benchmark and wrote no benchmark rows to this session's fresh registry.
    """
    from prefect.context import _temporary_global_settings_context, get_settings_context
    from prefect.settings import PREFECT_API_URL, PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings

    assert _prefect_server is not None, "a test asked for prefect_harness after collection"
    api_url = _prefect_server.wait_ready()
    storage = tmp_path_factory.mktemp("prefect-results")
    # the second context reads the settings the first one set (a with statement enters them in order)
    with (
        temporary_settings(updates={PREFECT_API_URL: api_url, PREFECT_RESULTS_LOCAL_STORAGE_PATH: storage}),
        _temporary_global_settings_context(get_settings_context()),
    ):
        yield api_url
        _drain_prefect_workers()  # before the server stops, as prefect_test_harness does


def _drain_prefect_workers() -> None:
    """Send the logs and events still queued in this process to the API."""
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        with contextlib.suppress(RuntimeError):  # no log was ever sent: the worker never started
            drained = APILogWorker.instance().drain()
            if inspect.isawaitable(drained):
                await drained
        drained_all = EventsWorker.drain_all()
        if inspect.isawaitable(drained_all):
            await drained_all

    run_coro_as_sync(drain())
