"""Command line: ``python -m tests.toolchain build [helm|registry|kubectl|bwrap ...] [--force]`` prints each
binary's path (Go tools are built, bwrap is fetched from Debian; all of them by default)."""

from __future__ import annotations

import argparse

from . import build, bwrap

FETCHED = {"bwrap": bwrap.ensure}  # not built from Go: Debian's package (tests/toolchain/bwrap.py)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.toolchain")
    commands = parser.add_subparsers(dest="command", required=True)
    names = [*build.TOOLS, *FETCHED]
    build_parser = commands.add_parser("build", help="build (or reuse) the cached tools; print their paths")
    build_parser.add_argument(
        "tools", nargs="*", metavar="TOOL", help=f"any of {', '.join(names)} (all by default)"
    )
    build_parser.add_argument("--force", action="store_true", help="rebuild a Go tool even when cached")
    args = parser.parse_args()
    unknown = sorted(set(args.tools) - set(names))
    if unknown:
        parser.error(f"unknown tool(s): {', '.join(unknown)}")
    for name in args.tools or names:
        if name in FETCHED:
            try:
                print(FETCHED[name]())
            except bwrap.Unavailable as exc:
                parser.exit(1, f"{exc}\n")
        else:
            print(build.build(build.TOOLS[name], force=args.force))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
