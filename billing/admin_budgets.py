"""Studio pages of billing: budgets (filled by its part of issue 16)."""
