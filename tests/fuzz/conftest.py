"""The ``fuzz`` marker, and a report of what the fuzzers fed and how it was rejected."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fuzz: generated-input fuzzing (MW_FUZZ_EXAMPLES per gate, default 2000)")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.fuzz.targets import STATS

    report = STATS.as_dict()
    if not report:
        return
    terminalreporter.section("fuzz report")
    for gate, r in report.items():
        terminalreporter.write_line(
            f"{gate}: {r['inputs']} inputs, {r['accepted']} accepted, {r['rejected']} rejected")
        for reason, n in list(r["reasons"].items())[:25]:
            terminalreporter.write_line(f"    {n:7d}  {reason}")
    out = os.environ.get("MW_FUZZ_REPORT")
    if out:
        Path(out).write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
