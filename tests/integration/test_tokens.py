"""Personal API tokens: shown once, stored hashed, expiring, revocable."""

from datetime import timedelta

from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from paas.models import ApiToken


def _create(world, name="laptop", days=30):
    client = APIClient()
    client.force_authenticate(world.a.users["org_admin"])
    response = client.post("/api/v1/tokens/", {"name": name, "expires_in_days": days}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_token_authenticates_and_is_never_stored_in_clear(world):
    created = _create(world)
    token = created["token"]
    assert token.startswith("gpaas_")
    me = _bearer(token).get("/api/v1/me/")
    assert me.status_code == 200 and me.json()["username"] == world.a.users["org_admin"].username
    # Nowhere in the table, in any column, is the clear token (or its secret part).
    secret = token.rsplit("_", 1)[1]
    with connection.cursor() as cur:
        cur.execute("SELECT row_to_json(t)::text FROM paas_apitoken t")
        rows = " ".join(r[0] for r in cur.fetchall())
    assert token not in rows and secret not in rows
    # Listing shows a hint only, never the token again.
    listing = APIClient()
    listing.force_authenticate(world.a.users["org_admin"])
    body = listing.get("/api/v1/tokens/").content.decode()
    assert secret not in body and created["token_hint"] in body
    assert ApiToken.objects.get(pk=created["id"]).last_used_at is not None


def test_expired_token_is_refused(world):
    created = _create(world)
    ApiToken.objects.filter(pk=created["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = _bearer(created["token"]).get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Invalid, expired or revoked token."
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_revoked_token_is_refused(world):
    created = _create(world)
    client = _bearer(created["token"])
    assert client.get("/api/v1/me/").status_code == 200
    assert client.delete(f"/api/v1/tokens/{created['id']}/").status_code == 204
    assert client.get("/api/v1/me/").status_code == 401


def test_wrong_and_malformed_tokens_are_refused(world):
    created = _create(world)
    forged = created["token"][:-4] + ("aaaa" if not created["token"].endswith("aaaa") else "bbbb")
    assert _bearer(forged).get("/api/v1/me/").status_code == 401
    assert _bearer("gpaas_nope").get("/api/v1/me/").status_code == 401
    assert APIClient().get("/api/v1/me/").status_code == 401


def test_deactivated_user_token_is_refused(world):
    created = _create(world)
    world.a.users["org_admin"].__class__.objects.filter(pk=world.a.users["org_admin"].pk).update(
        is_active=False
    )
    assert _bearer(created["token"]).get("/api/v1/me/").status_code == 401


def test_token_validation_and_privacy(world, api):
    client = api.as_user(world.a.users["org_admin"])
    bad = client.post("/api/v1/tokens/", {"name": "", "expires_in_days": 0}, format="json")
    assert bad.status_code == 400 and set(bad.json()["error"]["fields"]) == {"name", "expires_in_days"}
    too_long = client.post("/api/v1/tokens/", {"name": "x", "expires_in_days": 10_000}, format="json")
    assert too_long.status_code == 400 and "expires_in_days" in too_long.json()["error"]["fields"]
    created = _create(world, name="mine")
    other = api.as_user(world.a.users["workspace_admin"])
    assert other.get(f"/api/v1/tokens/{created['id']}/").status_code == 404
    assert other.delete(f"/api/v1/tokens/{created['id']}/").status_code == 404
    assert ApiToken.objects.get(pk=created["id"]).revoked_at is None
