"""What the catalog's studio pages share: JSON edited as text and ``CatalogAdmin`` (visibility by
role, the actions column, the manage-sharing and launch-into-projects pages)."""

import copy
import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.forms.fields import InvalidJSONInput
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html_join

from catalog import selectors, services
from paas import authz
from paas.admin import ScopedModelAdmin
from paas.errors import ApplicationError
from paas.forms import apply_error
from paas.jsondepth import MAX_DEPTH, too_deep
from tenancy.models import Organization, Project


class JSONText(forms.JSONField):
    """JSON edited as text, shown indented."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault(
            "widget", forms.Textarea(attrs={"rows": 6, "class": "vLargeTextField", "spellcheck": "false"})
        )
        super().__init__(*args, **kwargs)

    def prepare_value(self, value):
        if isinstance(value, str):
            return value
        return json.dumps(value, indent=2)

    def bound_data(self, data, initial):
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return InvalidJSONInput(data)  # shown again as typed, with the error below

    def to_python(self, value):
        try:
            data = super().to_python(value)
        except RecursionError:
            data = None  # the decoder gave up on the nesting: the same message as below
        else:
            if not too_deep(data):
                return data
        raise forms.ValidationError(f"JSON nested more than {MAX_DEPTH} levels deep.", code="invalid")


class CatalogAdmin(ScopedModelAdmin):
    """Visible to operators and catalog managers (org admins, PaaS admins)."""

    def _is_catalog_manager(self, request) -> bool:
        user = request.user
        return authz.is_operator(user) or authz.remembered(
            user,
            "manages_catalog",
            lambda: (
                selectors.managed_projects(user).exists()
                or authz.filter_for(user, "manage_catalog", Organization.objects.all()).exists()
            ),
        )

    def has_module_permission(self, request) -> bool:
        return self._is_catalog_manager(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._is_catalog_manager(request)

    def has_add_permission(self, request) -> bool:
        return self._is_catalog_manager(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None or "edit" in self.item_actions(request.user, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return obj is not None and "delete" in self.item_actions(request.user, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "project":
            kwargs["queryset"] = selectors.managed_projects(request.user).select_related("org")
            kwargs["required"] = not authz.is_operator(request.user)
            kwargs["help_text"] = (
                "Empty: the system catalog (operators)." if authz.is_operator(request.user) else ""
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def item_actions(self, user, obj) -> set[str]:
        """What ``user`` may do to ``obj`` (edit, clone, share, delete): the profiles' rules by default."""
        return selectors.allowed_actions(user, obj)

    def share_item(self, **kwargs):
        """The sharing service (``actor``, ``item``, ``sharing``, ``projects``, ``orgs``)."""
        return services.item_share(**kwargs)

    @admin.display(description="scope")
    def scope(self, obj):
        return obj.scope_label

    @admin.display(description="sharing")
    def sharing_label(self, obj):
        if obj.org_id is None:
            return obj.get_system_sharing_display()
        return obj.get_sharing_display() if obj.project_id else "—"

    @admin.display(description="actions")
    def actions_menu(self, obj):
        user = getattr(self, "changelist_user", None)
        allowed = self.item_actions(user, obj) if user is not None else set()
        info = (obj._meta.app_label, obj._meta.model_name)
        links = []
        for act, label in (
            ("edit", "Edit configuration"),
            ("share", "Manage sharing"),
            ("launch", "Launch into projects"),
            ("clone", "Clone"),
            ("delete", "Delete"),
        ):
            needs = "share" if act == "launch" else act
            if needs not in allowed or (act in {"clone", "launch"} and not hasattr(self, f"{act}_view")):
                continue
            name = {"edit": "change", "delete": "delete"}.get(act, act)
            links.append((reverse(f"admin:{info[0]}_{info[1]}_{name}", args=[obj.pk]), label))
        if not links:
            return "read-only (inherited)"
        return format_html_join(" · ", '<a href="{}">{}</a>', links)

    def get_changelist_instance(self, request):
        """The change list renders its rows through a copy of this admin that knows the request's user
        (the actions column asks what they may do). The registered admin is shared by every request of
        a threaded server, so it keeps no request of its own."""
        scoped = copy.copy(self)
        scoped.changelist_user = request.user
        return super(CatalogAdmin, scoped).get_changelist_instance(request)

    # --- sharing page -------------------------------------------------------------------------------
    def get_urls(self):
        prefix = f"{self.model._meta.app_label}_{self.model._meta.model_name}"
        urls = [path("<int:pk>/share/", self.admin_site.admin_view(self.share_view), name=f"{prefix}_share")]
        for page in ("clone", "launch"):
            if hasattr(self, f"{page}_view"):
                view = self.admin_site.admin_view(getattr(self, f"{page}_view"))
                urls.append(path(f"<int:pk>/{page}/", view, name=f"{prefix}_{page}"))
        return urls + self.extra_urls(prefix) + super().get_urls()

    def extra_urls(self, prefix: str) -> list:
        return []

    def _object_or_404(self, request, pk):
        return authz.get_visible(self.get_queryset(request), pk)

    def share_view(self, request, pk):
        item = self._get_or_redirect(request, pk)
        if "share" not in self.item_actions(request.user, item):
            raise PermissionDenied
        system = item.org_id is None

        class ShareForm(forms.Form):
            sharing = forms.ChoiceField(
                choices=[
                    ("none", "None"),
                    ("all", "All organizations" if system else "All projects"),
                    ("selected", "Selected organizations" if system else "Selected projects"),
                ],
                widget=forms.RadioSelect,
            )
            targets = forms.ModelMultipleChoiceField(
                queryset=Organization.objects.all()
                if system
                else Project.objects.filter(org=item.org_id).exclude(pk=item.project_id),
                required=False,
                widget=forms.CheckboxSelectMultiple,
                label="Organizations" if system else "Projects",
            )

        initial = {
            "sharing": item.system_sharing if system else item.sharing,
            "targets": list((item.shared_orgs if system else item.shared_projects).all()),
        }
        form = ShareForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            try:
                targets = list(form.cleaned_data["targets"])
                self.share_item(
                    actor=request.user,
                    item=item,
                    sharing=form.cleaned_data["sharing"],
                    projects=[] if system else targets,
                    orgs=targets if system else [],
                )
            except ApplicationError as exc:
                form.add_error(None, apply_error(None, exc))  # the form's fields are not the service's
            else:
                self.message_user(request, f"Sharing of {item.name} saved.", messages.SUCCESS)
                return redirect(reverse(f"admin:{item._meta.app_label}_{item._meta.model_name}_changelist"))
        return self._form_page(request, item, form, f"Manage sharing of {item.name}")

    def _get_or_redirect(self, request, pk):
        return self._object_or_404(request, pk)

    def _form_page(self, request, item, form, title, intro=""):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "form": form,
            "object": item,
            "opts": self.model._meta,
            "intro": intro,
        }
        return TemplateResponse(request, "admin/catalog/action_form.html", context)


