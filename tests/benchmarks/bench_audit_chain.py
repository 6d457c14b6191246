"""Benchmark: writers of ONE org's audit chain, each holding its transaction open 20 ms after its audit
write (a service doing more work after ``audit_log``), before and after sealing moved after commit.

Run on purpose:  .venv/bin/python -m tests.benchmarks.bench_audit_chain [--threads 16] [--seconds 5]

Three runs on a fresh ``gpupaas_bench_audit_chain`` database, each ``--threads`` threads (own
connections) for ``--seconds``, each transaction = one audit event + ``--hold-ms`` of holding:

* baseline: the same transactions without an audit write (the ceiling: threads / hold).
* before:   the writer as it was (``paas/audit.py`` at ``--before-ref``, loaded from git): the chain's
  advisory lock is taken by the write and held until commit, so one chain commits at most
  1 / hold transactions a second, whatever the number of writers.
* after:    ``audit_log`` as it is now: the row written unsealed, chained on commit in a short
  transaction of its own.

Prints transactions per second and p50/p95 per transaction (commit and on-commit sealing and
checkpoint included), then checks that both chains verify, gap-free, nothing left pending.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
from pathlib import Path

BEFORE_REF = "07b5067"  # main before issue 20 (the chain lock held until the writer's commit)
REPO = Path(__file__).resolve().parents[2]


def _legacy_audit(ref: str) -> types.ModuleType:
    """``paas/audit.py`` as it was at ``ref``, loaded as a module of its own (same models)."""
    source = subprocess.run(
        ["git", "show", f"{ref}:paas/audit.py"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    module = types.ModuleType("legacy_audit")
    module.__file__ = f"<{ref}:paas/audit.py>"
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102 (our own file at ref)
    return module


def _run(name: str, write, *, threads: int, seconds: float, hold: float) -> dict:
    from django.db import connection, transaction

    barrier = threading.Barrier(threads + 1)
    stop = threading.Event()
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            connection.ensure_connection()
            barrier.wait()
            n = 0
            while not stop.is_set():
                start = time.perf_counter()
                with transaction.atomic():
                    if write is not None:
                        write(i, n)
                    time.sleep(hold)
                latencies[i].append(time.perf_counter() - start)
                n += 1
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    flat = sorted(x for per in latencies for x in per)
    return {
        "name": name,
        "tx": len(flat),
        "rate": len(flat) / elapsed,
        "p50": statistics.median(flat) * 1000,
        "p95": flat[int(len(flat) * 0.95) - 1] * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--hold-ms", type=float, default=20.0)
    parser.add_argument("--before-ref", default=BEFORE_REF)
    args = parser.parse_args(argv)
    os.environ["PAAS_DB_POOL_MAX"] = "0"

    from tests.benchmarks._db import fresh_database

    fresh_database("gpupaas_bench_audit_chain")
    from django.conf import settings

    from paas import audit
    from paas.models import AuditEvent

    settings.PAAS_AUDIT_CHECKPOINT_DIR = tempfile.mkdtemp(prefix="bench-audit-chain-")
    legacy = _legacy_audit(args.before_ref)
    hold = args.hold_ms / 1000
    before_chain, after_chain = 1001, 1002

    def entry(i: int, n: int):
        return dict(
            action="bench.write", actor_id=None, actor_repr="", target_type="bench", target_id=f"{i}-{n}"
        )

    def before(i: int, n: int) -> None:
        legacy.audit_append_batch(org_id=before_chain, entries=[legacy.Entry(**entry(i, n))])

    def after(i: int, n: int) -> None:
        audit.audit_append_batch(org_id=after_chain, entries=[audit.Entry(**entry(i, n))])

    common = {"threads": args.threads, "seconds": args.seconds, "hold": hold}
    results = [
        _run("baseline (no audit write)", None, **common),
        _run(f"before ({args.before_ref}: lock until commit)", before, **common),
        _run("after (sealed on commit)", after, **common),
    ]
    print(
        f"{args.threads} threads writing one org's chain for {args.seconds:g} s each, every transaction "
        f"held {args.hold_ms:g} ms after its audit write; ceiling {args.threads / hold:.0f} tx/s, "
        f"lock-until-commit bound {1 / hold:.0f} tx/s"
    )
    print(f"{'run':40} {'tx':>7} {'tx/s':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for r in results:
        print(f"{r['name']:40} {r['tx']:7d} {r['rate']:8.1f} {r['p50']:8.1f} {r['p95']:8.1f}")
    print(f"after / before throughput: {results[2]['rate'] / results[1]['rate']:.1f}x")

    result = audit.audit_verify()
    counts = {c: AuditEvent.objects.filter(chain=c).count() for c in (before_chain, after_chain)}
    print(
        f"audit_verify: ok={result.ok}, pending={result.pending}, events {counts} "
        f"(runs: before {results[1]['tx']}, after {results[2]['tx']})"
    )
    good = (
        result.ok
        and not result.pending
        and counts == {before_chain: results[1]["tx"], after_chain: results[2]["tx"]}
    )
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
