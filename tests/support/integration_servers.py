"""Fixtures for the outside services that applications come from (registered by tests/conftest.py).

* ``helm_binary`` / ``registry_binary`` (session): the helm v4 / distribution registry binaries
  (tests/toolchain builds them on first use, then they are cached);
* ``helm_cli``: a ``Helm`` with its own empty home directory;
* ``git_server`` / ``git_server_auth``: a ``GitServer`` (tests/support/git_server.py), anonymous /
  basic auth ``GIT_USER``:``GIT_PASSWORD``;
* ``chart_repo`` / ``chart_repo_auth``: an empty ``ChartRepository`` (``publish`` charts into it),
  anonymous / basic auth ``CHART_USER``:``CHART_PASSWORD``;
* ``registry_htpasswd`` (session): the distribution registry, htpasswd user
  ``REGISTRY_USER``:``REGISTRY_PASSWORD``;
* ``registry_token`` (session): the distribution registry with token auth; its ``.token_server``
  grants ``REGISTRY_USER`` pull and push, ``REGISTRY_PULLER`` (a robot) pull only.

Every password contains ``CANARY`` (random per run): a test of issue 14 searches API responses, pages
and logs for it.  Servers listen on free 127.0.0.1 ports and stop at the end of their scope.
"""

from __future__ import annotations

import pytest

from tests.support.canary import CANARY
from tests.support.git_server import GitServer
from tests.support.helm_charts import ChartRepository, Helm
from tests.support.registry import Registry, TokenServer

GIT_USER, GIT_PASSWORD = "git-reader", f"{CANARY}-git"
CHART_USER, CHART_PASSWORD = "chart-reader", f"{CANARY}-charts"
REGISTRY_USER, REGISTRY_PASSWORD = "pusher", f"{CANARY}-registry"
REGISTRY_PULLER, REGISTRY_PULLER_PASSWORD = "robot-puller", f"{CANARY}-puller"


@pytest.fixture(scope="session")
def helm_binary():
    from tests.toolchain import build

    return build.ensure("helm")


@pytest.fixture(scope="session")
def registry_binary():
    from tests.toolchain import build

    return build.ensure("registry")


@pytest.fixture
def helm_cli(helm_binary, tmp_path_factory) -> Helm:
    return Helm(helm_binary, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture
def git_server(tmp_path_factory):
    with GitServer(tmp_path_factory.mktemp("git")) as server:
        yield server


@pytest.fixture
def git_server_auth(tmp_path_factory):
    with GitServer(tmp_path_factory.mktemp("git-auth"), credentials=(GIT_USER, GIT_PASSWORD)) as server:
        yield server


@pytest.fixture
def chart_repo(tmp_path_factory):
    with ChartRepository(tmp_path_factory.mktemp("charts")) as repo:
        yield repo


@pytest.fixture
def chart_repo_auth(tmp_path_factory):
    with ChartRepository(
        tmp_path_factory.mktemp("charts-auth"), credentials=(CHART_USER, CHART_PASSWORD)
    ) as repo:
        yield repo


@pytest.fixture(scope="session")
def registry_htpasswd(registry_binary, tmp_path_factory):
    registry = Registry(
        registry_binary,
        tmp_path_factory.mktemp("registry-htpasswd"),
        "htpasswd",
        users={REGISTRY_USER: REGISTRY_PASSWORD},
    )
    with registry:
        yield registry


@pytest.fixture(scope="session")
def registry_token(registry_binary, tmp_path_factory):
    users = {
        REGISTRY_USER: (REGISTRY_PASSWORD, ("pull", "push")),
        REGISTRY_PULLER: (REGISTRY_PULLER_PASSWORD, ("pull",)),
    }
    with TokenServer(users) as token_server:
        registry = Registry(
            registry_binary, tmp_path_factory.mktemp("registry-token"), "token", token_server=token_server
        )
        with registry:
            yield registry
