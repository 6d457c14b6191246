"""What a request made with an API token may do, by the token's scope (``paas.models.TokenScope``).

Checked in ``ApiTokenAuthentication`` itself, so no view's permission classes can leave it out. A
scope is a rule over the request: its methods, and for narrower scopes the API area of the view (a
view's ``api_area``, e.g. ``"billing"`` for /api/v1/billing/; views without one are the ``"core"`` area).
"""

from dataclasses import dataclass

from rest_framework.permissions import SAFE_METHODS

from paas.models import TokenScope


@dataclass(frozen=True)
class ScopeRule:
    methods: frozenset[str] | None = None  # None: every method
    areas: frozenset[str] | None = None  # None: every area
    refusal: str = ""


RULES: dict[str, ScopeRule] = {
    TokenScope.READ_WRITE: ScopeRule(),
    TokenScope.READ_ONLY: ScopeRule(
        methods=frozenset(SAFE_METHODS),
        refusal="This token is read-only: it may only read (GET). Use a read-write token to make changes.",
    ),
    # For the provider's billing system: reads the billing API (/api/v1/billing/), nothing else (not
    # the instances, not the tokens, not the schema), and writes nothing there either (budgets, rates).
    TokenScope.BILLING_READ: ScopeRule(
        methods=frozenset(SAFE_METHODS),
        areas=frozenset({"billing"}),
        refusal="This token has the billing:read scope: it may only read the billing API "
        "(GET /api/v1/billing/...). Use a read-only or read-write token for anything else.",
    ),
}


def refusal(scope: str, request) -> str | None:
    """Why a request with a token of ``scope`` is refused, or None when the scope allows it."""
    rule = RULES.get(scope)
    if rule is None:
        return "This token's scope is unknown; create a new token."
    if rule.methods is not None and request.method not in rule.methods:
        return rule.refusal
    if rule.areas is not None:
        view = (getattr(request, "parser_context", None) or {}).get("view")
        if getattr(view, "api_area", "core") not in rule.areas:
            return rule.refusal
    return None
