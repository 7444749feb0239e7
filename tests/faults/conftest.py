"""Markers of the fault-injection suite."""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: fault injection against real workers on the embedded broker "
        "(CI runs the short ones: -m 'not slow')")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``slow`` fault tests run only when asked for (MW_SLOW=1 or a -m naming slow), so
    a plain ``pytest`` (``make test``, CI) stays short."""
    if item.get_closest_marker("slow") is None:
        return
    expr = item.config.getoption("-m") or ""
    if os.environ.get("MW_SLOW") or ("slow" in expr and "not slow" not in expr):
        return
    pytest.skip("slow: set MW_SLOW=1 or select -m slow")
