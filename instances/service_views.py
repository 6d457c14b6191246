"""Portal pages of services (notebooks, jobs, inference endpoints and custom services deployed onto
compute instances): "My deployments" lists per type, the new-service page, the service page (live
status, URL, outputs and credentials, run log, actions, redeploy, delete) and the actions of a compute
instance.

Views stay thin: objects come from selectors (404 when missing or not visible), every change goes
through the service layer (``instances.service_instances``, ``instances.actions``), which checks the
permission again: a control the page hides because the user may not use it is refused by the server
as well.
"""

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import CharField
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from catalog.models import ServiceProfile
from catalog.selectors import catalog_for
from catalog.service_inputs import input_fields
from instances import selectors
from instances.actions import action_run, actions_for, day2_refusal, service_redeploy
from instances.models import ComputeInstance, Run, ServiceInstance
from instances.service_forms import (
    ActionForm,
    ServiceFilterForm,
    ServiceInputsForm,
    ServiceLaunchForm,
    input_key,
)
from instances.service_instances import (
    instance_service_usage,
    service_delete,
    service_launch,
    service_output_reveal,
    shown_outputs,
)
from instances.service_selectors import (
    can_deploy_services_on,
    can_manage_service,
    service_get_for,
    service_list_filtered,
)
from instances.states import State
from inventory.models import Datacenter, Storage
from inventory.selectors import storage_for_datacenter
from paas import authz
from paas.errors import Forbidden, NotFound
from paas.forms import apply_error
from paas.portal import FORM_ERRORS, portal_page
from tenancy.portal import use_workspace

PAGE_SIZE = 50
LIVE_STATES = {State.PENDING, State.PROVISIONING, State.DELETING}
UNFINISHED = {Run.Outcome.QUEUED, Run.Outcome.RUNNING}

# "My deployments": the URL slug of each service type, its list title and what one of it is called.
KINDS = {
    "notebooks": (ServiceProfile.ServiceType.NOTEBOOK, "Notebooks", "notebook"),
    "jobs": (ServiceProfile.ServiceType.JOBS, "Jobs", "job"),
    "inference": (ServiceProfile.ServiceType.INFERENCE, "Inference", "inference endpoint"),
    "custom": (ServiceProfile.ServiceType.CUSTOM, "Custom services", "custom service"),
}
KIND_OF_TYPE = {service_type: slug for slug, (service_type, _, _) in KINDS.items()}


def _kind(slug: str) -> dict:
    if slug not in KINDS:
        raise Http404("No such kind of deployment.")
    service_type, title, noun = KINDS[slug]
    return {"slug": slug, "type": service_type, "title": title, "noun": noun}


def deployment_kinds() -> list[dict]:
    """The four lists of the navigation and of an instance's "Deploy a service" menu."""
    return [_kind(slug) for slug in KINDS]


# --- who may do what (the service layer checks it again) ---------------------------------------------------


def deployable_instances(user, project) -> list[ComputeInstance]:
    """The workspace's READY compute instances the user may deploy services onto (one query)."""
    ready = selectors.instance_list_in(user, project).filter(state=State.READY)
    if not authz.has_perm(user, "manage_services", project):
        ready = ready.filter(authz.permission_q(user, "use_instance", ComputeInstance))
    return list(ready)


def may_deploy_in(user, project) -> bool:
    """Whether the user could deploy a service in the workspace at all (workspace admins, read-write
    collaborators, owners and collaborators of one of its instances); read-only members never."""
    if authz.has_perm(user, "manage_services", project):
        return True
    return (
        selectors.instance_list_in(user, project)
        .exclude(state=State.DELETED)
        .filter(authz.permission_q(user, "use_instance", ComputeInstance))
        .exists()
    )


def may_act_on_instance(user, instance: ComputeInstance) -> bool:
    """Actions (start, stop...) on a compute instance: its owner and collaborators, workspace admins."""
    return authz.has_perm(user, "use_instance", instance) or authz.has_perm(
        user, "manage_instances", instance.project
    )


# --- lists ---------------------------------------------------------------------------------------------


