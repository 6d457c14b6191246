"""Team workspaces: create, change, delete (personal ones are made as users join)."""

from django.db import transaction
from django.db.models import ProtectedError

from paas import authz
from paas.audit import apply_changes, audit_log
from paas.errors import Conflict, ValidationFailed
from tenancy.models import Organization, Project, Quota, User
from tenancy.services.common import _required_text, _sync_flags
from tenancy.signals import project_deleting
from tenancy.validation import clean_slug


@transaction.atomic
def project_create(
    *, actor: User, org: Organization, name: str, display_name: str = "", description: str = ""
) -> Project:
    """Create a team workspace (personal ones are created for users as they join)."""
    authz.require(actor, "administer_organization", org, message="Only org admins may create projects.")
    name = clean_slug("name", name)
    if Project.objects.filter(org=org, name=name).exists():
        raise ValidationFailed(
            "The project could not be created.",
            fields={"name": f"A project named {name!r} already exists in {org.name}."},
        )
    project = Project.objects.create(
        org=org, name=name, display_name=(display_name or "").strip() or name, description=description or ""
    )
    Quota.objects.create(project=project)
    audit_log(
        actor=actor, action="project.create", target=project, project=project, details={"kind": project.kind}
    )
    return project


@transaction.atomic
def project_update(
    *, actor: User, project: Project, display_name: str | None = None, description: str | None = None
) -> Project:
    authz.require(actor, "change_project", project, message="Only org admins may change projects.")
    data = {}
    if display_name is not None:
        data["display_name"] = _required_text("display_name", display_name)
    if description is not None:
        data["description"] = description
    changes = apply_changes(project, data)
    if changes:
        project.save()
        audit_log(
            actor=actor,
            action="project.update",
            target=project,
            project=project,
            details={"changes": changes},
        )
    return project


def _still_holds(project: Project, protected) -> str:
    counts: dict[str, int] = {}
    for obj in protected:
        meta = obj._meta
        counts[str(meta.verbose_name_plural)] = counts.get(str(meta.verbose_name_plural), 0) + 1
    what = ", ".join(f"{count} {noun}" for noun, count in sorted(counts.items()))
    return (
        f"The workspace {project.display_name or project.name} is still used by {what}: "
        "delete or move them first."
    )


@transaction.atomic
def project_delete(*, actor: User, project: Project) -> None:
    authz.require(actor, "delete_project", project, message="Only org admins may delete projects.")
    if project.kind == Project.Kind.PERSONAL:
        raise Conflict("A personal workspace cannot be deleted; it belongs to its owner's membership.")
    audit_log(
        actor=actor,
        action="project.delete",
        target=project,
        project=project,
        details={"name": project.name, "display_name": project.display_name},
    )
    project_deleting.send(sender=Project, project=project, actor=actor)  # instances refuse while live
    members = list(User.objects.filter(role_assignments__project=project).distinct())
    try:
        with transaction.atomic():
            project.delete()
    except ProtectedError as exc:
        # Instances (and what else other apps keep in a workspace) protect it: say what is left.
        raise Conflict(_still_holds(project, exc.protected_objects), code="project_not_empty") from exc
    for user in members:
        _sync_flags(user)
