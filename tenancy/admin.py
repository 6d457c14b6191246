"""Studio pages for tenancy; every save and delete goes through tenancy.services.

About 600 lines, kept whole: orgs, projects, users, roles, invitations, quotas and IdP mappings share
the org-scoped form helpers; one page more splits it by subject.
"""

import re

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from paas import authz
from paas.admin import ScopedModelAdmin
from paas.errors import ApplicationError
from tenancy import selectors, services
from tenancy.gpu_units import UNIT_NOTE, format_gpus
from tenancy.models import IdpGroupMapping, Invitation, Organization, Project, Quota, RoleAssignment
from tenancy.roles import Role
from tenancy.signals import quota_usage_annotations


def _administered_orgs(user) -> QuerySet:
    return authz.filter_for(user, "administer_organization", Organization.objects.all())


class TenancyAdmin(ScopedModelAdmin):
    """Tenancy pages are for operators and org admins only (separation of duties)."""

    def has_module_permission(self, request) -> bool:
        return selectors.administers_any_org(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return selectors.administers_any_org(request.user)


class AdministeredScopeAdmin(TenancyAdmin):
    """Pages whose forms pick a user, org or project: only those in orgs the user administers."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        orgs = _administered_orgs(request.user)
        if db_field.name == "user":
            kwargs["queryset"] = selectors.user_list_for(request.user)
        elif db_field.name == "org":
            kwargs["queryset"] = orgs
        elif db_field.name == "project":
            kwargs["queryset"] = Project.objects.filter(org__in=orgs).select_related("org")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_add_permission(self, request) -> bool:
        user = request.user
        return authz.remembered(user, "administers_orgs", lambda: _administered_orgs(user).exists())


# --- organizations ----------------------------------------------------------------------------------


class OrganizationOnboardForm(forms.ModelForm):
    admin_first_name = forms.CharField(label="Admin first name", max_length=150)
    admin_last_name = forms.CharField(label="Admin last name", max_length=150)
    admin_email = forms.EmailField(
        label="Admin email", help_text="Receives an invitation to sign up as org admin."
    )

    class Meta:
        model = Organization
        fields = ["name", "display_name"]


@admin.register(Organization)
class OrganizationAdmin(TenancyAdmin):
    selector = staticmethod(selectors.org_list_for)
    list_display = ["name", "display_name", "is_active", "created_at", "quota_link"]
    list_filter = ["is_active"]
    search_fields = ["name", "display_name"]

    def quota_link(self, obj):
        url = reverse("admin:tenancy_quota_change", args=[obj.quota.pk])
        return format_html('<a href="{}">Quota</a>', url)

    quota_link.short_description = "Quota"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("quota")

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = OrganizationOnboardForm
            kwargs["fields"] = ["name", "display_name", "admin_first_name", "admin_last_name", "admin_email"]
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "display_name", "admin_first_name", "admin_last_name", "admin_email"]
        return ["name", "display_name", "is_active", "mfa_required", "sso_email_domains", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        readonly = ["name", "created_at"]
        if not authz.has_perm(request.user, "administer_organization", obj):
            readonly.append("mfa_required")
        if not authz.is_operator(request.user):
            readonly.append("is_active")
            readonly.append("sso_email_domains")
        return readonly

    def has_add_permission(self, request) -> bool:
        return authz.is_operator(request.user)

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is None:
            return self.admin_site.has_permission(request)
        return authz.has_perm(request.user, "change_organization", obj)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            services.org_update(
                actor=request.user,
                org=self.fresh(obj),
                display_name=data["display_name"],
                is_active=data.get("is_active") if "is_active" in data else None,
                mfa_required=data.get("mfa_required") if "mfa_required" in data else None,
            )
            if "sso_email_domains" in data:
                from tenancy.sso_rules import org_sso_domains_set

                org_sso_domains_set(
                    actor=request.user, org=self.fresh(obj), domains=data["sso_email_domains"]
                )
        else:
            org, invitation, _token = services.org_onboard(
                actor=request.user,
                name=data["name"],
                display_name=data["display_name"],
                admin_email=data["admin_email"],
                admin_first_name=data["admin_first_name"],
                admin_last_name=data["admin_last_name"],
            )
            obj.pk = org.pk
            self.message_user(request, f"Invitation sent to {invitation.email}.", messages.SUCCESS)


# --- projects ---------------------------------------------------------------------------------------


@admin.register(Project)
class ProjectAdmin(AdministeredScopeAdmin):
    selector = staticmethod(selectors.project_list_for)
    list_display = ["name", "display_name", "org", "kind", "owner", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name", "display_name", "org__name"]
    list_select_related = ["org", "owner"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["org", "name", "display_name", "description"]
        return ["org", "name", "kind", "owner", "display_name", "description", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["org", "name", "kind", "owner", "created_at"]

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is None:
            return self.has_add_permission(request)
        return authz.has_perm(request.user, "change_project", obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is None:
            return self.has_add_permission(request)
        return authz.has_perm(request.user, "delete_project", obj) and obj.kind == Project.Kind.TEAM

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            services.project_update(
                actor=request.user,
                project=self.fresh(obj),
                display_name=data["display_name"],
                description=data["description"],
            )
        else:
            project = services.project_create(
                actor=request.user,
                org=data["org"],
                name=data["name"],
                display_name=data["display_name"],
                description=data["description"],
            )
            obj.pk = project.pk

    def get_deleted_objects(self, objs, request):
        # Whether a workspace may go is the service's rule (live instances refuse it, naming them; its
        # profiles and deleted instances go with it), not Django's PROTECT check: the service says why.
        deleted, model_count, perms_needed, _protected = super().get_deleted_objects(objs, request)
        return deleted, model_count, perms_needed, []

    def service_delete(self, request, obj):
        services.project_delete(actor=request.user, project=obj)


# --- users and roles --------------------------------------------------------------------------------


class RoleAssignmentForm(forms.ModelForm):
    class Meta:
        model = RoleAssignment
        fields = ["user", "role", "org", "project"]


@admin.register(RoleAssignment)
class RoleAssignmentAdmin(AdministeredScopeAdmin):
    selector = staticmethod(selectors.role_assignment_list_for)
    list_display = ["user", "role", "org", "project", "source", "created_at", "created_by"]
    list_filter = ["role", "source"]
    search_fields = ["user__username", "user__email", "org__name", "project__name"]
    list_select_related = ["user", "org", "project", "created_by"]
    form = RoleAssignmentForm
    actions = ["remove_from_org"]

    def get_fields(self, request, obj=None):
        return (
            ["user", "role", "org", "project"]
            if obj is None
            else ["user", "role", "org", "project", "source", "created_at"]
        )

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["user", "role", "org", "project", "source", "created_at"]

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        if db_field.name == "role" and not authz.is_operator(request.user):
            kwargs["choices"] = [c for c in Role.choices if c[0] != Role.OPERATOR]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is None:
            return self.has_add_permission(request)
        if obj.role == Role.OPERATOR:
            return authz.is_operator(request.user)
        return authz.has_perm(request.user, "administer_organization", obj.org)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        assignment = services.role_assign(
            actor=request.user,
            user=data["user"],
            role=data["role"],
            org=data.get("org"),
            project=data.get("project"),
        )
        obj.pk = assignment.pk

    def service_delete(self, request, obj):
        services.role_revoke(actor=request.user, assignment=obj)

    @admin.action(description="Remove the selected people from the organization (every role there)")
    def remove_from_org(self, request, queryset):
        """``tenancy.services.member_remove`` for each (person, org) selected, after a confirm page."""
        pairs = {}
        for assignment in queryset.select_related("user", "org"):
            if assignment.org_id is None:  # operators belong to no organization
                self.message_user(request, f"{assignment}: not an organization role.", messages.WARNING)
                continue
            pairs[(assignment.user_id, assignment.org_id)] = (assignment.user, assignment.org)
        if not pairs:
            return None
        if request.POST.get("confirm") != "yes":
            rows = [
                {
                    "user": user,
                    "org": org,
                    "roles": sorted(
                        f"{a.get_role_display()}" + (f" in {a.project.display_name}" if a.project else "")
                        for a in RoleAssignment.objects.filter(user=user, org=org).select_related("project")
                    ),
                }
                for user, org in pairs.values()
            ]
            context = {
                **self.admin_site.each_context(request),
                "title": "Remove from the organization?",
                "rows": rows,
                "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "opts": self.model._meta,
            }
            return TemplateResponse(request, "admin/tenancy/roleassignment/remove_from_org.html", context)
        for user, org in pairs.values():
            try:
                removed = services.member_remove(actor=request.user, org=org, user=user)
            except ApplicationError as exc:
                self.message_user(request, f"{user} ({org}): {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{user} removed from {org} ({removed} roles).", messages.SUCCESS)
        return None


# --- invitations ------------------------------------------------------------------------------------


@admin.register(Invitation)
class InvitationAdmin(AdministeredScopeAdmin):
    selector = staticmethod(selectors.invitation_list_for)
    list_display = ["email", "org", "project", "role", "status", "created_at", "expires_at", "invited_by"]
    list_filter = ["role"]
    search_fields = ["email", "org__name"]
    list_select_related = ["org", "project", "invited_by"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        base = ["org", "project", "email", "first_name", "last_name", "role"]
        return (
            base
            if obj is None
            else [*base, "status", "created_at", "expires_at", "invited_by", "accepted_at"]
        )

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        if db_field.name == "role":
            kwargs["choices"] = [c for c in Role.choices if c[0] != Role.OPERATOR]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        # Operators invite an org's admins (onboarding, or an org whose admins left): every active org;
        # any other invitation only where they administer the org (a support access), as the service says.
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "org" and authz.is_operator(request.user):
            field.queryset = Organization.objects.filter(is_active=True)
        return field

    def has_add_permission(self, request) -> bool:
        return authz.is_operator(request.user) or super().has_add_permission(request)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        invitation, _token = services.invitation_create(
            actor=request.user,
            org=data["org"],
            project=data.get("project"),
            email=data["email"],
            role=data["role"],
            first_name=data["first_name"],
            last_name=data["last_name"],
        )
        obj.pk = invitation.pk
        self.message_user(request, f"Invitation emailed to {invitation.email}.", messages.SUCCESS)

    @admin.action(description="Revoke the selected pending invitations")
    def revoke(self, request, queryset):
        for invitation in queryset:
            try:
                services.invitation_revoke(actor=request.user, invitation=invitation)
            except Exception as exc:  # ApplicationError: report per row and carry on
                self.message_user(request, f"{invitation.email}: {exc}", messages.WARNING)


# --- single sign-on ---------------------------------------------------------------------------------


@admin.register(IdpGroupMapping)
class IdpGroupMappingAdmin(AdministeredScopeAdmin):
    """Which IdP group gives which role; org admins manage their orgs' (applied at each sign-on)."""

    # Shown above the form: how a group name is confined to the org (tenancy/sso_rules.py).
    help_text = (
        "A mapping applies to people whose identity provider sends this group. When operators have given "
        "the organization its email domains, it applies only to people whose verified address is in "
        "them, and people of those domains get roles from their own organization's mappings only."
    )

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "group" and field is not None:
            field.help_text = f"{db_field.help_text} {self.help_text}"
        return field

    selector = staticmethod(selectors.idp_mapping_list_for)
    list_display = ["group", "org", "role", "project", "created_at", "created_by"]
    list_filter = ["role"]
    search_fields = ["group", "org__name", "project__name"]
    list_select_related = ["org", "project", "created_by"]

    def get_fields(self, request, obj=None):
        base = ["org", "group", "role", "project"]
        return base if obj is None else [*base, "created_at", "created_by"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        if db_field.name == "role":
            kwargs["choices"] = [c for c in Role.choices if c[0] != Role.OPERATOR]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is None:
            return self.has_add_permission(request)
        return authz.has_perm(request.user, "delete_idpgroupmapping", obj)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        mapping = services.idp_mapping_create(
            actor=request.user,
            org=data["org"],
            group=data["group"],
            role=data["role"],
            project=data.get("project"),
        )
        obj.pk = mapping.pk

    def service_delete(self, request, obj):
        services.idp_mapping_delete(actor=request.user, mapping=obj)


# --- quotas -----------------------------------------------------------------------------------------


class QuotaForm(forms.ModelForm):
    gpu_model_limits = forms.CharField(
        label="Per-GPU-model limits",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line: GPU model = count, e.g. NVIDIA-H100-80GB-HBM3 = 8. A model's limit "
        "counts its MIG slices too (1g.10gb = 1/7 GPU).",
    )

    class Meta:
        model = Quota
        fields = list(Quota.LIMIT_FIELDS)
        help_texts = {"gpus": f"Whole GPUs. {UNIT_NOTE}."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["gpu_model_limits"].initial = "\n".join(
                f"{row.gpu_model} = {row.gpus}" for row in self.instance.gpu_models.all()
            )

    def clean_gpu_model_limits(self) -> dict[str, int]:
        limits: dict[str, int] = {}
        for number, line in enumerate(self.cleaned_data["gpu_model_limits"].splitlines(), start=1):
            if not line.strip():
                continue
            model, sep, count = line.partition("=")
            # ASCII digits: str.isdigit() also takes "²" (int() then fails) and "٣" (a surprise).
            if not sep or not model.strip() or not re.fullmatch(r"[0-9]{1,9}", count.strip()):
                raise forms.ValidationError(f"Line {number}: write 'GPU model = count'.")
            if model.strip() in limits:
                raise forms.ValidationError(f"Line {number}: {model.strip()} appears twice.")
            limits[model.strip()] = int(count.strip())
        return limits


@admin.register(Quota)
class QuotaAdmin(TenancyAdmin):
    selector = staticmethod(selectors.quota_list_for)
    form = QuotaForm
    list_display = ["__str__", "gpus_in_use", *Quota.LIMIT_FIELDS, "updated_at"]
    list_select_related = ["org", "project__org"]
    search_fields = ["org__name", "project__name", "project__org__name"]

    def get_fields(self, request, obj=None):
        return [*Quota.LIMIT_FIELDS, "gpu_model_limits"]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        for _receiver, annotations in quota_usage_annotations.send(sender=Quota):
            queryset = queryset.annotate(**annotations)
        return queryset

    @admin.display(description="GPUs in use (MIG slices count N/7: 1g.10gb = 1/7 GPU)")
    def gpus_in_use(self, obj) -> str:
        units = getattr(obj, "gpu_units_in_use", None)
        if units is None:
            return "-"
        used = format_gpus(units)
        return f"{used} of {obj.gpus}" if obj.gpus is not None else f"{used} (no limit)"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        quota = self.get_queryset(request).filter(pk=object_id).first()
        if quota is not None and getattr(quota, "gpu_units_in_use", None) is not None:
            extra_context = (extra_context or {}) | {
                "subtitle": f"GPUs in use: {self.gpus_in_use(quota)}. {UNIT_NOTE}."
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is None:
            return self.admin_site.has_permission(request)
        if obj.org_id:
            return authz.is_operator(request.user)
        return authz.has_perm(request.user, "administer_organization", obj.project.org)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        services.quota_update(
            actor=request.user,
            quota=obj,
            gpu_models=data["gpu_model_limits"],
            **{field: data[field] for field in Quota.LIMIT_FIELDS},
        )


# The users, audit trail, support access and instance limits pages, registered in their own modules.
from tenancy import admin_audit, admin_support, admin_users, limit_admin  # noqa: E402,F401
