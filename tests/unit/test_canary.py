"""The canary watch itself: a response or a log line carrying the canary is recorded (so the suite's
autouse check can fail the test that produced it), and one without it is not."""

import logging

from django.http import HttpResponse
from django.test import RequestFactory

from tests.support import canary


def _serve(body: str) -> None:
    middleware = canary.CanaryMiddleware(lambda request: HttpResponse(body))
    middleware(RequestFactory().get("/somewhere/"))


def test_a_response_with_the_canary_is_recorded_and_one_without_is_not():
    try:
        _serve("nothing secret here")
        assert canary.hits == []
        _serve(f'{{"password": "{canary.CANARY}-x"}}')
        assert canary.hits == ["response to GET /somewhere/ (200)"]
    finally:
        canary.hits.clear()


def test_a_log_line_with_the_canary_is_recorded():
    try:
        logging.getLogger("paas.somewhere").warning("token %s refused", canary.CANARY)
        assert canary.hits == ["log line of paas.somewhere (WARNING)"]
    finally:
        canary.hits.clear()
