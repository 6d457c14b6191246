"""Studio pages of warm pools (operators only): the pools with their live figures (desired in force,
ready, provisioning, claimed, next scheduled change, hits and misses, status and why), the pool page
with its schedules inline (saved through ``instances.pools``), "converge now", and the standby
instances, read-only."""

import copy

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from catalog.models import ComputeProfile
from instances import pool_schedules, pool_selectors, pools
from instances.models import PoolSchedule, StandbyInstance, WarmPool
from paas import authz
from paas.admin import ScopedModelAdmin
from paas.errors import ApplicationError, ValidationFailed

DAYS = [(0, "Mon"), (1, "Tue"), (2, "Wed"), (3, "Thu"), (4, "Fri"), (5, "Sat"), (6, "Sun")]
SCHEDULE_FIELDS = ["position", "name", "days", "start", "end", "timezone", "desired"]


def _when(moment) -> str:
    return timezone.localtime(moment).strftime("%a %Y-%m-%d %H:%M %Z") if moment else "—"


def _rate(rate) -> str:
    return f" ({rate:.0%})" if rate is not None else ""


class PoolScheduleForm(forms.ModelForm):
    days = forms.TypedMultipleChoiceField(
        choices=DAYS,
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
        help_text="For a rule past midnight: the day it starts.",
    )

    class Meta:
        model = PoolSchedule
        fields = SCHEDULE_FIELDS

    def clean_timezone(self):
        try:
            return pool_schedules.clean_timezone(self.cleaned_data["timezone"])
        except ValidationFailed as exc:
            raise forms.ValidationError(exc.fields["timezone"]) from None


class PoolScheduleInline(admin.TabularInline):
    """Schedules of the pool: the first (by position) that applies sets the desired capacity."""

    model = PoolSchedule
    form = PoolScheduleForm
    fields = SCHEDULE_FIELDS
    extra = 1

    def has_view_permission(self, request, obj=None) -> bool:
        return authz.is_operator(request.user)

    def has_add_permission(self, request, obj=None) -> bool:
        return authz.is_operator(request.user)

    def has_change_permission(self, request, obj=None) -> bool:
        return authz.is_operator(request.user)

    def has_delete_permission(self, request, obj=None) -> bool:
        return authz.is_operator(request.user)


