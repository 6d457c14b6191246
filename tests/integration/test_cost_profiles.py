"""Cluster cost profiles (chargeback rates) through every door: the services, the API
(/api/v1/billing/cost-profiles/) and the studio page. Operators only; rates are added, never edited;
closed hours keep their rates; bad input is a field message, never a 500."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from billing import cost_profiles
from billing.cost_profile_selectors import cost_profile_list_for, in_force_ids
from billing.models import CostProfile, RollupState
from paas.errors import Conflict, Forbidden, ValidationFailed
from paas.models import AuditEvent
from tests.factories import make_synced_cluster
from tests.support.html_forms import form_data
from tests.support.roles import EVERYONE, user_for

pytestmark = pytest.mark.django_db

URL = "/api/v1/billing/cost-profiles/"
STUDIO = "/studio/billing/costprofile/"
RATES = {
    "currency": "USD",
    "gpu_hour": {"A100-SXM4-40GB": "2.5", "NVIDIA-H100-80GB-HBM3": 4},
    "mig_slice_hour": {"1g.10gb": "0.4"},
    "cpu_hour": "0.02",
    "memory_gib_hour": "0.004",
    "storage_gib_hour": "0.0001",
}


def hours(n: float) -> dt.timedelta:
    return dt.timedelta(hours=n)


@pytest.fixture
def cluster(world):
    return make_synced_cluster(name="rated")


def _set(world, cluster, **changes):
    return cost_profiles.cost_profile_set(actor=world.operator, cluster=cluster, **(RATES | changes))


# --- the services ----------------------------------------------------------------------------------------


def test_a_change_is_a_new_row_and_the_history_is_kept(world, cluster):
    now = timezone.now().replace(microsecond=0)
    first = _set(world, cluster, effective_from=now - hours(1))
    second = _set(world, cluster, effective_from=now + hours(2), cpu_hour="0.03")
    first.refresh_from_db()
    assert first.gpu_hour == {"A100-SXM4-40GB": "2.500000", "NVIDIA-H100-80GB-HBM3": "4.000000"}
    assert first.cpu_hour == Decimal("0.02") and second.cpu_hour == Decimal("0.03")
    assert CostProfile.objects.filter(cluster=cluster).count() == 2
    assert in_force_ids([cluster.pk]) == {first.pk}
    assert in_force_ids([cluster.pk], now + hours(3)) == {second.pk}
    event = AuditEvent.objects.get(action="cost_profile.create", target_id=str(second.pk))
    assert event.org is None and event.details["cpu_hour"] == "0.030000"
    assert event.details["cluster"] == "rated"


def test_the_default_start_is_now_in_whole_seconds(world, cluster):
    before = timezone.now().replace(microsecond=0)
    profile = _set(world, cluster)
    assert before <= profile.effective_from <= timezone.now() and profile.effective_from.microsecond == 0


def test_hours_the_rollup_closed_keep_their_rates(world, cluster):
    closed = timezone.now().replace(minute=0, second=0, microsecond=0) - hours(1)
    RollupState.objects.create(name="hourly", complete_until=closed)
    with pytest.raises(ValidationFailed) as caught:
        _set(world, cluster, effective_from=closed - dt.timedelta(seconds=1))
    assert "rolled up" in caught.value.fields["effective_from"][0]
    assert not CostProfile.objects.exists()
    # at the boundary, or later in the past (hours not rolled up yet), it is taken
    assert _set(world, cluster, effective_from=closed).effective_from == closed
    assert _set(world, cluster, effective_from=closed + dt.timedelta(minutes=30))


def test_the_same_instant_twice_is_refused(world, cluster):
    start = timezone.now().replace(microsecond=0) + hours(1)
    _set(world, cluster, effective_from=start)
    with pytest.raises(ValidationFailed) as caught:
        _set(world, cluster, effective_from=start)
    assert "never edited" in caught.value.fields["effective_from"][0]


def test_only_rates_not_in_force_yet_can_be_deleted(world, cluster):
    now = timezone.now().replace(microsecond=0)
    in_force = _set(world, cluster, effective_from=now - hours(1))
    future = _set(world, cluster, effective_from=now + hours(1))
    with pytest.raises(Conflict) as caught:
        cost_profiles.cost_profile_delete(actor=world.operator, profile=in_force)
    assert "in force" in caught.value.message
    cost_profiles.cost_profile_delete(actor=world.operator, profile=future)
    assert list(CostProfile.objects.values_list("pk", flat=True)) == [in_force.pk]
    assert AuditEvent.objects.filter(action="cost_profile.delete", target_id=str(future.pk)).exists()


@pytest.mark.parametrize("role", sorted(set(EVERYONE) - {"operator"}))
def test_no_tenant_role_manages_rates(world, cluster, role):
    user = user_for(world, role)
    with pytest.raises(Forbidden):
        cost_profiles.cost_profile_set(actor=user, cluster=cluster, **RATES)
    future = _set(world, cluster, effective_from=timezone.now() + hours(1))
    with pytest.raises(Forbidden):
        cost_profiles.cost_profile_delete(actor=user, profile=future)
    assert not cost_profile_list_for(user).exists()
    assert CostProfile.objects.count() == 1


BAD = [
    ({"cpu_hour": "-1"}, "cpu_hour", "Zero or more"),
    ({"cpu_hour": "NaN"}, "cpu_hour", "A number"),
    ({"memory_gib_hour": "Infinity"}, "memory_gib_hour", "A number"),
    ({"storage_gib_hour": "0.0000001"}, "storage_gib_hour", "6 decimal places"),
    ({"cpu_hour": "1e30"}, "cpu_hour", "Less than"),
    ({"cpu_hour": True}, "cpu_hour", "A number"),
    ({"currency": "usd"}, "currency", "ISO 4217"),
    ({"currency": "US"}, "currency", "ISO 4217"),
    ({"currency": "EURO"}, "currency", "ISO 4217"),
    ({"gpu_hour": ["A100", "2.5"]}, "gpu_hour", "A mapping"),
    ({"gpu_hour": "2.5"}, "gpu_hour", "A mapping"),
    ({"gpu_hour": {"A100 40GB": "2.5"}}, "gpu_hour", "not a name"),
    ({"gpu_hour": {"A100-SXM4-40GB": "-2"}}, "gpu_hour", "Zero or more"),
    ({"gpu_hour": {"A100-SXM4-40GB": "nan"}}, "gpu_hour", "A number"),
    ({"gpu_hour": {"A100-SXM4-40GB": {"x": 1}}}, "gpu_hour", "A number"),
    ({"gpu_hour": {f"m{i}": "1" for i in range(65)}}, "gpu_hour", "At most 64"),
    ({"mig_slice_hour": {"big": "1"}}, "mig_slice_hour", "not a name like 1g.10gb"),
    ({"mig_slice_hour": {"1g.10gb": "1.1234567"}}, "mig_slice_hour", "6 decimal places"),
]


@pytest.mark.parametrize(("changes", "field", "message"), BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)])
def test_bad_rates_are_field_messages(world, cluster, changes, field, message):
    with pytest.raises(ValidationFailed) as caught:
        _set(world, cluster, **changes)
    assert message in str(caught.value.fields[field]), caught.value.fields
    assert not CostProfile.objects.exists()


# --- the API ---------------------------------------------------------------------------------------------


def test_api_create_list_filter_retrieve_delete(world, api, cluster):
    other = make_synced_cluster(name="other-rated")
    client = api.as_user(world.operator)
    start = (timezone.now() + hours(2)).replace(microsecond=0)
    made = client.post(
        URL, RATES | {"cluster": cluster.pk, "effective_from": start.isoformat()}, format="json"
    )
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["cluster_name"] == "rated" and body["standing"] == "future"
    assert body["gpu_hour"] == {"A100-SXM4-40GB": "2.500000", "NVIDIA-H100-80GB-HBM3": "4.000000"}
    assert body["cpu_hour"] == "0.020000" and body["storage_gib_hour"] == "0.000100"
    now = client.post(URL, RATES | {"cluster": other.pk}, format="json")
    assert now.status_code == 201 and now.json()["standing"] == "in force"
    listed = client.get(URL).json()
    assert listed["count"] == 2
    only = client.get(f"{URL}?cluster={cluster.pk}").json()
    assert [row["id"] for row in only["results"]] == [body["id"]]
    assert client.get(f"{URL}?cluster=abc").status_code == 400
    assert (
        client.get(f"{URL}{body['id']}/").json()["effective_from"].startswith(start.strftime("%Y-%m-%dT%H"))
    )
    refused = client.delete(f"{URL}{now.json()['id']}/")
    assert refused.status_code == 409 and "in force" in refused.json()["error"]["message"]
    assert client.delete(f"{URL}{body['id']}/").status_code == 204
    assert not CostProfile.objects.filter(pk=body["id"]).exists()
    assert client.patch(f"{URL}{now.json()['id']}/", {"cpu_hour": "9"}, format="json").status_code == 405


def test_api_refuses_a_start_in_closed_hours(world, api, cluster):
    closed = timezone.now().replace(minute=0, second=0, microsecond=0)
    RollupState.objects.create(name="hourly", complete_until=closed)
    body = RATES | {"cluster": cluster.pk, "effective_from": (closed - hours(5)).isoformat()}
    response = api.as_user(world.operator).post(URL, body, format="json")
    assert response.status_code == 400 and "rolled up" in str(response.json()["error"]["fields"])


API_BAD = [
    *[(changes, field) for changes, field, _ in BAD],
    ({"cpu_hour": "99999999999999999999"}, "cpu_hour"),
    ({"cpu_hour": 1e308}, "cpu_hour"),
    ({"gpu_hour": {"A100-SXM4-40GB": None}}, "gpu_hour"),
    ({"gpu_hour": None}, "gpu_hour"),
    ({"effective_from": "yesterday-ish"}, "effective_from"),
    ({"effective_from": "9999-12-31T23:59:59-05:00"}, "effective_from"),
    ({"cluster": 999999999}, "cluster"),
    ({"cluster": "x"}, "cluster"),
]


@pytest.mark.parametrize(("changes", "field"), API_BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(API_BAD)])
def test_api_bad_input_is_a_400_with_field_messages(world, api, cluster, changes, field):
    body = RATES | {"cluster": cluster.pk} | changes
    response = api.as_user(world.operator).post(URL, body, format="json")
    assert response.status_code == 400, (response.status_code, response.content)
    fields = response.json()["error"]["fields"]
    assert any(key == field or key.startswith(f"{field}.") for key in fields), fields
    assert not CostProfile.objects.exists()


def test_api_body_that_is_not_an_object(world, api, cluster):
    client = api.as_user(world.operator)
    for body in ([1, 2], "text", 3):
        response = client.post(URL, body, format="json")
        assert response.status_code == 400, (body, response.content)


@pytest.mark.parametrize("role", sorted(set(EVERYONE) - {"operator"}))
def test_api_tenants_see_nothing_and_change_nothing(world, api, cluster, role):
    profile = _set(world, cluster, effective_from=timezone.now() + hours(1))
    client = api.as_user(user_for(world, role))
    listed = client.get(URL)
    assert listed.status_code == 200 and listed.json()["count"] == 0
    assert client.get(f"{URL}{profile.pk}/").status_code == 404
    assert client.delete(f"{URL}{profile.pk}/").status_code == 404
    created = client.post(URL, RATES | {"cluster": cluster.pk}, format="json")
    assert created.status_code == 403
    # nothing about clusters leaks through validation either: refused before the body is read
    assert client.post(URL, {"cluster": 999999999}, format="json").status_code == 403
    assert list(CostProfile.objects.values_list("pk", flat=True)) == [profile.pk]


def test_api_in_the_schema(world, client):
    client.force_login(world.operator)
    schema = client.get("/api/schema/").content.decode()
    assert "/api/v1/billing/cost-profiles/" in schema and "/api/v1/billing/cost-profiles/{id}/" in schema


# --- the studio ------------------------------------------------------------------------------------------


def test_studio_operator_adds_rates_from_those_in_force_and_sees_the_history(world, client, cluster):
    old = _set(world, cluster, effective_from=timezone.now() - hours(24))
    client.force_login(world.operator)
    page = client.get(f"{STUDIO}add/?cluster={cluster.pk}")
    assert page.status_code == 200
    data = form_data(page.content.decode())
    assert data["cpu_hour"] == ["0.020000"] and "A100-SXM4-40GB" in data["gpu_hour"][0]
    data.update({"cluster": [str(cluster.pk)], "cpu_hour": ["0.05"], "effective_from_0": [""]})
    data["effective_from_1"] = [""]
    response = client.post(f"{STUDIO}add/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    new = CostProfile.objects.exclude(pk=old.pk).get()
    assert new.cpu_hour == Decimal("0.05") and new.gpu_hour == old.gpu_hour
    assert AuditEvent.objects.filter(action="cost_profile.create", target_id=str(new.pk)).exists()
    listing = client.get(f"{STUDIO}?cluster__id__exact={cluster.pk}").content.decode()
    assert listing.count("rated") >= 2 and "in force" in listing and "past" in listing


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"cpu_hour": "-1"}, "cpu_hour"),
        ({"cpu_hour": "NaN"}, "cpu_hour"),
        ({"cpu_hour": "0.1234567"}, "cpu_hour"),
        ({"cpu_hour": "1e30"}, "cpu_hour"),
        ({"currency": "usd"}, "currency"),
        ({"gpu_hour": "[1, 2]"}, "gpu_hour"),
        ({"gpu_hour": "{not json"}, "gpu_hour"),
        ({"gpu_hour": '{"A100-SXM4-40GB": "-1"}'}, "gpu_hour"),
        ({"mig_slice_hour": '{"huge": "1"}'}, "mig_slice_hour"),
    ],
)
def test_studio_bad_input_is_a_form_error(world, client, cluster, changes, field):
    client.force_login(world.operator)
    data = form_data(client.get(f"{STUDIO}add/").content.decode())
    data.update({"cluster": [str(cluster.pk)], "currency": ["USD"], "gpu_hour": ["{}"]})
    data.update({"mig_slice_hour": ["{}"], "cpu_hour": ["0"], "memory_gib_hour": ["0"]})
    data.update({"storage_gib_hour": ["0"]})
    data.update({k: [v] for k, v in changes.items()})
    response = client.post(f"{STUDIO}add/", data)
    assert response.status_code == 200, response.status_code
    form = response.context_data["adminform"].form
    assert field in form.errors, (form.errors, changes)
    assert not CostProfile.objects.exists()


def test_studio_delete_only_future_rates(world, client, cluster):
    in_force = _set(world, cluster, effective_from=timezone.now() - hours(1))
    future = _set(world, cluster, effective_from=timezone.now() + hours(1))
    client.force_login(world.operator)
    assert client.get(f"{STUDIO}{in_force.pk}/delete/").status_code == 403
    assert client.post(f"{STUDIO}{future.pk}/delete/", {"post": "yes"}).status_code == 302
    assert list(CostProfile.objects.values_list("pk", flat=True)) == [in_force.pk]
    # the changelist action refuses what is in force, with the reason
    response = client.post(
        STUDIO, {"action": "delete_selected", "_selected_action": [in_force.pk], "post": "yes"}, follow=True
    )
    assert "in force" in response.content.decode()
    assert CostProfile.objects.filter(pk=in_force.pk).exists()


@pytest.mark.parametrize("role", ["org_admin", "paas_admin_org", "workspace_admin"])
def test_studio_page_is_for_operators_only(world, client, cluster, role):
    profile = _set(world, cluster)
    client.force_login(user_for(world, role))
    for url in (STUDIO, f"{STUDIO}add/", f"{STUDIO}{profile.pk}/change/", f"{STUDIO}{profile.pk}/delete/"):
        assert client.get(url).status_code in (302, 403, 404), url
    index = client.get("/studio/")
    assert "costprofile" not in index.content.decode()
    assert client.post(f"{STUDIO}add/", {"cluster": cluster.pk, "currency": "USD"}).status_code in (302, 403)
    assert CostProfile.objects.count() == 1
