"""Benchmark: the load test, run longer (issue 20, item 5).

Run on purpose:  .venv/bin/python -m tests.benchmarks.bench_load [--run-time 3m] [--users 48]
                 [--orgs 10] [--workspaces 5] [--web-workers 2] [--workers 2]

The same harness as tests/integration/test_load.py (tests/load/): tenants seeded through the services on
a fresh database (gpupaas_bench_load), the production server (``manage.py serve --workers N
--no-worker``), real ``manage.py qcluster`` workers and a local control plane of its own, and Locust as
its own process with the mixed traffic of tests/load/locustfile.py. Prints requests per second, p50/p95
per kind beside the trivial endpoint of the same run (``/api/v1/me/``), the errors, what became of the
launches, and the target: zero 5xx.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-time", default="3m", help="Locust's --run-time (default 3m)")
    parser.add_argument("--users", type=int, default=48, help="simulated users, half portal, half API")
    parser.add_argument("--spawn-rate", type=float, default=8)
    parser.add_argument("--orgs", type=int, default=10)
    parser.add_argument("--workspaces", type=int, default=5, help="per org; one person each")
    parser.add_argument("--web-workers", type=int, default=2, help="manage.py serve --workers")
    parser.add_argument("--workers", type=int, default=2, help="qcluster processes (one worker each)")
    args = parser.parse_args(argv)

    from tests.benchmarks._db import fresh_database

    fresh_database("gpupaas_bench_load")
    from tests.load import harness
    from tests.localkube import LocalCluster

    out = Path(tempfile.mkdtemp(prefix="bench-load-"))
    with LocalCluster(name="bench-load", kata=True) as cluster:
        began = time.monotonic()
        with harness.running(out, web_workers=args.web_workers, workers=args.workers) as stack:
            plan = harness.seed(
                kubeconfig=Path(cluster.kubeconfig_path).read_text(),
                orgs=args.orgs,
                workspaces=args.workspaces,
            )
            harness.launch_ready(plan, check=stack.check_alive, timeout=600)
            harness.wait_served(stack)
            print(
                f"seeded {args.orgs} orgs x {args.workspaces} workspaces (one person and one ready instance "
                f"each) in {time.monotonic() - began:.0f} s; serve --workers {args.web_workers}, "
                f"{args.workers} qcluster workers; locust: {args.users} users for {args.run_time}"
            )
            result = harness.run_locust(
                plan,
                host=stack.web.url,
                out_dir=out,
                users=args.users,
                spawn_rate=args.spawn_rate,
                run_time=args.run_time,
                timeout=harness.seconds(args.run_time) + 300,
            )
            stack.check_alive()
            outcomes = harness.launch_outcomes()
    print(result.table(baseline_ratios=True))
    print(f"launched by the load, by state at the end: {outcomes}")
    errors = result.server_errors()
    count = sum(sum(found.values()) for found in errors.values())
    print(f"5xx: {count} ({'PASS' if not errors else 'FAIL'}: target zero)")
    print(f"(locust's log and CSV files: {out})")
    return 0 if not result.problems() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
