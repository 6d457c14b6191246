"""The one list of the roles a test can act as, and how to pick the `world` user behind each.

``TENANT_ROLES`` are the keys of each tenant's ``users`` in the ``world`` fixture (tests/conftest.py):
one user per tenant role, the PaaS admin twice (held on the org, and on the 'team' project only).
``EVERYONE`` adds the operator and an outsider, for the role matrices run against tenant A; ``SUPPORT``
the operator again, holding a read or an admin support access to tenant A (``WITH_SUPPORT`` all of them).
Without one, an operator is an outsider inside an org (they run orgs, not what is in them).
"""

TENANT_ROLES = [
    "org_admin",
    "paas_admin_org",
    "paas_admin_project",
    "workspace_admin",
    "collaborator_rw",
    "collaborator_ro",
]
EVERYONE = ["operator", *TENANT_ROLES, "outsider"]
SUPPORT = ["operator_read", "operator_admin"]
WITH_SUPPORT = [*EVERYONE, *SUPPORT]
OPERATORS = {"operator", *SUPPORT}


def user_for(world, who: str):
    """The user acting as ``who`` on tenant A; the outsider is tenant B's org admin (an admin of another
    org is an outsider to A); ``operator_read``/``operator_admin`` the operator given that support
    access to A (a row written here)."""
    if who == "operator":
        return world.operator
    if who in SUPPORT:
        from tests.support.support import grant_support

        grant_support(operator=world.operator, org=world.a.org, level=who.removeprefix("operator_"))
        return world.operator
    if who == "outsider":
        return world.b.users["org_admin"]
    return world.a.users[who]
