"""Prometheus metrics of the collectors: requests, errors, events, lag behind now.

Collector errors reuse the project-wide ``matrixwatch_collector_errors_total`` (it is
what the dashboards already read); the rest is specific to collection.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram

from matrixwatch.metrics import COLLECTOR_ERRORS

__all__ = [
    "COLLECTOR_ERRORS",
    "EVENTS",
    "EVENT_DELAY",
    "HEALTHY",
    "LAG",
    "LAST_SUCCESS",
    "REQUESTS",
    "RETRIES",
    "mark_success",
]

REQUESTS = Counter(
    "matrixwatch_collector_requests_total",
    "HTTP requests of collectors, by outcome (status code, timeout, error; circuit_open: "
    "refused without a request while the host's circuit breaker is open)",
    ["source", "outcome"],
)
RETRIES = Counter(
    "matrixwatch_collector_retries_total",
    "Requests retried after backoff, by reason (418, 429, 5xx, timeout, …)",
    ["source", "reason"],
)
EVENTS = Counter(
    "matrixwatch_collector_events_total",
    "Objects handed to the sink (native objects or normalized events)",
    ["source", "kind"],
)
EVENT_DELAY = Histogram(
    "matrixwatch_collector_event_delay_seconds",
    "Collection time minus the object's created_at, for new objects",
    ["source"],
    buckets=(5, 15, 30, 60, 120, 300, 600, 1800, 3600, 6 * 3600, 86400),
)
LAST_SUCCESS = Gauge(
    "matrixwatch_collector_last_success_timestamp_seconds",
    "Unix time of the last successful poll",
    ["source"],
)
LAG = Gauge(
    "matrixwatch_collector_lag_seconds",
    "Seconds since the last successful poll (how far collection is behind now)",
    ["source"],
)
HEALTHY = Gauge(
    "matrixwatch_collector_healthy",
    "1 while the source works, 0 while failing or its credentials expired",
    ["source"],
)

_last: dict[str, float] = {}


def mark_success(source: str, at: float | None = None) -> None:
    """Record a successful poll; the lag gauge is computed when scraped."""
    now = time.time() if at is None else at
    first = source not in _last
    _last[source] = now
    LAST_SUCCESS.labels(source=source).set(now)
    if first:
        LAG.labels(source=source).set_function(lambda s=source: time.time() - _last[s])
