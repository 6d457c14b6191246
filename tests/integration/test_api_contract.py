"""The API's contract: schema and docs served locally, one error shape, pagination and filters."""

from rest_framework.test import APIClient


def test_schema_and_swagger_ui_without_cdn(world, client):
    client.force_login(world.operator)
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and b"openapi: 3" in schema.content
    for path in (b"/api/v1/orgs/", b"/api/v1/audit-events/", b"/api/v1/tokens/", b"/api/v1/me/"):
        assert path in schema.content
    docs = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in docs and "cdn" not in docs.lower() and "//unpkg" not in docs
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in docs


def test_one_error_shape(world, api):
    client = api.as_user(world.a.users["org_admin"])
    shapes = [
        client.post("/api/v1/projects/", {"org": world.a.org.pk, "name": "No Spaces Allowed"}),
        client.post("/api/v1/projects/", "{not json", content_type="application/json"),
        client.get("/api/v1/projects/999999/"),
        api.as_user(world.a.users["collaborator_ro"]).patch(
            f"/api/v1/projects/{world.a.project.pk}/", {"description": "x"}
        ),
        APIClient().get("/api/v1/projects/"),
        client.get("/api/v1/audit-events/?since=not-a-date"),
    ]
    assert [r.status_code for r in shapes] == [400, 400, 404, 403, 401, 400]
    for response in shapes:
        error = response.json()["error"]
        assert (
            set(error) >= {"status", "code", "message", "request_id"}
            and error["status"] == response.status_code
        )
    assert "name" in shapes[0].json()["error"]["fields"]


def test_pagination_and_filters(world, api):
    client = api.as_user(world.a.users["org_admin"])  # the operator sees inside no org
    page = client.get("/api/v1/projects/?page_size=2")
    body = page.json()
    assert len(body["results"]) == 2 and body["count"] > 2 and body["next"]
    only_a = client.get(f"/api/v1/projects/?org={world.a.org.pk}&kind=team").json()
    assert {p["name"] for p in only_a["results"]} == {"team", "spare"}
    events = client.get(f"/api/v1/audit-events/?project={world.a.project.pk}&client=cli&action=role.").json()
    assert events["count"] > 0 and all(e["action"].startswith("role.") for e in events["results"])
    assert client.get("/api/v1/audit-events/?since=2999-01-01T00:00:00Z").json()["count"] == 0
    user = world.a.users["org_admin"]
    assert all(
        e["user"] == user.pk for e in client.get(f"/api/v1/audit-events/?user={user.pk}").json()["results"]
    )


def test_quota_api_validation(world, api):
    op = api.as_user(world.operator)
    assert (
        op.patch(
            f"/api/v1/quotas/{world.a.org.quota.pk}/",
            {"gpus": 8, "gpu_models": [{"gpu_model": "NVIDIA-H100-80GB-HBM3", "gpus": 4}]},
            format="json",
        ).status_code
        == 200
    )
    admin = api.as_user(world.a.users["org_admin"])
    over = admin.patch(f"/api/v1/quotas/{world.a.project.quota.pk}/", {"gpus": 9}, format="json")
    assert over.status_code == 400 and "limit of 8" in over.json()["error"]["fields"]["gpus"][0]
    over_model = admin.patch(
        f"/api/v1/quotas/{world.a.project.quota.pk}/",
        {"gpus": 2, "gpu_models": [{"gpu_model": "NVIDIA-H100-80GB-HBM3", "gpus": 5}]},
        format="json",
    )
    assert over_model.status_code == 400 and "gpu_models" in over_model.json()["error"]["fields"]
    negative = admin.patch(f"/api/v1/quotas/{world.a.project.quota.pk}/", {"gpus": -1}, format="json")
    assert negative.status_code == 400
    dup = admin.patch(
        f"/api/v1/quotas/{world.a.project.quota.pk}/",
        {"gpus": 1, "gpu_models": [{"gpu_model": "X", "gpus": 1}, {"gpu_model": "X", "gpus": 1}]},
        format="json",
    )
    assert dup.status_code == 400
    ok = admin.patch(
        f"/api/v1/quotas/{world.a.project.quota.pk}/",
        {"gpus": 8, "gpu_models": [{"gpu_model": "NVIDIA-H100-80GB-HBM3", "gpus": 4}]},
        format="json",
    )
    assert ok.status_code == 200 and ok.json()["gpu_models"] == [
        {"gpu_model": "NVIDIA-H100-80GB-HBM3", "gpus": 4}
    ]


def test_me(world, api):
    me = api.as_user(world.a.users["workspace_admin"]).get("/api/v1/me/").json()
    assert me["is_operator"] is False
    assert {"role": "workspace_admin", "org": world.a.org.pk, "project": world.a.project.pk} in me["roles"]
    assert {w["kind"] for w in me["workspaces"]} == {"personal", "team"}
