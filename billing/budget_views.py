"""Portal side of budgets: the workspace landing page's budget section (``instances.landing``): a banner
for each alert raised this month on the workspace's budget and its org's, and each budget's status.

Shown to whoever may see the budgets (``billing.budget_selectors.budget_list_for``): the workspace's
budget to those who view its instances and the org's admins; the org-wide budget to anyone who views
instances of some workspace of the org (every member has a personal one) and the org's admins. The
figures are computed live over the budget's own scope (see ``budget_selectors``).
"""

from billing import budget_selectors


def landing_section(request, project) -> dict | None:
    budgets = budget_selectors.budgets_for_workspace(request.user, project)
    if not budgets:
        return None
    statuses = budget_selectors.statuses(budgets)
    rows = []
    for budget in budgets:
        status = statuses[budget.pk]
        rows.append(
            {
                "status": status,
                "scope": f"workspace {budget.project.display_name}"
                if budget.project_id
                else f"organization {budget.org.display_name}",
                "alert": status.alerts[-1] if status.alerts else None,
                "percent_bar": min(100, int(status.percent)),
            }
        )
    return {"template": "billing/budget_landing.html", "rows": rows}
