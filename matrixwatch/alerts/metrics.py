"""Prometheus metrics of alert dispatch and delivery (the project-wide ones are in
matrixwatch/metrics.py; ALERTS_FIRED there counts stored alerts)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

DECISIONS = Counter(
    "matrixwatch_alert_decisions_total",
    "Dispatcher decisions: sent, held (quiet hours), realert (suppressed), duplicate, unrouted",
    ["rule", "outcome"],
)
NOTIFY_ATTEMPTS = Counter(
    "matrixwatch_alert_notify_attempts_total", "Notification attempts", ["channel", "type"]
)
NOTIFY_RETRIES = Counter(
    "matrixwatch_alert_notify_retries_total", "Failed attempts that were retried",
    ["channel", "type", "reason"],
)
NOTIFY_SENT = Counter(
    "matrixwatch_alert_notifications_total", "Notifications delivered", ["channel", "type"]
)
NOTIFY_FAILED = Counter(
    "matrixwatch_alert_notify_failures_total",
    "Notifications given up on (DeliveryFailed raised)", ["channel", "type", "reason"],
)
NOTIFY_SECONDS = Histogram(
    "matrixwatch_alert_notify_seconds", "Seconds to deliver one notification, retries included",
    ["type"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
