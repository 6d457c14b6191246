"""Portal pages of compute instances: a workspace's landing page (``/w/<id>/``), the list, the three-step
launch, the detail page and its actions.

Every object is reached through a selector (404 when missing or not visible) and every change goes
through ``instances.services``, which checks permissions again: a button the page hides because the
user may not use it is refused by the server as well.
"""

from fractions import Fraction

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from catalog.models import ComputeProfile
from catalog.selectors import catalog_for
from instances import landing, pool_selectors, quota, selectors, services, user_limits
from instances.app_views import instance_applications_context
from instances.credential_views import instance_kube_credentials_context, kubeconfig_ttl_label
from instances.filters import InstanceFilter
from instances.forms import CollaboratorForm, InstanceNameForm, InstanceSizeForm
from instances.models import ComputeInstance, Run
from instances.service_views import instance_services_context
from instances.states import State
from inventory.mig import UNITS_PER_GPU, slice_units
from paas import authz
from paas.errors import NotFound
from paas.forms import apply_error
from paas.portal import FORM_ERRORS, portal_page, workspace_permissions
from tenancy import selectors as tenancy_selectors
from tenancy.models import User
from tenancy.portal import use_workspace

PAGE_SIZE = 50
LIVE_STATES = {State.PENDING, State.PROVISIONING, State.DELETING}


# --- presentation helpers ---------------------------------------------------------------------------


def specs(groups: list[dict]) -> list[str]:
    """One line per resource a profile gives, summed over its resource groups."""
    gpus: dict[str, int] = {}
    migs: dict[str, int] = {}
    cpu = memory = storage = 0.0
    for g in groups:
        if int(g.get("gpu_count") or 0):
            gpus[g.get("gpu_model") or "GPU"] = gpus.get(g.get("gpu_model") or "GPU", 0) + int(g["gpu_count"])
        if int(g.get("mig_count") or 0):
            migs[g["mig_profile"]] = migs.get(g["mig_profile"], 0) + int(g["mig_count"])
        cpu += float(g.get("cpu_cores") or 0)
        memory += float(g.get("memory_gib") or 0)
        storage += float(g.get("storage_gib") or 0)
    lines = [f"{n} × {model} GPU" for model, n in gpus.items()]
    lines += [  # the size card says what the slices count against a GPU quota (inventory.mig)
        f"{n} × MIG {profile} slice{'s' if n > 1 else ''} "
        f"(counts {Fraction(n * slice_units(profile), UNITS_PER_GPU)} GPU of quota)"
        for profile, n in migs.items()
    ]
    if not gpus and not migs:
        lines.append("No GPU")
    lines.append(f"{_num(cpu)} CPU cores")
    lines.append(f"{_num(memory)} GiB memory")
    if storage:
        lines.append(f"{_num(storage)} GiB storage")
    return lines


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _groups_of(profile: ComputeProfile) -> list[dict]:
    return [
        {
            "gpu_model": g.gpu_model,
            "gpu_count": g.gpu_count,
            "mig_profile": g.mig_profile,
            "mig_count": g.mig_count,
            "cpu_cores": g.cpu_cores,
            "memory_gib": g.memory_gib,
            "storage_gib": g.storage_gib,
        }
        for g in profile.resource_groups.all()
    ]


