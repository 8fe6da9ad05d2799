"""Fixtures of tests/release (defined in release_support, which the tests also import helpers from:
conftest modules of different folders share one module name)."""

from release_support import *  # noqa: F403
