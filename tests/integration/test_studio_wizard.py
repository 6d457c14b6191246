"""The service profile wizard of the studio, filled in as a person does: sections in the reference's
order, the input/output/action settings as tables of the chosen template version (rebuilt when the
version changes, keeping values by name), the storage list following the datacenter (htmx fragment and
the server-side rule), validation errors on the page with nothing typed lost, and the list's search."""

import pytest

from catalog import services
from catalog.models import ServiceProfile
from inventory.models import Datacenter, Storage
from paas.errors import ValidationFailed
from paas.models import AuditEvent
from tests.support.html_forms import form_data

pytestmark = pytest.mark.django_db

MANIFESTS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: b\n"
V1_INPUTS = [
    {
        "name": "flavor",
        "type": "select",
        "options": ["small", "large"],
        "default": "small",
        "required": True,
        "description": "Notebook size",
    },
    {"name": "gpus", "type": "number", "default": 1, "required": True},
    {"name": "debug", "type": "boolean", "default": False},
    {"name": "greeting", "type": "text", "required": True, "description": "Shown at start"},
    {"name": "token", "type": "secret", "required": True, "generate": True},
]
V2_INPUTS = [
    V1_INPUTS[0],
    {"name": "replicas", "type": "number", "default": 2, "required": False},
    V1_INPUTS[3],
]
OUTPUTS = [
    {"name": "url", "description": "Where it answers", "source": {"type": "template", "value": "http://x"}}
]
ACTIONS = [
    {
        "name": "stop",
        "description": "Stop it",
        "variables": [
            {"name": "run_strategy", "type": "select", "options": ["started", "halted"], "default": "halted"}
        ],
    },
    {"name": "start", "description": "Start it", "variables": []},
]
ADD = "/studio/catalog/serviceprofile/add/"
TABLES = "/studio/catalog/serviceprofile/wizard/tables/"
STORAGE = "/studio/catalog/serviceprofile/wizard/storage/"


def _version(admin, template, name, inputs, outputs=OUTPUTS, actions=ACTIONS):
    version = services.template_version_create(
        actor=admin,
        template=template,
        version=name,
        manifests=MANIFESTS,
        inputs=inputs,
        outputs=outputs,
        actions=actions,
    )
    return services.template_version_publish(actor=admin, version=version)


@pytest.fixture
def setup(world):
    admin = world.a.users["org_admin"]
    template = services.template_create(actor=admin, project=world.a.project, name="nb")
    v1 = _version(admin, template, "v1", V1_INPUTS)
    v2 = _version(admin, template, "v2", V2_INPUTS, actions=ACTIONS[:1])
    dc1 = Datacenter.objects.create(
        name="dc1", display_name="DC 1", kind="data_center", infrastructure_type="bare_metal"
    )
    dc2 = Datacenter.objects.create(
        name="dc2", display_name="DC 2", kind="data_center", infrastructure_type="bare_metal"
    )
    storage = {
        "open": Storage.objects.create(name="open-a", kind="high-speed-storage", storage_class="std"),
        "dc1": Storage.objects.create(
            name="dc1-fast", kind="high-speed-storage", datacenter=dc1, storage_class="f"
        ),
        "dc2": Storage.objects.create(
            name="dc2-fast", kind="high-speed-storage", datacenter=dc2, storage_class="f"
        ),
    }
    return {
        "admin": admin,
        "template": template,
        "v1": v1,
        "v2": v2,
        "dc1": dc1,
        "dc2": dc2,
        "storage": storage,
    }


def _row(data: dict, prefix: str, name: str, *, action: str | None = None) -> str:
    """The form prefix of the table row for ``name`` (e.g. ``in-3``)."""
    for key, values in data.items():
        if key.startswith(f"{prefix}-") and key.endswith("-name") and values == [name]:
            row = key[: -len("-name")]
            if action is None or data.get(f"{row}-action") == [action]:
                return row
    raise AssertionError(f"no {prefix} row for {name}: {sorted(data)}")


def _tick(data: dict, field: str, on: bool) -> None:
    if on:
        data[field] = ["on"]
    else:
        data.pop(field, None)


