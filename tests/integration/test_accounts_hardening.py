"""Issue 11, parts 5 and 8: who may invite whom, login throttling, token scopes, SSO matching.

Each test plays the attacker: a workspace admin inviting outsiders, a caller probing which addresses
have accounts, an inviter spamming, a password guesser, a token guesser, a read-only or leaked token
trying to write or to mint more, an unverified address at the identity provider, and an org admin
mapping another org's group name.
"""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from instances.models import Collaborator, CollaboratorInvitation
from paas.models import ApiToken, AuditEvent
from tenancy import services as tenancy_services
from tenancy.models import Invitation, RoleAssignment, User
from tenancy.roles import Role
from tenancy.sso_rules import org_sso_domains_set
from tests.factories import ONE_A100, PASSWORD, make_profile, make_synced_cluster
from tests.support.instances import launch
from tests.support.oidc import sign_in
from tests.support.wait import wait_for

MANIFESTS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ instance.name }}-x\ndata:\n  a: b\n"


@pytest.fixture
def instance(world):
    """A never-deployed instance in tenant A's team workspace, owned by its workspace admin."""
    profile = make_profile(
        actor=world.a.users["org_admin"],
        project=world.a.project,
        manifests=MANIFESTS,
        name="one-gpu",
        template="ns",
        resource_groups=ONE_A100,
    )
    make_synced_cluster(name="acct-c")
    return launch(world, profile, "dev")


def _error(response) -> dict:
    body = response.json()["error"]
    body.pop("request_id", None)
    return body


def _make_inviter(world, user):
    tenancy_services.role_assign(
        actor=world.a.users["org_admin"], user=user, role=Role.ORG_ADMIN, org=world.a.org
    )


# --- part 5: who may invite whom ---------------------------------------------------------------------


def test_outsiders_are_refused_to_someone_who_may_not_invite_alike_with_or_without_an_account(
    world, api, instance, client, django_capture_on_commit_callbacks
):
    owner = world.a.users["workspace_admin"]  # manages the instance, may not invite to the org
    url = f"/api/v1/instances/{instance.pk}/collaborators/"
    other_org_user = world.b.users["collaborator_ro"]
    world_made = list(Invitation.objects.values_list("pk", flat=True))  # how the world's members came in
    with django_capture_on_commit_callbacks(execute=True):
        unknown = api.as_user(owner).post(url, {"email": "nobody-here@example.net"})
        elsewhere = api.as_user(owner).post(url, {"email": other_org_user.email})
    assert unknown.status_code == elsewhere.status_code == 403
    assert _error(unknown) == _error(elsewhere)  # the answer tells nothing about who has an account
    assert "org admin" in _error(unknown)["message"]
    assert not Invitation.objects.exclude(pk__in=world_made).exists()
    assert not CollaboratorInvitation.objects.exists() and not instance.collaborators.exists()
    assert mail.outbox == []
    # The page: the same form error for both, nothing sent.
    client.force_login(owner)
    pages = [
        client.post(f"/instances/{instance.pk}/collaborators/", {"email": email})
        for email in ("nobody-here@example.net", other_org_user.email)
    ]
    assert [page.status_code for page in pages] == [400, 400]
    assert all(b"ask an org admin to invite them" in page.content for page in pages)
    assert mail.outbox == []


