"""The chargeback dashboards in a real browser: the studio dashboard (operator) and the portal's
workspace cost page and spend card (a workspace member). The numbers behind the drawn charts (read
from Chart.js itself) and the totals of the downloaded CSV must equal the billing figures of the same
period: the billing API's totals (``/api/v1/billing/usage/``, fetched in the same browser session) and
``billing.selectors.period_figures`` over the same meters. The pages pass axe-core."""

from decimal import Decimal
from pathlib import Path

from playwright.sync_api import Page, expect

from billing.models import Meter
from billing.selectors import period_figures
from tests.browser.helpers import login
from tests.browser.test_portal_pages import axe_violations
from tests.factories import PASSWORD
from tests.support.billing import NOVEMBER, OCTOBER, dashboard_history
from tests.support.support import grant_support

PERIOD = "start=2026-10-01&end=2026-10-31"
SIX = Decimal("0.000001")


def figures(meters) -> dict:
    rows = period_figures(list(meters), start=OCTOBER, end=NOVEMBER)
    return {
        "cost": sum((r["cost"] for r in rows), Decimal(0)).quantize(SIX),
        "gpu_hours": sum(r["running_seconds"] * r["meter"].gpus for r in rows) / 3600,
        "running_hours": sum(r["running_seconds"] for r in rows) / 3600,
    }


def billing_api(page: Page, **params) -> dict:
    """The billing API's totals for October (in the browser's session: the same user's view)."""
    query = "&".join(f"{k}={v}" for k, v in params.items())
    response = page.request.get(f"/api/v1/billing/usage/?{PERIOD}&{query}")
    assert response.ok, response.text()
    [total] = response.json()["totals"]  # one currency
    running = total["on_demand"]["running_seconds"] + total["reserved"]["running_seconds"]
    return {"cost": Decimal(total["cost"]), "running_hours": running / 3600}


def chart(page: Page, canvas_id: str) -> dict:
    """What Chart.js drew on the canvas: its labels and datasets (read from the chart object)."""
    page.wait_for_function(
        "(id) => window.Chart && Chart.getChart(document.getElementById(id))", arg=canvas_id
    )
    return page.evaluate(
        """(id) => {
            const c = Chart.getChart(document.getElementById(id));
            const datasets = c.data.datasets.map(d => ({label: d.label, data: d.data}));
            return {labels: c.data.labels, datasets: datasets};
        }""",
        canvas_id,
    )


def download_csv(page: Page, tmp_path: Path) -> list[dict]:
    import csv

    with page.expect_download() as info:
        page.get_by_role("link", name="Download CSV").first.click()
    target = tmp_path / info.value.suggested_filename
    info.value.save_as(target)
    return list(csv.DictReader(target.open(encoding="utf-8")))


def close(a: float, b: float, places: int = 5) -> bool:
    return abs(a - b) < 10**-places


