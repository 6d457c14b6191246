"""Benchmark: deploy throughput on the local control plane, with two real workers.

Run on purpose:  .venv/bin/python -m tests.benchmarks.bench_deploy [--instances 120] [--profile 8]

1. Profile (``--profile K``, in this process, before any worker runs): K deploys one after the other
   through ``instances.deployer.execute``, each step's share of the time (from the runs' own step log),
   every request sent to the API server by verb and kind, the time spent in SQL, and cProfile's
   heaviest functions: where a deploy's time goes.
2. Throughput: ``--instances`` N instances are launched with no worker running (their runs wait on the
   queue), then two real ``manage.py qcluster`` processes (one worker each, tests/benchmarks/_workers.py)
   deploy them. Instances per minute = N / (last run finished - first run started), from the runs' own
   timestamps. Target: at least 400 a minute. Printed with it: where the machine's CPU went from the first
   run's start to the last one's end (tests/benchmarks/_cpu.py: the workers, kube-apiserver, etcd,
   PostgreSQL...), per deploy, and the least wall time that CPU needs on this machine's cores.
3. Baseline (the ceiling, same run, same cluster): the same objects (each instance's isolation baseline
   and its rendered template, in new namespaces) server-side applied straight with the Python client,
   one client, as many threads as the two workers have in all, each namespace's Deployment then watched
   until ready: what the API server and its controllers can do on this machine with nothing of ours in
   between (its CPU printed the same way).

The profile's template (tests/support/instances.ONE_POD, as in test_deploy_parallel) has a Deployment, so
"ready" waits for a (KWOK) pod.
"""

import argparse
import collections
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

TARGET = 400  # instances a minute, two workers
WORKERS = 2
CPU_DETAIL = ("qcluster workers", "kube-apiserver", "etcd", "PostgreSQL")  # shares printed per deploy


def _step_name(message: str) -> str:
    for prefix, name in (
        ("Attempt", "claim and start"),
        ("Rendered", "render"),
        ("Applied the isolation baseline (", "baseline apply"),
        ("Delivered", "pull secrets"),
        ("Applied ", "template apply (and pull secrets)"),
        ("Applied the isolation baseline again", "baseline again"),
        ("The isolation baseline stands", "baseline check"),
        ("Ready", "wait ready"),
        ("event", "events"),
    ):
        if message.startswith(prefix):
            return name
    return message.split(" ", 1)[0]


def profile(instances, runs) -> None:
    """Deploy ``runs`` one after the other in this process and print where the time went."""
    from django.db import connection

    from instances import deployer
    from instances.models import Run
    from tests.support.kube_requests import counting

    sql = {"seconds": 0.0, "count": 0}

    def timed(execute, sql_text, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql_text, params, many, context)
        finally:
            sql["seconds"] += time.perf_counter() - start
            sql["count"] += 1

    profiler = cProfile.Profile()
    started = time.perf_counter()
    with counting() as counter, connection.execute_wrapper(timed):
        profiler.enable()
        for run in runs:
            outcome = deployer.execute(run.pk)
            assert outcome == "ready", Run.objects.get(pk=run.pk).log
        profiler.disable()
    wall = time.perf_counter() - started
    n = len(runs)
    print(
        f"\n== profile: {n} deploys one after the other in one process: {wall / n * 1000:.0f} ms a deploy =="
    )
    steps: collections.defaultdict = collections.defaultdict(list)
    for run in Run.objects.filter(pk__in=[r.pk for r in runs]):
        times = [datetime.fromisoformat(e["time"]) for e in run.log]
        for entry, before, after in zip(run.log[1:], times, times[1:], strict=False):
            steps[_step_name(entry["message"])].append((after - before).total_seconds())
        steps["success (after last step)"].append((run.finished_at - times[-1]).total_seconds())
    print("time per step (mean ms a deploy, from the runs' step logs):")
    for name, values in steps.items():
        print(f"  {name:38s} {statistics.mean(values) * 1000:7.1f}")
    total_requests = sum(counter.counts.values())
    print(
        f"requests to the API server: {total_requests / n:.1f} a deploy, "
        f"{sum(counter.seconds.values()) / n * 1000:.0f} ms a deploy waiting on them:"
    )
    for (verb, kind), count in sorted(counter.counts.items(), key=lambda kv: -counter.seconds[kv[0]]):
        seconds = counter.seconds[(verb, kind)] / n
        print(f"  {verb:8s} {kind:32s} {count / n:5.1f} a deploy {seconds * 1000:7.1f} ms")
    print(f"SQL: {sql['count'] / n:.0f} queries a deploy, {sql['seconds'] / n * 1000:.0f} ms a deploy")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
    print("cProfile, heaviest functions by own time:")
    print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))


