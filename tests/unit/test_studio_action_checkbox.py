"""The studio's row checkbox is written directly (paas/admin.py): the markup must stay Django's own."""

from django.contrib import admin

from paas.admin import ScopedModelAdmin


class _Row:
    pk = 42

    def __str__(self) -> str:
        return "<script>alert('x')</script> & \"quoted\""


def test_the_row_checkbox_is_djangos_markup_with_the_name_escaped():
    ours = ScopedModelAdmin.action_checkbox(None, _Row())
    assert ours == admin.ModelAdmin.action_checkbox(None, _Row())
    assert "<script>" not in ours
    assert 'name="_selected_action" value="42" class="action-select"' in ours
