"""`matrixwatch scheduler`: the report scheduler (APScheduler), and one-off report runs."""

from __future__ import annotations

import typer
from rich.console import Console

from matrixwatch.settings import get_settings

app = typer.Typer(no_args_is_help=True, add_completion=False)
out = Console(stderr=True, soft_wrap=True)  # a path or URL must not be cut


@app.command("run")
def run_scheduler() -> None:
    """Run scheduled reports until stopped (cron times in Asia/Shanghai)."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    from matrixwatch.reports.linkage_jobs import SHANGHAI, add_jobs

    settings = get_settings()
    sched = BlockingScheduler(timezone=SHANGHAI)
    ids = add_jobs(sched, settings)
    out.print(f"scheduled: {', '.join(ids) or 'nothing (crons empty)'}")
    try:
        sched.start()
    except (KeyboardInterrupt, SystemExit):
        sched.shutdown(wait=False)


@app.command("report-now")
def report_now(period: str = typer.Argument("daily", help="daily or weekly")) -> None:
    """Produce the previous day's or week's linkage report now."""
    from matrixwatch.reports.linkage_jobs import run_report

    try:
        run = run_report(get_settings(), period)
    except ValueError as e:
        out.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    out.print(f"{run.period} report {run.since:%Y-%m-%d}: {run.markdown}, {run.csv}; "
              f"sent to: {', '.join(run.delivered) or 'no enabled channel'}")
