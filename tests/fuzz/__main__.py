"""``python -m tests.fuzz [--examples N] [--report FILE]``: the full fuzz run.

Runs the fuzz tests with N inputs per gate (default 100000; CI runs 2000 through plain
pytest) and prints the reject-reason distribution; ``--report`` also writes it as JSON.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import pytest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    ap.add_argument("--examples", type=int, default=100_000, help="inputs per gate")
    ap.add_argument("--report", type=Path, help="write the reject distribution as JSON")
    args = ap.parse_args(argv)
    os.environ["MW_FUZZ_EXAMPLES"] = str(args.examples)
    if args.report:
        os.environ["MW_FUZZ_REPORT"] = str(args.report)
    started = time.monotonic()
    code = pytest.main(["-q", "-p", "no:cacheprovider", "-m", "fuzz",
                        str(Path(__file__).resolve().parent)])
    print(f"fuzz: {args.examples} inputs per gate in {time.monotonic() - started:.0f}s")
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
