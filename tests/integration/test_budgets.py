"""Budgets: alerts at 50, 75, 90 and 100 % once per month (and once with two workers), the projection,
and the hard stop refusing compute launches and service deploys (service layer, API 409, portal form)."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection

from billing import budget_selectors, budgets
from billing.models import BudgetAlert
from instances import service_instances
from instances.models import ComputeInstance
from instances.services import instance_launch
from paas.errors import Conflict
from paas.models import AuditEvent
from tenancy import services as tenancy_services
from tests.factories import ONE_A100, make_profile
from tests.support.billing import MANIFESTS, frozen_at, launch_at, move, priced_setup
from tests.support.services import make_service_profile

NOV = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
DEC = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def running(owner, project, profile, name, at):
    """An instance launched and running from ``at`` ($2.50 an hour in ``priced_setup``)."""
    instance = launch_at(owner=owner, project=project, profile=profile, name=name, at=at)
    return move(instance, "provisioning", at=at)


def check(at, capture):
    with frozen_at(at), capture(execute=True):
        return budgets.budgets_check()


def alerts_in(message) -> str:
    return message.body.split("Thresholds reached: ")[1].split("\n")[0]


@pytest.mark.django_db
def test_alerts_fire_once_at_each_threshold_and_again_next_month(django_capture_on_commit_callbacks):
    _operator, admin, project, owner, profile, _cluster = priced_setup("bud1")
    admin.email = "admin@bud1.example"
    admin.save()
    owner.email = "owner@bud1.example"
    owner.save()
    org_budget = budgets.budget_set(actor=admin, org=project.org, amount="10", currency="USD")
    ws_budget = budgets.budget_set(actor=admin, org=project.org, project=project, amount="100.00")
    running(owner, project, profile, "dev", NOV)

    assert check(NOV + HOUR, django_capture_on_commit_callbacks) == 0  # 2.50 of 10: 25 %
    assert mail.outbox == []

    assert check(NOV + 2 * HOUR, django_capture_on_commit_callbacks) == 1  # 5.00: 50 %
    [first] = mail.outbox
    assert first.to == ["admin@bud1.example"]  # org admins only for an org budget
    assert "at 50%" in first.subject and "November 2026" in first.subject
    # the projection: 5.00 so far + 2.50/h for the 718 hours left in November
    assert "Spend so far: 5.00 USD" in first.body and "Budget: 10.00 USD" in first.body
    assert "Projected month-end spend: 1,800.00 USD" in first.body

    assert check(NOV + 2 * HOUR + dt.timedelta(minutes=30), django_capture_on_commit_callbacks) == 0
    assert len(mail.outbox) == 1  # not again in the same month

    assert check(NOV + 3 * HOUR, django_capture_on_commit_callbacks) == 1  # 7.50: 75 %
    assert alerts_in(mail.outbox[-1]) == "75%"
    assert check(NOV + 4 * HOUR, django_capture_on_commit_callbacks) == 2  # 10.00: 90 and 100 at once
    assert len(mail.outbox) == 3 and alerts_in(mail.outbox[-1]) == "90%, 100%"
    assert "at 100%" in mail.outbox[-1].subject
    assert check(NOV + 19 * HOUR, django_capture_on_commit_callbacks) == 0  # the workspace's: 47.5 %
    assert len(mail.outbox) == 3
    alerts = BudgetAlert.objects.filter(budget=org_budget).order_by("threshold")
    assert [(a.threshold, a.spend, a.period) for a in alerts] == [
        (50, Decimal("5"), NOV.date()),
        (75, Decimal("7.5"), NOV.date()),
        (90, Decimal("10"), NOV.date()),
        (100, Decimal("10"), NOV.date()),
    ]
    assert all(a.emailed_at is not None for a in alerts)
    assert AuditEvent.objects.filter(action="budget.alert", target_id=str(org_budget.pk)).count() == 4

    # The workspace budget (100.00) reaches 50 % at 20 h: both its workspace admins and the org admins.
    assert check(NOV + 20 * HOUR, django_capture_on_commit_callbacks) == 1
    assert sorted(mail.outbox[-1].to) == ["admin@bud1.example", "owner@bud1.example"]
    assert BudgetAlert.objects.get(budget=ws_budget).threshold == 50

    # Next month: from zero again, the same thresholds fire once more.
    assert check(DEC + HOUR, django_capture_on_commit_callbacks) == 0
    assert check(DEC + 2 * HOUR, django_capture_on_commit_callbacks) == 1
    assert BudgetAlert.objects.filter(budget=org_budget, period=DEC.date()).count() == 1
    assert "December 2026" in mail.outbox[-1].subject


@pytest.mark.django_db
def test_status_counts_the_budget_scope_and_lists_other_currencies():
    _op, admin, project, owner, profile, _cluster = priced_setup("bud2")
    other_ws = tenancy_services.project_create(actor=admin, org=project.org, name="other")
    running(owner, project, profile, "a", NOV)
    euro = make_profile(
        actor=admin,
        project=project,
        manifests=MANIFESTS,
        name="euro",
        template="euro-tpl",
        resource_groups=ONE_A100,
        cost_amount="2.5",
        cost_currency="EUR",
    )
    running(owner, project, euro, "b", NOV)  # priced in EUR: not counted in a USD budget
    org_budget = budgets.budget_set(actor=admin, org=project.org, amount="100")
    other_budget = budgets.budget_set(actor=admin, org=project.org, project=other_ws, amount="100")
    status = budget_selectors.budget_status(org_budget, NOV + 4 * HOUR)
    assert status.spend == Decimal("10.000000") and status.percent == Decimal("10.00")
    assert status.not_counted == [{"currency": "EUR", "spend": Decimal("10.000000")}]
    assert status.run_rate_per_hour == Decimal("2.500000")
    assert status.projected == Decimal("10") + Decimal("2.5") * (30 * 24 - 4)
    assert status.thresholds == []
    assert budget_selectors.budget_status(other_budget, NOV + 4 * HOUR).spend == 0  # its own scope only


def test_two_concurrent_checks_send_each_alert_once(transactional_db):
    """Two workers check at the same instant: each alert row is created by one of them, audited once and
    emailed once (the other's insert waits on the unique constraint and finds the row)."""
    ids, operator = [], None
    for name in ("bud3", "bud4"):  # per org: an org-wide and a workspace budget of 10.00, one instance
        operator, admin, project, owner, profile, _cluster = priced_setup(name, operator=operator)
        ids.append(budgets.budget_set(actor=admin, org=project.org, amount="10").pk)
        ids.append(budgets.budget_set(actor=admin, org=project.org, project=project, amount="10").pk)
        running(owner, project, profile, "dev", NOV)
    mail.outbox.clear()
    barrier = threading.Barrier(2)
    results, errors = [], []

    def worker():
        try:
            barrier.wait(timeout=10)
            results.append(budgets.budgets_check())
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    with frozen_at(NOV + 4 * HOUR):  # every budget at 100 % (10.00 of 10.00)
        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert errors == []
    rows = BudgetAlert.objects.filter(budget_id__in=ids)
    assert rows.count() == 16 and sum(results) == 16  # each alert raised by exactly one worker
    sent = [(m.subject.split(" at ")[0], t) for m in mail.outbox for t in alerts_in(m).split(", ")]
    assert len(sent) == 16 and len(set(sent)) == 16  # each alert emailed once
    assert not rows.filter(emailed_at__isnull=True).exists()
    assert AuditEvent.objects.filter(action="budget.alert").count() == 16


# --- the hard stop ------------------------------------------------------------------------------------


@pytest.fixture
def spent(db):
    """A workspace whose org's 5.00 USD budget with a hard stop is spent by 2 hours of one instance."""
    operator, admin, project, owner, profile, _cluster = priced_setup("stop")
    instance = running(owner, project, profile, "dev", NOV)
    budget = budgets.budget_set(actor=admin, org=project.org, amount="5.00", hard_stop=True)
    return {
        "operator": operator,
        "admin": admin,
        "project": project,
        "owner": owner,
        "profile": profile,
        "instance": instance,
        "budget": budget,
    }


MESSAGE = "budget of 5.00 USD for November 2026 is spent (5.00 USD)"


def test_hard_stop_refuses_a_compute_launch_and_allows_without_it(spent):
    project, owner, profile = spent["project"], spent["owner"], spent["profile"]
    with frozen_at(NOV + HOUR):  # 2.50 of 5.00: allowed
        instance_launch(actor=owner, project=project, name="early", profile=profile)
    with frozen_at(NOV + 2 * HOUR), pytest.raises(Conflict) as refused:
        instance_launch(actor=owner, project=project, name="late", profile=profile)
    assert refused.value.code == "budget_exceeded"
    assert MESSAGE in refused.value.message and "Ask an org admin" in refused.value.message
    assert not ComputeInstance.objects.filter(name="late").exists()
    budgets.budget_update(actor=spent["admin"], budget=spent["budget"], hard_stop=False)
    with frozen_at(NOV + 2 * HOUR):
        instance_launch(actor=owner, project=project, name="late", profile=profile)  # alerts only now


def test_hard_stop_of_the_workspace_budget_refuses_too(spent):
    project, owner, profile = spent["project"], spent["owner"], spent["profile"]
    budgets.budget_update(actor=spent["admin"], budget=spent["budget"], hard_stop=False)
    budgets.budget_set(actor=spent["admin"], org=project.org, project=project, amount="3", hard_stop=True)
    with frozen_at(NOV + 2 * HOUR), pytest.raises(Conflict) as refused:
        instance_launch(actor=owner, project=project, name="late", profile=profile)
    assert "The workspace lab's budget of 3.00 USD for November 2026 is spent (5.00 USD)" in (
        refused.value.message
    )


def test_hard_stop_refuses_a_launch_through_the_api_and_the_portal(spent, api, client):
    project, owner, profile = spent["project"], spent["owner"], spent["profile"]
    with frozen_at(NOV + 2 * HOUR):
        answer = api.as_user(owner).post(
            "/api/v1/instances/", {"project": project.pk, "name": "late", "profile": profile.pk}
        )
    assert answer.status_code == 409, answer.content
    error = answer.json()["error"]
    assert error["code"] == "budget_exceeded" and MESSAGE in error["message"]
    client.force_login(owner)
    with frozen_at(NOV + 2 * HOUR):
        page = client.post(
            f"/w/{project.pk}/instances/new/",
            {"step": "4", "name": "late", "description": "", "profile": profile.pk},
        )
    assert page.status_code == 409
    assert MESSAGE in page.content.decode()
    assert not ComputeInstance.objects.filter(name="late").exists()


def test_hard_stop_refuses_a_service_deploy(spent, api, client):
    project, owner, admin = spent["project"], spent["owner"], spent["admin"]
    instance = ComputeInstance.objects.get(pk=spent["instance"].pk)
    ComputeInstance.objects.filter(pk=instance.pk).update(namespace="i-dev-ns")
    instance = move(instance, "ready", at=NOV + dt.timedelta(minutes=1))
    service_profile = make_service_profile(None, actor=admin, project=project)
    with frozen_at(NOV + 2 * HOUR), pytest.raises(Conflict) as refused:
        service_instances.service_launch(
            actor=owner, compute_instance=instance, profile=service_profile, name="web"
        )
    assert refused.value.code == "budget_exceeded" and MESSAGE in refused.value.message
    assert "nothing new may deploy" in refused.value.message
    with frozen_at(NOV + 2 * HOUR):
        answer = api.as_user(owner).post(
            "/api/v1/service-instances/",
            {"compute_instance": instance.pk, "profile": service_profile.pk, "name": "web"},
            format="json",
        )
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "budget_exceeded"
    client.force_login(owner)
    form = {"name": "web", "profile": service_profile.pk, "compute_instance": instance.pk, "launch": "1"}
    form |= {"input_replicas": "1", "input_cpu_millis": "100", "input_memory_mib": "64", "input_mode": "dev"}
    with frozen_at(NOV + 2 * HOUR):
        page = client.post(f"/w/{project.pk}/deployments/custom/new/", form)
    assert page.status_code == 409, page.content.decode()[-3000:]
    assert MESSAGE in page.content.decode()
    with frozen_at(NOV + HOUR):  # before the budget was spent: deployed
        service_instances.service_launch(
            actor=owner, compute_instance=instance, profile=service_profile, name="web"
        )


def test_the_check_is_one_query_without_a_hard_stop(spent, django_assert_num_queries):
    with frozen_at(NOV + HOUR), django_assert_num_queries(2):  # the budgets, then the spend (one query)
        budgets.hard_stop_check(project=spent["project"], kind="compute")
    budgets.budget_update(actor=spent["admin"], budget=spent["budget"], hard_stop=False)
    with django_assert_num_queries(1):
        budgets.hard_stop_check(project=spent["project"], kind="compute")


@pytest.mark.django_db
def test_an_email_the_mail_server_refused_is_sent_by_a_later_check(
    django_capture_on_commit_callbacks, settings
):
    _op, admin, project, owner, profile, _cluster = priced_setup("bud5")
    admin.email = "admin@bud5.example"
    admin.save()
    budget = budgets.budget_set(actor=admin, org=project.org, amount="10")
    running(owner, project, profile, "dev", NOV)
    # nothing listens on port 1 of the loopback: the SMTP connection is refused
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2
    assert check(NOV + 2 * HOUR, django_capture_on_commit_callbacks) == 1
    alert = BudgetAlert.objects.get(budget=budget)
    assert alert.emailed_at is None  # the claim was released
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert check(NOV + 2 * HOUR + dt.timedelta(minutes=5), django_capture_on_commit_callbacks) == 0
    assert mail.outbox == []  # too fresh: its own worker may still be sending it
    assert check(NOV + 2 * HOUR + dt.timedelta(minutes=11), django_capture_on_commit_callbacks) == 0
    [message] = mail.outbox
    assert "at 50%" in message.subject and message.to == ["admin@bud5.example"]
    assert check(NOV + 2 * HOUR + dt.timedelta(minutes=20), django_capture_on_commit_callbacks) == 0
    assert len(mail.outbox) == 1
