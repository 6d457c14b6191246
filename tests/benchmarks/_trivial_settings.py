"""The suite's settings with the trivial baseline endpoint added (``tests.benchmarks._trivial_urls``):
``manage.py serve`` started by a benchmark with ``DJANGO_SETTINGS_MODULE`` set to this module. Without
the suite's credential canary middleware, which production does not run (it reads every response)."""

from paas.settings.test import *  # noqa: F403
from paas.settings.test import MIDDLEWARE

ROOT_URLCONF = "tests.benchmarks._trivial_urls"
MIDDLEWARE = [m for m in MIDDLEWARE if m != "tests.support.canary.CanaryMiddleware"]
