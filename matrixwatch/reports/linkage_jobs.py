"""Scheduled linkage reports: daily and weekly, as Markdown and CSV.

Each run reports on the previous whole day or week (Asia/Shanghai), writes both files to
``data_dir/reports/``, keeps the measures and the report text in the store, and sends a
summary through the alert channels. Cron expressions come from settings
(``MW_LINKAGE_DAILY_CRON``, ``MW_LINKAGE_WEEKLY_CRON``); APScheduler runs them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from matrixwatch.registry import Registry
from matrixwatch.reports.measures import compute, laggards, superior_matrix
from matrixwatch.reports.render import LinkageReport, to_csv, to_markdown
from matrixwatch.settings import Settings
from matrixwatch.streams.records import Alert
from matrixwatch.streams.sinks import make_store

log = logging.getLogger(__name__)
SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class ReportRun:
    period: str
    since: datetime
    until: datetime
    markdown: Path
    csv: Path
    delivered: list[str]


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    """The previous whole day, or the previous Monday-to-Monday week, in Asia/Shanghai."""
    local = now.astimezone(SHANGHAI).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        return local - timedelta(days=1), local
    if period == "weekly":
        monday = local - timedelta(days=local.weekday())
        return monday - timedelta(days=7), monday
    raise ValueError(f"unknown report period {period!r} (daily or weekly)")


def summary_alert(rep: LinkageReport, period: str, md_path: Path) -> Alert:
    """The report as an alert-shaped message, so every channel can carry it."""
    lines = [f"{r.name}（{r.unit or '-'}）响应率 {r.response_rate or 0:.0%}，"
             f"{r.tasks_linked}/{r.tasks_expected}" for r in rep.laggards[:10]]
    title = {"daily": "矩阵联动日报", "weekly": "矩阵联动周报"}[period]
    return Alert(
        id=f"report:{period}:{rep.since}", rule=f"linkage_report_{period}", type="report",
        severity="blue", timestamp=rep.until, title=f"{title} {rep.since[:10]}",
        message="滞后账号：\n" + ("\n".join(lines) if lines else "无"),
        samples=[str(md_path)],
    )


def run_report(settings: Settings, period: str, now: datetime | None = None) -> ReportRun:
    """Compute, write, store and deliver one report. Safe to re-run (idempotent ids)."""
    if settings.registry is None:
        raise ValueError("no registry configured (MW_REGISTRY)")
    since, until = period_bounds(period, now or datetime.now(tz=SHANGHAI))
    registry = Registry.load(settings.registry)
    store = make_store(settings)
    linkage = list(store.iter_linkage())
    rows = compute(registry, linkage, store.iter_events(), since, until)
    rep = LinkageReport(since=since.isoformat(), until=until.isoformat(), rows=rows,
                        laggards=laggards(rows),
                        matrix=superior_matrix(registry, linkage, since, until))
    out = settings.data_dir / "reports"
    out.mkdir(parents=True, exist_ok=True)
    stem = f"linkage-{period}-{since:%Y%m%d}"
    md_path, csv_path = out / f"{stem}.md", out / f"{stem}.csv"
    md_path.write_text(to_markdown(rep), encoding="utf-8")
    csv_path.write_text(to_csv(rep), encoding="utf-8")
    alert = summary_alert(rep, period, md_path)
    delivered = asyncio.run(_store_and_deliver(store, rep, alert, registry))
    log.info("%s linkage report %s → %s (%s)", period, rep.since, md_path, delivered)
    return ReportRun(period, since, until, md_path, csv_path, delivered)


async def _store_and_deliver(store: object, rep: LinkageReport, alert: Alert,
                             registry: Registry) -> list[str]:
    from matrixwatch.alerts.channels import ChannelConfig
    from matrixwatch.alerts.dispatch import DeliveryFailed, RateLimited, deliver
    from matrixwatch.streams.sinks.base import Store

    assert isinstance(store, Store)
    await store.open()
    try:
        await store.write_measures([r.as_dict() for r in rep.rows])
        await store.write_alerts([alert])  # the report stays findable with the alerts
    finally:
        await store.close()
    channels = ChannelConfig.load()
    sent = []
    for name in channels.enabled():
        try:
            await deliver(alert, name, channels, registry)
            sent.append(name)
        except (DeliveryFailed, RateLimited) as e:  # the report is stored either way
            log.warning("report delivery to %s failed: %s", name, e)
    return sent


def add_jobs(scheduler: object, settings: Settings) -> list[str]:
    """Register every scheduled report: daily and weekly linkage, monthly index."""
    from apscheduler.triggers.cron import CronTrigger

    from matrixwatch.reports.schedule import schedule_reports

    ids = []
    for period, cron in (("daily", settings.linkage_daily_cron),
                         ("weekly", settings.linkage_weekly_cron)):
        if not cron:
            continue
        job_id = f"linkage-report-{period}"
        scheduler.add_job(  # type: ignore[attr-defined]
            run_report, CronTrigger.from_crontab(cron, timezone=SHANGHAI), id=job_id,
            args=[settings, period], replace_existing=True, coalesce=True,
            misfire_grace_time=3600,
        )
        ids.append(job_id)
    ids.append(schedule_reports(scheduler, settings).id)
    return ids
