"""Tenancy: organizations, projects (workspaces), users, role assignments, invitations and quotas.

Role assignments are the source of truth for who may do what; the services in ``tenancy.services``
mirror them into django-guardian object permissions on the organization or project, which
``paas.authz`` reads. ``authz_parents`` on a model says which permission on a parent object implies a
permission on it (an org admin sees every project of the org).
"""

from django.contrib.auth.models import AbstractUser
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models.functions import Lower
from guardian.models import UserObjectPermissionBase

from paas.validation import DNS_LABEL_MESSAGE, DNS_LABEL_PATTERN
from tenancy.roles import Role

slug_validator = RegexValidator(DNS_LABEL_PATTERN, DNS_LABEL_MESSAGE)


class User(AbstractUser):
    """A person: a local account (password) or an identity provider account (single sign-on)."""

    class Source(models.TextChoices):
        LOCAL = "local", "Local user"
        IDP = "idp", "IdP user"

    email = models.EmailField("email address", unique=True)
    source = models.CharField("source", max_length=8, choices=Source.choices, default=Source.LOCAL)
    idp_subject = models.CharField(
        "IdP subject",
        max_length=255,
        unique=True,
        null=True,
        blank=True,
        help_text="The identity provider's stable id of this person (the sub claim); empty for local users.",
    )
    email_verified = models.BooleanField(
        "email verified",
        default=True,
        help_text="Whether the address is proven to be this person's: local accounts proved it (invitation "
        "link, or an operator made them); single sign-on users as their provider's email_verified claim "
        "says at each sign-on (no claim: not verified). Invitations and collaborator grants match on "
        "verified addresses only.",
    )
    pending_email = models.EmailField(
        "new email address (unverified)",
        blank=True,
        help_text="A change of address waiting for its verification link; the address above stays until "
        "the link is opened (tenancy/email_verification.py).",
    )

    class Meta:
        verbose_name = "user"
        verbose_name_plural = "users"
        ordering = ["username"]
        constraints = [
            models.UniqueConstraint(Lower("email"), name="tenancy_user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email or self.username


class Organization(models.Model):
    """A tenant: one customer of the platform, isolated from every other."""

    name = models.SlugField("name", max_length=63, unique=True, validators=[slug_validator])
    display_name = models.CharField("display name", max_length=200)
    is_active = models.BooleanField("active", default=True)
    created_at = models.DateTimeField("created", auto_now_add=True)
    sso_email_domains = models.CharField(
        "single sign-on email domains",
        max_length=1000,
        blank=True,
        help_text="Set by operators; comma-separated (acme.com, research.acme.com); each domain belongs to "
        "one organization at most. A person signing on with a verified address in one of these domains "
        "gets roles from this organization's IdP group mappings only, and this organization's mappings "
        "apply only to such people: no other organization's mapping can pull them in.",
    )
    mfa_required = models.BooleanField(
        "require MFA",
        default=False,
        help_text="Every local user of the organization must use a second factor (an authenticator app); "
        "who has none enrols at next sign-in. Single sign-on users are authenticated by their provider.",
    )

    # Support access (tenancy/support.py): what the org's admins let operators have without asking.
    support_preapproval = models.CharField(
        "pre-approved support access",
        max_length=8,
        choices=[
            ("none", "None: every request waits for an org admin"),
            ("read", "Read-only"),
            ("admin", "Read-only or administrative"),
        ],
        default="none",
        help_text="Support requests of this level (or lower) and at most the maximum duration are approved "
        "at once, without an org admin; the admins are told by email either way.",
    )
    support_max_minutes = models.PositiveIntegerField(
        "pre-approved support duration (minutes)",
        default=240,
        help_text="The longest support access pre-approval covers (15 minutes to 7 days); longer requests "
        "wait for an org admin.",
    )

    authz_parents: dict = {}
    # Operators run organizations (create, rename, deactivate, set quotas); what is inside one they
    # reach only through a support access (paas.authz).
    authz_operator_codenames = {"view_organization", "change_organization"}

    class Meta:
        verbose_name = "organization"
        verbose_name_plural = "organizations"
        ordering = ["name"]
        permissions = [
            ("administer_organization", "Administer the organization: members, projects, quotas"),
            ("view_audit", "View the organization's audit trail"),
            ("manage_catalog", "Manage the organization's profiles and templates"),
        ]

    def __str__(self) -> str:
        return self.display_name or self.name


class Project(models.Model):
    """A unit of isolation, quota and sharing inside an org; end users see it as a workspace."""

    class Kind(models.TextChoices):
        PERSONAL = "personal", "Personal workspace"
        TEAM = "team", "Team workspace"

    org = models.ForeignKey(
        Organization, verbose_name="organization", on_delete=models.CASCADE, related_name="projects"
    )
    name = models.SlugField("name", max_length=63, validators=[slug_validator])
    display_name = models.CharField("display name", max_length=200)
    description = models.TextField("description", blank=True)
    kind = models.CharField("kind", max_length=16, choices=Kind.choices, default=Kind.TEAM)
    owner = models.ForeignKey(
        User,
        verbose_name="owner",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="personal_projects",
        help_text="The user a personal workspace belongs to.",
    )
    created_at = models.DateTimeField("created", auto_now_add=True)

    # A permission on the org implies these permissions on each of its projects.
    authz_parents = {
        "view_project": [("org", "administer_organization"), ("org", "manage_catalog")],
        "change_project": [("org", "administer_organization")],
        "delete_project": [("org", "administer_organization")],
        "view_instances": [("org", "administer_organization")],
        "manage_catalog": [("org", "administer_organization"), ("org", "manage_catalog")],
    }

    class Meta:
        verbose_name = "project"
        verbose_name_plural = "projects"
        ordering = ["org__name", "name"]
        permissions = [
            ("view_instances", "View compute instances and services"),
            ("manage_instances", "Create, update and delete compute instances"),
            ("manage_services", "Create, update and delete services and applications"),
            ("manage_catalog", "Manage the workspace's profiles and templates"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["org", "name"], name="tenancy_project_org_name_unique"),
            models.UniqueConstraint(
                fields=["org", "owner"],
                condition=models.Q(kind="personal"),
                name="tenancy_project_one_personal_per_user",
            ),
            models.CheckConstraint(
                condition=models.Q(kind="team") | models.Q(owner__isnull=False),
                name="tenancy_project_personal_has_owner",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.org.name}/{self.name}"


class OrganizationUserObjectPermission(UserObjectPermissionBase):
    """guardian: object permissions on organizations, with a real foreign key."""

    # guardian finds this table through the reverse relation, so it must not be hidden ("+").
    content_object = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="user_object_permissions"
    )

    class Meta(UserObjectPermissionBase.Meta):
        verbose_name = "organization permission"
        verbose_name_plural = "organization permissions"


class ProjectUserObjectPermission(UserObjectPermissionBase):
    """guardian: object permissions on projects, with a real foreign key."""

    content_object = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="user_object_permissions"
    )

    class Meta(UserObjectPermissionBase.Meta):
        verbose_name = "project permission"
        verbose_name_plural = "project permissions"


class RoleAssignment(models.Model):
    """A user holds a role at a scope: the platform (operator), an org, or a project.

    ``source`` says who manages it: people (``manual``, through the studio, the API or an invitation)
    or the identity provider's groups (``idp``, created and removed by the sign-on group sync only).
    """

    class Source(models.TextChoices):
        MANUAL = "manual", "Manual"
        IDP = "idp", "IdP group"

    user = models.ForeignKey(
        User, verbose_name="user", on_delete=models.CASCADE, related_name="role_assignments"
    )
    role = models.CharField("role", max_length=32, choices=Role.choices)
    org = models.ForeignKey(
        Organization,
        verbose_name="organization",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="role_assignments",
    )
    project = models.ForeignKey(
        Project,
        verbose_name="project",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="role_assignments",
    )
    source = models.CharField("source", max_length=8, choices=Source.choices, default=Source.MANUAL)
    created_at = models.DateTimeField("created", auto_now_add=True)
    created_by = models.ForeignKey(
        User, verbose_name="created by", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "role assignment"
        verbose_name_plural = "role assignments"
        ordering = ["org__name", "project__name", "user__username", "role"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(role="operator", org__isnull=True, project__isnull=True)
                    | models.Q(role="org_admin", org__isnull=False, project__isnull=True)
                    | models.Q(role="paas_admin", org__isnull=False)
                    | models.Q(
                        role__in=["workspace_admin", "collaborator_rw", "collaborator_ro"],
                        org__isnull=False,
                        project__isnull=False,
                    )
                ),
                name="tenancy_roleassignment_scope_matches_role",
            ),
            models.UniqueConstraint(
                fields=["user", "role"],
                condition=models.Q(org__isnull=True),
                name="tenancy_roleassignment_platform_unique",
            ),
            models.UniqueConstraint(
                fields=["user", "role", "org"],
                condition=models.Q(org__isnull=False, project__isnull=True),
                name="tenancy_roleassignment_org_unique",
            ),
            models.UniqueConstraint(
                fields=["user", "role", "project"],
                condition=models.Q(project__isnull=False),
                name="tenancy_roleassignment_project_unique",
            ),
        ]

    def __str__(self) -> str:
        scope = self.project or self.org or "platform"
        return f"{self.user} — {self.get_role_display()} @ {scope}"


