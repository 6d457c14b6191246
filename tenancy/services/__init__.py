"""Every write in tenancy: one transaction each, permission checked, audit event written inside it.

A package by subject (organizations, projects, roles and memberships, invitations, users, quotas,
single sign-on); every name other modules and tests use is importable from ``tenancy.services``.
"""

from tenancy.models import Project
from tenancy.selectors import invitation_for_token, is_member  # reads, importable from here as before
from tenancy.services.instance_limits import instance_limit_delete, instance_limit_set, instance_limit_update
from tenancy.services.invitations import (
    invitation_accept,
    invitation_create,
    invitation_revoke,
)
from tenancy.services.orgs import org_onboard, org_update
from tenancy.services.projects import project_create, project_delete, project_update
from tenancy.services.quotas import quota_update
from tenancy.services.roles import member_remove, operator_bootstrap, role_assign, role_revoke
from tenancy.services.sso import (
    IDP_GROUP_SYNC,
    NO_ORG_MESSAGE,
    idp_mapping_create,
    idp_mapping_delete,
    sso_login,
)
from tenancy.services.users import user_update

__all__ = [
    "IDP_GROUP_SYNC",
    "NO_ORG_MESSAGE",
    "Project",
    "idp_mapping_create",
    "idp_mapping_delete",
    "instance_limit_delete",
    "instance_limit_set",
    "instance_limit_update",
    "invitation_accept",
    "invitation_create",
    "invitation_for_token",
    "invitation_revoke",
    "is_member",
    "member_remove",
    "operator_bootstrap",
    "org_onboard",
    "org_update",
    "project_create",
    "project_delete",
    "project_update",
    "quota_update",
    "role_assign",
    "role_revoke",
    "sso_login",
    "user_update",
]
