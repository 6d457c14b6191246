"""Cost metadata of compute and service profiles through every door: the profile APIs and the catalog
API, the studio compute page and service wizard, the system catalog's ``cost:`` block, the portal where
a user chooses (launch page, service catalog, new-service page) and the instance and service pages,
which show the price kept from launch even after the profile's price changed."""

import datetime as dt
from decimal import Decimal

import pytest

from catalog import services as catalog_services
from catalog import system
from catalog.models import ComputeProfile, ServiceProfile
from instances.models import ComputeInstance, Run, ServiceInstance
from instances.service_instances import service_launch
from instances.states import State
from paas.errors import ValidationFailed
from tests.support.billing import MANIFESTS, launch_at, move, priced_setup
from tests.support.html_forms import form_data

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
COSTS = {
    "cost_currency": "EUR",
    "cost_amount": "700",
    "cost_period": "month",
    "cost_billing_model": "reserved",
    "cost_stopped_amount": "0",
}
GROUP = [
    {"gpu_model": "A100-SXM4-40GB", "gpu_count": 1, "cpu_cores": "4", "memory_gib": 16, "storage_gib": 10}
]


@pytest.fixture
def setup(world):
    _op, admin, project, owner, profile, _cluster = priced_setup("costs", operator=world.operator)
    version = profile.template_version
    service_profile = catalog_services.profile_create(
        actor=admin,
        model=ServiceProfile,
        project=project,
        name="nb",
        service_type="notebook",
        template_version=version,
        published=True,
        cost_amount="0.75",
        cost_period="hour",
        cost_stopped_amount="0.05",
    )
    return {
        "admin": admin,
        "project": project,
        "owner": owner,
        "profile": profile,
        "service_profile": service_profile,
        "version": version,
    }


# --- the profile APIs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["compute", "service"])
def test_api_creates_reads_and_updates_all_five_fields(world, api, setup, kind):
    client = api.as_user(setup["admin"])
    body = {"project": setup["project"].pk, "name": f"priced-{kind}", "template_version": setup["version"].pk}
    body |= {"resource_groups": GROUP} if kind == "compute" else {"service_type": "notebook"}
    made = client.post(f"/api/v1/{kind}-profiles/", body | COSTS, format="json")
    assert made.status_code == 201, made.content
    shown = made.json()
    assert {f: shown[f] for f in COSTS} == {
        "cost_currency": "EUR",
        "cost_amount": "700.0000",
        "cost_period": "month",
        "cost_billing_model": "reserved",
        "cost_stopped_amount": "0.0000",
    }
    url = f"/api/v1/{kind}-profiles/{shown['id']}/"
    changed = client.patch(
        url, {"cost_billing_model": "on_demand", "cost_stopped_amount": "0.0137"}, format="json"
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["cost_stopped_amount"] == "0.0137"
    # reserved with a stopped price is refused, beside the field
    refused = client.patch(url, {"cost_billing_model": "reserved"}, format="json")
    assert refused.status_code == 400 and "cost_stopped_amount" in refused.json()["error"]["fields"]


BAD_COSTS = [
    ({"cost_amount": "-1"}, "cost_amount"),
    ({"cost_amount": "NaN"}, "cost_amount"),
    ({"cost_amount": "Infinity"}, "cost_amount"),
    ({"cost_amount": "1.23456"}, "cost_amount"),
    ({"cost_amount": "1e20"}, "cost_amount"),
    ({"cost_amount": "99999999999999999999999"}, "cost_amount"),
    ({"cost_stopped_amount": "-0.01"}, "cost_stopped_amount"),
    ({"cost_stopped_amount": [1]}, "cost_stopped_amount"),
    ({"cost_currency": "usd"}, "cost_currency"),
    ({"cost_currency": "DOLLARS"}, "cost_currency"),
    ({"cost_period": "week"}, "cost_period"),
    ({"cost_billing_model": "spot"}, "cost_billing_model"),
    ({"cost_billing_model": "reserved", "cost_stopped_amount": "0.1"}, "cost_stopped_amount"),
]


@pytest.mark.parametrize("kind", ["compute", "service"])
@pytest.mark.parametrize(
    ("changes", "field"), BAD_COSTS, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD_COSTS)]
)
def test_api_bad_costs_are_400_with_field_messages(world, api, setup, kind, changes, field):
    client = api.as_user(setup["admin"])
    body = {"project": setup["project"].pk, "name": "bad-cost", "template_version": setup["version"].pk}
    body |= {"resource_groups": GROUP} if kind == "compute" else {"service_type": "notebook"}
    response = client.post(f"/api/v1/{kind}-profiles/", body | changes, format="json")
    assert response.status_code == 400, (response.status_code, response.content)
    assert field in response.json()["error"]["fields"], response.json()