class Invitation(models.Model):
    """An emailed, expiring invitation to join an org with a role (and optionally a project).

    Only a SHA-256 digest of the token is stored; the token itself exists in the email alone.
    """

    org = models.ForeignKey(
        Organization, verbose_name="organization", on_delete=models.CASCADE, related_name="invitations"
    )
    project = models.ForeignKey(
        Project,
        verbose_name="project",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="invitations",
    )
    email = models.EmailField("email address")
    first_name = models.CharField("first name", max_length=150, blank=True)
    last_name = models.CharField("last name", max_length=150, blank=True)
    role = models.CharField("role", max_length=32, choices=Role.choices)
    token_digest = models.CharField("token digest", max_length=64, unique=True)
    created_at = models.DateTimeField("created", auto_now_add=True)
    expires_at = models.DateTimeField("expires")
    invited_by = models.ForeignKey(
        User, verbose_name="invited by", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    accepted_at = models.DateTimeField("accepted", null=True, blank=True)
    accepted_by = models.ForeignKey(
        User, verbose_name="accepted by", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField("revoked", null=True, blank=True)

    class Meta:
        verbose_name = "invitation"
        verbose_name_plural = "invitations"
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(role="operator"), name="tenancy_invitation_not_operator"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} → {self.org.name} ({self.get_role_display()})"

    @property
    def status(self) -> str:
        from django.utils import timezone

        if self.accepted_at:
            return "accepted"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "pending"


class IdpGroupMapping(models.Model):
    """A group of the identity provider gives its members a role in an org (or one of its projects).

    At each single sign-on the user's ``groups`` claim is matched against the mappings; the roles they
    give are created as ``source=idp`` role assignments and those no longer given are removed.
    """

    org = models.ForeignKey(
        Organization,
        verbose_name="organization",
        on_delete=models.CASCADE,
        related_name="idp_group_mappings",
    )
    group = models.CharField("IdP group", max_length=255, help_text="The value in the groups claim.")
    role = models.CharField("role", max_length=32, choices=Role.choices)
    project = models.ForeignKey(
        Project,
        verbose_name="project",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="idp_group_mappings",
        help_text="For project roles: the project (of this organization) the role is held on.",
    )
    created_at = models.DateTimeField("created", auto_now_add=True)
    created_by = models.ForeignKey(
        User, verbose_name="created by", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    # Org admins manage the mappings of their org (an operator only through a support access).
    authz_parents = {
        "view_idpgroupmapping": [("org", "administer_organization")],
        "add_idpgroupmapping": [("org", "administer_organization")],
        "delete_idpgroupmapping": [("org", "administer_organization")],
    }

    class Meta:
        verbose_name = "IdP group mapping"
        verbose_name_plural = "IdP group mappings"
        ordering = ["org__name", "group", "role", "project__name"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(role="org_admin", project__isnull=True)
                    | models.Q(role="paas_admin")
                    | models.Q(
                        role__in=["workspace_admin", "collaborator_rw", "collaborator_ro"],
                        project__isnull=False,
                    )
                ),
                name="tenancy_idpgroupmapping_scope_matches_role",
                violation_error_message=(
                    "Org admin is held on the organization (no project); workspace admin and "
                    "collaborator roles on a project; operator cannot come from a group."
                ),
            ),
            models.UniqueConstraint(
                fields=["org", "group", "role"],
                condition=models.Q(project__isnull=True),
                name="tenancy_idpgroupmapping_org_unique",
                violation_error_message="This group already gives this role there.",
            ),
            models.UniqueConstraint(
                fields=["org", "group", "role", "project"],
                condition=models.Q(project__isnull=False),
                name="tenancy_idpgroupmapping_project_unique",
                violation_error_message="This group already gives this role there.",
            ),
        ]

    def __str__(self) -> str:
        scope = self.project or self.org
        return f"{self.group} → {self.get_role_display()} @ {scope}"


