"""``python -m deploy.image build [--force]``: build the image (or find it cached) and print one JSON line,
``{"layout": "<OCI layout dir>", "tag": "...", "digest": "sha256:..."}`` (more keys: size, seconds...)."""

from __future__ import annotations

import argparse
import json
import sys

from deploy.image import build


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.image")
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="build the image (cached by content); print it as JSON")
    build_parser.add_argument("--force", action="store_true", help="assemble again even when cached")
    args = parser.parse_args()
    try:
        info = build.build(force=args.force)
    except build.ImageBuildError as exc:
        print(f"deploy.image: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