def test_an_inviter_invites_outsiders_in_their_own_name_and_the_answer_is_the_same_for_everyone(
    world, api, instance, django_capture_on_commit_callbacks
):
    owner = world.a.users["workspace_admin"]
    _make_inviter(world, owner)
    url = f"/api/v1/instances/{instance.pk}/collaborators/"
    other_org_user = world.b.users["collaborator_ro"]
    world_made = list(Invitation.objects.values_list("pk", flat=True))  # how the world's members came in
    world_events = list(AuditEvent.objects.values_list("pk", flat=True))
    with django_capture_on_commit_callbacks(execute=True):
        unknown = api.as_user(owner).post(url, {"email": "nobody-here@example.net"})
        elsewhere = api.as_user(owner).post(url, {"email": other_org_user.email})
    assert (unknown.status_code, unknown.json()) == (elsewhere.status_code, elsewhere.json()) == (200, [])
    # Someone of another org is invited (and must accept), never added behind their back.
    assert not Collaborator.objects.filter(instance=instance, user=other_org_user).exists()
    invitations = Invitation.objects.filter(org=world.a.org, role=Role.COLLABORATOR_RO).exclude(
        pk__in=world_made
    )
    assert {i.email for i in invitations} == {"nobody-here@example.net", other_org_user.email}
    assert {i.invited_by_id for i in invitations} == {owner.pk}
    assert len(mail.outbox) == 2
    created = AuditEvent.objects.filter(action="invitation.create", org=world.a.org).exclude(
        pk__in=world_events
    )
    invited = AuditEvent.objects.filter(action="instance.collaborator_invite", target_id=str(instance.pk))
    assert created.count() == invited.count() == 2
    assert {e.actor_id for e in [*created, *invited]} == {owner.pk}  # the real actor, not an org admin
    # Accepting makes the other org's user a collaborator (consent), through the invitation.
    invitation = invitations.get(email=other_org_user.email)
    token = mail.outbox[1].body.split("/invitations/")[1].split("/")[0]
    assert invitation.email in mail.outbox[1].to
    tenancy_services.invitation_accept(token=token, user=other_org_user)
    assert Collaborator.objects.filter(instance=instance, user=other_org_user).exists()


def test_invitations_are_rate_limited_per_actor_and_per_org(world, api, settings, instance, client):
    settings.INVITATIONS_PER_HOUR_PER_ACTOR = 3
    settings.INVITATIONS_PER_HOUR_PER_ORG = 5
    admin = world.a.users["org_admin"]
    # The world's members came in by invitation: those are from before this hour here.
    Invitation.objects.update(created_at=timezone.now() - timedelta(hours=2))

    def invite(user, n):
        return api.as_user(user).post(
            "/api/v1/invitations/",
            {
                "org": world.a.org.pk,
                "email": f"guest{n}@example.net",
                "role": Role.COLLABORATOR_RO,
                "project": world.a.project.pk,
            },
        )

    this_hour = Invitation.objects.filter(org=world.a.org, created_at__gt=timezone.now() - timedelta(hours=1))
    before = this_hour.count()
    assert [invite(admin, n).status_code for n in range(3)] == [201, 201, 201]
    tripped = invite(admin, 3)
    assert tripped.status_code == 429
    error = _error(tripped)
    assert error["code"] == "rate_limited" and "try again in" in error["message"]
    assert error["fields"] == {"email": ["Too many invitations sent recently; try again later."]}
    # Per org: another inviter of the same org gets what the org has left (5 in all, counting the
    # invitation that onboarded the org when it is within the hour).
    second = world.a.users["workspace_admin"]
    _make_inviter(world, second)
    left = 5 - (before + 3)
    statuses = [invite(second, 10 + n).status_code for n in range(max(left, 0) + 1)]
    assert statuses == [201] * max(left, 0) + [429]
    assert this_hour.count() == max(before + 3, 5)
    # The other org is not affected.
    assert (
        api.as_user(world.b.users["org_admin"])
        .post(
            "/api/v1/invitations/",
            {
                "org": world.b.org.pk,
                "email": "b-guest@example.net",
                "role": Role.COLLABORATOR_RO,
                "project": world.b.project.pk,
            },
        )
        .status_code
        == 201
    )
    # On a page the limit is a form error.
    client.force_login(second)
    page = client.post(f"/instances/{instance.pk}/collaborators/", {"email": "late@example.net"})
    assert page.status_code == 400 and b"Too many invitations sent recently" in page.content


# --- part 8: login throttling and lockout -------------------------------------------------------------


