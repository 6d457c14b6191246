"""The load test (issue 20, item 5), the suite's short run: about 40 s of mixed traffic from Locust, as its
own process, against the production server.

The test seeds four orgs of four workspaces (one person each: a password, a personal API token and a ready
instance of theirs) through the services, starts ``manage.py serve --workers 2 --no-worker`` and two
``manage.py qcluster`` workers on the test database with the local control plane registered, and runs
``locust --headless`` (tests/load/locustfile.py): portal pages signed in through the login form, the
catalogs, launches and deletes in every workspace, services deployed onto the ready instances and deleted,
kubeconfig downloads. It prints requests per second, p50/p95 per kind and the errors (shown with ``-s``,
and in the message of a failure), and fails on any 5xx, on any answer a kind may not give
(tests/load/kinds.py: the only refusal designed in is the tight workspace's quota, a 409), on a request
left without an answer, on a kind the run never sent, and on a launched instance or service the workers
left failed.

Longer runs with their figures: ``python -m tests.benchmarks.bench_load``.
"""

from pathlib import Path

import pytest

from tests.load import harness

pytestmark = pytest.mark.kube

ORGS, WORKSPACES = 4, 4
USERS, SPAWN_RATE, RUN_TIME = 24, 12, "40s"


def test_mixed_traffic_on_the_production_server_answers_no_5xx(transactional_db, kube_cluster, tmp_path):
    api = kube_cluster.api_client()
    orgs = []
    try:
        with harness.running(tmp_path) as stack:  # (they start while the test seeds)
            plan = harness.seed(
                kubeconfig=Path(kube_cluster.kubeconfig_path).read_text(), orgs=ORGS, workspaces=WORKSPACES
            )
            orgs = plan["orgs"]
            harness.launch_ready(plan, check=stack.check_alive, timeout=300)
            harness.wait_served(stack)
            result = harness.run_locust(
                plan,
                host=stack.web.url,
                out_dir=tmp_path,
                users=USERS,
                spawn_rate=SPAWN_RATE,
                run_time=RUN_TIME,
                timeout=180,
            )
            stack.check_alive()
            outcomes = harness.launch_outcomes()
    finally:
        harness.remove_namespaces(api, orgs)
        api.close()
    print(f"\nload test: {USERS} users for {RUN_TIME}, {ORGS * WORKSPACES} workspaces\n{result.table()}")
    print(f"launched by the load, by state when it ended: {outcomes}")
    assert result.total.count > 0
    assert result.server_errors() == {}, result.table()
    assert result.problems() == [], result.table()
    # What the workers did with the accepted launches: none failed (deploys and deletes still queued or
    # running when the workers stopped are left so).
    assert all("failed" not in states for states in outcomes.values()), outcomes