def ceiling(template_instance, count: int, threads: int) -> float:
    """Instances a minute when the same objects are applied straight (see the module's docstring)."""
    from kubernetes import client as k8s
    from kubernetes import watch

    from instances.namespace import baseline_objects
    from instances.rendering import instance_render
    from inventory import kube

    session = kube.shared_session(template_instance.cluster.kubeconfig.reveal())
    sets = []
    for index in range(count):
        namespace = f"ceiling-{index}"
        objects, _ = instance_render(template_instance, namespace)
        sets.append((namespace, baseline_objects(template_instance, namespace), objects))

    def one(item):
        namespace, base, objects = item
        kube.apply(session, base)
        applied = kube.apply(session, objects, namespace=namespace)
        name = applied[0]["metadata"]["name"]
        apps = k8s.AppsV1Api(session.api)
        for event in watch.Watch().stream(
            apps.list_namespaced_deployment,
            namespace,
            field_selector=f"metadata.name={name}",
            timeout_seconds=120,
            _request_timeout=(3, 130),
        ):
            status = event["object"].status
            if status and (status.ready_replicas or 0) >= 1:
                return

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, sets))
    return count / (time.perf_counter() - started) * 60


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=120)
    parser.add_argument("--profile", type=int, default=8, help="deploys profiled in this process first")
    parser.add_argument("--no-ceiling", action="store_true")
    args = parser.parse_args()

    from tests.benchmarks._cpu import CpuWindow
    from tests.benchmarks._db import fresh_database
    from tests.benchmarks._workers import start_workers, stop_workers
    from tests.benchmarks._world import bench_world

    db_url = fresh_database("gpupaas_bench_deploy")
    from django.conf import settings
    from django_q.models import OrmQ

    from instances import services
    from instances.models import ComputeInstance, Run
    from tests.factories import make_profile
    from tests.localkube import LocalCluster
    from tests.localkube.inventory import NodeSpec
    from tests.support.instances import ONE_POD

    concurrency = getattr(settings, "PAAS_RUN_CONCURRENCY", 1)
    nodes = [NodeSpec(f"cpu-{i}", cpu=512, memory_gib=4096) for i in range(8)]
    with LocalCluster(name="bench-deploy", nodes=nodes, kata=True) as cluster:
        world = bench_world(cluster)
        admin = world.admin
        project = world.project
        owner = world.owner
        profile_ = make_profile(
            actor=admin,
            project=project,
            manifests=ONE_POD,
            name="cpu",
            template="agent",
            resource_groups=[{"cpu_cores": "2", "memory_gib": 4, "storage_gib": 1}],
        )

        def launch(prefix: str, count: int) -> list[ComputeInstance]:
            return [
                services.instance_launch(actor=owner, project=project, name=f"{prefix}-{i}", profile=profile_)
                for i in range(count)
            ]

        if args.profile:
            warm = launch("warm", 1)  # the first deploy of a process also installs the cluster's guardrails
            from instances import deployer

            deployer.execute(warm[0].runs.get().pk)
            profiled = launch("prof", args.profile)
            profile(profiled, [i.runs.get() for i in profiled])
            OrmQ.objects.all().delete()  # their tasks: run already

        instances = launch("bench", args.instances)
        ids = [i.pk for i in instances]
        workers = start_workers(db_url, count=WORKERS)
        window = CpuWindow(named={worker.pid: "qcluster workers" for worker in workers})
        try:
            deadline = time.monotonic() + 600
            # The CPU window opens when the first run starts (the workers' own start-up is not a deploy's).
            pending = Run.objects.filter(instance_id__in=ids, started_at__isnull=True)
            while pending.count() == len(ids) and time.monotonic() < deadline:
                time.sleep(0.05)
            with window:
                while time.monotonic() < deadline:
                    done = ComputeInstance.objects.filter(pk__in=ids, state__in=("ready", "failed")).count()
                    if done == len(ids):
                        break
                    time.sleep(0.2)
        finally:
            stop_workers(workers)
        failed = ComputeInstance.objects.filter(pk__in=ids, state="failed").count()
        runs = Run.objects.filter(instance_id__in=ids, service__isnull=True, application__isnull=True)
        first = min(r.started_at for r in runs if r.started_at)
        last = max(r.finished_at for r in runs if r.finished_at)
        finished = [r for r in runs if r.finished_at]
        durations = [(r.finished_at - r.started_at).total_seconds() for r in finished]
        attempts = sum(r.attempt for r in runs)
        rate = len(finished) / (last - first).total_seconds() * 60
        print(
            f"\n== throughput: {args.instances} instances, {WORKERS} qcluster workers "
            f"(PAAS_RUN_CONCURRENCY {concurrency}) =="
        )
        verdict = "PASS" if rate >= TARGET and not failed else "FAIL"
        p95 = sorted(durations)[int(0.95 * (len(durations) - 1))]
        print(
            f"deploy throughput: {len(finished)} runs finished in {(last - first).total_seconds():.1f} s "
            f"= {rate:.0f} instances per minute ({verdict}: target >= {TARGET}); {failed} failed; "
            f"{attempts} attempts for {len(finished)} runs; a run took p50 "
            f"{statistics.median(durations):.2f} s, p95 {p95:.2f} s"
        )
        print(window.summary(per=len(finished), what="deploy", detail=CPU_DETAIL))
        if not args.no_ceiling:
            template = ComputeInstance.objects.select_related("cluster", "org", "project", "owner").get(
                pk=ids[0]
            )
            threads = 16
            with CpuWindow() as straight:
                best = ceiling(template, args.instances, threads)
            print(
                f"baseline (same run): the same objects applied straight with the Python client, "
                f"{threads} threads, each Deployment watched to ready: {best:.0f} instances per minute "
                f"(ours is {rate / best * 100:.0f}% of it)"
            )
            print(
                straight.summary(per=args.instances, what="instance applied straight", detail=CPU_DETAIL[1:])
            )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paas.settings.test")
    sys.exit(main())