@pytest.fixture
def fast_lockout(settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(seconds=2)


@pytest.mark.parametrize("page", ["/login/", "/studio/login/"])
def test_password_pages_lock_out_after_failures_even_the_right_password_until_cool_off(
    world, client, fast_lockout, page
):
    user = world.a.users["org_admin"]  # staff: may use the studio too
    wrong = {"username": user.username, "password": "not-the-password"}
    right = {"username": user.username, "password": PASSWORD}
    first, second, third = (client.post(page, wrong) for _ in range(3))
    assert first.status_code == second.status_code == 200  # the form again, with its error
    assert third.status_code == 429 and b"Sign-in paused" in third.content
    assert b"try again in 1 minute" in third.content or b"try again in" in third.content
    during = client.post(page, right)
    assert during.status_code == 429 and "_auth_user_id" not in client.session
    # Another username from the same address is not locked (lockout is per username and address).
    other = world.a.users["paas_admin_org"]
    assert client.post(page, {"username": other.username, "password": PASSWORD}).status_code == 302
    client.logout()
    after = wait_for(
        lambda: (r := client.post(page, right)).status_code == 302 and r, 10, what="the cool-off"
    )
    assert after and after.status_code == 302 and client.session.get("_auth_user_id") == str(user.pk)


def test_token_authentication_locks_out_after_failures_then_recovers(world, fast_lockout):
    owner = world.a.users["org_admin"]
    session = APIClient()
    session.force_authenticate(owner)
    token = session.post("/api/v1/tokens/", {"name": "ci"}, format="json").json()["token"]
    good, bad = APIClient(), APIClient()
    good.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    bad.credentials(HTTP_AUTHORIZATION=f"Bearer {token[:-4]}xxxx")
    assert good.get("/api/v1/me/").status_code == 200
    secret_form = bad.post("/api/v1/projects/?key=q-s3cret", {"kubeconfig": "b-s3cret"}, format="multipart")
    assert [secret_form.status_code, *(bad.get("/api/v1/me/").status_code for _ in range(2))] == [401] * 3
    stored = " ".join(f"{a.get_data} {a.post_data}" for a in AccessAttempt.objects.all())
    assert "s3cret" not in stored  # what a refused request carried is never kept
    locked = good.get("/api/v1/me/")  # the right token, during the lockout
    assert locked.status_code == 429
    assert _error(locked)["code"] == "locked_out" and "try again in" in _error(locked)["message"]
    assert bad.post("/api/v1/tokens/", {"name": "x"}, format="json").status_code == 429
    wait_for(lambda: good.get("/api/v1/me/").status_code == 200, 10, what="the cool-off")


# --- part 8: token scopes, and no token minting tokens ----------------------------------------------


def _token(user, **data) -> dict:
    session = APIClient()
    session.force_authenticate(user)
    response = session.post("/api/v1/tokens/", {"name": "t", **data}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_a_read_only_token_reads_and_may_not_write(world):
    admin = world.a.users["org_admin"]
    created = _token(admin, scope="read-only")
    assert created["scope"] == "read-only" and ApiToken.objects.get(pk=created["id"]).scope == "read-only"
    client = _bearer(created["token"])
    assert client.get("/api/v1/me/").status_code == 200
    assert client.get(f"/api/v1/projects/{world.a.project.pk}/").status_code == 200
    write = client.post(
        "/api/v1/projects/", {"org": world.a.org.pk, "name": "ro-made", "display_name": "x"}, format="json"
    )
    assert write.status_code == 403 and "read-only" in _error(write)["message"]
    assert client.delete(f"/api/v1/tokens/{created['id']}/").status_code == 403  # not even revoke itself
    assert client.post("/api/v1/invitations/accept/", {"token": "x"}, format="json").status_code == 403
    assert not world.a.org.projects.filter(name="ro-made").exists()
    assert ApiToken.objects.get(pk=created["id"]).revoked_at is None
    # A read-write token (the default) writes.
    rw = _bearer(_token(admin, name="rw")["token"])
    made = rw.post(
        "/api/v1/projects/", {"org": world.a.org.pk, "name": "rw-made", "display_name": "x"}, format="json"
    )
    assert made.status_code == 201, made.content


def test_a_token_cannot_create_a_token(world):
    admin = world.a.users["org_admin"]
    for scope in ("read-write", "read-only"):
        client = _bearer(_token(admin, name=f"minter-{scope}", scope=scope)["token"])
        minted = client.post("/api/v1/tokens/", {"name": "child", "expires_in_days": 365}, format="json")
        assert minted.status_code == 403, minted.content
    assert (
        "signed-in session"
        in _error(
            _bearer(_token(admin, name="again")["token"]).post(
                "/api/v1/tokens/", {"name": "c"}, format="json"
            )
        )["message"]
    )
    assert not ApiToken.objects.filter(name="child").exists()


def test_existing_tokens_became_read_write_and_scope_is_validated(world):
    created = _token(world.a.users["org_admin"])
    assert created["scope"] == "read-write"
    session = APIClient()
    session.force_authenticate(world.a.users["org_admin"])
    bad = session.post("/api/v1/tokens/", {"name": "odd", "scope": "root"}, format="json")
    assert bad.status_code == 400 and "scope" in _error(bad)["fields"]


# --- part 8: single sign-on matches on verified addresses, mappings stay in their org ---------------


def _map(tenant, group, role=Role.COLLABORATOR_RW):
    return tenancy_services.idp_mapping_create(
        actor=tenant.users["org_admin"], org=tenant.org, group=group, role=role, project=tenant.project
    )


@pytest.mark.parametrize("verified", [False, None, True])
def test_sso_accepts_an_invitation_only_with_a_verified_address(world, client, oidc, verified):
    _map(world.a, "acct-devs")
    invitation, token = tenancy_services.invitation_create(
        actor=world.b.users["org_admin"],
        org=world.b.org,
        email="eve@corp.example",
        role=Role.COLLABORATOR_RO,
        project=world.b.project,
    )
    claims = {"email": "eve@corp.example", "groups": ["acct-devs"]}
    if verified is not None:
        claims["email_verified"] = verified
    oidc.set_user(f"eve-{verified}", **claims)
    assert sign_in(client, oidc, f"eve-{verified}")["Location"] == "/"
    user = User.objects.get(idp_subject=f"eve-{verified}")
    assert user.email_verified is bool(verified)
    response = client.post("/api/v1/invitations/accept/", {"token": token}, content_type="application/json")
    if verified:
        assert response.status_code == 200
        assert RoleAssignment.objects.filter(user=user, org=world.b.org).exists()
    else:
        assert response.status_code == 403 and "not verified" in response.json()["error"]["message"]
        assert not RoleAssignment.objects.filter(user=user, org=world.b.org).exists()
        invitation.refresh_from_db()
        assert invitation.status == "pending"


@pytest.mark.parametrize("verified", [False, True])
def test_sso_collaborator_grant_matches_a_verified_address_only(world, api, client, oidc, instance, verified):
    _map(world.a, "acct-members", Role.COLLABORATOR_RO)
    sub = f"mallory-{verified}"
    oidc.set_user(sub, email=f"{sub}@corp.example", email_verified=verified, groups=["acct-members"])
    assert sign_in(client, oidc, sub)["Location"] == "/"
    member = User.objects.get(idp_subject=sub)
    added = api.as_user(world.a.users["workspace_admin"]).post(
        f"/api/v1/instances/{instance.pk}/collaborators/", {"email": member.email}
    )
    if verified:
        assert (
            added.status_code == 200 and Collaborator.objects.filter(instance=instance, user=member).exists()
        )
    else:  # an unverified address is nobody's: treated as an outsider (and this owner may not invite)
        assert added.status_code == 403
        assert not Collaborator.objects.filter(instance=instance, user=member).exists()


def test_sso_never_links_an_existing_account_on_an_unverified_address(world, client, oidc):
    pre = User.objects.create(username="pre", email="pre@corp.example", source=User.Source.IDP)
    oidc.set_user("pre-attacker", email="pre@corp.example", email_verified=False, groups=["x"])
    _map(world.a, "x")
    assert sign_in(client, oidc, "pre-attacker")["Location"] == "/login/"
    pre.refresh_from_db()
    assert pre.idp_subject is None


def test_another_orgs_mapping_never_pulls_in_an_orgs_people(world, client, oidc):
    org_sso_domains_set(actor=world.operator, org=world.a.org, domains="a-corp.example, @Lab.A-Corp.example")
    world.a.org.refresh_from_db()
    assert world.a.org.sso_email_domains == "a-corp.example, lab.a-corp.example"
    _map(world.a, "a-devs")
    _map(world.b, "shared-team")  # B's admin maps a group name A's people also carry
    oidc.set_user("ann", email="ann@a-corp.example", email_verified=True, groups=["a-devs", "shared-team"])
    assert sign_in(client, oidc, "ann")["Location"] == "/"
    ann = User.objects.get(idp_subject="ann")
    assert set(RoleAssignment.objects.filter(user=ann).values_list("org_id", flat=True)) == {world.a.org.pk}
    client.logout()
    # A's mappings apply to A's domains only: someone elsewhere carrying A's group name is not pulled in.
    oidc.set_user("otto", email="otto@else.example", email_verified=True, groups=["a-devs", "shared-team"])
    assert sign_in(client, oidc, "otto")["Location"] == "/"
    otto = User.objects.get(idp_subject="otto")
    assert set(RoleAssignment.objects.filter(user=otto).values_list("org_id", flat=True)) == {world.b.org.pk}
    client.logout()
    # An unverified address in A's domain binds to nothing: A's mappings do not apply either.
    oidc.set_user("ursula", email="ursula@a-corp.example", groups=["a-devs"])
    assert sign_in(client, oidc, "ursula")["Location"] == "/login/"
    assert not RoleAssignment.objects.filter(user__idp_subject="ursula").exists()


def test_only_operators_set_an_orgs_domains_and_each_domain_has_one_org(world):
    from paas.errors import Forbidden, ValidationFailed

    with pytest.raises(Forbidden):
        org_sso_domains_set(actor=world.b.users["org_admin"], org=world.b.org, domains="a-corp.example")
    org_sso_domains_set(actor=world.operator, org=world.a.org, domains="a-corp.example")
    with pytest.raises(ValidationFailed) as taken:
        org_sso_domains_set(actor=world.operator, org=world.b.org, domains="b.example, a-corp.example")
    assert "belongs to" in str(taken.value.fields)
    with pytest.raises(ValidationFailed):
        org_sso_domains_set(actor=world.operator, org=world.b.org, domains="not a domain")
    assert AuditEvent.objects.filter(action="org.sso_domains", org=world.a.org, actor=world.operator).exists()


def test_studio_sets_domains_for_operators_only_and_creates_scoped_tokens(world, client):
    a = world.a
    client.force_login(world.operator)
    url = f"/studio/tenancy/organization/{a.org.pk}/change/"
    data = {"display_name": a.org.display_name, "is_active": "on", "sso_email_domains": "a-corp.example"}
    assert client.post(url, data).status_code == 302
    a.org.refresh_from_db()
    assert a.org.sso_email_domains == "a-corp.example"
    taken = client.post(
        f"/studio/tenancy/organization/{world.b.org.pk}/change/",
        {"display_name": world.b.org.display_name, "is_active": "on", "sso_email_domains": "a-corp.example"},
    )
    assert taken.status_code == 200 and b"belongs to" in taken.content
    client.logout()
    client.force_login(a.users["org_admin"])  # sees the field, cannot change it
    assert b"a-corp.example" in client.get(url).content
    client.post(url, {"display_name": a.org.display_name, "sso_email_domains": "evil.example"})
    a.org.refresh_from_db()
    assert a.org.sso_email_domains == "a-corp.example"
    page = client.get("/studio/paas/apitoken/add/")
    assert b"Read only" in page.content and b"never create another token" in page.content
    made = client.post(
        "/studio/paas/apitoken/add/", {"name": "studio-ro", "scope": "read-only", "expires_in_days": 7}
    )
    assert made.status_code == 302
    assert ApiToken.objects.get(user=a.users["org_admin"], name="studio-ro").scope == "read-only"


def test_provider_access_tokens_count_toward_the_same_lockout(world, oidc, fast_lockout):
    _map(world.a, "acct-api")
    oidc.set_user("api-user", email="api-user@corp.example", groups=["acct-api"])
    access_token = oidc.issue_tokens("api-user")["access_token"]
    good, bad = _bearer(access_token), _bearer(access_token[:-2] + "xx")
    assert good.get("/api/v1/me/").status_code == 200
    assert [bad.get("/api/v1/me/").status_code for _ in range(3)] == [401, 401, 401]
    assert good.get("/api/v1/me/").status_code == 429
    minted = good.post("/api/v1/tokens/", {"name": "from-idp"}, format="json")
    assert minted.status_code == 429  # and once the lockout is over, a provider token mints nothing:
    wait_for(lambda: good.get("/api/v1/me/").status_code == 200, 10, what="the cool-off")
    refused = good.post("/api/v1/tokens/", {"name": "from-idp"}, format="json")
    assert refused.status_code == 403 and not ApiToken.objects.filter(name="from-idp").exists()
