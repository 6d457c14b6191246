"""The roles of DESIGN and the object permissions each one grants at its scope."""

from django.db import models


class Role(models.TextChoices):
    OPERATOR = "operator", "Operator"
    ORG_ADMIN = "org_admin", "Org admin"
    PAAS_ADMIN = "paas_admin", "PaaS admin"
    WORKSPACE_ADMIN = "workspace_admin", "Workspace admin"
    COLLABORATOR_RW = "collaborator_rw", "Collaborator (read-write)"
    COLLABORATOR_RO = "collaborator_ro", "Collaborator (read-only)"


PLATFORM_ROLES = {Role.OPERATOR}
ORG_ROLES = {Role.ORG_ADMIN, Role.PAAS_ADMIN}  # PaaS admin may also be held on one project
PROJECT_ROLES = {Role.PAAS_ADMIN, Role.WORKSPACE_ADMIN, Role.COLLABORATOR_RW, Role.COLLABORATOR_RO}

# Permissions a role grants on the organization it is held on.
ORG_PERMISSIONS: dict[str, set[str]] = {
    Role.ORG_ADMIN: {
        "view_organization",
        "change_organization",
        "administer_organization",
        "view_audit",
        "manage_catalog",
    },
    Role.PAAS_ADMIN: {"view_organization", "manage_catalog"},
}

# Permissions a role grants on the project it is held on.
PROJECT_PERMISSIONS: dict[str, set[str]] = {
    Role.PAAS_ADMIN: {"view_project", "manage_catalog"},
    Role.WORKSPACE_ADMIN: {"view_project", "view_instances", "manage_instances", "manage_services"},
    Role.COLLABORATOR_RW: {"view_project", "view_instances", "manage_services"},
    Role.COLLABORATOR_RO: {"view_project", "view_instances"},
}

# Roles that open the PaaS Studio (the Django admin) besides the operator.
STUDIO_ROLES = {Role.ORG_ADMIN, Role.PAAS_ADMIN}

# Roles held in a tenant (everything but operator): what invitations and IdP group mappings may give.
TENANT_ROLE_CHOICES = [choice for choice in Role.choices if choice[0] != Role.OPERATOR]
