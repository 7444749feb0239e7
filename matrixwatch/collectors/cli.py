"""`matrixwatch collect …`: one-off runs per source, the scheduled loop, hot marks.

Every command writes to Kafka at ``MW_KAFKA_URL`` (topic ``<prefix>-raw``, health to
``<prefix>-health``) or, with ``--out FILE.jsonl``, appends native objects to a file
(health records then go to ``FILE.jsonl.health.jsonl``). Errors in input print one
line and exit 2; a run whose source failed exits 1 (``collect run``: when polls ran and
none of them succeeded).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from matrixwatch.collectors.base import (
    HEADER_AS_OF,
    HealthTracker,
    Item,
    JsonlSink,
    KafkaSink,
    Sink,
    now_iso,
)
from matrixwatch.collectors.config import CollectorSettings

if TYPE_CHECKING:
    from matrixwatch.collectors.scheduler import Stats

app = typer.Typer(help="Collect from Weibo, RSS, HTTP push and files.", no_args_is_help=True,
                  add_completion=False)
err = Console(stderr=True)
log = logging.getLogger(__name__)
BATCH = 500


def _fail(msg: str, code: int = 2) -> None:
    err.print(f"[red]error:[/red] {msg}")
    raise typer.Exit(code)


def _settings() -> CollectorSettings:
    return CollectorSettings()


def _ensure_topics(settings: CollectorSettings) -> None:
    from matrixwatch.broker import bootstrap_of, ensure_topics

    assert settings.kafka_url
    ensure_topics(bootstrap_of(settings.kafka_url),
                  [settings.topic("raw"), settings.topic("health")], settings.partitions)


def make_sink(settings: CollectorSettings, out: Path | None) -> Sink:
    if out is not None:
        return JsonlSink(out)
    if not settings.kafka_url:
        _fail("MW_KAFKA_URL is not set: give --out FILE.jsonl or point MW_KAFKA_URL at Kafka")
    _ensure_topics(settings)
    return KafkaSink.from_settings(settings, settings.kafka_url or "")


@contextlib.asynccontextmanager
async def _opened(sink: Sink) -> AsyncIterator[Sink]:
    await sink.start()
    try:
        yield sink
    finally:
        await sink.close()


def _run(coro: object) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return int(asyncio.run(coro) or 0)  # type: ignore[arg-type]


def _accounts(registry: Path, only: list[str] | None) -> list[str]:
    from matrixwatch.registry import Registry, RegistryError

    try:
        reg = Registry.load(registry)
    except RegistryError as e:
        _fail(str(e))
        raise
    # Active now by the registry's rule: a closed_at already past wins over ``active: true``.
    now = time.time()
    ids = [a.id for a in reg.all() if a.platform == "weibo" and reg.active_at(a, now)]
    if only:
        unknown = sorted(set(only) - set(ids))
        if unknown:
            _fail(f"not active weibo accounts in {registry}: {', '.join(unknown)}")
        ids = [i for i in ids if i in set(only)]
    return ids


def _weibo_collector(settings: CollectorSettings, sink: Sink, store: object, api: str) -> object:
    if api == "mobile":
        from matrixwatch.collectors.weibo_mobile import WeiboMobileCollector

        return WeiboMobileCollector(settings, sink, store)  # type: ignore[arg-type]
    if api == "open":
        from matrixwatch.collectors.weibo_api import WeiboApiCollector

        if not settings.token():
            _fail("the open API needs MW_WEIBO_TOKEN (or MW_WEIBO_TOKEN_FILE)")
        return WeiboApiCollector(settings, sink, store)  # type: ignore[arg-type]
    _fail(f"--api must be 'mobile' or 'open', not {api!r}")
    raise AssertionError


# --------------------------------------------------------------------------- weibo


@app.command()
def weibo(
    registry: Path = typer.Option(..., "--registry", help="matrix.yaml (active weibo accounts)."),
    account: list[str] = typer.Option(None, "--account", help="Only these account ids."),
    api: str = typer.Option("mobile", help="'mobile' (m.weibo.cn) or 'open' (open API v2)."),
    out: Path = typer.Option(None, "--out", help="Write JSONL here instead of Kafka."),
) -> None:
    """Poll each registry account once: timeline, long text, comments, reposts."""
    settings = _settings()
    uids = _accounts(registry, account)

    async def main() -> int:
        from matrixwatch.collectors.cursors import CursorStore
        from matrixwatch.collectors.weibo_mobile import collect_accounts

        store = CursorStore(settings.state_path, retention=settings.seen_retention)
        async with _opened(make_sink(settings, out)) as sink:
            col = _weibo_collector(settings, sink, store, api)
            try:
                results = await collect_accounts(col, uids)  # type: ignore[arg-type]
            finally:
                await col.close()  # type: ignore[attr-defined]
        store.close()
        failed = [r for r in results if r.error]
        total = sum(r.published for r in results)
        err.print(f"{len(uids)} accounts polled: {total} new objects, {len(failed)} failed")
        for r in failed:
            err.print(f"  {r.account_id}: {r.error}")
        return 1 if failed else 0

    raise typer.Exit(_run(main()))


# --------------------------------------------------------------------------- rss


@app.command()
def rss(
    urls: list[str] = typer.Argument(None, help="Feed URLs."),
    feeds: Path = typer.Option(None, "--feeds", help="feeds.yaml: feeds: [{url, platform, "
                               "account_id, name}]"),
    platform: str = typer.Option("web", help="Platform of the URL arguments: web | wechat."),
    account_id: str = typer.Option(None, "--account-id", help="Account id of the URLs' items."),
    name: str = typer.Option(None, "--name", help="Account name of the URLs' items."),
    out: Path = typer.Option(None, "--out", help="Write JSONL here instead of Kafka."),
) -> None:
    """Fetch RSS/Atom feeds once; items become normalized web/wechat events."""
    from matrixwatch.collectors.rss import FeedSpec, load_feeds

    settings = _settings()
    try:
        specs = [FeedSpec(u, platform, account_id, name) for u in urls or []]
        if feeds:
            specs += load_feeds(feeds)
    except (ValueError, OSError) as e:
        _fail(str(e))
    if not specs:
        _fail("give feed URLs or --feeds FILE")

    async def main() -> int:
        from matrixwatch.collectors.cursors import CursorStore
        from matrixwatch.collectors.rss import RssCollector

        store = CursorStore(settings.state_path, retention=settings.seen_retention)
        async with _opened(make_sink(settings, out)) as sink:
            col = RssCollector(settings, sink, store, specs)
            try:
                res = await col.poll_all()
            finally:
                await col.close()
        store.close()
        bad = {u: v for u, v in res.items() if isinstance(v, str)}
        err.print(f"{len(res)} feeds: {sum(v for v in res.values() if isinstance(v, int))} "
                  f"new items, {len(bad)} failed")
        for u, v in bad.items():
            err.print(f"  {u}: {v}")
        return 1 if bad else 0

    raise typer.Exit(_run(main()))


# --------------------------------------------------------------------------- push


@app.command()
def push(
    host: str = typer.Option(None, help="Bind address (default MW_PUSH_HOST, 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default MW_PUSH_PORT, 8088)."),
    out: Path = typer.Option(None, "--out", help="Write JSONL here instead of Kafka."),
) -> None:
    """Serve POST /v1/events (bearer MW_PUSH_TOKEN) until interrupted."""
    from matrixwatch.collectors.push import make_app, start_server

    settings = _settings()
    token = settings.push_secret()
    if not token:
        _fail("set MW_PUSH_TOKEN (or MW_PUSH_TOKEN_FILE): the endpoint never runs open")

    async def main() -> int:
        async with _opened(make_sink(settings, out)) as sink:
            web_app = make_app(sink, token=token, max_bytes=settings.push_max_bytes,
                               max_items=settings.push_max_items,
                               max_text_bytes=settings.max_text_bytes,
                               max_line_bytes=settings.max_line_bytes,
                               max_future=settings.max_future_skew)
            runner, bound = await start_server(web_app, host or settings.push_host,
                                               port if port is not None else settings.push_port)
            err.print(f"push endpoint on http://{host or settings.push_host}:{bound}/v1/events")
            try:
                await _wait_for_signal()
            finally:
                await runner.cleanup()
        return 0

    raise typer.Exit(_run(main()))


async def _wait_for_signal(duration: float = 0.0) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    if duration > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
    else:
        await stop.wait()


# --------------------------------------------------------------------------- files


async def _send_all(sink: Sink, items: Iterable[Item]) -> int:
    n = 0
    batch: list[Item] = []
    for it in items:
        batch.append(it)
        if len(batch) >= BATCH:
            await sink.send(batch)
            n += len(batch)
            batch = []
    if batch:
        await sink.send(batch)
        n += len(batch)
    return n


@app.command()
def file(
    files: list[Path] = typer.Argument(..., help=".jsonl/.ndjson native objects, or "
                                       "weibo-crawler .csv/.json."),
    user_id: str = typer.Option(None, "--user-id", help="Author of weibo-crawler rows "
                                "(default: the <user_id>.csv file name)."),
    live: bool = typer.Option(False, "--live", help="Treat as live collection (not replay)."),
    out: Path = typer.Option(None, "--out", help="Write JSONL here instead of Kafka."),
) -> None:
    """Replay archives into the pipeline (relative times resolve against file mtimes)."""
    from matrixwatch.collectors.files import ReplayError, file_items
    from matrixwatch.pipeline import file_as_of

    for f in files:
        if not f.is_file():
            _fail(f"no such file: {f}")
    settings = _settings()

    async def main() -> int:
        n = 0
        async with _opened(make_sink(settings, out)) as sink:
            for f in files:
                n += await _send_all(sink, file_items(f, as_of=file_as_of(f), user_id=user_id,
                                                      replay=not live))
        err.print(f"{n:,} objects from {len(files)} file(s)")
        return 0

    try:
        code = _run(main())
    except ReplayError as e:
        _fail(str(e))
    raise typer.Exit(code)


@app.command()
def simulate(
    events: int = typer.Option(10000, help="How many simulated objects."),
    seed: int = typer.Option(7, help="Random seed."),
    out: Path = typer.Option(None, "--out", help="Write JSONL here instead of Kafka."),
) -> None:
    """The simulator as a source (demos and load tests)."""
    from matrixwatch.collectors.files import simulator_items

    settings = _settings()

    async def main() -> int:
        async with _opened(make_sink(settings, out)) as sink:
            n = await _send_all(sink, (Item(i.line, i.key, now_iso(), False, i.kind)
                                       for i in simulator_items(events, seed)))
        err.print(f"{n:,} simulated objects")
        return 0

    raise typer.Exit(_run(main()))


# --------------------------------------------------------------------------- scheduled


@app.command()
def run(
    registry: Path = typer.Option(None, "--registry", help="matrix.yaml (weibo accounts)."),
    feeds: Path = typer.Option(None, "--feeds", help="feeds.yaml (RSS/WeChat bridges)."),
    api: str = typer.Option("mobile", help="'mobile' or 'open'."),
    duration: float = typer.Option(0.0, help="Stop after this many seconds (0: until ^C)."),
    out: Path = typer.Option(None, "--out", help="Write JSONL here instead of Kafka."),
) -> None:
    """Poll continuously on APScheduler: per-account intervals, hot accounts faster.

    Stops after --duration or at Ctrl-C/SIGTERM, cutting polls in flight short (they
    resume at their last committed page). A failing source logs a WARNING when it starts
    failing, changes state or recovers, not one per poll. The summary counts polls as
    succeeded, failed or cut short. Exit code 1 if polls ran and none of them succeeded
    (every one failed or was cut short), else 0.
    """
    from matrixwatch.collectors.rss import load_feeds

    settings = _settings()
    uids = _accounts(registry, None) if registry else []
    try:
        specs = load_feeds(feeds) if feeds else []
    except (ValueError, OSError) as e:
        _fail(str(e))
    if not uids and not specs:
        _fail("nothing to collect: give --registry and/or --feeds")

    async def main() -> int:
        from matrixwatch.collectors.cursors import CursorStore
        from matrixwatch.collectors.rss import RssCollector
        from matrixwatch.collectors.scheduler import CollectorScheduler

        store = CursorStore(settings.state_path, retention=settings.seen_retention)
        async with _opened(make_sink(settings, out)) as sink:
            col = _weibo_collector(settings, sink, store, api) if uids else None
            feeds_col = RssCollector(settings, sink, store, specs) if specs else None
            sched = CollectorScheduler(settings, store, weibo=col, accounts=uids,  # type: ignore[arg-type]
                                       rss=feeds_col)
            await sched.start()
            err.print(f"collecting {len(uids)} accounts and {len(specs)} feeds "
                      f"(every {settings.poll_interval:.0f}s, hot {settings.hot_interval:.0f}s)")
            try:
                await _wait_for_signal(duration)
            finally:
                await sched.stop()
                for c in (col, feeds_col):
                    if c is not None:
                        await c.close()  # type: ignore[attr-defined]
        store.close()
        collectors: list[Any] = [c for c in (col, feeds_col) if c is not None]
        return _run_summary(sched.stats, [c.health for c in collectors])

    raise typer.Exit(_run(main()))


def _run_summary(s: Stats, health: list[HealthTracker]) -> int:
    """Print what the scheduled run did; its exit code (1: polls ran, none succeeded)."""
    err.print(f"{s.runs} polls: {s.ok} succeeded, {s.failures} failed, {s.interrupted} cut "
              f"short at shutdown; {s.published} new objects", soft_wrap=True)
    if s.skipped:
        err.print(f"  {s.skipped} polls skipped: the previous poll of the account was still "
                  "running")
    for h in health:
        if h.state != "ok" or h.consecutive:
            err.print(f"  {h.source}: {h.state}, {h.consecutive} failed polls in a row, last "
                      f"error: {h.last_error}", markup=False, soft_wrap=True)
    if s.none_succeeded:
        err.print("[red]no poll succeeded[/red] (exit code 1)")
        return 1
    return 0


@app.command()
def hot(
    account_id: str = typer.Argument(..., help="Weibo account id to poll more often."),
    ttl: float = typer.Option(None, help="Seconds (default MW_HOT_TTL)."),
    reason: str = typer.Option("", help="Why (e.g. the alert id)."),
) -> None:
    """Mark an account hot: the running scheduler polls it every MW_HOT_INTERVAL seconds."""
    from matrixwatch.collectors.scheduler import mark_hot

    settings = _settings()
    until = mark_hot(settings.state_path, "weibo", account_id,
                     settings.hot_ttl if ttl is None else ttl, reason)
    from datetime import UTC, datetime

    err.print(f"{account_id} hot until {now_iso(datetime.fromtimestamp(until, tz=UTC))}")


__all__ = ["HEADER_AS_OF", "app", "make_sink"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
