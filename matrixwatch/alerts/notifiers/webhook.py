"""Generic webhook: the alert as JSON, signed with HMAC-SHA256 like GitHub's webhooks.

Headers: ``X-Matrixwatch-Signature: sha256=<hex HMAC-SHA256 of the raw body keyed with the
secret>`` (when a secret is configured), ``X-Matrixwatch-Alert-Id`` (receivers dedupe on
it: a retried delivery repeats it) and ``X-Matrixwatch-Event: alert`` (``digest`` for a
quiet-hours digest or a rate-limit summary, whose payload adds a ``digest`` object: kind
``quiet_hours`` or ``rate_limit``, window, total, counts per rule and severity, top
alerts). Any 2xx is success.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from matrixwatch.alerts.channels import Channel
from matrixwatch.alerts.notifiers.base import HttpClient, dumps, post
from matrixwatch.alerts.notifiers.render import (
    DIGEST_TYPES,
    digest_summary,
    markdown,
    plain,
    render,
)
from matrixwatch.alerts.text import local_str, severity_zh
from matrixwatch.registry import Registry
from matrixwatch.streams.records import Alert

SIGNATURE_HEADER = "X-Matrixwatch-Signature"


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def payload(alert: Alert, registry: Registry | None) -> dict[str, Any]:
    r = render(alert, registry)
    out: dict[str, Any] = {
        "version": 1,
        "alert": alert.asdict(),
        "title": r.title,
        "severity_zh": severity_zh(alert.severity),
        "local_time": local_str(alert.timestamp),
        "timezone": "Asia/Shanghai",
        "markdown": markdown(r),
        "text": plain(r),
        "link": r.link,
    }
    if alert.type in DIGEST_TYPES:
        out["digest"] = digest_summary(alert)
    return out


def build(alert: Alert, channel: Channel, registry: Registry | None
          ) -> tuple[str, bytes, dict[str, str]]:
    body = dumps(payload(alert, registry))
    event = "digest" if alert.type in DIGEST_TYPES else "alert"
    headers = {"X-Matrixwatch-Alert-Id": alert.id, "X-Matrixwatch-Event": event,
               **dict(channel.headers)}
    if channel.secret is not None:
        headers[SIGNATURE_HEADER] = signature(body, channel.secret.get())
    return channel.endpoint(), body, headers


async def send(alert: Alert, channel: Channel, registry: Registry | None,
               client: HttpClient, now: float) -> None:
    url, body, headers = build(alert, channel, registry)
    await post(client, url, body, headers)
