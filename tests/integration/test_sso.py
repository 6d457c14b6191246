"""Single sign-on end to end against a real OIDC provider process over HTTP (oidc-provider-mock).

Django's test client plays the browser on the platform's side; the provider's authorization form is
submitted with ``requests``; the platform exchanges the code and reads userinfo over real HTTP.
"""

import base64
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.messages.storage.cookie import CookieStorage
from django.test import RequestFactory
from mozilla_django_oidc.utils import generate_code_challenge

from paas.models import AuditEvent
from tenancy import services
from tenancy.models import IdpGroupMapping, Project, User
from tenancy.roles import Role
from tests.support.oidc import configure, running_provider, sign_in


def _sub() -> str:
    return f"sso-{secrets.token_hex(4)}"


def _flash(client) -> list[str]:
    """The messages the platform queued for the browser (kept in the messages cookie)."""
    request = RequestFactory().get("/")
    request.COOKIES = {name: morsel.value for name, morsel in client.cookies.items()}
    return [str(message) for message in CookieStorage(request)]


def _signed_in_as(client) -> str | None:
    response = client.get("/api/v1/me/")
    return response.json()["email"] if response.status_code == 200 else None


def _map(world_tenant, group: str, role: str, project=None) -> IdpGroupMapping:
    return services.idp_mapping_create(
        actor=world_tenant.users["org_admin"], org=world_tenant.org, group=group, role=role, project=project
    )


