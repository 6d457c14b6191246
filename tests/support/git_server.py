"""A real Git server over HTTP for the tests: ``git http-backend`` (Git's own smart-HTTP CGI program)
behind a small threaded Python HTTP server on 127.0.0.1, optionally requiring HTTP basic auth.

Repositories are bare repositories under the server's root that the test builds with real commits
(``create_repository`` then ``commit``/``tag``); clients clone and fetch them with any Git client at
``repo.url`` (``http://127.0.0.1:<port>/<name>.git``).  The server is read-only (``http.receivepack``
is off): the platform only ever fetches.

    with GitServer(tmp_path, credentials=("alice", "s3cret")) as server:
        repo = server.create_repository("app")
        first = repo.commit({"deploy/app.yaml": "..."}, "first")
        second = repo.commit({"deploy/app.yaml": None}, "drop it")  # None deletes a file
        repo.tag("v1", first)
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.loopback_http import BackgroundHTTPServer, LoopbackHandler

# A fixed identity and no user/system configuration: the same commits on every machine.
_GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.invalid",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.invalid",
    "GIT_TERMINAL_PROMPT": "0",
}


def git_environment(**extra: str) -> dict[str, str]:
    """An environment for running ``git`` in a test: no user config, no prompt, a fixed identity."""
    return {**os.environ, **_GIT_ENV, **extra}


def git(*args: str, cwd: Path | str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=git_environment(), capture_output=True, text=True, check=check
    )


def _http_backend() -> str:
    exec_path = subprocess.run(["git", "--exec-path"], capture_output=True, text=True, check=True).stdout
    return str(Path(exec_path.strip()) / "git-http-backend")


class _GitHandler(LoopbackHandler):
    def handle_request(self, user: str | None) -> None:
        server: GitServer = self.server.owner  # type: ignore[assignment]
        path, _, query = self.path.partition("?")
        body = self.read_body() if self.command == "POST" else b""
        env = {
            **git_environment(),
            "GIT_PROJECT_ROOT": str(server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            # read-only even for an authenticated user (http-backend enables push for REMOTE_USER)
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.receivepack",
            "GIT_CONFIG_VALUE_0": "false",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
        }
        if user:
            env["REMOTE_USER"] = user
        result = subprocess.run([server.http_backend], input=body, env=env, capture_output=True)
        head, _, payload = result.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = result.stdout.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        if result.returncode != 0 and not result.stdout:
            self.reply(500, result.stderr)
            return
        self.send_response(status)
        for name, value in headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


@dataclass
class GitRepository:
    """A bare repository served by ``server`` and the work tree the test commits from."""

    server: GitServer
    name: str

    @property
    def bare(self) -> Path:
        return self.server.root / f"{self.name}.git"

    @property
    def work(self) -> Path:
        return self.server.workdir / self.name

    @property
    def url(self) -> str:
        return f"{self.server.url}/{self.name}.git"

    def commit(self, files: dict[str, str | bytes | None], message: str, *, branch: str = "main") -> str:
        """Write (or with None delete) ``files`` in ``branch``, commit, publish; return the commit id."""
        if git(
            "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", cwd=self.work, check=False
        ).returncode:
            git("checkout", "--quiet", "--orphan" if not self._has_commits() else "-b", branch, cwd=self.work)
        else:
            git("checkout", "--quiet", branch, cwd=self.work)
        for relative, content in files.items():
            target = self.work / relative
            if content is None:
                git("rm", "--quiet", "-r", "--", relative, cwd=self.work)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
            git("add", "--", relative, cwd=self.work)
        git("commit", "--quiet", "--allow-empty", "-m", message, cwd=self.work)
        git("push", "--quiet", "origin", f"{branch}:refs/heads/{branch}", cwd=self.work)
        return self.head(branch)

    def tag(self, name: str, commit: str | None = None) -> None:
        git("tag", "-f", name, commit or "HEAD", cwd=self.work)
        git("push", "--quiet", "--force", "origin", f"refs/tags/{name}", cwd=self.work)

    def head(self, branch: str = "main") -> str:
        return git("rev-parse", f"refs/heads/{branch}", cwd=self.bare).stdout.strip()

    def _has_commits(self) -> bool:
        return git("rev-parse", "--verify", "--quiet", "HEAD", cwd=self.work, check=False).returncode == 0


class GitServer(BackgroundHTTPServer):
    """Smart-HTTP Git server over the bare repositories in ``<directory>/repos``."""

    handler = _GitHandler
    realm = "git"

    def __init__(self, directory: Path, *, credentials: tuple[str, str] | None = None):
        super().__init__(credentials=credentials)
        self.root = Path(directory) / "repos"
        self.workdir = Path(directory) / "work"
        self.root.mkdir(parents=True, exist_ok=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.http_backend = _http_backend()

    def create_repository(self, name: str, *, default_branch: str = "main") -> GitRepository:
        repo = GitRepository(self, name)
        if repo.bare.exists():
            shutil.rmtree(repo.bare)
            shutil.rmtree(repo.work, ignore_errors=True)
        git("init", "--quiet", "--bare", f"--initial-branch={default_branch}", str(repo.bare))
        git("init", "--quiet", f"--initial-branch={default_branch}", str(repo.work))
        git("remote", "add", "origin", str(repo.bare), cwd=repo.work)
        return repo

    def clone_url(self, repo: GitRepository, user: str, password: str) -> str:
        """``repo.url`` with credentials in it (what a Git client given a token would use)."""
        return repo.url.replace("http://", f"http://{user}:{password}@", 1)
