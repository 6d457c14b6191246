"""Every email the platform sends goes through :func:`send_email`.

One place renders the body from a template, names the sender and appends the footer, so the branding
(issue 18, ``paas/branding.py``) reaches every email: the product name, the sender, the support contact
and the footer, of the org the email is about when that org has a brand of its own.
"""

from django.core.mail import send_mail
from django.template.loader import render_to_string


def send_email(*, to: list[str], subject: str, template: str, context: dict, org=None) -> None:
    """Render ``template`` (a text template; ``brand`` is in its context) with ``context`` and send it
    to ``to``.

    ``org`` is the organization the email is about (None: the platform's own): its brand, if it has
    one, else the platform's, names the sender, prefixes the subject with the product name and signs
    the footer (with the support contact). Raises what the mail backend raises (callers decide
    whether to retry)."""
    from paas.branding import email_parts

    brand, sender, footer = email_parts(org)
    body = render_to_string(template, {"brand": brand, **context}).rstrip() + footer + "\n"
    # A subject is one line: a line break in it (an org's name, say) must not start a new header.
    subject = " ".join(f"{brand.product_name}: {subject}".split())
    send_mail(subject=subject, message=body, from_email=sender, recipient_list=list(to))
