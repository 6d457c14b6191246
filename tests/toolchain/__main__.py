"""Command line: ``python -m tests.toolchain build [helm|registry ...] [--force]`` prints each binary."""

from __future__ import annotations

import argparse

from . import build


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.toolchain")
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="build (or reuse) the cached tools; print their paths")
    build_parser.add_argument(
        "tools", nargs="*", metavar="TOOL", help=f"any of {', '.join(build.TOOLS)} (all by default)"
    )
    build_parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    unknown = sorted(set(args.tools) - set(build.TOOLS))
    if unknown:
        parser.error(f"unknown tool(s): {', '.join(unknown)}")
    for name in args.tools or list(build.TOOLS):
        print(build.build(build.TOOLS[name], force=args.force))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
