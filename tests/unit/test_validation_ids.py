"""``paas.validation.is_id``: the one test of "a row id as typed", used by the API's filters, the
usage query and the studio's filters (a value that is not one is a 400 or matches nothing, never a 500)."""

import pytest

from paas.validation import is_id


@pytest.mark.parametrize("text", ["1", "42", "9" * 18])
def test_ids(text):
    assert is_id(text)


@pytest.mark.parametrize("text", ["", "x", "-1", "1.0", " 1", "²", "١٢", "9" * 19, "1\n"])
def test_not_ids(text):
    assert not is_id(text)
