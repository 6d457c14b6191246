"""The browser tests (tests/browser, collected before this directory) stop Playwright and drop
DJANGO_ALLOW_ASYNC_UNSAFE when they finish: the tests after them run with Django's async guard on."""

import asyncio
import os

import pytest


def test_no_asyncio_loop_is_marked_running_and_the_orm_guard_is_on():
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    assert "DJANGO_ALLOW_ASYNC_UNSAFE" not in os.environ
