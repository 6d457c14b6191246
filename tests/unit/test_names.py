"""The one DNS-label check (``paas.validation``) that names of workspaces, instances, namespaces and
RuntimeClasses go through, and the model validator that shares its pattern."""

import pytest
from django.core.exceptions import ValidationError

from paas.validation import DNS_LABEL_MAX_LENGTH, is_dns_label
from tenancy.models import slug_validator


@pytest.mark.parametrize("name", ["a", "0", "lab", "team-1", "a" * DNS_LABEL_MAX_LENGTH, "1-2-3"])
def test_dns_labels_pass(name):
    assert is_dns_label(name)
    slug_validator(name)


@pytest.mark.parametrize(
    "name",
    ["", "-lab", "lab-", "Lab", "la_b", "la.b", "lab\n", " lab", "läb", "a" * (DNS_LABEL_MAX_LENGTH + 1)],
)
def test_everything_else_is_refused(name):
    assert not is_dns_label(name)


@pytest.mark.parametrize("value", [None, 1, b"lab", ["lab"]])
def test_non_strings_are_refused(value):
    assert not is_dns_label(value)


def test_the_model_validator_says_what_a_label_is():
    with pytest.raises(ValidationError, match="lowercase letters, digits and hyphens"):
        slug_validator("Not_A_Label")
