"""Git repositories over smart HTTP(S) with dulwich, every connection through the outbound-address
policy (``catalog.sources.http.pool_manager``), nothing checked out on disk: the pack is fetched into
an in-memory object store (at most ``MAX_PACK_BYTES``) and the files are read as blobs from it.

* The ref: a branch, a tag (annotated tags peeled), a full commit id, or empty (the repository's
  ``default_ref``, else the remote ``HEAD``). A branch or tag is fetched at depth 1; a commit id with
  the history of every branch and tag (it need not be a tip). The commit read is recorded.
* The path: a directory (read recursively) or one file; empty means the repository's ``path``, else
  the top. Symbolic links are never followed (one named by the path is refused; one inside the
  directory is skipped with a note); submodules are skipped with a note. At most ``MAX_FILES`` files and
  ``MAX_TOTAL_BYTES`` in all, each at most ``MAX_BLOB_BYTES``.
* The credential goes in an ``Authorization`` header (basic or bearer), never in the URL.
* Git over SSH (``ssh://`` with an SSH key): ``catalog.sources.ssh`` (paramiko; the host key checked
  against the repository's known hosts, the connection through the outbound policy).
"""

from __future__ import annotations

import re
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from catalog.sources import http
from catalog.sources.bundle import YAML_SUFFIXES
from catalog.sources.errors import FetchFailed, PackageRefused

MAX_PACK_BYTES = 50 * 1024 * 1024
MAX_FILES = 2000
MAX_BLOB_BYTES = 5 * 1024 * 1024
MAX_TOTAL_BYTES = 20 * 1024 * 1024
_SHA = re.compile(r"^[0-9a-f]{40}$|^[0-9a-f]{64}$")


@dataclass
class Tree:
    """The files read from a commit: ``files`` maps a path relative to ``base`` to its bytes."""

    commit: str
    base: str  # the directory read ("" = the top), or the file's directory when ``single``
    files: dict[str, bytes]
    single: str = ""  # the file name when the path named one file
    notes: list[str] = field(default_factory=list)

    def yaml_files(self) -> list[tuple[str, str]]:
        """The YAML files (sorted by path) as text; names are the repository paths."""
        chosen = []
        for name, data in sorted(self.files.items()):
            if not self.single and not name.lower().endswith(YAML_SUFFIXES):
                continue
            where = str(PurePosixPath(self.base, name)) if self.base else name
            try:
                chosen.append((where, data.decode("utf-8")))
            except UnicodeDecodeError:
                raise PackageRefused({"files": [f"{where}: not UTF-8 text"]}) from None
        if not chosen:
            raise PackageRefused(
                {
                    "path": [
                        f"no .yaml, .yml or .json file at {self.base or 'the top'} "
                        f"of commit {self.commit[:12]}"
                    ]
                }
            )
        return chosen

    def write_to(self, directory: Path) -> None:
        """Write the files under ``directory`` (regular files only; the paths were checked)."""
        root = directory.resolve()
        for name, data in self.files.items():
            target = (root / name).resolve()
            if root not in target.parents:
                raise PackageRefused({"path": [f"{name}: leaves the directory"]})
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)


def _client(repository, url: str):
    """(dulwich client, path to fetch) for the repository's URL."""
    parts = urlsplit(url)
    if parts.scheme.lower() == "ssh":
        from dulwich.client import SSHGitClient

        from catalog.sources.ssh import CheckedSSHVendor

        vendor = CheckedSSHVendor(repository, http.credential_of(repository))
        username = repository.username or parts.username or "git"
        client = SSHGitClient(
            parts.hostname, port=parts.port, username=username, vendor=vendor, thin_packs=False
        )
        client.quiet = True
        return client, parts.path or "/"
    from dulwich.client import Urllib3HttpGitClient

    pool = http.pool_manager(repository, purpose="Git repository", headers=http.auth_headers(repository))
    return Urllib3HttpGitClient(url.rstrip("/") + "/", pool_manager=pool, thin_packs=False, quiet=True), ""