class LaunchIntoProjects:
    """ "Launch into projects" (the studio home's cards and the list's actions): make a profile available
    in the catalogs of more workspaces, through the sharing rules (``services.item_share``). A project's
    profile is added to chosen projects of its org; a system profile (operators) to chosen organizations,
    whose every workspace then sees it. Unpublished, it can be published in the same step."""

    def launch_view(self, request, pk):
        item = self._get_or_redirect(request, pk)
        if "share" not in self.item_actions(request.user, item):
            raise PermissionDenied
        system = item.org_id is None
        everywhere = (item.system_sharing if system else item.sharing) == "all"
        if system:
            candidates = Organization.objects.filter(is_active=True).exclude(
                pk__in=item.shared_orgs.values("pk") if item.system_sharing == "selected" else []
            )
        else:
            candidates = Project.objects.filter(org=item.org_id).exclude(pk=item.project_id)
            if item.sharing == "selected":
                candidates = candidates.exclude(pk__in=item.shared_projects.values("pk"))

        class LaunchForm(forms.Form):
            targets = forms.ModelMultipleChoiceField(
                queryset=candidates.none() if everywhere else candidates,
                required=not everywhere,
                widget=forms.CheckboxSelectMultiple,
                label="Organizations" if system else "Projects",
                help_text="Every workspace of the chosen organizations sees it."
                if system
                else "Their users see it in their catalogs (read-only there: inherited).",
            )
            if not item.published:
                publish = forms.BooleanField(
                    required=False, initial=True, label="Publish it too (unpublished profiles stay hidden)"
                )

        form = LaunchForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                chosen = list(form.cleaned_data["targets"])
                if chosen:
                    current = list((item.shared_orgs if system else item.shared_projects).all())
                    services.item_share(
                        actor=request.user,
                        item=item,
                        sharing="selected",
                        projects=[] if system else current + chosen,
                        orgs=current + chosen if system else [],
                    )
                if form.cleaned_data.get("publish"):
                    services.profile_update(actor=request.user, profile=item, published=True)
            except ApplicationError as exc:
                form.add_error(None, apply_error(None, exc))
            else:
                names = ", ".join(str(t) for t in chosen) or "its current projects"
                self.message_user(request, f"{item.name} launched into {names}.", messages.SUCCESS)
                return redirect(reverse("admin:index"))
        if everywhere:
            intro = (
                f"{item.name} is already in the catalogs of every {'organization' if system else 'project'}."
            )
        elif not candidates.exists():
            intro = "Every project it could be launched into has it already."
        else:
            shared = item.get_system_sharing_display() if system else item.get_sharing_display()
            intro = f"Shared now: {shared.lower()}. Choose where to add it."
        return self._form_page(request, item, form, f"Launch {item.display_name} into projects", intro)
