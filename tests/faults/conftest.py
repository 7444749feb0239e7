"""Markers of the fault-injection suite."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: fault injection against real workers on the embedded broker "
        "(CI runs the short ones: -m 'not slow')")
