"""A layer of the image as an uncompressed tar whose bytes depend only on the tree: entries sorted by name,
every mtime at SOURCE_DATE_EPOCH, numeric owners and no user/group names (deploy/image/build.py writes
each stage with it; umoci compresses and assembles them)."""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path


def _walk(root: Path, keep: Callable[[str], bool], rel: str = "") -> Iterator[str]:
    """Paths under ``root`` that ``keep`` accepts (relative, '/'-separated), sorted by name, a directory
    before its content; a refused directory is not descended into."""
    here = root / rel if rel else root
    for entry in sorted(os.listdir(here)):
        path = f"{rel}/{entry}" if rel else entry
        if not keep(path):
            continue
        yield path
        full = root / path
        if full.is_dir() and not full.is_symlink():
            yield from _walk(root, keep, path)


def write_layer(
    root: Path,
    out: Path,
    *,
    epoch: int,
    keep: Callable[[str], bool],
    owner: Callable[[str], tuple[int, int] | None] = lambda _path: None,
) -> None:
    """An uncompressed layer tar of the paths under ``root`` that ``keep`` accepts (a refused directory
    is not descended into): sorted, mtimes at ``epoch``, numeric owners (``owner`` may override),
    hard links kept; device nodes, sockets and pipes never."""
    partial = out.with_suffix(".partial")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.copybufsize = 1 << 20
        for rel in _walk(root, keep):
            full = root / rel
            mode = full.lstat().st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                continue
            info = tar.gettarinfo(str(full), arcname=rel)
            info.mtime = epoch
            info.uname = info.gname = ""
            if (forced := owner(rel)) is not None:
                info.uid, info.gid = forced
            if info.isreg():
                with open(full, "rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    os.replace(partial, out)
