"""Fuzz the normalizer and the rule loader: no crash, every reject has a reason.

``MW_FUZZ_EXAMPLES`` inputs per gate (default 2000, what CI runs); the full run is
``MW_FUZZ_EXAMPLES=100000 pytest -m fuzz tests/fuzz`` or ``python -m tests.fuzz``.
Each gate's budget is split between two generators (raw lines / decoded objects for
the normalizer; schema-built / text-damaged rule files for the loader). The reject
reasons are counted and printed in the "fuzz report" section of the summary.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz import targets as T

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("MW_FUZZ_EXAMPLES", "2000"))
HALF = max(EXAMPLES // 2, 1)

_FUZZ = settings(
    max_examples=HALF, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much, HealthCheck.large_base_example],
)


@_FUZZ
@given(T.lines)
def test_normalizer_raw_lines(line: bytes) -> None:
    T.check_line(line)


@_FUZZ
@given(T.objects)
def test_normalizer_objects(obj: Any) -> None:
    T.check_object(obj)


@_FUZZ
@given(T.rule_docs())
def test_rule_loader_schema_built(text: str) -> None:
    T.check_rule(text)


@_FUZZ
@given(T.mutated_rule_texts() | T.rule_texts)
def test_rule_loader_damaged_text(text: str) -> None:
    T.check_rule(text)


def test_generators_reach_both_outcomes() -> None:
    """Guards the generators themselves: fixtures pass, and damage is rejected."""
    # Two fixtures are m.weibo.cn comments, valid only with the post they belong to.
    accepted = [T.check_object(o, gate="selfcheck") for o in T.FIXTURES]
    assert sum(accepted) >= len(T.FIXTURES) - 2
    assert all(T.check_rule(t, gate="selfcheck") for t in T.PACKAGED)
    assert not T.check_line(b'{"id": 1,', gate="selfcheck")
    assert not T.check_rule("type: spike\nparams: {bucket: 0s}\n", gate="selfcheck")


@pytest.mark.parametrize(("params", "field"), [
    ("{bucket: 6.105609120606412e-271}", "params.bucket"),
    ("{per: account, bucket: 5m, mean_half_life: 3.75e+18}", "params.mean_half_life"),
])
def test_a_spike_rule_the_engine_cannot_run_is_refused(params: str, field: str) -> None:
    """Found by the 100k fuzz run: a bucket / half-life ratio that underflows the detector's
    rates (0.5 ** ratio == 1.0) passed `rules validate` and then made the worker's
    RuleEngine divide by zero at start-up. It is a field error at load time now."""
    from matrixwatch.alerts.rules import RuleError, rule_from_text

    with pytest.raises(RuleError, match=rf"^fuzz\.yaml:2: {field}: .*buckets"):
        rule_from_text(f"type: spike\nparams: {params}\n", file="fuzz.yaml")


def test_spike_detector_refuses_unusable_half_lives() -> None:
    """Built directly (the ``spikes`` command, the benchmarks), a ValueError that says why."""
    from matrixwatch.streams.spikes import SpikeDetector, SpikeParams

    with pytest.raises(ValueError, match="mean_half_life"):
        SpikeDetector(SpikeParams(bucket_seconds=6e-271))
