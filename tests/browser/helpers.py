"""Helpers for the browser tests (the fixtures are in tests/browser/conftest.py)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Page

from tests.support.wait import WaitTimedOut, wait_for

T = TypeVar("T")

TIMEOUT_MS = 15_000  # Playwright's default for actions, navigations and expect()
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
CHROMIUM_ARGS = [
    "--no-sandbox",  # root in CI, no user namespaces in containers
    "--disable-gpu",
    "--disable-dev-shm-usage",  # small /dev/shm in containers
    "--disable-background-networking",  # no calls home: the tests see only our own server
    "--disable-component-update",
    "--disable-sync",
]
STUDIO_LOGIN_URL = "/studio/login/"


def login(page: Page, username: str, password: str, *, url: str = STUDIO_LOGIN_URL) -> Page:
    """Log in through the real form at ``url`` (the studio's by default; the portal has ``/login/``).

    Fills the form's ``username`` and ``password`` fields, clicks its submit button and waits for the
    navigation. Raises AssertionError with the form's error text when the login page comes back.
    """
    page.goto(url)
    form = page.locator("form", has=page.locator("input[name=password]"))
    form.locator("input[name=username]").fill(username)
    form.locator("input[name=password]").fill(password)
    with page.expect_navigation():
        form.locator("[type=submit]").click()
    if urlparse(page.url).path == urlparse(url).path:
        shown = page.locator(".errornote, .errorlist, [role=alert]").all_inner_texts()
        raise AssertionError(
            f"Logging in as {username!r} at {url} failed: {' '.join(shown).strip() or 'no error shown'}"
        )
    return page


def wait_until(
    predicate: Callable[[], T],
    *,
    what: str,
    timeout: float = 60,
    interval: float = 0.25,
    worker: Worker | None = None,
    page: Page | None = None,
) -> T:
    """Call ``predicate`` until it returns something truthy, and return that. Fails after ``timeout``
    seconds, or at once when ``worker`` died, with the worker's last output.

    Pass ``page`` when the predicate reads what the browser reports (console messages, requests): the
    browser's events are only delivered while Playwright runs, so the wait then happens in Playwright.
    """

    def worker_alive() -> None:
        if worker is not None and not worker.alive():
            raise AssertionError(f"The worker died while waiting for {what}:\n{worker.tail()}")

    def in_playwright(seconds: float) -> None:
        page.wait_for_timeout(seconds * 1000)

    try:
        return wait_for(
            predicate,
            timeout,
            interval,
            what,
            check=worker_alive,
            sleep=in_playwright if page else time.sleep,
        )
    except WaitTimedOut:
        tail = f"\nWorker output ({worker.log_path}):\n{worker.tail()}" if worker else ""
        raise AssertionError(f"Timed out after {timeout:g} s waiting for {what}.{tail}") from None


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


class BrowserErrors:
    """What went wrong in the pages of one test: JavaScript console errors, uncaught exceptions, and
    requests to our own server that failed or answered 4xx/5xx (a missing static file, a broken view).

    The test fails on any of them after its body passed, listing each one. Opt out per error with
    ``allow(regex)``: the regex is searched in each line, which names the URL (``404 GET http://...``,
    ``console error: ... (at http://...)``). ``errors`` holds every line seen, allowed or not.

    Allowed from the start: ``/favicon.ico``, which Chromium asks for by itself when a page names no
    icon (the studio does not); the page did not request it.
    """

    ALWAYS_ALLOWED = (
        r"^(404 GET |console error: Failed to load resource: .* \(at )https?://[^/]+/favicon\.ico\)?$",
    )

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.errors: list[str] = []
        self.console: list[str] = []  # every console message, saved next to a failure screenshot
        self._allowed: list[re.Pattern] = [re.compile(p) for p in self.ALWAYS_ALLOWED]

    def allow(self, *patterns: str) -> None:
        self._allowed.extend(re.compile(p) for p in patterns)

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self._allowed)]

    def settle(self, pages: list[Page]) -> None:
        """Let the pages run their due timers and deliver what they reported so far (best effort)."""
        for page in pages:
            if not page.is_closed() and page.url != "about:blank":
                with contextlib.suppress(Exception):  # navigating away or crashed: nothing more to wait for
                    page.evaluate("() => new Promise(resolve => setTimeout(resolve, 50))")

    def check(self) -> None:
        unexpected = self.unexpected()
        if unexpected:
            pytest.fail(
                "The browser reported errors (allow expected ones with browser_errors.allow(regex)):\n  "
                + "\n  ".join(unexpected),
                pytrace=False,
            )

    def watch(self, page: Page) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", self._on_page_error)
        page.on("response", self._on_response)
        page.on("requestfailed", self._on_request_failed)

    def _ours(self, url: str) -> bool:
        return url == self.origin or url.startswith(self.origin + "/")

    def _on_console(self, message) -> None:
        where = message.location.get("url") or ""
        line = f"console {message.type}: {message.text}" + (f" (at {where})" if where else "")
        self.console.append(line)
        if message.type == "error":
            self.errors.append(line)

    def _on_page_error(self, error) -> None:
        # The stack's first line is "Error: message", the second where it was thrown.
        lines = [line.strip() for line in (error.stack or f"{error.name}: {error.message}").splitlines()]
        self.errors.append(f"uncaught exception: {lines[0]}" + (f" ({lines[1]})" if len(lines) > 1 else ""))

    def _on_response(self, response) -> None:
        if response.status >= 400 and self._ours(response.url):
            self.errors.append(f"{response.status} {response.request.method} {response.url}")

    def _on_request_failed(self, request) -> None:
        # ERR_ABORTED: the page navigated away while the request ran (a click during a poll); not a fault.
        if self._ours(request.url) and request.failure != "net::ERR_ABORTED":
            self.errors.append(f"failed {request.method} {request.url}: {request.failure}")


@dataclass
class Worker:
    """A running ``manage.py qcluster`` (its own process group) writing to ``log_path``."""

    process: subprocess.Popen
    log_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the whole process group (the sentinel and its worker processes), then reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


@dataclass
class BrowserRun:
    """The browser side of one test: its pages, errors, screenshots and worker logs."""

    name: str
    artifacts: Path
    errors: BrowserErrors | None = None
    pages: list[Page] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)
    shots: int = 0

    @property
    def screenshots(self) -> Path:
        return self.artifacts / "screenshots" / self.name

    def shot(self, name: str, page: Page | None = None) -> Path:
        """A full-page PNG of ``page`` as ``<nn>-<name>.png``; ``page`` may be left out when the test has
        only one."""
        if page is None:
            if len(self.pages) != 1:
                raise TypeError(
                    f"shot({name!r}): the test has {len(self.pages)} pages; say which: shot(name, page)"
                )
            page = self.pages[0]
        self.shots += 1
        path = self.screenshots / f"{self.shots:02d}-{slug(name)}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=path, full_page=True)
        return path

    def failure_artifacts(self) -> list[str]:
        """Screenshots of every open page, the console log and the workers' output, as lines for the
        report. Best effort: a crashed page must not hide the test's own failure."""
        lines = []
        for number, page in enumerate(self.pages, 1):
            if page.is_closed() or page.url == "about:blank":
                continue
            name = "failure" if len(self.pages) == 1 else f"failure-page{number}"
            try:
                self.shots += 1
                path = self.screenshots / f"{self.shots:02d}-{name}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=path, full_page=True, timeout=5_000)
                lines.append(f"screenshot of {page.url}: {path}")
            except Exception as exc:  # reported, never raised over the test's own failure
                lines.append(f"no screenshot of {page.url}: {exc}")
        if self.errors and self.errors.console:
            path = self.screenshots / "console.log"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(self.errors.console) + "\n")
            lines.append(f"browser console: {path}")
        lines.extend(f"worker output: {worker.log_path}" for worker in self.workers)
        return lines