def test_services_refuse_bad_costs_with_field_messages(setup):
    with pytest.raises(ValidationFailed) as caught:
        catalog_services.profile_update(
            actor=setup["admin"], profile=setup["service_profile"], cost_amount="1.00001", cost_currency="eur"
        )
    assert set(caught.value.fields) == {"cost_amount", "cost_currency"}


def test_the_catalog_api_shows_the_cost_of_both_kinds(world, api, setup):
    client = api.as_user(setup["owner"])
    pk = setup["project"].pk
    [compute] = client.get(f"/api/v1/projects/{pk}/catalog/compute-profiles/").json()["results"]
    assert {f: compute[f] for f in COSTS} == {
        "cost_currency": "USD",
        "cost_amount": "2.5000",
        "cost_period": "hour",
        "cost_billing_model": "on_demand",
        "cost_stopped_amount": "0.1000",
    }
    [service] = client.get(f"/api/v1/projects/{pk}/catalog/service-profiles/").json()["results"]
    assert service["cost_amount"] == "0.7500" and service["cost_stopped_amount"] == "0.0500"
    assert service["cost_billing_model"] == "on_demand"


# --- the studio ------------------------------------------------------------------------------------------


def test_studio_compute_profile_page_edits_the_cost(world, client, setup):
    client.force_login(setup["admin"])
    url = f"/studio/catalog/computeprofile/{setup['profile'].pk}/change/"
    data = form_data(client.get(url).content.decode())
    assert data["cost_billing_model"] == ["on_demand"] and data["cost_stopped_amount"] == ["0.1000"]
    bad = dict(data) | {"cost_billing_model": ["reserved"]}
    page = client.post(url, bad)
    assert page.status_code == 200
    assert "cost_stopped_amount" in page.context_data["adminform"].form.errors
    good = dict(data) | {
        "cost_billing_model": ["reserved"],
        "cost_stopped_amount": ["0"],
        "cost_amount": ["700"],
    }
    good |= {"cost_period": ["month"]}
    assert client.post(url, good).status_code == 302
    profile = ComputeProfile.objects.get(pk=setup["profile"].pk)
    assert (profile.cost_billing_model, profile.cost_amount, profile.cost_period) == (
        "reserved",
        Decimal("700"),
        "month",
    )
    listing = client.get("/studio/catalog/computeprofile/").content.decode()
    assert "reserved, 700.00 USD per month" in listing


def test_studio_service_wizard_has_a_price_section(world, client, setup):
    client.force_login(setup["admin"])
    url = f"/studio/catalog/serviceprofile/{setup['service_profile'].pk}/change/"
    page = client.get(url).content.decode()
    assert ". Price</h2>" in page
    data = form_data(page)
    assert data["cost_amount"] == ["0.7500"] and data["cost_stopped_amount"] == ["0.0500"]
    bad = client.post(url, dict(data) | {"cost_amount": ["-1"], "cost_currency": ["eu"]})
    assert bad.status_code == 200
    errors = bad.context["form"].errors
    assert "cost_amount" in errors and "cost_currency" in errors
    # a reserved price with a stopped price: the service's message, beside the field
    bad = client.post(url, dict(data) | {"cost_billing_model": ["reserved"]})
    assert "cost_stopped_amount" in bad.context["form"].errors
    saved = client.post(url, dict(data) | {"cost_amount": ["1.25"], "cost_period": ["day"]})
    assert saved.status_code == 302
    profile = ServiceProfile.objects.get(pk=setup["service_profile"].pk)
    assert (profile.cost_amount, profile.cost_period) == (Decimal("1.25"), "day")
    assert "1.25 USD per day, on demand" in client.get("/studio/catalog/serviceprofile/").content.decode()


# --- the system catalog --------------------------------------------------------------------------------


def _catalog(tmp_path, compute_cost: str, service_cost: str = ""):
    (tmp_path / "cm.yaml").write_text(MANIFESTS)
    text = f"""
templates:
  - name: sys-ns
    versions:
      - {{version: v1, manifests: cm.yaml}}
compute_profiles:
  - name: sys-small
    template: sys-ns
    version: v1
    resource_groups:
      - {{gpu_model: A100-SXM4-40GB, gpu_count: 1, cpu_cores: 4, memory_gib: 16, storage_gib: 10}}
    cost: {compute_cost}
service_profiles:
  - name: sys-nb
    template: sys-ns
    version: v1
    service_type: notebook
{f"    cost: {service_cost}" if service_cost else ""}
"""
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    return path


