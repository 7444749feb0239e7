"""One module per alerter. Each exposes ``async send(alert, channel, registry, client, now)``
and raises :class:`~matrixwatch.alerts.notifiers.base.NotifyError` (retryable or not)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from matrixwatch.alerts.notifiers import dingtalk, feishu, smtp, webhook, wecom

Sender = Callable[..., Awaitable[None]]

SENDERS: dict[str, Any] = {
    "dingtalk": dingtalk.send,
    "wecom": wecom.send,
    "feishu": feishu.send,
    "webhook": webhook.send,
    "email": smtp.send,
}
