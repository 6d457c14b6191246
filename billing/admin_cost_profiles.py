"""Studio pages of cluster cost profiles (chargeback rates), operators only: every cluster's rates with
their history (newest first, each marked future, in force or past), a filter per cluster, and the add
page, which starts from the rates in force on the cluster chosen (``?cluster=<id>``). Rates are never
edited: a change is a new cost profile from a time on; only one not in force yet may be deleted.
Everything is written through ``billing.cost_profiles``, whose errors are shown beside the fields."""

import copy
from decimal import Decimal

from django import forms
from django.contrib import admin
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from billing import cost_profile_selectors, cost_profiles
from billing.models import CostProfile
from catalog.admin_base import JSONText
from paas.admin import OperatorOnlyAdmin
from paas.validation import is_id

FORM_FIELDS = list(cost_profiles.INPUT_FIELDS)


class CostProfileForm(forms.ModelForm):
    effective_from = forms.SplitDateTimeField(
        required=False,
        widget=admin.widgets.AdminSplitDateTime,
        help_text="UTC. Empty: now. The rates apply to the hours starting at or after it; hours the "
        "roll-up has closed keep the rates they were charged at.",
    )
    gpu_hour = JSONText(
        required=False,
        initial=dict,
        help_text='Per GPU-hour by GPU model (as nodes report it), e.g. {"A100-SXM4-40GB": "2.50"}.',
    )
    mig_slice_hour = JSONText(
        required=False, initial=dict, help_text='Per MIG-slice-hour by MIG profile, e.g. {"1g.10gb": "0.40"}.'
    )

    class Meta:
        model = CostProfile
        fields = FORM_FIELDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["cluster"].queryset = self.fields["cluster"].queryset.order_by("name")
        self.fields["currency"].help_text = "ISO 4217, e.g. USD."


def _rate(value) -> str:
    return f"{Decimal(str(value)).normalize():f}"


@admin.register(CostProfile)
class CostProfileAdmin(OperatorOnlyAdmin):
    selector = staticmethod(cost_profile_selectors.cost_profile_list_for)
    form = CostProfileForm
    list_display = ["cluster", "effective_from", "standing", "currency", "rates", "created_by", "created_at"]
    list_filter = ["cluster"]
    search_fields = ["cluster__name"]
    fields = FORM_FIELDS

    # --- operators only --------------------------------------------------------------------------------
    def has_delete_permission(self, request, obj=None) -> bool:
        # Offered for rates not in force yet; the service refuses the others with the reason.
        if not super().has_delete_permission(request, obj):
            return False
        return obj is None or self._standing(obj) == cost_profile_selectors.FUTURE

    def changelist_view(self, request, extra_context=None):
        extra = {
            "title": "Cost profiles (chargeback rates)",
            "subtitle": "A change of rates is a new cost profile from a time on; past hours keep theirs.",
        }
        return super().changelist_view(request, {**extra, **(extra_context or {})})

    # --- the list --------------------------------------------------------------------------------------
    def get_changelist_instance(self, request):
        """Which profile is in force on each cluster is read once for the page, on a copy of this admin
        (the registered one is shared by every request of a threaded server)."""
        scoped = copy.copy(self)
        scoped.in_force = cost_profile_selectors.in_force_ids(None)
        return super(CostProfileAdmin, scoped).get_changelist_instance(request)

    def _standing(self, obj) -> str:
        in_force = getattr(self, "in_force", None)
        if in_force is None:
            in_force = cost_profile_selectors.in_force_ids([obj.cluster_id])
        return cost_profile_selectors.standing(obj, in_force)

    @admin.display(description="standing")
    def standing(self, obj):
        value = self._standing(obj)
        return (
            format_html("<strong>{}</strong>", value) if value == cost_profile_selectors.IN_FORCE else value
        )

    @admin.display(description="rates (per hour)")
    def rates(self, obj):
        parts = [f"GPU {model} {_rate(rate)}" for model, rate in (obj.gpu_hour or {}).items()]
        parts += [f"MIG {name} {_rate(rate)}" for name, rate in (obj.mig_slice_hour or {}).items()]
        parts += [
            f"CPU {_rate(obj.cpu_hour)}",
            f"memory GiB {_rate(obj.memory_gib_hour)}",
            f"storage GiB {_rate(obj.storage_gib_hour)}",
        ]
        return " · ".join(parts)

    # --- the add page: from the rates in force on the chosen cluster -------------------------------------
    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        cluster = request.GET.get("cluster")
        if cluster and is_id(cluster):
            current = (
                cost_profile_selectors.cost_profile_list_for(request.user)
                .filter(pk__in=cost_profile_selectors.in_force_ids([int(cluster)]))
                .first()
            )
            if current is not None:
                initial.update(
                    {
                        "currency": current.currency,
                        "gpu_hour": current.gpu_hour,
                        "mig_slice_hour": current.mig_slice_hour,
                        "cpu_hour": current.cpu_hour,
                        "memory_gib_hour": current.memory_gib_hour,
                        "storage_gib_hour": current.storage_gib_hour,
                    }
                )
        return initial

    def view_on_site(self, obj):
        return None

    def add_view(self, request, form_url="", extra_context=None):
        return super().add_view(request, form_url, {"title": "Add cluster rates", **(extra_context or {})})

    # --- writes through the services -------------------------------------------------------------------
    def save_model(self, request, obj, form, change):
        data = {f: form.cleaned_data.get(f) for f in FORM_FIELDS}
        for name in ("cpu_hour", "memory_gib_hour", "storage_gib_hour"):
            if data[name] is None:
                data[name] = 0
        profile = cost_profiles.cost_profile_set(actor=request.user, **data)
        obj.pk = profile.pk

    def service_delete(self, request, obj):
        cost_profiles.cost_profile_delete(actor=request.user, profile=obj)

    def response_add(self, request, obj, post_url_continue=None):
        saved = CostProfile.objects.select_related("cluster").get(pk=obj.pk)
        self.message_user(
            request, f"Rates for {saved.cluster} from {saved.effective_from:%Y-%m-%d %H:%M:%S} UTC added."
        )
        url = reverse("admin:billing_costprofile_changelist") + f"?cluster__id__exact={saved.cluster_id}"
        return HttpResponseRedirect(url)