class Quota(models.Model):
    """Limits for an org or a project; an empty limit means unlimited.

    Exactly one quota row exists per org and per project (created with it). A launch reads it without
    a lock and decides against the usage counters (``instances.launch_decision``).
    """

    org = models.OneToOneField(
        Organization,
        verbose_name="organization",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="quota",
    )
    project = models.OneToOneField(
        Project, verbose_name="project", null=True, blank=True, on_delete=models.CASCADE, related_name="quota"
    )
    gpus = models.PositiveIntegerField("GPUs", null=True, blank=True)
    cpu_cores = models.DecimalField(
        "CPU cores", max_digits=10, decimal_places=3, null=True, blank=True, validators=[MinValueValidator(0)]
    )
    memory_gib = models.PositiveIntegerField("memory (GiB)", null=True, blank=True)
    storage_gib = models.PositiveIntegerField("storage (GiB)", null=True, blank=True)
    instances = models.PositiveIntegerField("instances", null=True, blank=True)
    updated_at = models.DateTimeField("updated", auto_now=True)

    LIMIT_FIELDS = ("gpus", "cpu_cores", "memory_gib", "storage_gib", "instances")

    class Meta:
        verbose_name = "quota"
        verbose_name_plural = "quotas"
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(org__isnull=False, project__isnull=True)
                    | models.Q(org__isnull=True, project__isnull=False)
                ),
                name="tenancy_quota_exactly_one_scope",
            ),
        ]

    def __str__(self) -> str:
        return f"Quota of {self.project or self.org}"

    @property
    def scope(self):
        return self.project or self.org

    @property
    def owning_org(self) -> Organization:
        return self.org if self.org_id else self.project.org


class GpuModelQuota(models.Model):
    """A per-GPU-model limit inside a quota (e.g. at most 8 of ``NVIDIA-H100-80GB-HBM3``)."""

    quota = models.ForeignKey(
        Quota, verbose_name="quota", on_delete=models.CASCADE, related_name="gpu_models"
    )
    gpu_model = models.CharField("GPU model", max_length=100, help_text="The nvidia.com/gpu.product value.")
    gpus = models.PositiveIntegerField("GPUs")

    class Meta:
        verbose_name = "GPU model limit"
        verbose_name_plural = "GPU model limits"
        ordering = ["gpu_model"]
        constraints = [
            models.UniqueConstraint(fields=["quota", "gpu_model"], name="tenancy_gpumodelquota_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.gpu_model}: {self.gpus}"


from tenancy.limit_models import InstanceLimit  # noqa: E402,F401  (a model of this app: per-user instance limits)
from tenancy.support_models import SupportAccess, SupportLevel, SupportState  # noqa: E402,F401  (a model of this app)
