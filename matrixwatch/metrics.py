"""Prometheus metrics of the project (DESIGN.md, "Observability"). One flat module."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

EVENTS_IN = Counter("matrixwatch_events_in_total", "Raw inputs consumed", ["source"])
EVENTS_OUT = Counter(
    "matrixwatch_events_out_total", "Normalized events stored", ["kind", "platform"]
)
DEAD_LETTERS = Counter("matrixwatch_dead_letters_total", "Inputs sent to the DLQ", ["reason"])
LATE_EVENTS = Counter(
    "matrixwatch_late_events_total", "Events behind the watermark, not counted", ["stage"]
)
SINK_ERRORS = Counter("matrixwatch_sink_errors_total", "Failed store writes", ["store", "kind"])
ALERTS_FIRED = Counter(
    "matrixwatch_alerts_fired_total", "Alerts fired", ["rule", "severity"]
)
OPEN_TASKS = Gauge("matrixwatch_linkage_open_tasks", "Open linkage tasks on this worker")
CONSUMER_LAG = Gauge(
    "matrixwatch_consumer_lag", "Messages behind the end of a partition", ["topic", "partition"]
)
E2E_LATENCY = Histogram(
    "matrixwatch_end_to_end_seconds",
    "Seconds from collection to the store / to the stored alert / to the sent notification",
    ["stage"],
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 300, 1800),
)
SENTIMENT_SECONDS = Histogram(
    "matrixwatch_sentiment_batch_seconds", "Seconds to score one batch (off the event loop)"
)
COLLECTOR_ERRORS = Counter(
    "matrixwatch_collector_errors_total", "Collector request failures", ["source"]
)


_FAUST_METRICS: Any = None


def faust_metrics() -> Any:
    """Faust's Prometheus sensors (prefix ``faust_``) in the default registry, created once
    per process: create_app may run several times in one process (tests), and
    registering the same names twice raises."""
    global _FAUST_METRICS
    if _FAUST_METRICS is None:
        from faust.sensors.prometheus import FaustMetrics

        _FAUST_METRICS = FaustMetrics.create(REGISTRY, "faust")
    return _FAUST_METRICS
