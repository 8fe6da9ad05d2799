"""Fixtures for the infrastructure tests (Pulumi mocks; no CLI, no credentials)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from infra_support import STACKS, rendered  # noqa: E402

from components.mockrun import Rendering  # noqa: E402


def pytest_configure(config) -> None:
    # pulumi_aws warns about its own deprecated aliases on import; not ours to fix.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:pulumi_aws.*")


@pytest.fixture(params=STACKS)
def stack(request) -> Rendering:
    return rendered(request.param)


@pytest.fixture
def prod() -> Rendering:
    return rendered("prod")


@pytest.fixture
def staging() -> Rendering:
    return rendered("staging")


@pytest.fixture
def dev() -> Rendering:
    return rendered("dev")
