"""Browser tests: Debian's Chromium driven by Playwright against a real HTTP server of the project.

Every test here is marked ``browser`` and runs in the normal suite. Fixtures:

``page`` / ``phone_page`` / ``new_page``
    A page in a fresh browser context whose ``base_url`` is the live server (``page.goto("/studio/")``):
    desktop 1280x800, phone 390x844 (mobile, touch), or ``new_page(phone=False, **context_options)``
    for more. Actions, navigations and ``expect()`` wait up to 15 s. ``page.request`` shares the
    context's cookies (an API call as the logged-in user; send ``X-CSRFToken`` on writes).
``browser_errors``
    Console errors, uncaught exceptions and failed or 4xx/5xx requests to our own server in any page
    of the test fail it, listed; ``browser_errors.allow(regex)`` accepts the expected ones.
``shot``
    ``shot(name, page=None)`` saves a full-page PNG of the page (needed when the test has several) to
    ``var/test-artifacts/screenshots/<test>/<nn>-<name>.png``. A failing test gets a screenshot of every
    open page and its console log there too; the report lists the paths.
``accounts``
    Committed users for the live server: an operator, an org with its admin, a workspace ("team") and
    its workspace admin ("owner"); every password is ``tests.factories.PASSWORD``.
``platform``
    ``accounts`` plus the session's local Kubernetes cluster registered with its nodes, and the system
    catalog (``platform.profile`` is its "small" compute profile). Mark such tests ``kube``.
``worker``
    A real ``manage.py qcluster`` on the test database, so launches get deployed; its output goes to
    ``var/test-artifacts/workers/<test>.log``. ``helpers.wait_until(..., worker=worker)`` waits for a
    state and fails early, with the worker's output, if it died.

``live_server``
    The real ASGI server (tests/support/asgi_server.py: uvicorn serving ``paas.asgi.application`` as
    ``make run`` and production do, so WebSockets and the kubectl proxy work too), with ``.url`` and
    ``.ws_url``; kubeconfigs issued during the test point at it. It replaces pytest-django's WSGI
    ``live_server`` under the same name.

``helpers.login(page, username, password, url="/studio/login/")`` logs in through a real form.
The server serves static files from every app's ``static/`` directory (``PAAS_SERVE_STATIC``:
Django's ASGIStaticFilesHandler, through the finders; no collectstatic). Tests using it run with
``transactional_db``: what they create is committed, and the database is emptied afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from playwright.sync_api import Browser, Page, expect, sync_playwright

from catalog.models import ComputeProfile
from inventory.models import Cluster
from tenancy.models import Organization, Project, User
from tests.browser.helpers import (
    CHROMIUM_ARGS,
    DESKTOP,
    PHONE,
    TIMEOUT_MS,
    BrowserErrors,
    BrowserRun,
    Worker,
    slug,
)
from tests.factories import PASSWORD, add_member
from tests.support import asgi_server, chromium
from tests.support.asgi_server import AsgiServer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RUN_KEY = pytest.StashKey[BrowserRun]()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield  # a test that failed on its own is reported as it is
    run = item.stash.get(RUN_KEY, None)
    if run is not None and run.errors is not None:
        run.errors.settle(run.pages)  # an error thrown just after the test's last action counts too
        run.errors.check()
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    run = item.stash.get(RUN_KEY, None)
    if run is not None and report.failed and report.when in ("setup", "call"):
        lines = run.failure_artifacts()  # the pages are still open: fixtures are torn down later
        if lines:
            report.sections.append(("browser artifacts", "\n".join(lines)))
    return report


# --- the browser -------------------------------------------------------------------------------------


@pytest.fixture(scope="package", autouse=True)
def _django_async_unsafe_allowed() -> Iterator[None]:
    """Allow Django's ORM in the test thread while Playwright runs, for the browser tests only.

    Playwright's sync API marks its asyncio loop as running in the calling thread between its calls
    (playwright/_impl/_greenlets.py, wait_for_future) for as long as Playwright is started. Django's
    guard sees a running loop and raises SynchronousOnlyOperation for every ORM call in the test thread
    (test bodies, fixtures, the database flush after each test). Nothing runs concurrently: the loop
    only turns inside Playwright's own calls, so the guard is a false alarm here.

    Hence the package scope of this and of ``browser``: Playwright is stopped (which clears the mark)
    when the last browser test has finished, and only then is the variable removed again. A session
    scope would leave the loop marked for every later test (tests/integration, tests/unit) and force
    the variable on the whole suite.
    """
    name = "DJANGO_ALLOW_ASYNC_UNSAFE"
    previous = os.environ.get(name)
    os.environ[name] = "true"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


@pytest.fixture(scope="package")
def browser(_django_async_unsafe_allowed) -> Iterator[Browser]:
    """Debian's Chromium (tests/support/chromium.py finds or installs it), headless, for all browser tests."""
    executable = chromium.ensure()  # `make test` exported PAAS_TEST_CHROMIUM; a bare `pytest` probes here
    playwright = sync_playwright().start()
    try:
        expect.set_options(timeout=TIMEOUT_MS)
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
    finally:
        playwright.stop()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """``var/test-artifacts`` (git-ignored), with this run's screenshots and worker logs started afresh."""
    root = Path(settings.VAR_DIR) / "test-artifacts"
    for part in ("screenshots", "workers"):
        shutil.rmtree(root / part, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def _browser_run(request, artifacts_dir) -> BrowserRun:
    run = BrowserRun(name=slug(request.node.name), artifacts=artifacts_dir)
    request.node.stash[RUN_KEY] = run
    return run


# --- the server ------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _live_server_helper() -> None:
    """Replaces pytest-django's helper of the same name, which would set up its own WSGI ``live_server``."""


@pytest.fixture
def live_server(transactional_db, settings, _asgi_servers) -> AsgiServer:
    """The session's real ASGI server (started on first use), seeing this test's committed rows."""
    server = asgi_server.session_server()
    settings.PAAS_KUBE_PROXY_URL = server.url
    return server


@pytest.fixture
def browser_errors(_browser_run, live_server) -> BrowserErrors:
    if _browser_run.errors is None:
        _browser_run.errors = BrowserErrors(origin=live_server.url)
    return _browser_run.errors


@pytest.fixture
def new_page(browser, live_server, browser_errors, _browser_run) -> Iterator[Callable[..., Page]]:
    """``new_page(phone=False, **context_options)``: a page in a new context on the live server."""
    contexts = []

    def make(*, phone: bool = False, **options) -> Page:
        context = browser.new_context(
            **{**(PHONE if phone else DESKTOP), "base_url": live_server.url, **options}
        )
        contexts.append(context)
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        page = context.new_page()
        browser_errors.watch(page)
        _browser_run.pages.append(page)
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page) -> Page:
    return new_page()


