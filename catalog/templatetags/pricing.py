"""``{% load pricing %}``: a profile's or a launch snapshot's price as people read it
(``{{ profile|price_label }}`` "2.50 USD per hour, on demand"; ``{{ price|stopped_label }}``)."""

from django import template

from catalog import pricing

register = template.Library()
register.filter("price_label", pricing.price_label)
register.filter("stopped_label", pricing.stopped_label)