def _start(client, world, setup, **general) -> dict:
    """The add page after choosing the template and version and submitting (no JavaScript): the
    tables appear for the version, nothing is saved yet."""
    data = form_data(client.get(ADD).content.decode())
    data.update(
        {
            "project": [str(world.a.project.pk)],
            "name": ["nb-profile"],
            "display_name": ["Notebook"],
            "template": [str(setup["template"].pk)],
            "template_version": [str(setup["v1"].pk)],
            "service_type": ["notebook"],
        }
    )
    data.update({k: [v] for k, v in general.items()})
    page = client.post(ADD, data)
    assert page.status_code == 200
    html = page.content.decode()
    assert "The settings tables now follow nb@v1" in html
    assert not ServiceProfile.objects.filter(name="nb-profile").exists()
    return form_data(html)


def test_wizard_round_trip_with_tables_edit_and_version_change(world, client, setup):
    client.force_login(setup["admin"])
    page = client.get(ADD).content.decode()
    sections = [
        "General",
        "Datacenters",
        "Storage",
        "Labels",
        "Annotations",
        "Extra configuration",
        "Design",
        "Input settings",
        "Output settings",
        "Action settings",
    ]
    positions = [page.index(f". {title}</h2>") for title in sections]
    assert positions == sorted(positions), "the sections follow the reference's order"
    assert 'name="input_settings"' not in page and "{&quot;" not in page, "never raw JSON"

    data = _start(client, world, setup, datacenter=str(setup["dc1"].pk))
    # the rows the version declares, with the declaration's defaults
    flavor, gpus = _row(data, "in", "flavor"), _row(data, "in", "gpus")
    greeting, token = _row(data, "in", "greeting"), _row(data, "in", "token")
    assert data[f"{flavor}-default"] == ["small"] and data[f"{gpus}-default"] == ["1"]
    assert f"{token}-default" not in data, "a secret's default is never a profile field"
    url, strategy = _row(data, "out", "url"), _row(data, "var", "run_strategy", action="stop")
    data[f"{gpus}-default"] = ["2"]
    data[f"{greeting}-default"] = ["hello"]
    _tick(data, f"{greeting}-overridable", False)
    data[f"{url}-label"] = ["Notebook URL"]
    data[f"{strategy}-alias"] = ["Run strategy"]
    data[f"{strategy}-tooltip"] = ["How it stops"]
    _tick(data, f"{strategy}-allow_override", False)
    data["storages"] = [str(setup["storage"]["dc1"].pk), str(setup["storage"]["open"].pk)]
    data.update({"labels-0-key": ["ALLOW_DAY2_OPERATIONS"], "labels-0-value": ["true"]})
    data.update({"extra-0-key": ["HF_HOME"], "extra-0-value": ["/cache"]})
    _tick(data, "datacenter_exposed", True)
    response = client.post(ADD, data | {"_continue": ["1"]})
    assert response.status_code == 302, form_data(response.content.decode())
    profile = ServiceProfile.objects.get(name="nb-profile", project=world.a.project)
    assert response.url == f"/studio/catalog/serviceprofile/{profile.pk}/change/"
    assert profile.input_settings == {
        "flavor": {"default": "small", "required": True, "exposed": True, "overridable": True},
        "gpus": {"default": 2, "required": True, "exposed": True, "overridable": True},
        "debug": {"default": False, "required": False, "exposed": True, "overridable": True},
        "greeting": {"default": "hello", "required": True, "exposed": True, "overridable": False},
        "token": {"required": True, "exposed": True, "overridable": True},
    }
    assert profile.output_settings == {"url": {"shown": True, "label": "Notebook URL"}}
    assert profile.action_settings == {
        "stop": {
            "run_strategy": {
                "allow_override": False,
                "alias": "Run strategy",
                "tooltip": "How it stops",
                "default": "halted",
            }
        }
    }
    assert profile.labels == {"ALLOW_DAY2_OPERATIONS": "true"} and profile.extra_config == {
        "HF_HOME": "/cache"
    }
    assert profile.datacenter == setup["dc1"] and profile.datacenter_exposed
    assert {s.name for s in profile.storages.all()} == {"dc1-fast", "open-a"}
    assert AuditEvent.objects.filter(action="serviceprofile.create", target_id=str(profile.pk)).exists()

    # edit: the page says only new services are affected, and shows what was saved
    change = f"/studio/catalog/serviceprofile/{profile.pk}/change/"
    html = client.get(change).content.decode()
    assert "only for <strong>new</strong> services" in html
    data = form_data(html)
    assert data[f"{_row(data, 'in', 'gpus')}-default"] == ["2"]
    data[f"{_row(data, 'in', 'flavor')}-default"] = ["large"]
    assert client.post(change, data).status_code == 302
    profile.refresh_from_db()
    assert profile.input_settings["flavor"]["default"] == "large"
    assert AuditEvent.objects.filter(action="serviceprofile.update", target_id=str(profile.pk)).exists()

    # a new version: the tables are rebuilt (values kept for names that still exist), then saved
    data = form_data(client.get(change).content.decode())
    data["template_version"] = [str(setup["v2"].pk)]
    page = client.post(change, data)
    assert page.status_code == 200 and "now follow nb@v2" in page.content.decode()
    profile.refresh_from_db()
    assert profile.template_version == setup["v1"], "nothing saved before the new tables are reviewed"
    data = form_data(page.content.decode())
    assert data[f"{_row(data, 'in', 'flavor')}-default"] == ["large"], "kept: flavor still exists"
    assert data[f"{_row(data, 'in', 'replicas')}-default"] == ["2"], "new input: its declared default"
    assert not any(v == ["gpus"] for v in data.values()), "gpus is gone in v2"
    assert client.post(change, data).status_code == 302
    profile.refresh_from_db()
    assert profile.template_version == setup["v2"]
    assert set(profile.input_settings) == {"flavor", "replicas", "greeting"}
    assert profile.input_settings["greeting"]["overridable"] is False
    assert profile.output_settings == {"url": {"shown": True, "label": "Notebook URL"}}
    assert set(profile.action_settings) == {"stop"}


