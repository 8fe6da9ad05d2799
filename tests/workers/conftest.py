"""Fixtures of tests/workers (defined in workers_support, which the tests also import helpers
from: conftest modules of different folders share one module name)."""

from workers_support import *  # noqa: F403
