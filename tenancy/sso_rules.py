"""What a single sign-on may match: verified email addresses, and IdP group mappings confined by org.

**Verified email.** The provider's ``email_verified`` claim must be true (no claim: not verified) before
an address is trusted to say who someone is: linking a sign-on to an existing account by address,
accepting an invitation sent to that address, being added as an instance's collaborator by address.
Otherwise anyone who can set an unverified address at the provider would inherit what was meant for the
address's owner.

**Org confinement of group mappings.** Groups are plain strings from a provider that several orgs share,
so org Y's admin could map a group name that org X's people also carry and gain them as members of Y
(their names and addresses with them). So an org's email domains, set by operators and each belonging
to one org at most (``Organization.sso_email_domains``), bind people to it: someone whose *verified*
address is in org X's domains gets roles from X's mappings only; and an org with domains takes roles
from its mappings only to people of its domains. Orgs without domains keep mappings for everyone else
(single-tenant set-ups need no configuration); in a shared deployment give every org its domains.
"""

import re

from django.db import transaction

from paas import authz
from paas.audit import audit_log
from paas.errors import ValidationFailed

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def email_verified(claims: dict) -> bool:
    value = claims.get("email_verified")
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def parse_domains(text: str) -> list[str]:
    return sorted({part.strip().lower().lstrip("@") for part in (text or "").split(",") if part.strip()})


def _domain_of(email: str) -> str:
    return email.rpartition("@")[2].strip().lower()


def home_org(email: str, verified: bool):
    """The org whose domains hold this verified address, or None."""
    from tenancy.models import Organization

    if not verified:
        return None
    domain = _domain_of(email)
    for org in Organization.objects.exclude(sso_email_domains=""):
        if domain in parse_domains(org.sso_email_domains):
            return org
    return None


def confine_mappings(mappings: list, *, email: str, verified: bool) -> list:
    """The mappings that may give this person roles (see the module's docstring)."""
    home = home_org(email, verified)
    if home is not None:
        return [mapping for mapping in mappings if mapping.org_id == home.pk]
    return [mapping for mapping in mappings if not parse_domains(mapping.org.sso_email_domains)]


@transaction.atomic
def org_sso_domains_set(*, actor, org, domains: str):
    """Set an org's single sign-on email domains (operators only: an org admin naming another org's
    domain would pull its people in)."""
    from tenancy.models import Organization

    authz.require_operator(actor, message="Only platform operators set an organization's email domains.")
    wanted = parse_domains(domains)
    bad = [domain for domain in wanted if not _DOMAIN.match(domain)]
    if bad:
        raise ValidationFailed(
            "Invalid email domains.", fields={"sso_email_domains": f"Not a domain name: {', '.join(bad)}."}
        )
    for other in Organization.objects.select_for_update().exclude(pk=org.pk).exclude(sso_email_domains=""):
        taken = set(wanted) & set(parse_domains(other.sso_email_domains))
        if taken:
            raise ValidationFailed(
                "Each email domain belongs to one organization.",
                fields={"sso_email_domains": f"{', '.join(sorted(taken))} belongs to {other.name}."},
            )
    value = ", ".join(wanted)
    if len(value) > 1000:
        raise ValidationFailed("Too many domains.", fields={"sso_email_domains": "At most 1000 characters."})
    org = Organization.objects.select_for_update().get(pk=org.pk)
    if value != org.sso_email_domains:
        before = org.sso_email_domains
        org.sso_email_domains = value
        org.save(update_fields=["sso_email_domains"])
        audit_log(
            actor=actor,
            action="org.sso_domains",
            target=org,
            org=org,
            details={"changes": {"sso_email_domains": [before, value]}},
        )
    return org