def test_the_system_catalog_cost_block(world, tmp_path):
    path = _catalog(
        tmp_path,
        '{currency: USD, amount: "2.40", period: hour, billing_model: on_demand, stopped_amount: "0.0137"}',
        '{currency: USD, amount: "500", period: month, billing_model: reserved}',
    )
    system.load(actor=world.operator, path=path)
    compute = ComputeProfile.objects.get(org__isnull=True, name="sys-small")
    assert (compute.cost_amount, compute.cost_stopped_amount, compute.cost_billing_model) == (
        Decimal("2.40"),
        Decimal("0.0137"),
        "on_demand",
    )
    service = ServiceProfile.objects.get(org__isnull=True, name="sys-nb")
    assert (service.cost_amount, service.cost_period, service.cost_billing_model) == (
        Decimal("500"),
        "month",
        "reserved",
    )


@pytest.mark.parametrize(
    "cost",
    [
        '{currency: USD, amount: "2.40", period: hour, stoped_amount: "1"}',  # a typo is not ignored
        '{currency: USD, amount: "-2", period: hour}',
        '{currency: USD, amount: "2", period: hour, billing_model: reserved, stopped_amount: "1"}',
        '"2.40 an hour"',
    ],
)
def test_the_system_catalog_refuses_a_bad_cost_block(world, tmp_path, cost):
    with pytest.raises(ValidationFailed):
        system.load(actor=world.operator, path=_catalog(tmp_path, cost))
    assert not ComputeProfile.objects.filter(name="sys-small").exists()


# --- the portal, and the price kept from launch ----------------------------------------------------------


def test_launch_page_and_service_catalog_show_the_price(world, client, setup):
    client.force_login(setup["owner"])
    url = f"/w/{setup['project'].pk}/instances/new/"
    sizes = client.post(url, {"name": "dev", "step": "2"}).content.decode()
    assert "2.50 USD per hour, on demand" in sizes and "0.10 USD per hour while stopped" in sizes
    review = client.post(url, {"name": "dev", "step": "3", "profile": setup["profile"].pk}).content.decode()
    assert "2.50 USD per hour, on demand" in review
    services = client.get(f"/w/{setup['project'].pk}/services/").content.decode()
    assert "0.75 USD per hour, on demand" in services and "0.05 USD per hour while stopped" in services


def test_reserved_prices_read_as_reserved(world, client, setup):
    catalog_services.profile_update(
        actor=setup["admin"],
        profile=ComputeProfile.objects.get(pk=setup["profile"].pk),
        cost_amount="700",
        cost_period="month",
        cost_billing_model="reserved",
        cost_stopped_amount="0",
    )
    client.force_login(setup["owner"])
    sizes = client.post(f"/w/{setup['project'].pk}/instances/new/", {"name": "dev", "step": "2"})
    text = sizes.content.decode()
    assert "reserved, 700.00 USD per month" in text and "billed for the whole term" in text


def _ready(instance):
    ComputeInstance.objects.filter(pk=instance.pk).update(state=State.READY)
    instance.runs.update(outcome=Run.Outcome.SUCCEEDED)
    instance.refresh_from_db()
    return instance


def test_the_snapshot_keeps_the_launch_price_after_the_profile_changes(world, client, setup):
    instance = launch_at(
        owner=setup["owner"], project=setup["project"], profile=setup["profile"], name="dev", at=T0
    )
    move(instance, "provisioning", "ready", at=T0)
    instance = _ready(instance)
    service = service_launch(
        actor=setup["owner"], compute_instance=instance, profile=setup["service_profile"], name="nb"
    )
    ServiceInstance.objects.filter(pk=service.pk).update(state=State.READY)
    catalog_services.profile_update(
        actor=setup["admin"],
        profile=ComputeProfile.objects.get(pk=setup["profile"].pk),
        cost_amount="9.99",
        cost_stopped_amount="1",
    )
    catalog_services.profile_update(
        actor=setup["admin"],
        profile=ServiceProfile.objects.get(pk=setup["service_profile"].pk),
        cost_amount="8.88",
        cost_period="day",
    )
    instance.refresh_from_db()
    service.refresh_from_db()
    assert instance.snapshot["price"] == {
        "currency": "USD",
        "amount": "2.5000",
        "period": "hour",
        "billing_model": "on_demand",
        "stopped_amount": "0.1000",
    }
    assert service.snapshot["price"] == {
        "currency": "USD",
        "amount": "0.7500",
        "period": "hour",
        "billing_model": "on_demand",
        "stopped_amount": "0.0500",
    }
    client.force_login(setup["owner"])
    detail = client.get(f"/instances/{instance.pk}/").content.decode()
    assert "2.50 USD per hour, on demand" in detail and "9.99" not in detail
    assert "0.10 USD per hour while stopped" in detail
    service_page = client.get(f"/services/{service.pk}/").content.decode()
    assert "0.75 USD per hour, on demand" in service_page and "8.88" not in service_page
    # the new price is what the next launch gets
    fresh = ComputeProfile.objects.get(pk=setup["profile"].pk)
    after = launch_at(owner=setup["owner"], project=setup["project"], profile=fresh, name="dev2", at=T0)
    assert after.snapshot["price"]["amount"] == "9.9900"