def _duration(since) -> str:
    seconds = int((timezone.now() - since).total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return f"{seconds} s"


# --- list ---------------------------------------------------------------------------------------------


@portal_page
def instance_list(request: HttpRequest, project_id: int) -> HttpResponse:
    project = use_workspace(request, project_id)
    sizes = sorted(set(catalog_for(ComputeProfile, project).values_list("display_name", flat=True)))
    filters = InstanceFilter(
        request.GET or None,
        queryset=selectors.instance_list_in(request.user, project),
        sizes=sizes,
        user=request.user,
    )
    page = Paginator(filters.qs, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "instances/list.html",
        {
            "nav": "instances",
            "project": project,
            "filters": filters,
            "page": page,
            "live": any(i.state in LIVE_STATES for i in page.object_list),  # htmx refreshes the rows
            "query": query.urlencode(),
            "shared": selectors.instance_shared_with(request.user).exclude(project=project)[:20],
            "can": workspace_permissions(request.user, project),
        },
    )


# --- the three-step launch ------------------------------------------------------------------------------


@portal_page
@require_http_methods(["GET", "POST"])
def instance_new(request: HttpRequest, project_id: int) -> HttpResponse:
    """Step 1: name and description. Step 2: a size from the cards. Step 3: review, then launch.

    The steps are plain forms carrying the earlier answers (works without JavaScript); the launch
    itself is one service call that checks everything again under the workspace's quota lock.
    """
    project = use_workspace(request, project_id)
    authz.require(request.user, "manage_instances", project, message="You may not launch instances here.")
    profiles = list(catalog_for(ComputeProfile, project).prefetch_related("resource_groups"))
    cards = [{"profile": p, "specs": specs(_groups_of(p))} for p in profiles]
    data = request.POST if request.method == "POST" else None
    name_form = InstanceNameForm(data)
    size_form = InstanceSizeForm(data, profiles=profiles)
    step, error = 1, ""
    asked = request.POST.get("step", "1")
    wanted = int(asked) if asked in ("1", "2", "3", "4") else 1  # where the button goes (4: launch)

    if data is not None:
        step = 1
        if name_form.is_valid():
            try:
                name_form.cleaned_data["name"] = services.instance_name_check(
                    project=project, name=name_form.cleaned_data["name"]
                )
                step = 2
            except FORM_ERRORS as exc:
                error = apply_error(name_form, exc)
        if step == 2 and wanted >= 3:
            if size_form.is_valid():
                step = 3
        elif step == 2:
            size_form = InstanceSizeForm(
                initial={"profile": request.POST.get("profile")}, profiles=profiles
            )  # arriving at step 2 (or going back to it): no "choose a size" error yet
        if step == 3 and wanted == 4:
            profile = next(p for p in profiles if p.pk == size_form.cleaned_data["profile"])
            try:
                instance = services.instance_launch(
                    actor=request.user,
                    project=project,
                    name=name_form.cleaned_data["name"],
                    description=name_form.cleaned_data["description"],
                    profile=profile,
                )
            except FORM_ERRORS as exc:
                if "name" in exc.fields:
                    step, error = 1, apply_error(name_form, exc)
                elif "profile" in exc.fields:
                    step, error = 2, apply_error(size_form, exc)
                else:
                    error = exc.message  # over quota or no capacity: the numbers and reasons, on step 3
                    code = getattr(exc, "code", "")
                    return _render_new(request, project, cards, name_form, size_form, 3, error, code)
            else:
                messages.success(request, f"Launching {instance.name}. It is being deployed now.")
                return redirect("instances:detail", instance.pk)
        if wanted < step:  # "Back" buttons
            step = wanted
    return _render_new(request, project, cards, name_form, size_form, step, error, "")


def _render_new(request, project, cards, name_form, size_form, step, error, code) -> HttpResponse:
    chosen = None
    if step == 2:  # each card says what the quotas would refuse now (the launch checks it again)
        wants = {c["profile"].pk: quota.profile_totals(c["profile"]) for c in cards}
        over = quota.quota_problems(project=project, wants=wants)
        # ... and how many more of it the user's instance limits leave them (none: disabled, and why).
        room = user_limits.launch_room(project=project, user=request.user, wants=wants)
        cards = [c | {"over_quota": over[c["profile"].pk], "room": room[c["profile"].pk]} for c in cards]
    if step in (2, 3):  # a size with a claimable standby instance for this org starts at once
        ready = pool_selectors.ready_now([c["profile"].pk for c in cards], org_id=project.org_id)
        cards = [c | {"ready_now": ready.get(c["profile"].pk, 0)} for c in cards]
    if step == 3:
        chosen = next(c for c in cards if c["profile"].pk == size_form.cleaned_data["profile"])
    return render(
        request,
        "instances/new.html",
        {
            "nav": "instances",
            "project": project,
            "cards": cards,
            "name_form": name_form,
            "size_form": size_form,
            "step": step,
            "error": error,
            "error_code": code,
            "chosen": chosen,
            "summary": selectors.workspace_summary(request.user, project.pk) if step >= 2 else None,
            "steps": ["Name", "Size", "Launch"],
        },
        status=200 if not error else 400 if code == "instance_limit" else 409 if code else 400,
    )


# --- detail and actions ------------------------------------------------------------------------------


def _detail_context(request: HttpRequest, instance: ComputeInstance) -> dict:
    user = request.user
    runs = list(instance.runs.filter(service__isnull=True).order_by("-created_at", "-pk")[:5])
    can_manage = authz.has_perm(user, "delete_computeinstance", instance)
    return {
        "instance": instance,
        "project": instance.project,
        "size": instance.snapshot.get("display_name") or instance.snapshot.get("name", ""),
        "specs": specs(instance.snapshot.get("resource_groups", [])),
        "price": instance.snapshot.get("price", {}),
        "running_for": _duration(instance.ready_at)
        if instance.state == State.READY and instance.ready_at
        else "",
        "runs": runs,
        "run": runs[0] if runs else None,
        "live": instance.state in LIVE_STATES
        or any(r.outcome in (Run.Outcome.QUEUED, Run.Outcome.RUNNING) for r in runs),  # an action runs
        "can_manage": can_manage and instance.state not in (State.DELETING, State.DELETED),
        "can_use": authz.has_perm(user, "use_instance", instance) and instance.state == State.READY,
        "collaborators": list(instance.collaborators.all()),
        "outputs": _outputs(instance),
        "kubeconfig_ttl": kubeconfig_ttl_label(),
    }


def _outputs(instance: ComputeInstance) -> list[dict]:
    """The template's outputs with their values (secret ones as a reference, revealed on request)."""
    described = {
        o["name"]: o.get("description", "") for o in instance.snapshot.get("template", {}).get("outputs", [])
    }
    rows = []
    for name, value in (instance.outputs or {}).items():
        secret = isinstance(value, dict) and value.get("secret")
        rows.append(
            {
                "name": name,
                "description": described.get(name, ""),
                "secret": bool(secret),
                "value": "" if secret else value,
            }
        )
    return rows


def _collaboration_context(instance: ComputeInstance, form: CollaboratorForm, error: str = "") -> dict:
    return {
        "nav": "instances",
        "collaborator_form": form,
        "collaborator_error": error,
        "invited": selectors.instance_pending_invitations(instance),
    }


@portal_page
def instance_detail(request: HttpRequest, instance_id: int) -> HttpResponse:
    instance = selectors.instance_detail_for(request.user, instance_id)
    if authz.has_perm(request.user, "view_project", instance.project):
        use_workspace(request, instance.project_id)
    context = (
        _detail_context(request, instance)
        | _collaboration_context(instance, CollaboratorForm())
        | instance_services_context(request, instance)
        | instance_applications_context(request, instance)
        | instance_kube_credentials_context(request, instance)
    )
    return render(request, "instances/detail.html", context)


@portal_page
def instance_status(request: HttpRequest, instance_id: int) -> HttpResponse:
    """The live part of the detail page (htmx polls it while the instance is changing)."""
    instance = selectors.instance_get_for(request.user, instance_id)
    context = _detail_context(request, instance) | instance_services_context(request, instance)
    response = render(request, "instances/_status.html", context)
    response["Cache-Control"] = "no-store"
    return response


@portal_page
@require_POST
def instance_kubeconfig(request: HttpRequest, instance_id: int) -> HttpResponse:
    instance = selectors.instance_get_for(request.user, instance_id)
    try:
        text = services.kubeconfig_issue(actor=request.user, instance=instance)
    except FORM_ERRORS as exc:
        messages.error(request, exc.message)
        return redirect("instances:detail", instance.pk)
    response = HttpResponse(text, content_type="application/yaml")
    response["Content-Disposition"] = f'attachment; filename="kubeconfig-{instance.name}.yaml"'
    response["Cache-Control"] = "no-store"
    return response


@portal_page
@require_POST
def collaborator_add(request: HttpRequest, instance_id: int) -> HttpResponse:
    instance = selectors.instance_detail_for(request.user, instance_id)
    form = CollaboratorForm(request.POST)
    if form.is_valid():
        try:
            added = services.collaborator_add(
                actor=request.user, instance=instance, email=form.cleaned_data["email"]
            )
        except (*FORM_ERRORS, services.OutsiderRefused) as exc:
            error = apply_error(form, exc)
        else:
            email = form.cleaned_data["email"]
            messages.success(
                request,
                f"{email} can now use {instance.name}."
                if added
                else f"{email} is not a member of this organization yet: an invitation to this workspace "
                "was sent.",
            )
            return redirect(reverse("instances:detail", args=[instance.pk]) + "#collaborators")
    else:
        error = ""
    context = (
        _detail_context(request, instance)
        | _collaboration_context(instance, form, error)
        | instance_services_context(request, instance)
        | instance_kube_credentials_context(request, instance)
    )
    return render(request, "instances/detail.html", context, status=400)


@portal_page
@require_POST
def collaborator_remove(request: HttpRequest, instance_id: int, user_id: int) -> HttpResponse:
    instance = selectors.instance_get_for(request.user, instance_id)
    user = User.objects.filter(pk=user_id, pk__in=instance.collaborators.values("user_id")).first()
    if user is None:
        raise NotFound("No such collaborator.")
    try:
        services.collaborator_remove(actor=request.user, instance=instance, user=user)
    except FORM_ERRORS as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{user.email} no longer has access to {instance.name}.")
    return redirect(reverse("instances:detail", args=[instance.pk]) + "#collaborators")


@portal_page
@require_http_methods(["GET", "POST"])
def instance_delete(request: HttpRequest, instance_id: int) -> HttpResponse:
    """A confirmation page (type the name), then the irreversible delete."""
    instance = selectors.instance_get_for(request.user, instance_id)
    authz.require(
        request.user, "delete_computeinstance", instance, message="You may not delete this instance."
    )
    error = ""
    if request.method == "POST":
        if request.POST.get("confirm_name", "").strip() != instance.name:
            error = f"Type {instance.name} to confirm."
        else:
            try:
                services.instance_delete(actor=request.user, instance=instance)
            except FORM_ERRORS as exc:
                error = exc.message
            else:
                messages.success(request, f"Deleting {instance.name}. Its resources are being released.")
                return redirect("instances:detail", instance.pk)
    return render(
        request,
        "instances/delete.html",
        {"nav": "instances", "instance": instance, "project": instance.project, "error": error},
        status=400 if error else 200,
    )


@portal_page
@require_POST
def output_reveal(request: HttpRequest, instance_id: int, name: str) -> HttpResponse:
    """A secret output's value, read now (htmx swaps it into the page; without JavaScript, a page)."""
    instance = selectors.instance_get_for(request.user, instance_id)
    try:
        value = services.output_reveal(actor=request.user, instance=instance, name=name)
    except FORM_ERRORS as exc:
        value, error = "", exc.message
    else:
        error = ""
    template = "instances/_secret.html" if request.headers.get("HX-Request") else "instances/secret.html"
    response = render(
        request,
        template,
        {"instance": instance, "project": instance.project, "name": name, "value": value, "error": error},
    )
    response["Cache-Control"] = "no-store"
    return response


@portal_page
def workspace(request: HttpRequest, project_id: int) -> HttpResponse:
    """The landing page of a workspace: what is active, resources in use against quota, activity.

    For the people who work in it; a PaaS admin of the workspace (who manages its catalog, not its
    work) gets the page without any of that, pointing to the studio.
    """
    project = use_workspace(request, project_id)
    can = workspace_permissions(request.user, project)
    context = {
        "nav": "home",
        "project": project,
        "can": can,
        "others": selectors.workspaces_with_active_instances(request.user, exclude=project),
        "sections": landing.landing_sections(request, project),  # higher layers' (instances.landing)
    }
    if not can["view_instances"]:
        return render(request, "instances/workspace.html", context)
    summary = selectors.workspace_summary(request.user, project)
    usage = [
        _usage_row("GPUs", summary["in_use"]["gpus"], summary["quota"]["gpus"])
        | {"note": "MIG slices count as fractions of a GPU: 1g.10gb = 1/7 GPU"},
        _usage_row("CPU cores", summary["in_use"]["cpu_cores"], summary["quota"]["cpu_cores"]),
        _usage_row("Memory (GiB)", summary["in_use"]["memory_gib"], summary["quota"]["memory_gib"]),
        _usage_row("Storage (GiB)", summary["in_use"]["storage_gib"], summary["quota"]["storage_gib"]),
        _usage_row("Instances", summary["in_use"]["instances"], summary["quota"]["instances"]),
    ]
    return render(
        request,
        "instances/workspace.html",
        context
        | {
            "summary": summary,
            "usage": usage,
            "states": [(state, n) for state, n in summary["instances"].items() if n and state != "deleted"],
            "recent": selectors.instance_recent_in(request.user, project, limit=5),
            "activity": tenancy_selectors.workspace_activity(request.user, project, limit=10),
        },
    )


def _usage_row(label: str, used, limit) -> dict:
    used = int(used) if float(used).is_integer() else used if label == "GPUs" else round(float(used), 1)
    percent = None if not limit else min(100, round(100 * float(used) / float(limit)))
    return {"label": label, "used": used, "limit": limit, "percent": percent}
