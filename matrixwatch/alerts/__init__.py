"""Alerts: YAML rules, their evaluation over event time, dispatch and notifiers.

* :mod:`~matrixwatch.alerts.rules` — ``load_rules()``: one rule per YAML file, validated
  with ``file:line: field: message`` errors.
* :mod:`~matrixwatch.alerts.engine` — ``RuleEngine``: pure, JSON-able per-owner state;
  ``on_event``, ``sweep``, ``on_linkage_progress``, ``on_linkage_closed``, ``on_health``.
* :mod:`~matrixwatch.alerts.dispatch` — ``Dispatcher`` (realert, escalation, quiet hours,
  routing; JSON-able per-key state) and ``deliver`` (retries; ``DeliveryFailed``).
* :mod:`~matrixwatch.alerts.channels` — ``ChannelConfig`` from channels.yaml; secrets only
  from the environment or files.
* :mod:`~matrixwatch.alerts.notifiers` — DingTalk, WeCom, Feishu, webhook, SMTP.
* :mod:`~matrixwatch.alerts.cli` — ``matrixwatch rules validate|channels|test``.
"""
