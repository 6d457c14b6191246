"""White-label branding in a real browser: with a dark brand and with a light one (and a logo), the
portal's and the studio's pages still pass axe-core's WCAG 2.1 A/AA rules (contrast included), show
the brand, and nothing is wider than the screen."""

import re

import pytest
from playwright.sync_api import Page, expect

from paas.brand_checks import mix
from paas.branding import brand_update
from tenancy import services
from tenancy.roles import Role
from tests.browser.helpers import login
from tests.browser.test_portal_pages import axe_violations
from tests.factories import PASSWORD, UserFactory, add_member, make_operator, make_org
from tests.support.images import png

BRANDS = {
    "dark": {
        "product_name": "Nightfall Cloud",
        "studio_name": "Nightfall Console",
        "color_background": "#10141c",
        "color_text": "#e8ecf2",
        "color_primary": "#7cd1ff",
        "color_primary_text": "#0b1b2b",
        "support_email": "help@nightfall.example",
    },
    "light": {
        "product_name": "Daybreak GPU",
        "studio_name": "Daybreak Console",
        "color_background": "#fffaf0",
        "color_text": "#2b2118",
        "color_primary": "#6b1fb1",
        "color_primary_text": "#ffffff",
        "support_url": "https://help.daybreak.example/",
    },
}


@pytest.fixture
def people(transactional_db):
    """An operator, an org with its admin, a workspace and its workspace admin (invited, as the
    platform does it)."""
    operator = make_operator(username="brand-op", email="brand-op@example.com")
    org, org_admin = make_org(operator=operator, name="brandco")
    project = services.project_create(actor=org_admin, org=org, name="team", display_name="Team")
    owner = UserFactory(username="brand-owner", email="owner@brandco.example.com")
    add_member(admin=org_admin, user=owner, role=Role.WORKSPACE_ADMIN, project=project)
    return operator, org_admin, project, owner


def rgb(colour: str) -> str:
    return "rgb({}, {}, {})".format(*(int(colour[i : i + 2], 16) for i in (1, 3, 5)))


def check(page: Page, shot, name: str, theme: str) -> None:
    assert axe_violations(page) == [], name
    width = page.evaluate("window.innerWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{name} is wider than {width}px"
    background = page.evaluate(
        """() => [document.body, document.documentElement]
            .map(e => getComputedStyle(e).backgroundColor)
            .find(c => c !== "rgba(0, 0, 0, 0)")"""
    )
    brand = BRANDS[theme]
    # The brand's colours are in effect: its background, or its surface (the studio's sign-in page).
    expected = {
        rgb(colour)
        for colour in (brand["color_background"], mix(brand["color_background"], brand["color_text"], 0.04))
    }
    assert background in expected, (name, background, expected)
    shot(name, page)


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_portal_and_studio_pass_axe_in_a_dark_and_a_light_brand(
    people, new_page, shot, browser_errors, theme
):
    operator, org_admin, project, owner = people
    brand = BRANDS[theme]
    brand_update(actor=operator, logo=png(4, 4), favicon=png(2, 2), **brand)
    browser_errors.allow(r"/w/999999/")  # the 404 page is one of the pages checked

    page = new_page()
    page.goto("/login/")
    expect(page.locator("header .brand")).to_contain_text(brand["product_name"])
    expect(page.locator("header .brand img.brand-logo")).to_be_visible()
    check(page, shot, "login", theme)
    login(page, owner.username, PASSWORD, url="/login/")
    for path, name in (
        (f"/w/{project.pk}/", "landing"),
        (f"/w/{project.pk}/instances/", "instances"),
        (f"/w/{project.pk}/instances/new/", "new-instance"),
        (f"/w/{project.pk}/services/", "services"),
        ("/w/999999/", "not-found"),
    ):
        page.goto(path)
        expect(page).to_have_title(re.compile(re.escape(brand["product_name"])))
        check(page, shot, name, theme)
    page.goto(f"/w/{project.pk}/")
    page.locator("details.user-menu summary").click()
    check(page, shot, "user-menu-open", theme)

    studio = new_page()
    studio.goto("/studio/login/")
    expect(studio.locator("#site-name")).to_contain_text(brand["studio_name"])
    check(studio, shot, "studio-login", theme)
    login(studio, org_admin.username, PASSWORD)
    for path, name in (
        ("/studio/", "studio-home"),
        ("/studio/tenancy/project/", "studio-projects"),
        (f"/studio/tenancy/project/{project.pk}/change/", "studio-project"),
    ):
        studio.goto(path)
        expect(studio.locator("#site-name")).to_contain_text(brand["studio_name"])
        check(studio, shot, name, theme)

    operator_page = new_page()
    login(operator_page, operator.username, PASSWORD)
    operator_page.goto("/studio/paas/brand/")
    check(operator_page, shot, "studio-brands", theme)
    operator_page.get_by_role("link", name=brand["product_name"], exact=True).click()
    expect(operator_page.get_by_label("Product name")).to_have_value(brand["product_name"])
    check(operator_page, shot, "studio-brand", theme)
    # A colour with too little contrast, typed into the form: refused with the ratio, on the form.
    operator_page.get_by_label("Text colour").fill("#777777" if theme == "light" else "#5a6270")
    operator_page.get_by_role("button", name="Save", exact=True).click()
    expect(operator_page.locator(".errorlist")).to_contain_text(":1; WCAG AA needs at least 4.5:1")
    check(operator_page, shot, "studio-brand-refused", theme)
