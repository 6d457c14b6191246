"""Command line for demos and dev loops.

    python -m tests.localkube build                         # build/cache binaries, print bin dir
    python -m tests.localkube start [--name demo] [--dir DIR] [--kata] [--no-crds]
                                                            # start detached, print kubeconfig path
    python -m tests.localkube status [--name demo] [--dir DIR]
    python -m tests.localkube stop [--name demo] [--dir DIR]

Without ``--dir`` the cluster lives in ``$TMPDIR/localkube-<name>``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from . import build, crds
from .cluster import STATE_FILE, ClusterError, LocalCluster


def _workdir(args: argparse.Namespace) -> Path:
    return Path(args.dir) if args.dir else Path(tempfile.gettempdir()) / f"localkube-{args.name}"


def _attach(args: argparse.Namespace) -> LocalCluster | None:
    workdir = _workdir(args)
    if not (workdir / STATE_FILE).exists():
        print(f"no cluster in {workdir}", file=sys.stderr)
        return None
    return LocalCluster.attach(workdir)


def cmd_build(args: argparse.Namespace) -> int:
    print(build.build(force=args.force))
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    cluster = LocalCluster(name=args.name, kata=args.kata, workdir=_workdir(args), detach=True)
    try:
        cluster.start(timeout=args.timeout)
    except ClusterError as error:
        print(f"start failed: {error}", file=sys.stderr)
        return 1
    if not args.no_crds:
        api = cluster.api_client()
        try:
            names = crds.install(api)
            print(f"installed the operators' CRDs: {', '.join(names)}", file=sys.stderr)
        except Exception as error:  # the cluster is usable without them: say so and go on
            print(f"warning: the KServe/KubeRay CRDs were not installed: {error}", file=sys.stderr)
        finally:
            api.close()
    print(
        f"cluster {args.name} ready in {cluster.status()['ready_seconds']}s at {cluster.server}",
        file=sys.stderr,
    )
    print(
        f"export KUBECONFIG={cluster.kubeconfig_path}  # or LOCALKUBE_KUBECONFIG for pytest", file=sys.stderr
    )
    print(cluster.kubeconfig_path)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    cluster = _attach(args)
    if cluster is None:
        return 3
    status = cluster.status()
    print(json.dumps(status, indent=2))
    return 0 if status["ready"] else 1


def cmd_stop(args: argparse.Namespace) -> int:
    cluster = _attach(args)
    if cluster is None:
        return 3
    cluster.stop()
    print(f"stopped {args.name}", file=sys.stderr)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.localkube",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="build and cache the binaries; print their directory")
    build_parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    build_parser.set_defaults(func=cmd_build)
    for name, func, text in (
        ("start", cmd_start, "start a cluster in the background and print its kubeconfig path"),
        ("status", cmd_status, "show component pids, memory and readiness"),
        ("stop", cmd_stop, "stop a cluster and remove its directory"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--name", default="demo", help="cluster name (default: demo)")
        sub.add_argument("--dir", help="cluster directory (default: $TMPDIR/localkube-NAME)")
        sub.set_defaults(func=func)
        if name == "start":
            sub.add_argument("--kata", action="store_true", help="create the 'kata' RuntimeClass")
            sub.add_argument(
                "--no-crds", action="store_true", help="skip the KServe/KubeRay CRDs (installed by default)"
            )
            sub.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