def test_tables_fragment_rebuilds_for_another_version_keeping_values(world, client, setup):
    client.force_login(setup["admin"])
    data = _start(client, world, setup)
    data[f"{_row(data, 'in', 'flavor')}-default"] = ["large"]
    data["template_version"] = [str(setup["v2"].pk)]
    response = client.post(TABLES, data)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="version-choice"' in html and 'hx-swap-oob="true"' in html
    fragment = form_data(f'<form method="post">{html}</form>')
    assert fragment["tables_version"] == [str(setup["v2"].pk)]
    assert fragment[f"{_row(fragment, 'in', 'flavor')}-default"] == ["large"]
    assert _row(fragment, "in", "replicas") and "<h3>start" not in html and "<h3>stop" in html
    # choosing another template picks its newest version
    other = services.template_create(actor=setup["admin"], project=world.a.project, name="other")
    newest = _version(setup["admin"], other, "v7", [], outputs=[], actions=[])
    html = client.post(TABLES, data | {"template": [str(other.pk)]}).content.decode()
    assert f'value="{newest.pk}" selected' in html and "declares no inputs" in html
    # another org's template is not offered (its versions are not among the choices)
    b_admin = world.b.users["org_admin"]
    foreign = services.template_create(actor=b_admin, project=world.b.project, name="foreign")
    foreign_v = _version(b_admin, foreign, "v1", V1_INPUTS)
    html = client.post(
        TABLES, data | {"template": [str(foreign.pk)], "template_version": [str(foreign_v.pk)]}
    )
    assert "flavor" not in html.content.decode()
    # end users have no studio
    client.force_login(world.a.users["collaborator_rw"])
    assert client.post(TABLES, data).status_code == 302


def test_wizard_errors_are_shown_and_nothing_typed_is_lost(world, client, setup):
    client.force_login(setup["admin"])
    data = _start(client, world, setup)
    # "Add a row" gives one more key/value row and saves nothing
    data["labels-0-key"], data["labels-0-value"] = ["team"], ["ml"]
    more = form_data(client.post(ADD, data | {"_addrow": ["labels"]}).content.decode())
    assert more["labels-TOTAL_FORMS"] == ["3"] and more["labels-0-key"] == ["team"] and "labels-2-key" in more
    assert not ServiceProfile.objects.filter(name="nb-profile").exists()
    gpus, greeting = _row(data, "in", "gpus"), _row(data, "in", "greeting")
    data[f"{gpus}-default"] = ["lots"]
    _tick(data, f"{greeting}-exposed", False)  # required, no default, hidden: no one could give it
    data.update({"labels-0-key": ["bad key!"], "labels-0-value": ["x"]})
    data.update({"extra-0-key": ["1BAD-NAME"], "extra-0-value": ["v"]})
    data["description"] = ["typed by hand"]
    response = client.post(ADD, data)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Not valid Kubernetes labels: bad key!" in html
    assert not ServiceProfile.objects.filter(name="nb-profile").exists()
    assert "typed by hand" in html and 'value="bad key!"' in html and 'value="lots"' in html
    # labels fixed: the next problems (checked together by the service) are shown on their rows
    data = form_data(html)
    data.update({"labels-0-key": ["team"], "labels-0-value": ["ml"]})
    html = client.post(ADD, data).content.decode()
    assert "gpus: the default must be a number." in html
    assert "greeting: required without a default" in html
    assert "Not environment variable names" in html and "1BAD-NAME" in html
    assert not ServiceProfile.objects.filter(name="nb-profile").exists()
    # a tampered select default (not one of the options) is refused by the service too
    data = form_data(html)
    data.update({f"{gpus}-default": ["3"], f"{greeting}-default": ["hi"], "extra-0-key": ["GOOD_NAME"]})
    data[f"{_row(data, 'var', 'run_strategy', action='stop')}-default"] = ["sideways"]
    html = client.post(ADD, data).content.decode()
    assert "Select a valid choice" in html or "must be one of" in html
    data[f"{_row(data, 'var', 'run_strategy', action='stop')}-default"] = ["started"]
    assert client.post(ADD, data).status_code == 302
    assert ServiceProfile.objects.get(name="nb-profile").input_settings["gpus"]["default"] == 3