def _checked_url(repository) -> str:
    url = (repository.url or "").strip()
    scheme = urlsplit(url).scheme.lower()
    if scheme == "ssh" and repository.auth != "ssh_key":
        raise PackageRefused(
            {"repository": ["Git over SSH needs an SSH private key (authentication: SSH key)"]}
        )
    if scheme not in ("http", "https", "ssh"):
        raise PackageRefused(
            {"repository": [f"a Git repository is reached over https:// (not {scheme or url!r})"]}
        )
    return url


def _failure(exc: BaseException, url: str) -> FetchFailed:
    from dulwich.client import HTTPUnauthorized
    from dulwich.errors import GitProtocolError, HangupException, NotGitRepository

    where = f"Git repository {http.safe_url(url)}"
    if isinstance(exc, HTTPUnauthorized):
        return FetchFailed(f"{where}: {http.status_reason(401)}")
    if isinstance(exc, NotGitRepository):
        return FetchFailed(f"{where}: 404 Not Found (no such repository)")
    if isinstance(exc, HangupException):
        return FetchFailed(f"{where}: the server hung up")
    if isinstance(exc, GitProtocolError):
        if exc.__cause__ is not None:
            return FetchFailed(f"{where}: {http.describe(exc.__cause__)}")
        match = re.search(r"unexpected http resp (\d+)", str(exc))
        if match:
            return FetchFailed(f"{where}: {http.status_reason(int(match.group(1)))}")
        return FetchFailed(f"{where}: the Git protocol failed")
    return FetchFailed(f"{where}: {http.describe(exc)}")


def resolve(refs: dict[bytes, bytes], ref: str) -> bytes | None:
    """The commit id ``ref`` names among the advertised refs (tags peeled), or None."""
    if ref == "HEAD":
        names = [b"HEAD"]
    elif ref.startswith("refs/"):
        names = [ref.encode()]
    else:
        names = [f"refs/heads/{ref}".encode(), f"refs/tags/{ref}".encode()]
    for name in names:
        if name in refs:
            return refs.get(name + b"^{}") or refs[name]
    return None


def list_refs(repository) -> dict[bytes, bytes]:
    """``git ls-remote``: the advertised refs (FetchFailed naming what failed)."""
    url = _checked_url(repository)
    try:
        client, path = _client(repository, url)
        return dict(client.get_refs(path).refs)
    except Exception as exc:
        if isinstance(exc, PackageRefused | FetchFailed):
            raise
        raise _failure(exc, url) from None


def fetch(repository, *, ref: str = "", path: str = "") -> Tree:
    """The files at ``path`` of ``ref`` (see the module docstring); FetchFailed or PackageRefused."""
    from dulwich.repo import MemoryRepo

    url = _checked_url(repository)
    ref = (ref or repository.default_ref or "HEAD").strip()
    path = (path or repository.path or "").strip().strip("/")
    if any(part == ".." for part in PurePosixPath(path).parts):
        raise PackageRefused({"path": [f"{path}: '..' is not allowed in a path"]})
    by_commit = bool(_SHA.match(ref))
    chosen: dict[str, bytes] = {}

    def determine_wants(refs, depth=None):
        refs = {k: v for k, v in refs.items() if v}
        if by_commit:
            chosen["commit"] = ref.encode()
            tips = {v for k, v in refs.items() if k.startswith((b"refs/heads/", b"refs/tags/"))}
            return sorted(tips)
        sha = resolve(refs, ref)
        if sha is None:
            raise FetchFailed(
                f"Git repository {http.safe_url(url)}: the branch or tag {ref!r} does not exist"
            )
        chosen["commit"] = sha
        return [sha]

    target = MemoryRepo()
    written = {"bytes": 0}
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:

        def pack_data(data: bytes) -> int:
            written["bytes"] += len(data)
            if written["bytes"] > MAX_PACK_BYTES:
                raise PackageRefused(
                    {"repository": [f"the Git fetch is larger than {MAX_PACK_BYTES // 2**20} MiB"]}
                )
            return spool.write(data)

        try:
            client, remote_path = _client(repository, url)
            client.fetch_pack(
                remote_path,
                determine_wants,
                target.get_graph_walker(),
                pack_data,
                depth=None if by_commit else 1,
            )
        except (PackageRefused, FetchFailed):
            raise
        except Exception as exc:
            raise _failure(exc, url) from None
        if spool.tell():
            spool.seek(0)
            f, commit, abort = target.object_store.add_pack()
            try:
                while chunk := spool.read(1024 * 1024):
                    f.write(chunk)
                commit()
            except Exception:
                abort()
                raise FetchFailed(
                    f"Git repository {http.safe_url(url)}: the pack received is damaged"
                ) from None
    sha = chosen.get("commit")
    store = target.object_store
    if not sha or sha not in store:
        raise FetchFailed(f"Git repository {http.safe_url(url)}: the commit {ref!r} is not in the repository")
    return read_tree(store, sha, path)


