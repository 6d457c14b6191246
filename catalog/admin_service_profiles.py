"""The service profile pages of the studio: the list (unique name, service type, creation date,
sharing, search, the actions menu) and the create/edit wizard, whose sections follow the reference in
order. The input, output and action settings are tables of the chosen template version's inputs,
outputs and action variables; changing the version rebuilds them (with htmx, or on submit without it),
keeping the values of names that still exist. Everything is saved through ``catalog.services``, which
validates it again; its errors are shown where they belong, with nothing typed lost.
"""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from catalog import selectors, services
from catalog.admin_profiles import ProfileAdmin
from catalog.admin_wizard import (
    KEY_VALUE_SECTIONS,
    SECTIONS,
    ProfileForm,
    SettingsTables,
    key_value_formset,
    versions_of,
)
from catalog.models import ServiceProfile
from catalog.pricing import COST_FIELDS, price_label
from paas import authz
from paas.errors import ApplicationError

PROFILE_FIELDS = [
    "display_name",
    "description",
    "template_version",
    "service_type",
    "datacenter",
    "datacenter_exposed",
    "datacenter_overridable",
    "storage_exposed",
    "storage_overridable",
    "icon_url",
    "readme",
    *COST_FIELDS,
    "published",
]


@admin.register(ServiceProfile)
class ServiceProfileAdmin(ProfileAdmin):
    selector = staticmethod(selectors.service_profile_list_for)
    # The reference's columns (name, service type, creation date, sharing, the actions menu) and the price.
    list_display = ["name", "service_type", "price", "created_at", "sharing_label", "scope", "actions_menu"]
    list_display_links = ["name"]
    list_filter = ["service_type", "published"]
    search_fields = ["name", "display_name", "description"]
    # What the wizard edits (the audit-coverage test asks which fields a change page offers).
    fields = ["project", "name", *PROFILE_FIELDS, "storages", "labels", "annotations", "extra_config"]

    @admin.display(description="price")
    def price(self, obj) -> str:
        return price_label(obj)

    def extra_urls(self, prefix: str) -> list:
        return [
            path(
                "wizard/tables/", self.admin_site.admin_view(self.tables_view), name=f"{prefix}_wizardtables"
            ),
            path(
                "wizard/storage/",
                self.admin_site.admin_view(self.storage_view),
                name=f"{prefix}_wizardstorage",
            ),
        ]

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Service profiles", **(extra_context or {})})

    # --- the wizard -----------------------------------------------------------------------------------
    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        return self.wizard(request, None)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        profile = self.get_object(request, unquote(object_id))
        if profile is None:
            raise Http404("No such service profile.")
        return self.wizard(request, profile)

    def _initial(self, profile: ServiceProfile | None) -> dict:
        if profile is None:
            return {"service_type": ServiceProfile.ServiceType.NOTEBOOK}
        return {
            "project": profile.project_id,
            "name": profile.name,
            **{f: getattr(profile, f) for f in PROFILE_FIELDS if f not in {"template_version", "datacenter"}},
            "template": profile.template_version.template_id,
            "template_version": profile.template_version_id,
            "datacenter": profile.datacenter_id,
            "storages": [s.pk for s in profile.storages.all()],
            "tables_version": profile.template_version_id,
        }

    def wizard(self, request, profile: ServiceProfile | None):
        user = request.user
        editable = profile is None or self.has_change_permission(request, profile)
        post = request.POST if request.method == "POST" and editable else None
        form = ProfileForm(post, user=user, instance=profile, initial=self._initial(profile))
        add_row = (post or {}).get("_addrow")
        key_values = {
            section: key_value_formset(
                section,
                data=post,
                mapping=getattr(profile, field) if profile else None,
                more=1 if add_row == section else 0,
            )
            for section, field in KEY_VALUE_SECTIONS.items()
        }
        if post is None:
            version = profile.template_version if profile else None
            settings = (
                (profile.input_settings, profile.output_settings, profile.action_settings)
                if profile
                else None
            )
            tables = SettingsTables(version, settings=settings)
        else:
            tables = self._posted_tables(form, post)
        section_errors: dict[str, list[str]] = {}
        notes: list[str] = []
        if post is not None and not add_row:
            rebuilt = not tables.bound and tables.has_rows()
            if rebuilt:
                notes.append(
                    f"The settings tables now follow {tables.version}: review them, then save again."
                )
            elif all([form.is_valid(), tables.is_valid(), *(kv.is_valid() for kv in key_values.values())]):
                saved = self._save(request, profile, form, key_values, tables, section_errors)
                if saved is not None:
                    return saved
            else:
                for section, formset in key_values.items():
                    section_errors.setdefault(section, []).extend(formset.non_form_errors())
        if not editable:
            for f in form.fields.values():
                f.disabled = True
            tables.disable()
        context = {
            **self.admin_site.each_context(request),
            "title": f"Edit {profile.name}"
            if profile and editable
            else str(profile or "New service profile"),
            "subtitle": None,
            "opts": self.model._meta,
            "profile": profile,
            "editable": editable,
            "form": form,
            "sections": self._sections(form, key_values, section_errors),
            "key_values": key_values,
            "tables": tables,
            "section_errors": section_errors,
            "notes": notes,
            "storage_choices": form.storage_choices(user),
            "versions": self._version_choices(form, user, tables.version),
            "chosen_version": tables.version,
            "tenant_copy_note": bool(profile and profile.org_id is None and not authz.is_operator(user)),
        }
        return TemplateResponse(request, "admin/catalog/serviceprofile/wizard.html", context)

    def _posted_tables(self, form, post) -> SettingsTables:
        """The tables as posted; rebuilt (keeping values by name) when the chosen version is not the one
        they were built for."""
        version = self._posted_version(form, post)
        posted_for = post.get("tables_version")
        if version is not None and str(version.pk) == str(posted_for):
            return SettingsTables(version, data=post)
        previous = SettingsTables(None, data=post)
        return SettingsTables(version, settings=previous.raw_settings())

    def _posted_version(self, form, post):
        versions = form.fields["template_version"].queryset
        template_id, version_id = post.get("template"), post.get("template_version")
        try:
            version = versions.filter(pk=int(version_id)).first() if version_id else None
            if template_id and (version is None or str(version.template_id) != str(template_id)):
                version = (
                    versions.filter(template_id=int(template_id)).order_by("-published_at", "-pk").first()
                )
        except (TypeError, ValueError):
            return None
        return version

    def _version_choices(self, form, user, version=None) -> list:
        template = form["template"].value() or (version.template_id if version else None)
        versions = versions_of(user).order_by("-published_at", "-pk")
        try:
            return list(versions.filter(template_id=int(template))) if template else []
        except (TypeError, ValueError):
            return []

    def _sections(self, form, key_values, section_errors) -> list[dict]:
        return [
            {
                "anchor": anchor,
                "title": title,
                "fields": [form[name] for name in names],
                "help": help_text,
                "number": number,
                "formset": key_values.get(anchor),
                "errors": section_errors.get(anchor, []),
            }
            for number, (anchor, title, names, help_text) in enumerate(SECTIONS, start=1)
        ]

    def _save(self, request, profile, form, key_values, tables, section_errors):
        data = {f: form.cleaned_data.get(f) for f in PROFILE_FIELDS}
        data["description"] = data["description"] or ""
        data["icon_url"] = data["icon_url"] or ""
        data["readme"] = data["readme"] or ""
        data["labels"] = key_values["labels"].mapping()
        data["annotations"] = key_values["annotations"].mapping()
        data["extra_config"] = key_values["extra"].mapping()
        data["input_settings"], data["output_settings"], data["action_settings"] = tables.settings()
        storages = list(form.cleaned_data.get("storages") or [])
        try:
            if profile is None:
                name = form.cleaned_data["name"]
                data["display_name"] = data["display_name"] or name
                saved = services.profile_create(
                    actor=request.user,
                    model=ServiceProfile,
                    project=form.cleaned_data.get("project"),
                    name=name,
                    storages=storages,
                    **data,
                )
            else:
                data["display_name"] = data["display_name"] or profile.name
                saved = services.profile_update(
                    actor=request.user, profile=self.fresh(profile), storages=storages, **data
                )
        except ApplicationError as exc:
            self._place_errors(exc, form, tables, section_errors)
            return None
        if profile is not None and saved.pk != profile.pk:
            note = f"Saved as {saved.org}'s own copy of {profile.name}; the system original is unchanged."
        elif profile is not None:
            note = f"Service profile {saved.name} saved. Only services launched from now on use the change."
        else:
            note = f"Service profile {saved.name} created."
        self.message_user(request, note, messages.SUCCESS)
        if "_continue" in request.POST:
            return redirect(reverse("admin:catalog_serviceprofile_change", args=[saved.pk]))
        return redirect(reverse("admin:catalog_serviceprofile_changelist"))

    def _place_errors(self, exc: ApplicationError, form, tables, section_errors) -> None:
        sections = {field: section for section, field in KEY_VALUE_SECTIONS.items()}
        unplaced = []
        for field, field_messages in exc.fields.items():
            if field in form.fields:
                for message in field_messages:
                    form.add_error(field, message)
            elif field in sections:
                section_errors.setdefault(sections[field], []).extend(field_messages)
            elif field in {"input_settings", "output_settings", "action_settings"}:
                left = tables.place_errors(field, list(field_messages))
                key = {"input_settings": "inputs", "output_settings": "outputs"}.get(field, "actions")
                if left:
                    section_errors.setdefault(key, []).extend(left)
            else:
                unplaced.extend(field_messages)
        form.add_error(None, " ".join([exc.message, *unplaced]))

    # --- htmx fragments (read only) ---------------------------------------------------------------------
    def tables_view(self, request):
        """The version choice and the settings tables for the posted template/version, keeping the
        posted rows' values by name (htmx: the template or the version changed)."""
        if not self.has_add_permission(request) or request.method != "POST":
            raise PermissionDenied
        form = ProfileForm(request.POST, user=request.user)
        version = self._posted_version(form, request.POST)
        previous = SettingsTables(None, data=request.POST)
        tables = SettingsTables(version, settings=previous.raw_settings())
        context = {
            "form": form,
            "tables": tables,
            "versions": self._version_choices(form, request.user, version),
            "chosen_version": version,
            "editable": True,
            "oob": True,
        }
        return TemplateResponse(request, "admin/catalog/serviceprofile/_template_dependent.html", context)

    def storage_view(self, request):
        """The storage choices for a datacenter (htmx: the datacenter changed). The same rule is enforced
        when the profile is saved."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ProfileForm(request.GET, user=request.user)
        context = {"storage_choices": form.storage_choices(request.user), "editable": True}
        return TemplateResponse(request, "admin/catalog/serviceprofile/_storage_choices.html", context)
