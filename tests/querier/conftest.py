"""Fixtures of tests/querier (defined in querier_support, which the tests also import helpers from:
conftest modules of different folders share one module name)."""

from querier_support import *  # noqa: F403
