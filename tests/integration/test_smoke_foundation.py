def test_world_builds(world):
    assert world.a.org.quota is not None
    assert world.a.users["org_admin"].is_staff