@portal_page
def service_list(request: HttpRequest, project_id: int, kind: str) -> HttpResponse:
    project = use_workspace(request, project_id)
    kind = _kind(kind)
    instances = list(selectors.instance_list_in(request.user, project).exclude(state=State.DELETED))
    filters = ServiceFilterForm(request.GET or None, instances=instances)
    chosen_instance, state = None, ""
    if filters.is_bound and filters.is_valid():
        chosen_instance = next((i for i in instances if i.pk == filters.cleaned_data["instance"]), None)
        state = filters.cleaned_data["state"]
    rows = service_list_filtered(
        request.user,
        project=project,
        service_type=kind["type"],
        compute_instance=chosen_instance,
        state=None if state in ("", "all") else state,
        include_deleted=state == "all",
    ).annotate(
        profile_name=Coalesce(
            "profile__display_name",
            KT("snapshot__display_name"),
            KT("snapshot__name"),
            output_field=CharField(),
        )
    )
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "instances/services/list.html",
        {
            "nav": "deployments",
            "kind": kind,
            "project": project,
            "filters": filters,
            "page": page,
            "query": query.urlencode(),
            "live": any(s.state in LIVE_STATES for s in page.object_list),
            "can_deploy": may_deploy_in(request.user, project),
        },
    )


# --- the new-service page ----------------------------------------------------------------------------------


@portal_page
def service_launch_from_catalog(request: HttpRequest, project_id: int) -> HttpResponse:
    """A catalog card's Launch button: the new-service page of the profile's type, profile chosen."""
    project = use_workspace(request, project_id)
    profile = catalog_for(ServiceProfile, project).filter(pk=request.GET.get("profile") or 0).first()
    if profile is None:
        raise NotFound("No such service in this workspace's catalog.")
    url = reverse("instances:service-new", args=[project.pk, KIND_OF_TYPE[profile.service_type]])
    return redirect(f"{url}?profile={profile.pk}")


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _storage_choices(datacenter_id):
    """Storage shown for a datacenter: open storage, and the storage of that datacenter (none chosen:
    open storage only), as the reference's storage visibility rule says."""
    datacenter = Datacenter.objects.filter(pk=datacenter_id).first() if datacenter_id else None
    return list(storage_for_datacenter(Storage.objects.all(), datacenter).order_by("name"))


def _datacenters():
    return list(Datacenter.objects.order_by("display_name").only("id", "display_name"))


def _launch_form(request, *, data, initial, profiles, instances, profile):
    datacenter_id = profile.datacenter_id if profile is not None else None
    if profile is not None and profile.datacenter_exposed and profile.datacenter_overridable:
        if data is not None:
            datacenter_id = _int(data.get("datacenter")) or None
        elif initial and "datacenter" in initial:  # a refresh of the same profile's inputs
            datacenter_id = initial["datacenter"]
    form = ServiceLaunchForm(
        data,
        initial=initial,
        profiles=profiles,
        instances=instances,
        profile=profile,
        datacenters=_datacenters() if profile is not None and profile.datacenter_exposed else (),
        storages=_storage_choices(datacenter_id) if profile is not None and profile.storage_exposed else (),
    )
    if profile is not None:
        form.add_inputs(input_fields(profile))
    if "datacenter" in form.fields:  # the storage shown follows the datacenter chosen (htmx)
        form.fields["datacenter"].widget.attrs |= {
            "hx-post": request.path,
            "hx-trigger": "change",
            "hx-vals": '{"refresh": "1"}',
            "hx-include": "#service-form",
            "hx-target": "#service-inputs",
            "hx-select": "#service-inputs",
            "hx-swap": "outerHTML",
        }
    return form


def _service_error_fields(form) -> dict[str, str]:
    """How the service layer may name an input in a ValidationFailed (``gpus``, ``inputs.gpus``,
    ``inputs[gpus]``): each mapped onto its field of the page."""
    renamed = {"compute_instance_id": "compute_instance", "instance": "compute_instance"}
    for spec in form.input_specs:
        for alias in (spec.name, f"inputs.{spec.name}", f"inputs[{spec.name}]", f"input_{spec.name}"):
            if alias not in ("name", "description", "profile", "compute_instance", "datacenter", "storage"):
                renamed[alias] = input_key(spec.name)
    return renamed