def read_tree(store, sha: bytes, path: str) -> Tree:
    """Read ``path`` of commit ``sha`` from the object store (no symlink followed, sizes bounded)."""
    from dulwich.objects import S_ISGITLINK, Commit

    commit_obj = store[sha]
    if not isinstance(commit_obj, Commit):
        raise PackageRefused({"ref": [f"{sha.decode()} is not a commit"]})
    commit_id = sha.decode()
    tree_sha, mode = commit_obj.tree, stat.S_IFDIR
    walked: list[str] = []
    for part in PurePosixPath(path).parts if path else ():
        tree = store[tree_sha]
        if not stat.S_ISDIR(mode):
            raise PackageRefused(
                {"path": [f"{'/'.join(walked)} is not a directory (commit {commit_id[:12]})"]}
            )
        try:
            mode, tree_sha = tree[part.encode()]
        except KeyError:
            raise PackageRefused({"path": [f"{path} does not exist at commit {commit_id[:12]}"]}) from None
        walked.append(part)
        if stat.S_ISLNK(mode):
            raise PackageRefused({"path": [f"{'/'.join(walked)} is a symbolic link: links are not followed"]})
        if S_ISGITLINK(mode):
            raise PackageRefused({"path": [f"{'/'.join(walked)} is a submodule: submodules are not fetched"]})
    notes: list[str] = []
    if not stat.S_ISDIR(mode):
        data = store[tree_sha].data
        if len(data) > MAX_BLOB_BYTES:
            raise PackageRefused({"path": [f"{path}: larger than {MAX_BLOB_BYTES // 2**20} MiB"]})
        parent = str(PurePosixPath(path).parent)
        return Tree(commit_id, "" if parent == "." else parent, {walked[-1]: data}, single=walked[-1])
    files: dict[str, bytes] = {}
    total = 0
    stack = [("", tree_sha)]
    while stack:
        prefix, current = stack.pop()
        for entry in store[current].iteritems():
            name = entry.path.decode("utf-8", "replace")
            relative = f"{prefix}{name}"
            shown = f"{path}/{relative}" if path else relative
            if stat.S_ISDIR(entry.mode):
                stack.append((relative + "/", entry.sha))
            elif stat.S_ISLNK(entry.mode):
                notes.append(f"{shown} is a symbolic link: skipped (links are not followed)")
            elif S_ISGITLINK(entry.mode):
                notes.append(f"{shown} is a submodule: skipped")
            else:
                if len(files) >= MAX_FILES:
                    raise PackageRefused({"path": [f"{path or 'the top'}: more than {MAX_FILES} files"]})
                data = store[entry.sha].data
                total += len(data)
                if len(data) > MAX_BLOB_BYTES or total > MAX_TOTAL_BYTES:
                    raise PackageRefused(
                        {"path": [f"{path or 'the top'}: more than {MAX_TOTAL_BYTES // 2**20} MiB of files"]}
                    )
                files[relative] = data
    return Tree(commit_id, path, files, notes=notes)
