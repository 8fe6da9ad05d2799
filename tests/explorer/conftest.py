"""The explorer tests' fixtures (defined in explorerutil.py)."""

from explorerutil import browser, seeded  # noqa: F401 - re-exported pytest fixtures