class OperatorsOnly:
    def has_module_permission(self, request) -> bool:
        return authz.is_operator(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return authz.is_operator(request.user)


@admin.register(WarmPool)
class WarmPoolAdmin(OperatorsOnly, ScopedModelAdmin):
    selector = staticmethod(pool_selectors.pool_list_for)
    inlines = [PoolScheduleInline]
    actions = ["converge_now"]
    list_display = [
        "profile",
        "scope",
        "desired_now",
        "ready",
        "provisioning",
        "claimed_24h",
        "next_change",
        "hits_misses",
        "status_shown",
    ]
    list_filter = ["status", "enabled"]
    search_fields = ["profile__name", "profile__display_name", "cluster__name", "datacenter__name"]
    fields = [
        "profile",
        "datacenter",
        "cluster",
        "desired",
        "max_gpus",
        "enabled",
        "live",
        "status",
        "status_reason",
        "checked_at",
    ]
    live_fields = ["live", "status", "status_reason", "checked_at"]

    def has_add_permission(self, request) -> bool:
        return authz.is_operator(request.user)

    def has_change_permission(self, request, obj=None) -> bool:
        return authz.is_operator(request.user)

    def has_delete_permission(self, request, obj=None) -> bool:
        return authz.is_operator(request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "profile":  # only a warm-pool profile has pools
            kwargs["queryset"] = ComputeProfile.objects.filter(
                allocation_strategy=ComputeProfile.Allocation.WARM_POOL
            ).order_by("name", "pk")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        # A pool's profile is fixed; the profile's own pool (no scope) keeps no scope.
        if obj is None:
            return self.live_fields
        fixed = ["profile", "datacenter", "cluster"] if pools.is_default(obj) else ["profile"]
        return [*fixed, *self.live_fields]

    def get_fields(self, request, obj=None):
        return self.fields if obj else [f for f in self.fields if f not in self.live_fields]

    # --- the list: every row's figures in a few queries ----------------------------------------------
    def get_changelist_instance(self, request):
        """The rows' figures are computed once for the page (pool_selectors.pool_statuses), on a copy of
        this admin: the registered one is shared by every request of a threaded server."""
        scoped = copy.copy(self)
        changelist = super(WarmPoolAdmin, scoped).get_changelist_instance(request)
        changelist.result_list = list(changelist.result_list)
        scoped.statuses = pool_selectors.pool_statuses(changelist.result_list)
        return changelist

    def _status(self, obj) -> pool_selectors.PoolStatus:
        statuses = getattr(self, "statuses", None)
        if statuses is None or obj.pk not in statuses:
            return pool_selectors.pool_status(obj)
        return statuses[obj.pk]

    @admin.display(description="scope")
    def scope(self, obj) -> str:
        if obj.cluster_id:
            return f"cluster {obj.cluster.name}"
        if obj.datacenter_id:
            return f"datacenter {obj.datacenter.name}"
        return "anywhere (the profile's pool)"

    @admin.display(description="desired now")
    def desired_now(self, obj) -> str:
        return str(self._status(obj).desired)

    @admin.display(description="ready")
    def ready(self, obj) -> int:
        return self._status(obj).ready

    @admin.display(description="provisioning")
    def provisioning(self, obj) -> int:
        return self._status(obj).provisioning

    @admin.display(description="claimed (24 h)")
    def claimed_24h(self, obj) -> int:
        return self._status(obj).claimed_24h

    @admin.display(description="next change")
    def next_change(self, obj) -> str:
        status = self._status(obj)
        if status.next_change_at is None:
            return "—"
        return f"{status.next_change_desired} from {_when(status.next_change_at)}"

    @admin.display(description="hits / misses")
    def hits_misses(self, obj) -> str:
        s = self._status(obj)
        return (
            f"24 h: {s.hits_24h} / {s.misses_24h}{_rate(s.hit_rate_24h)} · "
            f"7 d: {s.hits_7d} / {s.misses_7d}{_rate(s.hit_rate_7d)}"
        )

    @admin.display(description="status")
    def status_shown(self, obj):
        status = self._status(obj)
        if not status.reason:
            return status.status_label
        return format_html("<strong>{}</strong><br><small>{}</small>", status.status_label, status.reason)

    @admin.display(description="now")
    def live(self, obj):
        s = self._status(obj)
        standbys = reverse("admin:instances_standbyinstance_changelist") + f"?pool__id__exact={obj.pk}"
        return format_html(
            "desired in force {} · ready {} · provisioning {} · retiring {} · failed {} · claimed in 24 h {}"
            "<br>next change: {}<br>hits / misses: {}<br><a href='{}'>Standby instances</a>",
            s.desired,
            s.ready,
            s.provisioning,
            s.retiring,
            s.failed,
            s.claimed_24h,
            self.next_change(obj),
            self.hits_misses(obj),
            standbys,
        )

    # --- writes through the services -----------------------------------------------------------------
    def save_model(self, request, obj, form, change):
        pass  # written in save_related, with the schedules

    def save_related(self, request, form, formsets, change):
        editable = ("datacenter", "cluster", "desired", "max_gpus", "enabled")
        data = {f: form.cleaned_data[f] for f in editable if f in form.cleaned_data}
        if change:
            pool = pools.pool_update(actor=request.user, pool=self.fresh(form.instance), **data)
        else:
            pool = pools.pool_create(actor=request.user, profile=form.cleaned_data["profile"], **data)
        form.instance.pk = pool.pk
        for formset in formsets:
            for row in formset.forms:
                self._save_schedule(request, pool, row)

    def _save_schedule(self, request, pool, row) -> None:
        data = getattr(row, "cleaned_data", None)
        if not data:
            return
        existing = row.instance if row.instance.pk else None
        values = {f: data[f] for f in SCHEDULE_FIELDS if f in data}
        if existing is not None and existing.pool_id != pool.pk:
            return  # not this pool's row (a forged id): nothing to do
        if data.get("DELETE"):
            if existing is not None:
                pools.schedule_delete(actor=request.user, schedule=PoolSchedule.objects.get(pk=existing.pk))
        elif existing is not None:
            if row.has_changed():
                pools.schedule_update(
                    actor=request.user, schedule=PoolSchedule.objects.get(pk=existing.pk), **values
                )
        elif row.has_changed():
            pools.schedule_create(actor=request.user, pool=pool, **values)

    def service_delete(self, request, obj):
        pools.pool_delete(actor=request.user, pool=obj)

    @admin.action(description="Converge the selected pools now")
    def converge_now(self, request, queryset):
        for pool in queryset:
            try:
                pools.pool_converge_now(actor=request.user, pool=pool)
                self.message_user(request, f"{pool}: the control loop runs now.", messages.SUCCESS)
            except ApplicationError as exc:
                self.message_user(request, f"{pool}: {exc.message}", messages.ERROR)


@admin.register(StandbyInstance)
class StandbyInstanceAdmin(OperatorsOnly, ScopedModelAdmin):
    """Standby instances of the warm pools, as the control loop and the deployer leave them."""

    selector = staticmethod(pool_selectors.standby_list_for)
    list_display = ["namespace", "pool", "cluster", "state", "state_reason", "ready_at", "claimed_by"]
    list_filter = ["state", "cluster", "pool"]
    search_fields = ["namespace", "cluster__name", "profile__name"]
    fields = [
        "pool",
        "profile",
        "cluster",
        "namespace",
        "state",
        "state_reason",
        "claimed_by",
        "attempts",
        "gpus",
        "gpus_by_model",
        "mig_slices",
        "cpu_millis",
        "memory_gib",
        "created_at",
        "ready_at",
        "claimed_at",
        "retired_at",
        "heartbeat_at",
    ]
    readonly_fields = fields

    @admin.display(description="claimed by", ordering="instance__name")
    def claimed_by(self, obj) -> str:
        if obj.instance_id is None:
            return "—"
        return f"{obj.instance.project}/{obj.instance.name}"
