"""Shared bits of the notifier tests."""

from __future__ import annotations

from prometheus_client import REGISTRY

FAST_RETRY = "{attempts: 3, initial: 0.01, max_wait: 0.02, timeout: 2}"


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0