def test_the_studio_dashboard_draws_the_billing_figures(new_page, shot, tmp_path):
    history = dashboard_history()
    everything = figures(Meter.objects.all())
    per_org = {side: figures(Meter.objects.filter(org=history[side]["org"])) for side in ("a", "b")}
    page = new_page()
    login(page, history["operator"].username, PASSWORD)
    page.goto(f"/studio/billing/usagerecord/?{PERIOD}&group_by=org&bucket=day")
    expect(page.get_by_role("heading", name="Costs and usage", level=1)).to_be_visible()
    api = billing_api(page)
    assert api["cost"] == everything["cost"] and close(api["running_hours"], everything["running_hours"])

    cost = chart(page, "studio-cost-chart")
    assert len(cost["labels"]) == 31 and cost["labels"][0] == "2026-10-01"
    drawn = {d["label"]: sum(v or 0 for v in d["data"]) for d in cost["datasets"]}
    assert close(sum(drawn.values()), float(everything["cost"]))
    for side in ("a", "b"):
        assert close(drawn[history[side]["org"].display_name], float(per_org[side]["cost"])), drawn
    gpu = chart(page, "studio-gpu-chart")
    [gpu_hours, idle] = gpu["datasets"]
    assert close(sum(gpu_hours["data"]), everything["gpu_hours"])
    assert idle["data"] == [None] * len(idle["data"])  # not configured: not drawn as zero
    expect(page.get_by_text("GPU utilisation not configured for cluster").first).to_be_visible()
    # the table beside the charts: the total, 2 places
    total_row = page.locator("table.cost-table tfoot tr")
    expect(total_row).to_contain_text(f"{everything['cost'].quantize(Decimal('0.01')):,}")
    expect(total_row).to_contain_text("not configured")

    rows = download_csv(page, tmp_path)
    assert sum(Decimal(r["cost_USD"]) for r in rows) == everything["cost"]
    assert abs(sum(Decimal(r["gpu_hours"]) for r in rows) - Decimal(everything["gpu_hours"])) < Decimal(
        "0.0001"
    )
    assert {r["group_by"] for r in rows} == {"org"}

    # another grouping through the form (the page reloads with it)
    page.locator("select[name=group_by]").select_option("user")
    page.locator("select[name=bucket]").select_option("month")
    with page.expect_navigation():
        page.get_by_role("button", name="Show").click()
    cost = chart(page, "studio-cost-chart")
    assert cost["labels"] == ["2026-10"]
    # By user is finer than the provider's totals: nothing without a support access to the orgs ...
    assert sum(sum(v or 0 for v in d["data"]) for d in cost["datasets"]) == 0
    for side in ("a", "b"):
        grant_support(operator=history["operator"], org=history[side]["org"], level="read")
    page.reload()
    cost = chart(page, "studio-cost-chart")  # ... and everything with one to each
    assert close(sum(sum(v or 0 for v in d["data"]) for d in cost["datasets"]), float(everything["cost"]))
    violations = axe_violations(page)
    assert violations == [], violations
    shot("studio-dashboard", page)


def test_the_portal_cost_page_and_spend_card_draw_the_workspace_figures(
    new_page, shot, tmp_path, browser_errors
):
    browser_errors.allow(r"/costs/\?start=2026-10-09&end=2026-10-02\)?$")  # the bad input below (a 400)
    history = dashboard_history()
    a = history["a"]
    mine = figures(Meter.objects.filter(project=a["project"]))
    page = new_page()
    login(page, a["owner"].username, PASSWORD, url="/login/")
    api = billing_api(page, project=a["project"].pk)
    assert api["cost"] == mine["cost"] and close(api["running_hours"], mine["running_hours"])

    page.goto(f"/w/{a['project'].pk}/")
    expect(page.get_by_role("heading", name="Spend this month")).to_be_visible()
    chart(page, "spend-card-chart")  # drawn (this month's records may be none yet)
    assert axe_violations(page) == []
    shot("workspace-spend-card", page)

    with page.expect_navigation():
        page.get_by_role("link", name="Costs and usage").click()
    page.goto(f"/w/{a['project'].pk}/costs/?{PERIOD}&group_by=user&bucket=day")
    cost = chart(page, "ws-cost-chart")
    drawn = sum(sum(v or 0 for v in d["data"]) for d in cost["datasets"])
    assert close(drawn, float(mine["cost"]))
    gpu = chart(page, "ws-gpu-chart")
    assert close(sum(gpu["datasets"][0]["data"]), mine["gpu_hours"])
    assert "Dashb" not in page.content()  # the other org's figures are nowhere

    rows = download_csv(page, tmp_path)
    assert sum(Decimal(r["cost_USD"]) for r in rows) == mine["cost"]
    assert abs(sum(Decimal(r["running_hours"]) for r in rows) - Decimal(mine["running_hours"])) < Decimal(
        "0.0001"
    )
    assert axe_violations(page) == []
    shot("workspace-costs", page)

    # bad input: the form again, the message beside the field
    page.goto(f"/w/{a['project'].pk}/costs/?start=2026-10-09&end=2026-10-02")
    expect(page.locator("#err-end")).to_contain_text("The end must come after the start.")
    assert axe_violations(page) == []