@portal_page
@require_http_methods(["GET", "POST"])
def service_new(request: HttpRequest, project_id: int, kind: str) -> HttpResponse:
    """Name, description, type (the profiles of this kind in the workspace's catalog), compute instance,
    then the chosen profile's inputs. Changing the type re-renders the inputs (htmx, or the "Show its
    inputs" button without JavaScript), keeping what was typed."""
    project = use_workspace(request, project_id)
    kind = _kind(kind)
    if not may_deploy_in(request.user, project):
        raise Forbidden("You may not deploy services in this workspace.")
    profiles = list(catalog_for(ServiceProfile, project).filter(service_type=kind["type"]))
    instances = deployable_instances(request.user, project)
    source = request.POST if request.method == "POST" else request.GET
    profile_id = _int(source.get("profile"))
    profile = next((p for p in profiles if p.pk == profile_id), profiles[0] if profiles else None)
    error, status = "", 200
    refresh = request.method == "POST" and "refresh" in request.POST
    if request.method == "GET" or refresh:
        initial = {
            "profile": profile.pk if profile else None,
            "compute_instance": _int(source.get("instance") or source.get("compute_instance")),
        }
        if refresh:
            initial |= {
                "name": request.POST.get("name", ""),
                "description": request.POST.get("description", ""),
            }
            if profile is not None and _int(request.POST.get("shown_profile")) == profile.pk:
                # the same profile's inputs again (the datacenter changed): keep what was typed
                initial |= {k: v for k, v in request.POST.items() if k.startswith("input_")}
                initial |= {"datacenter": _int(request.POST.get("datacenter"))}
                initial |= {"storage": request.POST.getlist("storage")}
        form = _launch_form(
            request, data=None, initial=initial, profiles=profiles, instances=instances, profile=profile
        )
    else:
        form = _launch_form(
            request, data=request.POST, initial=None, profiles=profiles, instances=instances, profile=profile
        )
        if form.is_valid():
            instance = next(i for i in instances if i.pk == form.cleaned_data["compute_instance"])
            datacenter = None
            if "datacenter" in form.fields and form.cleaned_data.get("datacenter"):
                datacenter = Datacenter.objects.filter(pk=form.cleaned_data["datacenter"]).first()
            try:
                service = service_launch(
                    actor=request.user,
                    compute_instance=instance,
                    profile=profile,
                    name=form.cleaned_data["name"],
                    description=form.cleaned_data["description"],
                    inputs=form.input_values(),
                    datacenter=datacenter,
                    storage=form.cleaned_data.get("storage") if "storage" in form.fields else None,
                )
            except FORM_ERRORS as exc:
                error = apply_error(form, exc, renamed=_service_error_fields(form))
                status = exc.status
            else:
                messages.success(request, f"Deploying {service.name} on {instance.name}.")
                return redirect("instances:service-detail", service.pk)
        else:
            status = 400
    template = "instances/services/new.html"
    context = {
        "nav": "deployments",
        "kind": kind,
        "project": project,
        "form": form,
        "profiles": profiles,
        "profile": profile,
        "instances": instances,
        "error": error,
        "from_instance": _int(request.GET.get("instance")),
    }
    return render(request, template, context, status=status)


# --- the service page ----------------------------------------------------------------------------------


def _outputs(service: ServiceInstance) -> list[dict]:
    rows = []
    for output in shown_outputs(service):
        value = output.get("value")
        text = "" if value is None or output.get("secret") else str(value)
        rows.append(output | {"text": text, "link": text.startswith(("http://", "https://"))})
    return rows


def _url(service: ServiceInstance) -> str:
    if not service.host:
        return ""
    cluster = service.compute_instance.cluster
    scheme = "https" if cluster is not None and getattr(cluster, "ingress_tls", False) else "http"
    return f"{scheme}://{service.host}"


def _pointless(action: str, state: str) -> bool:
    """Stop on a stopped target or start on a running one: not offered (the service layer decides)."""
    return (action == "stop" and state == State.STOPPED) or (action == "start" and state == State.READY)


