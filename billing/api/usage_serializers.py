"""The billing usage API's answer, described for the OpenAPI schema (the view builds plain dicts in
``usage_query``; these serializers document their shape)."""

from rest_framework import serializers


class _Ref(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True, help_text="Empty once the object is deleted.")
    name = serializers.CharField(help_text="As it was at launch (kept when the object is gone).")


class _Instance(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["compute", "service"])
    id = serializers.IntegerField()
    name = serializers.CharField()
    launched_at = serializers.DateTimeField()
    deleted_at = serializers.DateTimeField(allow_null=True)


class _Price(serializers.Serializer):
    currency = serializers.CharField(help_text="ISO 4217, e.g. USD.")
    amount = serializers.CharField(help_text='Price per unit, a decimal string ("1.0000").')
    unit = serializers.ChoiceField(choices=["hour", "day", "month"], help_text="A month is 730 hours.")
    billing_model = serializers.ChoiceField(
        choices=["on_demand", "reserved"],
        help_text="on_demand: running time at amount, stopped/deleting time at stopped_amount; "
        "reserved: amount for the whole time the instance exists.",
    )
    stopped_amount = serializers.CharField(help_text="Price per unit while stopped or deleting (storage).")


class _Seconds(serializers.Serializer):
    running_seconds = serializers.IntegerField()
    stopped_seconds = serializers.IntegerField()
    deleting_seconds = serializers.IntegerField()
    existing_seconds = serializers.IntegerField(help_text="Launched and not deleted, within the period.")
    billable_seconds = serializers.IntegerField(
        help_text="What the price is charged for: running on demand, existing reserved."
    )
    billable_hours = serializers.CharField(help_text="billable_seconds / 3600, 6 places.")
    cost = serializers.CharField(help_text="The list-price cost, 6 places (exact value rounded half up).")


class UsageRowSerializer(_Seconds):
    meter = serializers.IntegerField(help_text="The meter id (the pagination key).")
    instance = _Instance()
    org = _Ref()
    project = _Ref()
    owner = _Ref()
    profile = _Ref()
    cluster = _Ref()
    price = _Price()


class _ModelTotal(_Seconds):
    instances = serializers.IntegerField()


class UsageTotalSerializer(serializers.Serializer):
    currency = serializers.CharField()
    cost = serializers.CharField(help_text="On demand and reserved together, 6 places.")
    on_demand = _ModelTotal()
    reserved = _ModelTotal()


class _Period(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField(help_text="Exclusive.")
    as_of = serializers.DateTimeField(help_text="The figures count up to here (the end once it has passed).")
    closed = serializers.BooleanField(help_text="The period has ended: its figures never change.")


class UsagePageSerializer(serializers.Serializer):
    period = _Period()
    filters = serializers.DictField(help_text="The filters applied, as understood.")
    totals = UsageTotalSerializer(
        many=True,
        allow_null=True,
        help_text="The whole filtered period (all pages), per currency; on the first page (null on the "
        "following ones).",
    )
    next = serializers.URLField(allow_null=True, help_text="The next page, or null on the last one.")
    results = UsageRowSerializer(many=True)
