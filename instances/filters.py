"""Filters of the portal's instances list (django-filter, so the form and its labels come for free)."""

import django_filters
from django import forms

from instances.states import State

STATE_CHOICES = [("active", "Active (not deleted)"), *State.choices, ("all", "All, with deleted")]


class InstanceFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Name contains")
    state = django_filters.ChoiceFilter(
        choices=STATE_CHOICES, method="filter_state", label="Status", empty_label=None
    )
    size = django_filters.ChoiceFilter(method="filter_size", label="Size", empty_label="Any size")
    mine = django_filters.BooleanFilter(
        method="filter_mine", label="Launched by me", widget=forms.CheckboxInput
    )

    def __init__(self, *args, sizes: list[str] = (), user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.filters["size"].extra["choices"] = [(s, s) for s in sizes]
        if not self.data.get("state"):
            self.data = self.data.copy()
            self.data["state"] = "active"

    def filter_state(self, queryset, name, value):
        if value == "active":
            return queryset.exclude(state=State.DELETED)
        if value == "all":
            return queryset
        return queryset.filter(state=value)

    def filter_size(self, queryset, name, value):
        return queryset.filter(size=value) if value else queryset

    def filter_mine(self, queryset, name, value):
        return queryset.filter(owner=self.user) if value else queryset