class TokenEndpointProxy:
    """A man in the middle of the platform's token request: forwards it to the provider and hands the
    provider's answer to ``transform`` (which may tamper with it or hold it back) before passing it on.
    Requests are recorded, so a test can see what the platform sent."""

    def __init__(self, upstream: str, transform=None):
        self.upstream, self.transform, self.requests = upstream, transform or (lambda body: body), []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                proxy.requests.append(parse_qs(body.decode()))
                upstream = requests.post(
                    proxy.upstream,
                    data=body,
                    headers={
                        "Content-Type": self.headers["Content-Type"],
                        **(
                            {"Authorization": self.headers["Authorization"]}
                            if "Authorization" in self.headers
                            else {}
                        ),
                    },
                    timeout=10,
                )
                payload = json.dumps(proxy.transform(upstream.json())).encode()
                self.send_response(upstream.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture(scope="module")
def short_lived_provider():
    """A second provider whose ID and access tokens expire after 2 seconds."""
    with running_provider(token_max_age=2) as provider:
        yield provider


# --- the browser flow -------------------------------------------------------------------------------


def test_first_login_creates_the_user_and_the_workspace_with_the_mapped_role(world, client, oidc):
    a = world.a
    _map(a, "a-developers", Role.COLLABORATOR_RW, a.project)
    sub = _sub()
    oidc.set_user(
        sub,
        email="Ada.Lovelace@Example.org",
        preferred_username="ada",
        given_name="Ada",
        family_name="Lovelace",
        groups=["a-developers", "unmapped-group"],
    )

    response = sign_in(client, oidc, sub)

    assert response.status_code == 302 and response["Location"] == "/", _flash(client)
    user = User.objects.get(idp_subject=sub)
    assert (user.source, user.username, user.email) == ("idp", "ada", "Ada.Lovelace@example.org")
    assert (user.first_name, user.last_name) == ("Ada", "Lovelace")
    assert not user.has_usable_password() and not user.is_staff
    personal = Project.objects.get(owner=user, kind=Project.Kind.PERSONAL)
    assert personal.org == a.org
    assignments = {(ra.role, ra.project_id, ra.source) for ra in user.role_assignments.all()}
    assert assignments == {
        (Role.COLLABORATOR_RW, a.project.pk, "idp"),
        (Role.WORKSPACE_ADMIN, personal.pk, "manual"),
    }
    # Signed in, with the guardian permissions the role grants: the mapped project and nothing of B.
    assert _signed_in_as(client) == user.email
    assert client.get(f"/api/v1/projects/{a.project.pk}/").status_code == 200
    assert client.get(f"/api/v1/projects/{a.spare_project.pk}/").status_code == 404
    assert client.get(f"/api/v1/projects/{world.b.project.pk}/").status_code == 404
    assert client.session["oidc_id_token"]
    events = AuditEvent.objects.filter(target_type="tenancy.roleassignment", details__user=user.email)
    assert events.get(action="role.assign", details__role="collaborator_rw").details == {
        "user": user.email,
        "role": "collaborator_rw",
        "via": "idp group sync",
        "groups": ["a-developers"],
    }
    assert AuditEvent.objects.filter(action="user.create", target_id=str(user.pk)).exists()


def test_pkce_challenge_is_sent_and_the_verifier_goes_to_the_token_endpoint(world, client, oidc, settings):
    _map(world.a, "a-pkce", Role.COLLABORATOR_RO, world.a.project)
    sub = _sub()
    oidc.set_user(sub, email=f"{sub}@example.org", groups=["a-pkce"])
    start = client.get("/oidc/authenticate/")
    query = parse_qs(urlsplit(start["Location"]).query)
    assert start["Location"].startswith(oidc.configuration()["authorization_endpoint"])
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["nonce"] and query["state"] and query["scope"] == ["openid email profile"]
    verifier = client.session["oidc_states"][query["state"][0]]["code_verifier"]
    assert generate_code_challenge(verifier, "S256") == query["code_challenge"][0]

    with TokenEndpointProxy(oidc.configuration()["token_endpoint"]) as proxy:
        settings.OIDC_OP_TOKEN_ENDPOINT = proxy.url
        callback = urlsplit(oidc.authorize(start["Location"], sub))
        response = client.get(f"{callback.path}?{callback.query}")
    assert response.status_code == 302 and response["Location"] == "/"
    assert [r["code_verifier"] for r in proxy.requests] == [[verifier]]
    assert _signed_in_as(client) == f"{sub}@example.org"


def test_group_removal_at_the_provider_takes_the_idp_role_away_but_not_manual_ones(world, client, oidc):
    a = world.a
    admin = a.users["org_admin"]
    _map(a, "a-developers", Role.COLLABORATOR_RW, a.project)
    _map(a, "a-ops", Role.COLLABORATOR_RO, a.spare_project)
    _map(a, "a-admins", Role.ORG_ADMIN)
    sub = _sub()
    oidc.set_user(sub, email=f"{sub}@example.org", groups=["a-developers", "a-ops", "a-admins"])
    assert sign_in(client, oidc, sub).status_code == 302
    user = User.objects.get(idp_subject=sub)
    assert user.is_staff, "org admin through a group opens the studio"
    assert {ra.role for ra in user.role_assignments.filter(source="idp")} == {
        "collaborator_rw",
        "collaborator_ro",
        "org_admin",
    }
    # An org admin turns the spare-project role into a manual one (same role, same project).
    services.role_revoke(actor=admin, assignment=user.role_assignments.get(project=a.spare_project))
    manual = services.role_assign(actor=admin, user=user, role=Role.COLLABORATOR_RO, project=a.spare_project)
    assert manual.source == "manual"
    client.post("/logout/")

    oidc.set_user(sub, email=f"{sub}@example.org", groups=[])  # removed from every group
    assert sign_in(client, oidc, sub).status_code == 302
    user.refresh_from_db()
    remaining = {(ra.role, ra.project_id, ra.source) for ra in user.role_assignments.all()}
    personal = user.personal_projects.get()
    assert remaining == {
        (Role.COLLABORATOR_RO, a.spare_project.pk, "manual"),
        (Role.WORKSPACE_ADMIN, personal.pk, "manual"),
    }
    assert not user.is_staff
    assert client.get(f"/api/v1/projects/{a.project.pk}/").status_code == 404
    assert client.get(f"/api/v1/projects/{a.spare_project.pk}/").status_code == 200
    revoked = AuditEvent.objects.filter(
        action="role.revoke", details__user=user.email, details__via="idp group sync"
    )
    assert {e.details["role"] for e in revoked} == {"collaborator_rw", "org_admin"}


def test_a_single_string_groups_claim_and_a_custom_claim_name(world, client, oidc, settings):
    settings.OIDC_GROUPS_CLAIM = "roles"
    _map(world.a, "a-single", Role.WORKSPACE_ADMIN, world.a.project)
    sub = _sub()
    oidc.set_user(sub, email=f"{sub}@example.org", roles="a-single")
    assert sign_in(client, oidc, sub)["Location"] == "/"
    user = User.objects.get(idp_subject=sub)
    assert user.role_assignments.filter(
        role="workspace_admin", project=world.a.project, source="idp"
    ).exists()


def test_without_a_mapped_group_the_login_is_refused_or_joins_the_default_org(world, client, oidc, settings):
    sub = _sub()
    oidc.set_user(sub, email=f"{sub}@example.org", groups=["nobody-mapped-this"])
    response = sign_in(client, oidc, sub)
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert _flash(client) == [services.NO_ORG_MESSAGE]
    assert not User.objects.filter(idp_subject=sub).exists() and _signed_in_as(client) is None

    settings.OIDC_DEFAULT_ORG = world.b.org.name
    response = sign_in(client, oidc, sub)
    assert response["Location"] == "/"
    user = User.objects.get(idp_subject=sub)
    assert [(ra.org_id, ra.role) for ra in user.role_assignments.all()] == [
        (world.b.org.pk, "workspace_admin")
    ]
    assert user.personal_projects.get().org == world.b.org


def test_a_local_account_with_the_same_email_is_not_taken_over(world, client, oidc):
    _map(world.a, "a-developers", Role.COLLABORATOR_RW, world.a.project)
    local = world.a.users["collaborator_ro"]
    sub = _sub()
    oidc.set_user(sub, email=local.email.upper(), groups=["a-developers"])
    response = sign_in(client, oidc, sub)
    assert response["Location"] == "/login/"
    assert any("local account already uses" in m for m in _flash(client)), _flash(client)
    local.refresh_from_db()
    assert (local.source, local.idp_subject, local.has_usable_password()) == ("local", None, True)
    assert not User.objects.filter(idp_subject=sub).exists() and _signed_in_as(client) is None


def test_later_logins_refresh_names_and_email_and_deactivated_users_are_refused(world, client, oidc):
    _map(world.a, "a-developers", Role.COLLABORATOR_RW, world.a.project)
    sub = _sub()
    oidc.set_user(sub, email=f"{sub}@example.org", given_name="Old", groups=["a-developers"])
    sign_in(client, oidc, sub)
    client.post("/logout/")
    oidc.set_user(sub, email=f"new-{sub}@example.org", given_name="New", groups=["a-developers"])
    assert sign_in(client, oidc, sub)["Location"] == "/"
    user = User.objects.get(idp_subject=sub)
    assert (user.email, user.first_name) == (f"new-{sub}@example.org", "New")
    update = AuditEvent.objects.get(action="user.update", target_id=str(user.pk))
    assert update.details["changes"]["email"] == [f"{sub}@example.org", f"new-{sub}@example.org"]
    client.post("/logout/")

    services.user_update(actor=world.operator, user=user, is_active=False)
    assert sign_in(client, oidc, sub)["Location"] == "/login/"
    assert any("deactivated" in m for m in _flash(client))
    assert _signed_in_as(client) is None


def test_a_wrong_or_replayed_state_is_refused(world, client, oidc):
    _map(world.a, "a-developers", Role.COLLABORATOR_RW, world.a.project)
    sub = _sub()
    oidc.set_user(sub, email=f"{sub}@example.org", groups=["a-developers"])
    start = client.get("/oidc/authenticate/")
    callback = urlsplit(oidc.authorize(start["Location"], sub))
    params = parse_qs(callback.query)
    forged = client.get(callback.path, {"code": params["code"][0], "state": "forged-state"})
    assert forged.status_code == 302 and forged["Location"] == "/login/"
    assert _signed_in_as(client) is None and not User.objects.filter(idp_subject=sub).exists()
    good = client.get(f"{callback.path}?{callback.query}")
    assert good["Location"] == "/" and _signed_in_as(client) == f"{sub}@example.org"
    client.post("/logout/")
    replay = client.get(f"{callback.path}?{callback.query}")
    assert replay["Location"] == "/login/" and _signed_in_as(client) is None


def test_a_tampered_id_token_is_refused(world, client, oidc, settings):
    """An attacker between the platform and the provider rewrites the ID token's subject and email to
    an existing person's: the signature no longer matches and nobody is signed in."""
    _map(world.a, "a-admins", Role.ORG_ADMIN)
    victim_sub, attacker_sub = _sub(), _sub()
    oidc.set_user(victim_sub, email=f"{victim_sub}@example.org", groups=["a-admins"])
    sign_in(client, oidc, victim_sub)
    client.post("/logout/")
    oidc.set_user(attacker_sub, email=f"{attacker_sub}@example.org", groups=["a-admins"])

    def tamper(body):
        header, payload, signature = body["id_token"].split(".")
        claims = json.loads(_unb64(payload))
        claims.update(sub=victim_sub, email=f"{victim_sub}@example.org")
        return {**body, "id_token": ".".join([header, _b64(json.dumps(claims).encode()), signature])}

    with TokenEndpointProxy(oidc.configuration()["token_endpoint"], tamper) as proxy:
        settings.OIDC_OP_TOKEN_ENDPOINT = proxy.url
        response = sign_in(client, oidc, attacker_sub)
    assert len(proxy.requests) == 1
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert any("could not be verified" in m for m in _flash(client))
    assert _signed_in_as(client) is None
    assert not User.objects.filter(idp_subject=attacker_sub).exists()


def test_an_expired_id_token_is_refused(world, client, settings, short_lived_provider):
    """The provider's answer is held back until its 2-second ID token has expired."""
    configure(settings, short_lived_provider)
    _map(world.a, "a-developers", Role.COLLABORATOR_RW, world.a.project)
    sub = _sub()
    short_lived_provider.set_user(sub, email=f"{sub}@example.org", groups=["a-developers"])

    def hold_back(body):
        time.sleep(short_lived_provider.token_max_age + 1.5)
        return body

    token_endpoint = short_lived_provider.configuration()["token_endpoint"]
    with TokenEndpointProxy(token_endpoint, hold_back) as proxy:
        settings.OIDC_OP_TOKEN_ENDPOINT = proxy.url
        response = sign_in(client, short_lived_provider, sub)
    assert response["Location"] == "/login/" and _signed_in_as(client) is None
    assert not User.objects.filter(idp_subject=sub).exists()

    settings.OIDC_OP_TOKEN_ENDPOINT = token_endpoint  # without the delay the same provider is fine
    assert sign_in(client, short_lived_provider, sub)["Location"] == "/"


def test_next_url_is_kept_and_an_unreachable_provider_is_a_message_not_an_error(
    world, client, oidc, settings
):
    _map(world.a, "a-admins", Role.ORG_ADMIN)
    sub = _sub()
    oidc.set_user(sub, email=f"{sub}@example.org", groups=["a-admins"])
    assert sign_in(client, oidc, sub, next_url="/studio/")["Location"] == "/studio/"
    assert client.get("/studio/").status_code == 200, "an org admin from a group enters the studio"
    client.post("/logout/")

    from tenancy import sso

    sso.clear_discovery_cache()
    settings.OIDC_OP_DISCOVERY_URL = "http://127.0.0.1:9/.well-known/openid-configuration"  # nothing listens
    response = client.get("/oidc/authenticate/")
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert any("cannot be reached" in m for m in _flash(client))


# --- sign-out ---------------------------------------------------------------------------------------


def test_logout_ends_the_session_here_and_at_the_provider(world, client, oidc):
    _map(world.a, "a-developers", Role.COLLABORATOR_RW, world.a.project)
    sub = _sub()
    oidc.set_user(sub, email=f"{sub}@example.org", groups=["a-developers"])
    sign_in(client, oidc, sub)
    id_token = client.session["oidc_id_token"]
    assert client.get("/logout/").status_code == 405, "sign-out is POST only (CSRF-protected)"
    assert _signed_in_as(client) is not None

    response = client.post("/logout/")
    assert _signed_in_as(client) is None
    location = urlsplit(response["Location"])
    assert (
        f"{location.scheme}://{location.netloc}{location.path}"
        == oidc.configuration()["end_session_endpoint"]
    )
    query = parse_qs(location.query)
    assert query["id_token_hint"] == [id_token]
    assert query["post_logout_redirect_uri"] == ["http://testserver/login/"]
    # The provider's end-session page, confirmed, sends the browser back to the platform's login page.
    page = requests.get(response["Location"], timeout=10)
    assert page.status_code == 200 and "End Session" in page.text
    confirm = requests.post(
        f"{oidc.url}/oauth2/end_session/confirm",
        data={"redirect_uri": "http://testserver/login/"},
        allow_redirects=False,
        timeout=10,
    )
    assert confirm.headers["Location"] == "http://testserver/login/"


def test_logout_without_a_provider_session_or_end_session_endpoint_goes_to_the_login_page(
    world, client, oidc, settings
):
    client.force_login(world.a.users["org_admin"])  # a password session: nothing to end at the provider
    assert client.post("/logout/")["Location"] == "/login/"
    assert _signed_in_as(client) is None

    _map(world.a, "a-developers", Role.COLLABORATOR_RW, world.a.project)
    sub = _sub()
    oidc.set_user(sub, email=f"{sub}@example.org", groups=["a-developers"])
    config = oidc.configuration()
    configure(
        settings,
        oidc,
        OIDC_OP_DISCOVERY_URL="",  # endpoints one by one, and none for end-session
        OIDC_OP_AUTHORIZATION_ENDPOINT=config["authorization_endpoint"],
        OIDC_OP_TOKEN_ENDPOINT=config["token_endpoint"],
        OIDC_OP_USER_ENDPOINT=config["userinfo_endpoint"],
        OIDC_OP_JWKS_ENDPOINT=config["jwks_uri"],
    )
    assert sign_in(client, oidc, sub)["Location"] == "/"
    assert client.post("/logout/")["Location"] == "/login/"
    assert _signed_in_as(client) is None


def test_password_login_still_works_and_sso_is_inert_when_disabled(world, client, settings, password):
    settings.OIDC_ENABLED = False
    admin = world.a.users["org_admin"]
    page = client.get("/studio/login/").content.decode()
    assert "Sign in with" not in page
    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/?code=x&state=y").status_code == 404
    response = client.post(
        "/studio/login/", {"username": admin.username, "password": password, "next": "/studio/"}
    )
    assert response.status_code == 302 and response["Location"] == "/studio/"
    assert _signed_in_as(client) == admin.email


def test_studio_login_page_offers_single_sign_on_when_enabled(client, oidc, db):
    page = client.get("/studio/login/?next=/studio/tenancy/").content.decode()
    assert 'href="/oidc/authenticate/?next=/studio/tenancy/"' in page
    assert "Sign in with Test IdP" in page


# --- the API with the provider's access tokens ------------------------------------------------------


def test_api_accepts_the_providers_access_token_and_refuses_a_tampered_one(world, oidc):
    from rest_framework.test import APIClient

    _map(world.a, "a-developers", Role.COLLABORATOR_RW, world.a.project)
    sub = _sub()
    oidc.set_user(sub, email=f"{sub}@example.org", groups=["a-developers"])
    access_token = oidc.issue_tokens(sub)["access_token"]
    api = APIClient()

    me = api.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {access_token}")
    assert me.status_code == 200, me.content
    assert me.json()["email"] == f"{sub}@example.org" and me.json()["source"] == "idp"
    user = User.objects.get(idp_subject=sub)  # created just in time, as in the browser
    assert user.personal_projects.get().org == world.a.org
    project = api.get(f"/api/v1/projects/{world.a.project.pk}/", HTTP_AUTHORIZATION=f"Bearer {access_token}")
    assert project.status_code == 200

    for bad in (access_token[:-2] + "xx", access_token + "0", "not-a-token-at-all"):
        refused = api.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {bad}")
        assert refused.status_code == 401, refused.content
        assert refused.json()["error"]["message"] == "Invalid or expired access token."
        assert refused["WWW-Authenticate"].startswith("Bearer")
    # Our own API tokens are still ours to check.
    ours = api.get("/api/v1/me/", HTTP_AUTHORIZATION="Bearer gpaas_bogus_token")
    assert ours.status_code == 401 and "revoked" in ours.json()["error"]["message"]


def test_api_bearer_groups_sync_and_refusals(world, oidc):
    from rest_framework.test import APIClient

    sub = _sub()
    oidc.set_user(sub, email=f"{sub}@example.org", groups=["nobody-mapped-this"])
    refused = APIClient().get(
        "/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {oidc.issue_tokens(sub)['access_token']}"
    )
    assert refused.status_code == 401 and refused.json()["error"]["message"] == services.NO_ORG_MESSAGE
    assert not User.objects.filter(idp_subject=sub).exists()

    _map(world.a, "a-ops", Role.COLLABORATOR_RO, world.a.spare_project)
    oidc.set_user(sub, email=f"{sub}@example.org", groups=["a-ops"])
    token = oidc.issue_tokens(sub)["access_token"]
    spare = APIClient().get(
        f"/api/v1/projects/{world.a.spare_project.pk}/", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert spare.status_code == 200
    assert User.objects.get(idp_subject=sub).role_assignments.filter(source="idp").count() == 1


def test_api_refuses_an_expired_access_token(world, settings, short_lived_provider):
    from rest_framework.test import APIClient

    configure(settings, short_lived_provider)
    _map(world.a, "a-developers", Role.COLLABORATOR_RW, world.a.project)
    sub = _sub()
    short_lived_provider.set_user(sub, email=f"{sub}@example.org", groups=["a-developers"])
    fresh = short_lived_provider.issue_tokens(sub)["access_token"]
    stale = short_lived_provider.issue_tokens(sub)["access_token"]
    api = APIClient()
    assert api.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {fresh}").status_code == 200
    time.sleep(short_lived_provider.token_max_age + 1)
    expired = api.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {stale}")
    assert expired.status_code == 401, expired.content
    assert expired.json()["error"]["code"] == "authentication_failed"


def test_api_token_check_is_cached_briefly_and_revocation_counts_after_it(world, oidc, settings):
    from rest_framework.test import APIClient

    _map(world.a, "a-developers", Role.COLLABORATOR_RW, world.a.project)
    sub = _sub()
    oidc.set_user(sub, email=f"{sub}@example.org", groups=["a-developers"])
    token = oidc.issue_tokens(sub)["access_token"]
    api = APIClient()
    assert api.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    oidc.revoke_tokens(sub)
    # Within OIDC_API_TOKEN_CACHE_SECONDS the provider is not asked again...
    assert api.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    # ...without the cache it is, and the revoked token is refused.
    settings.OIDC_API_TOKEN_CACHE_SECONDS = 0
    from django.core.cache import cache

    cache.clear()
    assert api.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


def test_api_answers_503_when_the_provider_is_unreachable(world, oidc, settings):
    from rest_framework.test import APIClient

    from tenancy import sso

    sso.clear_discovery_cache()
    settings.OIDC_OP_DISCOVERY_URL = "http://127.0.0.1:9/.well-known/openid-configuration"
    response = APIClient().get("/api/v1/me/", HTTP_AUTHORIZATION="Bearer some-provider-token")
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "idp_unavailable"


def test_api_refuses_a_jwt_access_token_issued_to_another_client(world, oidc, settings):
    """Userinfo cannot tell for whom a token was issued; a JWT access token says it (azp/aud)."""
    import base64
    import json

    from rest_framework.test import APIClient

    def jwt(payload: dict) -> str:
        part = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
        return f"{part({'alg': 'RS256'})}.{part(payload)}.c2lnbmF0dXJl"

    api = APIClient()
    for payload in ({"azp": "another-client", "sub": "x"}, {"aud": ["another-client"], "sub": "x"}):
        refused = api.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {jwt(payload)}")
        assert refused.status_code == 401, refused.content
    from tenancy import sso

    with pytest.raises(
        sso.InvalidAccessToken, match="issued to another client"
    ):  # before asking the provider
        sso._check_audience(jwt({"azp": "another-client"}))
    sso._check_audience(jwt({"azp": settings.OIDC_RP_CLIENT_ID, "aud": "api"}))  # ours: the provider decides
    sso._check_audience(jwt({"aud": [settings.OIDC_RP_CLIENT_ID, "api"]}))