def _service_context(request: HttpRequest, service: ServiceInstance) -> dict:
    user = request.user
    manage = can_manage_service(user, service) and service.state not in (State.DELETING, State.DELETED)
    runs = list(service.runs.select_related("requested_by").order_by("-created_at", "-pk")[:10])
    actions = []
    if manage and service.state not in LIVE_STATES:
        actions = [
            {"spec": spec, "form": ActionForm(variables=spec.variables, prefix=spec.name)}
            for spec in actions_for(service)
            if not _pointless(spec.name, service.state)
        ]
    refusal = day2_refusal(service)
    return {
        "nav": "deployments",
        "service": service,
        "instance": service.compute_instance,
        "project": service.project,
        "kind": _kind(KIND_OF_TYPE.get(service.service_type, "custom")),
        "profile_name": service.snapshot.get("display_name") or service.snapshot.get("name", ""),
        "url": _url(service),
        "outputs": _outputs(service),
        "runs": runs,
        "run": runs[0] if runs else None,
        # polls while the service changes, or while a run (an action) is queued or running
        "live": service.state in LIVE_STATES or any(r.outcome in UNFINISHED for r in runs),
        "can_manage": manage,
        "actions": actions,
        "can_redeploy": manage and refusal is None,
        "day2_refusal": refusal if manage else None,
    }


@portal_page
def service_detail(request: HttpRequest, service_id: int) -> HttpResponse:
    service = service_get_for(request.user, service_id)
    if authz.has_perm(request.user, "view_project", service.project):
        use_workspace(request, service.project_id)
    return render(request, "instances/services/detail.html", _service_context(request, service))


@portal_page
def service_status(request: HttpRequest, service_id: int) -> HttpResponse:
    """The live part of the service page (htmx polls it while the service is changing)."""
    service = service_get_for(request.user, service_id)
    response = render(request, "instances/services/_status.html", _service_context(request, service))
    response["Cache-Control"] = "no-store"
    return response


@portal_page
@require_POST
def service_reveal(request: HttpRequest, service_id: int, name: str) -> HttpResponse:
    """A secret output's value, read now on request (audited by the service layer, never stored)."""
    service = service_get_for(request.user, service_id)
    try:
        value, error = service_output_reveal(actor=request.user, service=service, name=name), ""
    except FORM_ERRORS as exc:
        value, error = "", exc.message
    htmx = request.headers.get("HX-Request")
    template = "instances/_secret.html" if htmx else "instances/services/secret.html"
    response = render(
        request,
        template,
        {"service": service, "project": service.project, "name": name, "value": value, "error": error},
    )
    response["Cache-Control"] = "no-store"
    return response


@portal_page
@require_http_methods(["GET", "POST"])
def service_delete_view(request: HttpRequest, service_id: int) -> HttpResponse:
    """A confirmation page (type the name), then the delete (a run removing its objects)."""
    service = service_get_for(request.user, service_id)
    if not can_manage_service(request.user, service):
        raise Forbidden("You may not delete this service.")
    error = ""
    if request.method == "POST":
        if request.POST.get("confirm_name", "").strip() != service.name:
            error = f"Type {service.name} to confirm."
        else:
            try:
                service_delete(actor=request.user, service=service)
            except FORM_ERRORS as exc:
                error = exc.message
            else:
                messages.success(request, f"Deleting {service.name}. Its objects are being removed.")
                return redirect("instances:service-detail", service.pk)
    return render(
        request,
        "instances/services/delete.html",
        {"nav": "deployments", "service": service, "project": service.project, "error": error},
        status=400 if error else 200,
    )


# --- actions and redeploy ------------------------------------------------------------------------------


def _action_spec(target, action: str):
    spec = next((a for a in actions_for(target) if a.name == action), None)
    if spec is None:
        raise NotFound("No such action.")
    return spec


def _run_action(request, *, target, action: str, back: str, template_context: dict) -> HttpResponse:
    spec = _action_spec(target, action)
    form = ActionForm(
        request.POST if request.method == "POST" else None, variables=spec.variables, prefix=spec.name
    )
    error = ""
    if request.method == "POST" and form.is_valid():
        try:
            action_run(actor=request.user, target=target, action=action, variables=form.variables())
        except FORM_ERRORS as exc:
            error = apply_error(form, exc, renamed={name: key for key, name in form.variable_names})
        else:
            messages.success(request, f"Running {action} on {target.name}.")
            return redirect(back)
    return render(
        request,
        "instances/services/action.html",
        template_context | {"spec": spec, "form": form, "error": error, "back": back},
        status=400 if request.method == "POST" else 200,
    )