def test_service_layer_checks_defaults_whatever_the_client(world, setup):
    """The API and the studio share these rules (catalog/profile_settings.py)."""
    base = {
        "actor": setup["admin"],
        "model": ServiceProfile,
        "project": world.a.project,
        "service_type": "notebook",
        "template_version": setup["v1"],
        "input_settings": {"greeting": {"default": "hi", "required": True, "exposed": False}},
    }
    cases = {
        "flavor": ({"flavor": {"default": "huge"}}, "input_settings", "flavor: the default must be one of"),
        "gpus": ({"gpus": {"default": "many"}}, "input_settings", "gpus: the default must be a number"),
        "token": ({"token": {"default": "s3cret"}}, "input_settings", "token: the default a secret is given"),
        "flag": ({"debug": {"exposed": "yes"}}, "input_settings", "debug: exposed must be true or false"),
    }
    for index, (settings, field, message) in enumerate(cases.values()):
        with pytest.raises(ValidationFailed) as caught:
            services.profile_create(
                **base | {"input_settings": base["input_settings"] | settings}, name=f"bad{index}"
            )
        assert any(message in m for m in caught.value.fields[field]), caught.value.fields
    with pytest.raises(ValidationFailed) as caught:
        services.profile_create(
            **base, name="badvar", action_settings={"stop": {"run_strategy": {"default": "sideways"}}}
        )
    assert "stop.run_strategy: the default must be one of" in str(caught.value.fields)
    with pytest.raises(ValidationFailed) as caught:
        services.profile_create(**base, name="badenv", extra_config={"A-B": "x", "OK": "y"})
    assert "A-B" in str(caught.value.fields["extra_config"]) and "OK" not in str(caught.value.fields)
    profile = services.profile_create(
        **base | {"input_settings": base["input_settings"] | {"gpus": {"default": "3"}}}, name="good"
    )
    assert profile.input_settings["gpus"]["default"] == 3, "stored as the input's type"


def test_storage_list_follows_the_datacenter(world, client, setup):
    client.force_login(setup["admin"])
    none = client.get(STORAGE).content.decode()
    assert "open-a" in none and "dc1-fast" not in none and "dc2-fast" not in none
    dc1 = client.get(STORAGE, {"datacenter": setup["dc1"].pk, "storages": setup["storage"]["dc1"].pk})
    html = dc1.content.decode()
    assert "open-a" in html and "dc1-fast" in html and "dc2-fast" not in html
    assert f'value="{setup["storage"]["dc1"].pk}" checked' in html
    # the datacenter select asks for this fragment when it changes
    page = client.get(ADD).content.decode()
    assert 'hx-get="/studio/catalog/serviceprofile/wizard/storage/"' in page and "vendor/htmx.min.js" in page
    # server side: storage of another datacenter is refused, and shown on the page
    data = _start(client, world, setup, datacenter=str(setup["dc1"].pk))
    greeting = _row(data, "in", "greeting")
    data[f"{greeting}-default"] = ["hi"]
    data["storages"] = [str(setup["storage"]["dc2"].pk)]
    response = client.post(ADD, data)
    assert response.status_code == 200
    assert "Not available with dc1: dc2-fast." in response.content.decode()
    data["datacenter"] = [""]
    data["storages"] = [str(setup["storage"]["dc1"].pk)]
    assert (
        "Not available with no datacenter (open storage only): dc1-fast."
        in client.post(ADD, data).content.decode()
    )
    data["storages"] = [str(setup["storage"]["open"].pk)]
    assert client.post(ADD, data).status_code == 302


