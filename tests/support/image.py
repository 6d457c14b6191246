"""STAND-IN until branch p19-image lands: the built image of the platform, for the chart's test.

The real module (part B, ``deploy/image``) builds the OCI image with ``python -m deploy.image build``
and returns its layout, tag and digest; this stand-in only has the same name and shape and returns a
fixed digest, so that the chart's test can already check every pod runs ``repository@digest``.  It is
replaced wholesale by p19-image's file when that branch is merged.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BuiltImage:
    layout: Path
    tag: str
    digest: str


@functools.cache
def built_image() -> BuiltImage:
    return BuiltImage(
        layout=Path("/nonexistent/stand-in"),
        tag="gpu-paas:stand-in",
        digest="sha256:" + "5" * 64,
    )
