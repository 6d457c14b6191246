"""Every write of repositories (Git, Helm chart repositories, OCI registries holding charts): one
transaction each, the permission asked of ``catalog.integration_selectors.can_manage_repository``, an
audit event in the same transaction.

* Scope: system (operators), org (the org's admins) or project (also its workspace admins and
  read-write members); names unique per scope; shared like profiles (``sharing``/``projects``,
  system: ``system_sharing``/``orgs``), never across orgs.
* The URL passes the outbound-address policy (``paas.outbound.check_url``): ``file://``, local paths,
  loopback, link-local and metadata addresses are refused; credentials in the URL are refused (they
  belong in the write-only credential). ``oci://host/path`` is checked as ``https://host/path``.
* The credential (password, token) is encrypted, write-only: never returned, logged or audited;
  an update with an empty credential keeps it, ``clear_credential=True`` removes it.
* Git over SSH: an ``ssh://[user@]host/path`` address (a user name but never a password in it) goes
  with an SSH private key (checked to parse, without a passphrase) and the server's host keys
  (``known_hosts`` lines, required: no trust on first use).
* ``repository_check`` enqueues the connectivity check on the agent serving the chosen datacenter
  (a repository behind a firewall is reached like a cluster); ``repository_check_record`` (the task's
  body) stores the outcome and audits it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone

from catalog import sharing as sharing_rule
from catalog.integration_selectors import can_manage_repository
from catalog.models import Repository, Sharing
from catalog.sources.http import credential_of
from paas import authz, outbound
from paas.audit import audit_log
from paas.errors import Forbidden, ValidationFailed
from tenancy.models import Organization, Project
from tenancy.validation import clean_slug

FIELDS = (
    "display_name",
    "description",
    "kind",
    "url",
    "default_ref",
    "path",
    "auth",
    "username",
    "ssh_known_hosts",
    "ca_certificate",
)
MAX_CA_BYTES = 64 * 1024


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, fields={field: message})


def _require_create(actor, org: Organization | None, project: Project | None) -> None:
    if project is not None:
        if not (
            authz.has_perm(actor, "manage_catalog", project)
            or authz.has_perm(actor, "manage_services", project)
            or authz.has_perm(actor, "manage_catalog", project.org)
        ):
            raise Forbidden(f"You may not add repositories to {project}.")
    elif org is not None:
        authz.require(actor, "manage_catalog", org, message=f"Only the admins of {org} add its repositories.")
    else:
        authz.require_operator(actor, message="Only platform operators add system repositories.")


def _require_manage(actor, repository: Repository) -> None:
    if not can_manage_repository(actor, repository):
        raise Forbidden(f"You may not change the repository {repository.name}.")


def _name_free(name: str, org, project, exclude_pk=None) -> None:
    qs = Repository.objects.filter(name=name, org=org, project=project)
    if exclude_pk:
        qs = qs.exclude(pk=exclude_pk)
    if qs.exists():
        raise _invalid("name", f"A repository named {name!r} already exists here.")


def check_repository_url(kind: str, url: str) -> str:
    """The URL, checked: the scheme for the kind, no credentials in it, the outbound policy."""
    url = (url or "").strip()
    if kind == Repository.Kind.OCI:
        parts = urlsplit(url)
        if parts.scheme.lower() != "oci":
            if parts.scheme.lower() == "file" or url.startswith(("/", ".", "~")):
                outbound.check_url(url, purpose="repository", field="url")  # refuses with the reason
            raise _invalid("url", "An OCI repository address is oci://host[:port]/path.")
        checked_as = "https://" + url[len("oci://") :]
    else:
        checked_as = url
    parts = urlsplit(checked_as)
    ssh = kind == Repository.Kind.GIT and parts.scheme.lower() == "ssh"
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    if userinfo and (not ssh or ":" in userinfo):
        raise _invalid("url", "Put credentials in the credential field, never in the URL.")
    schemes = ("ssh",) if ssh else ("https", "http")
    outbound.check_url(checked_as, purpose="repository", field="url", schemes=schemes)
    if kind == Repository.Kind.OCI and not parts.path.strip("/"):
        raise _invalid("url", "Name the path in the registry: oci://host/path (charts are below it).")
    return url


def _check_ca(pem: str) -> str:
    pem = (pem or "").strip()
    if not pem:
        return ""
    if len(pem) > MAX_CA_BYTES:
        raise _invalid("ca_certificate", "At most 64 KiB of PEM.")
    from cryptography import x509

    try:
        x509.load_pem_x509_certificates(pem.encode())
    except ValueError as exc:
        raise _invalid("ca_certificate", "Not a PEM certificate (-----BEGIN CERTIFICATE-----).") from exc
    return pem + "\n"


def _check_ssh_key(auth: str, credential: str) -> None:
    if auth == Repository.Auth.SSH_KEY and credential:
        from catalog.sources import PackageRefused
        from catalog.sources.ssh import load_private_key

        try:
            load_private_key(credential)
        except PackageRefused as exc:
            raise _invalid(
                "credential", exc.errors["credential"][0][:1].upper() + exc.errors["credential"][0][1:] + "."
            ) from None


def _clean(data: dict, *, credential_set: bool) -> dict:
    kind = data.get("kind")
    if kind not in Repository.Kind.values:
        raise _invalid("kind", "Choose git, helm or oci.")
    auth = data.get("auth") or Repository.Auth.NONE
    if auth not in Repository.Auth.values:
        raise _invalid("auth", "Choose none, basic, token or ssh_key.")
    data["auth"] = auth
    data["url"] = check_repository_url(kind, data.get("url", ""))
    ssh_url = urlsplit(data["url"]).scheme.lower() == "ssh"
    if (auth == Repository.Auth.SSH_KEY) != ssh_url:
        raise _invalid(
            "auth" if not ssh_url else "url",
            "An SSH key goes with a Git ssh://… address, and an ssh://… address with an SSH key.",
        )
    known_hosts = (data.get("ssh_known_hosts") or "").strip()
    if ssh_url:
        from catalog.sources.ssh import check_known_hosts

        try:
            if not check_known_hosts(known_hosts):
                raise ValueError("give the server's host keys (ssh-keyscan output, checked out of band)")
        except ValueError as exc:
            raise _invalid("ssh_known_hosts", f"Known hosts: {exc}.") from None
    data["ssh_known_hosts"] = known_hosts + "\n" if known_hosts else ""
    data["username"] = (data.get("username") or "").strip()
    if auth == Repository.Auth.BASIC and not data["username"]:
        raise _invalid("username", "A username goes with a password or token.")
    if auth != Repository.Auth.NONE and not credential_set:
        raise _invalid(
            "credential", "Give the SSH private key." if ssh_url else "Give the password or token."
        )
    for field, limit in (("default_ref", 255), ("path", 1024)):
        value = (data.get(field) or "").strip()
        if len(value) > limit or any(ord(c) < 32 for c in value):
            raise _invalid(field, f"At most {limit} characters, no control characters.")
        if field == "path" and ".." in value.split("/"):
            raise _invalid("path", "A path inside the repository ('..' is not allowed).")
        data[field] = value
    if kind != Repository.Kind.GIT and (data["default_ref"] or data["path"]):
        raise _invalid(
            "default_ref" if data["default_ref"] else "path", "Only Git repositories have refs and paths."
        )
    data["ca_certificate"] = _check_ca(data.get("ca_certificate", ""))
    return data


def _sharing(actor, repository: Repository, sharing, projects, orgs) -> dict:
    """Apply sharing (org/project scope: none|all|selected projects of the same org; system:
    none|all|selected orgs). Returns what the audit records."""
    if repository.org_id is None:
        value = sharing if sharing is not None else repository.system_sharing
        return sharing_rule.apply(
            repository, sharing=value, orgs=orgs, fields={"system_sharing": "system_sharing"}
        )
    value = sharing if sharing is not None else repository.sharing
    projects = list(projects or [])
    current = set(repository.shared_projects.values_list("pk", flat=True))
    widened = value != repository.sharing or {p.pk for p in projects} != current
    may_share = authz.has_perm(actor, "manage_catalog", repository.org) or (
        repository.project_id is not None and authz.has_perm(actor, "manage_catalog", repository.project)
    )
    if widened and value != Sharing.NONE and repository.project_id is not None and not may_share:
        # sharing a workspace's repository (and its credential's reach) with other workspaces is a
        # decision of the org's PaaS admins, not of a workspace admin or member
        raise Forbidden(
            "Only PaaS admins and org admins share a workspace's repository with other workspaces."
        )
    return sharing_rule.apply(repository, sharing=value, projects=projects)


def _described(repository: Repository) -> dict:
    from catalog.sources.http import safe_url

    return {
        "kind": repository.kind,
        "url": safe_url(repository.url) if repository.kind != "oci" else repository.url.split("?")[0],
        "auth": repository.auth,
        "has_credential": bool(repository.credential),
    }


@transaction.atomic
def repository_create(
    *,
    actor,
    org: Organization | None = None,
    project: Project | None = None,
    name: str,
    credential: str = "",
    sharing: str | None = None,
    projects=(),
    orgs=(),
    **data,
) -> Repository:
    """Add a repository in a scope (see the module docstring); returns it."""
    unknown = set(data) - set(FIELDS)
    if unknown:
        raise _invalid(sorted(unknown)[0], "Unknown field.")
    if project is not None:
        if org is not None and org.pk != project.org_id:
            raise _invalid("project", "The project is not in this organization.")
        org = project.org
    _require_create(actor, org, project)
    name = clean_slug("name", name)
    _name_free(name, org, project)
    data = _clean({**data}, credential_set=bool(credential))
    _check_ssh_key(data["auth"], credential)
    repository = Repository(
        org=org,
        project=project,
        name=name,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
        **{field: data.get(field, "") or "" for field in FIELDS},
    )
    repository.display_name = repository.display_name or name
    repository.credential = credential or ""
    repository.save()
    shared = _sharing(actor, repository, sharing, projects, orgs) if sharing is not None else {}
    audit_log(
        actor=actor,
        action="repository.create",
        target=repository,
        org=org,
        project=project,
        details={**_described(repository), **shared},
    )
    return repository


@transaction.atomic
def repository_update(
    *,
    actor,
    repository: Repository,
    credential: str | None = None,
    clear_credential: bool = False,
    sharing: str | None = None,
    projects=None,
    orgs=None,
    **data,
) -> Repository:
    """Change a repository. ``credential``: empty or None keeps the stored one, a value replaces it,
    ``clear_credential`` removes it. The name is fixed."""
    repository = Repository.objects.select_for_update().get(pk=repository.pk)
    _require_manage(actor, repository)
    unknown = set(data) - set(FIELDS)
    if unknown:
        raise _invalid(sorted(unknown)[0], "Unknown field (the name cannot be changed).")
    merged = {field: getattr(repository, field) for field in FIELDS}
    merged.update({k: v for k, v in data.items() if v is not None})
    old_credential = credential_of(repository)
    new_credential = old_credential
    if clear_credential:
        new_credential = ""
    if credential:
        new_credential = credential
    if merged.get("auth") == Repository.Auth.NONE:
        new_credential = ""
    merged = _clean(merged, credential_set=bool(new_credential))
    if credential:
        _check_ssh_key(merged["auth"], credential)
    changed = sorted(f for f in FIELDS if (merged.get(f) or "") != (getattr(repository, f) or ""))
    for field in FIELDS:
        setattr(repository, field, merged.get(field, "") or "")
    repository.display_name = repository.display_name or repository.name
    credential_change = ""
    if new_credential != old_credential:
        credential_change = "replaced" if new_credential else "cleared"
        repository.credential = new_credential
    if changed or credential_change:
        repository.check_ok, repository.checked_at, repository.check_message = None, None, ""
    repository.save()
    shared = (
        _sharing(actor, repository, sharing, projects, orgs)
        if sharing is not None or projects is not None or orgs is not None
        else {}
    )
    details = {"changed": changed, **shared}
    if credential_change:
        details["credential"] = credential_change
    audit_log(
        actor=actor,
        action="repository.update",
        target=repository,
        org=repository.org,
        project=repository.project,
        details=details,
    )
    return repository


@transaction.atomic
def repository_share(*, actor, repository: Repository, sharing: str, projects=(), orgs=()) -> Repository:
    """Share (none/all/selected) without other changes."""
    return repository_update(
        actor=actor, repository=repository, sharing=sharing, projects=projects, orgs=orgs
    )


@transaction.atomic
def repository_delete(*, actor, repository: Repository) -> None:
    """Delete a repository: applications and catalog entries that used it keep their revisions, with
    the repository cleared (nothing can be pulled from it again)."""
    repository = Repository.objects.select_for_update().get(pk=repository.pk)
    _require_manage(actor, repository)
    audit_log(
        actor=actor,
        action="repository.delete",
        target=repository,
        org=repository.org,
        project=repository.project,
        details=_described(repository),
    )
    repository.delete()


@transaction.atomic
def repository_check(*, actor, repository: Repository, datacenter=None) -> Repository:
    """Ask for a connectivity check, run by the agent serving ``datacenter`` (None: a global agent,
    else the default workers). Whoever may see the repository may check it."""
    from catalog.integration_selectors import repository_list_for
    from inventory.routing import enqueue_for_datacenter

    if not repository_list_for(actor).filter(pk=repository.pk).exists():
        from paas.errors import NotFound

        raise NotFound("No such repository.")
    datacenter_id = getattr(datacenter, "pk", datacenter)
    audit_log(
        actor=actor,
        action="repository.check_requested",
        target=repository,
        org=repository.org,
        project=repository.project,
        details={"datacenter": datacenter_id},
    )
    enqueue_for_datacenter(datacenter_id, "catalog.tasks.repository_check", repository.pk)
    return repository


def repository_check_record(*, repository_id: int) -> Repository | None:
    """The check's body (worker side): reach the repository, then store and audit the outcome.
    The network part runs outside any transaction; a repository deleted meanwhile is skipped."""
    from catalog import sources

    repository = Repository.objects.filter(pk=repository_id).first()
    if repository is None:
        return None
    ok, message = sources.check(repository)
    with transaction.atomic():
        repository = Repository.objects.select_for_update().filter(pk=repository_id).first()
        if repository is None:
            return None
        repository.checked_at, repository.check_ok, repository.check_message = (
            timezone.now(),
            ok,
            message[:2000],
        )
        repository.save(update_fields=["checked_at", "check_ok", "check_message", "updated_at"])
        audit_log(
            actor=None,
            action="repository.checked",
            target=repository,
            org=repository.org,
            project=repository.project,
            details={"ok": ok, "message": message[:500]},
        )
    return repository