def test_list_columns_search_and_actions(world, client, setup):
    admin = setup["admin"]
    for name, kind in (("jupyter-lab", "notebook"), ("llm-serve", "inference")):
        services.profile_create(
            actor=admin,
            model=ServiceProfile,
            project=world.a.project,
            name=name,
            service_type=kind,
            template_version=setup["v2"],
            input_settings={"greeting": {"default": "x"}},
        )
    client.force_login(admin)
    page = client.get("/studio/catalog/serviceprofile/").content.decode()
    for column in ("Unique name", "Service type", "Created", "Sharing", "Actions"):
        assert column.lower() in page.lower(), column
    assert "jupyter-lab" in page and "llm-serve" in page
    for action in ("Edit configuration", "Manage sharing", "Launch into projects", "Clone", "Delete"):
        assert action in page, action
    found = client.get("/studio/catalog/serviceprofile/", {"q": "jupyter"}).content.decode()
    assert "jupyter-lab" in found and "llm-serve" not in found


def test_inherited_profile_is_read_only_in_the_wizard(world, client, setup):
    services.item_share(actor=setup["admin"], item=setup["template"], sharing="all")
    profile = services.profile_create(
        actor=setup["admin"],
        model=ServiceProfile,
        project=world.a.spare_project,
        name="shared-nb",
        service_type="notebook",
        template_version=setup["v2"],
        input_settings={"greeting": {"default": "x"}},
    )
    services.item_share(actor=setup["admin"], item=profile, sharing="all")
    client.force_login(world.a.users["paas_admin_project"])
    url = f"/studio/catalog/serviceprofile/{profile.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Read-only here" in html and 'type="submit"' not in html.split('id="serviceprofile_form"')[1]
    response = client.post(url, {"display_name": "hijacked"})
    profile.refresh_from_db()
    assert profile.display_name != "hijacked" and response.status_code == 200
    # another org's profile: not found
    client.force_login(world.b.users["org_admin"])
    assert client.get(url).status_code == 404


def test_a_project_paas_admin_picks_datacenter_and_storage(world, client, setup):
    """A PaaS admin held on one project only reads the datacenters and storage its profiles may use."""
    client.force_login(world.a.users["paas_admin_project"])
    html = client.get(STORAGE, {"datacenter": setup["dc1"].pk}).content.decode()
    assert "dc1-fast" in html and "open-a" in html
    data = _start(client, world, setup, datacenter=str(setup["dc1"].pk))
    data[f"{_row(data, 'in', 'greeting')}-default"] = ["hi"]
    data["storages"] = [str(setup["storage"]["dc1"].pk)]
    assert client.post(ADD, data).status_code == 302
    profile = ServiceProfile.objects.get(name="nb-profile")
    assert profile.datacenter == setup["dc1"] and [s.name for s in profile.storages.all()] == ["dc1-fast"]


def test_a_tenant_edits_its_own_copy_of_a_system_profile(world, client, setup):
    op = world.operator
    template = services.template_create(actor=op, project=None, name="sys-nb")
    services.item_share(actor=op, item=template, sharing="all")
    version = _version(op, template, "v1", V2_INPUTS)
    system = services.profile_create(
        actor=op,
        model=ServiceProfile,
        project=None,
        name="sys-notebook",
        service_type="notebook",
        template_version=version,
        input_settings={"greeting": {"default": "x"}},
        published=True,
    )
    services.item_share(actor=op, item=system, sharing="all")
    client.force_login(world.a.users["paas_admin_org"])
    url = f"/studio/catalog/serviceprofile/{system.pk}/change/"
    html = client.get(url).content.decode()
    assert "saving keeps your organization's own copy" in html
    data = form_data(html)
    data[f"{_row(data, 'in', 'replicas')}-default"] = ["5"]
    response = client.post(url, data, follow=True)
    assert "own copy of sys-notebook" in response.content.decode()
    system.refresh_from_db()
    copy = ServiceProfile.objects.get(origin=system, org=world.a.org)
    assert copy.input_settings["replicas"]["default"] == 5 and "replicas" not in system.input_settings
    # the list offers a tenant only "edit" on a system profile: no share, launch, clone or delete
    listing = client.get("/studio/catalog/serviceprofile/", {"q": "sys-notebook"}).content.decode()
    assert f"/{system.pk}/launch/" not in listing and f"/{system.pk}/delete/" not in listing
    assert client.get(f"/studio/catalog/serviceprofile/{system.pk}/launch/").status_code == 403
