"""The monthly index + compliance report as an APScheduler 3 cron job.

``schedule_reports(scheduler, settings)`` adds one job (id ``reports:monthly``) that runs
on ``MW_INDEX_REPORT_CRON`` (default ``0 9 1 * *``: 09:00 on the 1st, Asia/Shanghai)
and reports on the previous calendar month: Markdown/CSV/JSON under
``data_dir/reports/`` and the rows into the store. The job references a module-level
function by name with plain string arguments, so it pickles into a persistent job store
(the collectors' SQLAlchemyJobStore) and survives restarts; ``coalesce`` makes a missed
run happen once, not once per missed month.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from matrixwatch.streams.weibo_time import SHANGHAI

log = logging.getLogger(__name__)

JOB_ID = "reports:monthly"
JOB_FUNC = "matrixwatch.reports.schedule:monthly_job"
CRON_ENV = "MW_INDEX_REPORT_CRON"
DEFAULT_CRON = "0 9 1 * *"


def monthly_job(registry: str | None = None, store: str | None = None,
                out_dir: str | None = None, config: str | None = None,
                now: str | None = None) -> list[str]:
    """Report on the month before ``now`` (ISO; default: the wall clock at run time)."""
    from matrixwatch.reports.monthly import run_monthly

    when = datetime.fromisoformat(now) if now else datetime.now(SHANGHAI)
    if when.tzinfo is None:
        when = when.replace(tzinfo=SHANGHAI)
    reps, paths = run_monthly(registry=registry, store_path=store, out_dir=out_dir,
                              config=config, now=when)
    n_veto = sum(1 for r in reps.compliance if r.status == "veto")
    log.info("monthly report %s: %d accounts, %d vetoed, %d events read → %s",
             reps.period.label, len(reps.index), n_veto, reps.events_read,
             paths[0].parent if paths else "-")
    return [str(p) for p in paths]


def schedule_reports(scheduler: Any, settings: Any, *, cron: str | None = None,
                     registry: str | Path | None = None) -> Any:
    """Add (or replace) the monthly report job on ``scheduler``; returns the job."""
    expr = (cron or getattr(settings, "index_report_cron", None) or os.environ.get(CRON_ENV)
            or DEFAULT_CRON)
    trigger = CronTrigger.from_crontab(expr, timezone=SHANGHAI)
    reg = registry or getattr(settings, "registry", None)
    store = None if getattr(settings, "es_url", None) else str(settings.store_path)
    kwargs = {"registry": str(reg) if reg else None, "store": store,
              "out_dir": str(Path(settings.data_dir) / "reports")}
    return scheduler.add_job(JOB_FUNC, trigger, id=JOB_ID, name="monthly index and compliance",
                             kwargs=kwargs, replace_existing=True, coalesce=True,
                             max_instances=1, misfire_grace_time=12 * 3600)