@portal_page
@require_http_methods(["GET", "POST"])
def service_action(request: HttpRequest, service_id: int, action: str) -> HttpResponse:
    service = service_get_for(request.user, service_id)
    if not can_manage_service(request.user, service):
        raise Forbidden("You may not run actions on this service.")
    return _run_action(
        request,
        target=service,
        action=action,
        back=reverse("instances:service-detail", args=[service.pk]),
        template_context={"nav": "deployments", "target": service, "project": service.project},
    )


@portal_page
@require_http_methods(["GET", "POST"])
def instance_action(request: HttpRequest, instance_id: int, action: str) -> HttpResponse:
    instance = selectors.instance_get_for(request.user, instance_id)
    if not may_act_on_instance(request.user, instance):
        raise Forbidden("You may not run actions on this instance.")
    return _run_action(
        request,
        target=instance,
        action=action,
        back=reverse("instances:detail", args=[instance.pk]),
        template_context={"nav": "instances", "target": instance, "project": instance.project},
    )


@portal_page
@require_http_methods(["GET", "POST"])
def service_redeploy_view(request: HttpRequest, service_id: int) -> HttpResponse:
    """The service's inputs again, with its current values; "Redeploy" applies the changed ones."""
    service = service_get_for(request.user, service_id)
    if not can_manage_service(request.user, service):
        raise Forbidden("You may not redeploy this service.")
    refusal = day2_refusal(service)
    form = ServiceInputsForm(request.POST if request.method == "POST" and refusal is None else None)
    form.add_inputs(input_fields(service.snapshot), values=service.input_values)
    error, status = "", 200 if refusal is None or request.method == "GET" else 409
    if request.method == "POST" and refusal is None:
        status = 400
        if form.is_valid():
            try:
                service_redeploy(actor=request.user, service=service, inputs=form.input_values())
            except FORM_ERRORS as exc:
                error, status = apply_error(form, exc, renamed=_service_error_fields(form)), exc.status
            else:
                messages.success(request, f"Redeploying {service.name} with the changed inputs.")
                return redirect("instances:service-detail", service.pk)
    return render(
        request,
        "instances/services/redeploy.html",
        {
            "nav": "deployments",
            "service": service,
            "project": service.project,
            "form": form,
            "refusal": refusal,
            "error": error,
        },
        status=status,
    )


# --- the compute instance page's services part ------------------------------------------------------------


USAGE_LABELS = {
    "gpus": "GPUs",
    "mig_slices": "MIG slices",
    "cpu_millis": "CPU cores",
    "memory_gib": "Memory (GiB)",
    "storage_gib": "Storage (GiB)",
}


def _show(key: str, value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{n} × {profile}" for profile, n in value.items() if n) or "0"
    if value is None:
        return "—"
    number = float(value) / 1000 if key == "cpu_millis" else float(value)
    return str(int(number)) if number.is_integer() else f"{number:.3f}".rstrip("0").rstrip(".")


def usage_rows(usage: dict) -> list[dict]:
    """``instance_service_usage`` as table rows: per resource the instance's total, what its own
    template uses, what its services use and what is left."""
    columns = ("totals", "own", "services", "left")
    return [
        {"label": label} | {c: _show(key, (usage.get(c) or {}).get(key)) for c in columns}
        for key, label in USAGE_LABELS.items()
        if key != "mig_slices" or any((usage.get(c) or {}).get(key) for c in columns)
    ]


def instance_services_context(request: HttpRequest, instance: ComputeInstance) -> dict:
    """What a compute instance's page shows of its services and its own actions."""
    user = request.user
    services = list(service_list_filtered(user, compute_instance=instance))
    usage = instance_service_usage(instance)
    can_act = may_act_on_instance(user, instance) and instance.state not in (*LIVE_STATES, State.DELETED)
    return {
        "services": services,
        "service_usage": usage,
        "service_usage_rows": usage_rows(usage) if usage else [],
        "deploy_kinds": deployment_kinds()
        if instance.state == State.READY and can_deploy_services_on(user, instance)
        else [],
        "instance_actions": [
            {"spec": spec, "form": ActionForm(variables=spec.variables, prefix=spec.name)}
            for spec in actions_for(instance)
            if not _pointless(spec.name, instance.state)
        ]
        if can_act
        else [],
    }
