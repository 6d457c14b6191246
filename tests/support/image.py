"""The platform's OCI image for the tests: ``built_image()`` builds it once per session (or finds it in the
cache by content: ``python -m deploy.image build``, ~/.cache/gpu-paas/image/) and returns where it is.

The image's layout and environment are CONTRACTS19.md's (part B): app at ``/app``, venv ``/app/.venv``,
user ``10001:10001``, ``ENTRYPOINT ["/app/.venv/bin/python", "/app/manage.py"]``, read-only root (only
``/tmp`` and ``/var/lib/gpu-paas`` written).  Building needs root (mmdebstrap, chroot) the first time;
a cached image is found in a few seconds.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from deploy.image import build


@dataclass(frozen=True)
class BuiltImage:
    layout: Path  # an OCI image layout directory (``umoci unpack --image <layout>:<tag>``)
    tag: str
    digest: str  # the manifest's digest, ``sha256:...`` (pods run ``repository@digest``)

    @property
    def reference(self) -> str:
        """``<layout>:<tag>``, as umoci names an image."""
        return f"{self.layout}:{self.tag}"


@functools.cache
def built_image() -> BuiltImage:
    """The image of the working tree (built once, cached by the hash of its inputs)."""
    info = build.build()
    return BuiltImage(layout=Path(info["layout"]), tag=info["tag"], digest=info["digest"])
