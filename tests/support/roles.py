"""The one list of the roles a test can act as, and how to pick the `world` user behind each.

``TENANT_ROLES`` are the keys of each tenant's ``users`` in the ``world`` fixture (tests/conftest.py):
one user per tenant role, the PaaS admin twice (held on the org, and on the 'team' project only).
``EVERYONE`` adds the operator and an outsider, for the role matrices run against tenant A.
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


def user_for(world, who: str):
    """The user acting as ``who`` on tenant A; the outsider is tenant B's org admin (an admin of another
    org is an outsider to A)."""
    if who == "operator":
        return world.operator
    if who == "outsider":
        return world.b.users["org_admin"]
    return world.a.users[who]