@pytest.fixture
def phone_page(new_page) -> Page:
    return new_page(phone=True)


@pytest.fixture
def shot(_browser_run) -> Callable[..., Path]:
    return _browser_run.shot


# --- data and background work ---------------------------------------------------------------------------


@dataclass
class Accounts:
    operator: User
    org: Organization
    org_admin: User
    project: Project  # the org's "team" workspace
    owner: User  # workspace admin of ``project``
    password: str = PASSWORD


@dataclass(kw_only=True)
class Platform(Accounts):
    cluster: Cluster  # the session's kube_cluster, registered as "browser-local"
    profile: ComputeProfile  # the system catalog's "small" compute profile


@pytest.fixture
def accounts(transactional_db) -> Accounts:
    from tenancy import services
    from tenancy.roles import Role
    from tests.factories import UserFactory, make_operator, make_org

    operator = make_operator(username="browser-op", email="browser-op@example.com")
    org, org_admin = make_org(operator=operator, name="browserco")
    project = services.project_create(actor=org_admin, org=org, name="team", display_name="Team")
    owner = UserFactory(username="browser-owner", email="owner@browserco.example.com")
    add_member(admin=org_admin, user=owner, role=Role.WORKSPACE_ADMIN, project=project)
    return Accounts(operator=operator, org=org, org_admin=org_admin, project=project, owner=owner)


@pytest.fixture
def platform(accounts, kube_cluster) -> Platform:
    from catalog import system
    from inventory import services as inventory_services
    from inventory import tasks as inventory_tasks

    cluster = inventory_services.cluster_register(
        actor=accounts.operator,
        name="browser-local",
        kubeconfig=Path(kube_cluster.kubeconfig_path).read_text(),
    )
    inventory_tasks.cluster_refresh(cluster.pk)
    cluster.refresh_from_db()
    system.load(actor=accounts.operator)
    profile = ComputeProfile.objects.get(org__isnull=True, name="small")
    return Platform(**vars(accounts), cluster=cluster, profile=profile)


def _database_url() -> str:
    """The test database (pytest-django's ``test_<name>``) as a DATABASE_URL for a subprocess."""
    db = settings.DATABASES["default"]
    credentials = quote(db["USER"], safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{credentials}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture
def worker(transactional_db, _browser_run, artifacts_dir) -> Iterator[Worker]:
    """A real ``manage.py qcluster`` (one worker process) on the test database, SIGKILLed with its
    process group at teardown (before the database is emptied)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "paas.settings.test",
        "DATABASE_URL": _database_url(),
        "PAAS_WORKERS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # the worker runs no asyncio loop; keep Django's guard on
    log_path = artifacts_dir / "workers" / f"{_browser_run.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    started = Worker(process=process, log_path=log_path)
    _browser_run.workers.append(started)
    try:
        yield started
    finally:
        started.kill()
