"""Services of the operators' allow-list of custom resources (:class:`catalog.models.AllowedCustomResource`).

A template may create an object of a custom kind only while its (API group, kind) is on this list;
publish (``catalog.services.template_version_publish``) and apply (``instances.deployer.render``) both
check it. Only platform operators add or remove entries; each write is audited in its transaction.
Removing an entry does not touch running instances, but their next deploy or action is refused.
"""

from django.db import transaction

from catalog import templating
from catalog.models import AllowedCustomResource
from paas import authz
from paas.audit import audit_log
from paas.errors import ValidationFailed

MESSAGE = "Only platform operators decide which custom resources templates may create."


@transaction.atomic
def allowed_custom_resource_create(
    *, actor, group: str, kind: str, description: str = ""
) -> AllowedCustomResource:
    authz.require_operator(actor, message=MESSAGE)
    group, kind = (group or "").strip().lower(), (kind or "").strip()
    errors = templating.custom_kind_errors(group, kind)
    if errors:
        raise ValidationFailed("This is not a custom resource kind.", fields=errors)
    if AllowedCustomResource.objects.filter(group=group, kind=kind).exists():
        raise ValidationFailed(
            f"{kind} ({group}) is allowed already.", fields={"kind": f"{kind} ({group}) is allowed already."}
        )
    entry = AllowedCustomResource.objects.create(
        group=group, kind=kind, description=description or "", created_by=actor
    )
    audit_log(
        actor=actor,
        action="custom_resource.allow",
        target=entry,
        details={"group": group, "kind": kind, "description": entry.description},
    )
    return entry


@transaction.atomic
def allowed_custom_resource_delete(*, actor, entry: AllowedCustomResource) -> None:
    authz.require_operator(actor, message=MESSAGE)
    audit_log(
        actor=actor,
        action="custom_resource.disallow",
        target=entry,
        details={"group": entry.group, "kind": entry.kind},
    )
    entry.delete()


def allowed_custom_resource_ensure(*, actor, group: str, kind: str, description: str = "") -> bool:
    """Allow the kind unless it is allowed already (the system catalog loader); True when added."""
    if AllowedCustomResource.objects.filter(group=group, kind=kind).exists():
        authz.require_operator(actor, message=MESSAGE)
        return False
    allowed_custom_resource_create(actor=actor, group=group, kind=kind, description=description)
    return True
