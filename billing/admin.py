"""The studio's billing pages (each module registers its own)."""

from billing import admin_budgets, admin_cost_profiles, admin_dashboards, admin_usage  # noqa: F401
