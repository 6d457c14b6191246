"""Actions API: list and run a compute instance's or a service's template actions; redeploy a service
(day-2). Each run answers 202 with the queued run; 400 with field messages for bad variables or
inputs, 403 for someone who sees the target but may not act on it, 404 for one who does not see it,
409 when the target's state does not allow it."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog import secret_inputs
from instances import actions, selectors, service_selectors
from instances.api.serializers import RunSerializer
from instances.models import Run

ACTION_NAME = r"(?P<action>[A-Za-z][A-Za-z0-9_]{0,62})"


class ActionRunSerializer(RunSerializer):
    """A run, with what an action run ran (secret variables masked) and who asked for it."""

    variables = serializers.SerializerMethodField()
    requested_by = serializers.CharField(source="requested_by.email", read_only=True, default=None)

    class Meta(RunSerializer.Meta):
        model = Run
        fields = [*RunSerializer.Meta.fields, "instance", "service", "variables", "requested_by"]

    def get_variables(self, obj) -> dict:
        return secret_inputs.masked(obj.variables or {})


class ActionVariableSerializer(serializers.Serializer):
    name = serializers.CharField()
    alias = serializers.CharField()
    tooltip = serializers.CharField(allow_blank=True)
    type = serializers.CharField()
    options = serializers.ListField(child=serializers.CharField())
    default = serializers.JSONField(allow_null=True)


class ActionSpecSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    variables = ActionVariableSerializer(many=True)


class ActionListSerializer(serializers.Serializer):
    actions = ActionSpecSerializer(many=True)
    may_run = serializers.BooleanField(help_text="Whether you may run these actions.")


class ServiceActionListSerializer(ActionListSerializer):
    redeploy_refusal = serializers.CharField(
        allow_null=True, help_text="Why the service cannot be redeployed now (null when it can)."
    )


class ActionRequestSerializer(serializers.Serializer):
    variables = serializers.DictField(
        required=False,
        default=dict,
        help_text="Values of the action's overridable variables, by name (fixed ones are refused).",
    )


class RedeployRequestSerializer(serializers.Serializer):
    inputs = serializers.DictField(
        required=False, default=dict, help_text="Changed values of the service's overridable inputs."
    )


def _listing(user, target) -> dict:
    return {"actions": actions.actions_for(target), "may_run": actions.may_act(user, target)}


def _run(request, target, action: str) -> Response:
    body = ActionRequestSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    run = actions.action_run(
        actor=request.user, target=target, action=action, variables=body.validated_data["variables"]
    )
    return Response(ActionRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class InstanceActionListView(APIView):
    """The compute instance's actions (a compute instance's variables are fixed: none are listed)."""

    @extend_schema(responses=ActionListSerializer, operation_id="instances_actions_list")
    def get(self, request, pk):
        instance = selectors.instance_get_for(request.user, pk)
        return Response(ActionListSerializer(_listing(request.user, instance)).data)


class InstanceActionRunView(APIView):
    """Run one of the compute instance's actions (``stop`` releases its GPUs, CPU and memory; ``start``
    takes them again through the quota and capacity checks of a launch)."""

    @extend_schema(
        request=ActionRequestSerializer,
        responses={202: ActionRunSerializer},
        operation_id="instances_action_run",
    )
    def post(self, request, pk, action):
        return _run(request, selectors.instance_get_for(request.user, pk), action)


class ServiceActionListView(APIView):
    """The service's actions with the variables you may set (alias, tooltip, default), and whether
    it may be redeployed (day-2)."""

    @extend_schema(responses=ServiceActionListSerializer, operation_id="service_instances_actions_list")
    def get(self, request, pk):
        service = service_selectors.service_get_for(request.user, pk)
        data = _listing(request.user, service) | {"redeploy_refusal": actions.day2_refusal(service)}
        return Response(ServiceActionListSerializer(data).data)


class ServiceActionRunView(APIView):
    """Run one of the service's actions."""

    @extend_schema(
        request=ActionRequestSerializer,
        responses={202: ActionRunSerializer},
        operation_id="service_instances_action_run",
    )
    def post(self, request, pk, action):
        return _run(request, service_selectors.service_get_for(request.user, pk), action)


class ServiceRedeployView(APIView):
    """Redeploy a ready service with changed overridable inputs (its profile must carry the label
    ``ALLOW_DAY2_OPERATIONS: "true"``; otherwise 409 says why not)."""

    @extend_schema(
        request=RedeployRequestSerializer,
        responses={202: ActionRunSerializer},
        operation_id="service_instances_redeploy",
    )
    def post(self, request, pk):
        service = service_selectors.service_get_for(request.user, pk)
        body = RedeployRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run = actions.service_redeploy(
            actor=request.user, service=service, inputs=body.validated_data["inputs"]
        )
        return Response(ActionRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)
