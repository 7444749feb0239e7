"""``matrixwatch rules …``: validate rule files, list channels, and try a rule on past data.

``test`` runs exactly the stream's code (normalize → sentiment → RuleEngine → Dispatcher)
over a JSONL file of native Weibo objects, in file order, so what it prints is what the
rule would have fired in a replay of that file: one JSON line per alert the rule fired,
with the dispatcher's decision (stored or suppressed by realert, held by quiet hours, the
channels it would go to). Nothing is sent.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from matrixwatch.alerts.channels import ChannelConfig, ChannelError
from matrixwatch.alerts.rules import Rule, RuleError, find_rule, load_rules
from matrixwatch.registry import Registry, RegistryError

app = typer.Typer(
    help="Alert rules: validate them, list channels, test a rule on past data.",
    no_args_is_help=True,
    add_completion=False,
)
err = Console(stderr=True, soft_wrap=True)  # a path or URL must not be cut

END_WATERMARK = 1e12  # after the data: every linkage checkpoint has passed


def _fail(msg: str) -> None:
    sys.stderr.write(f"error: {msg}\n")  # one unwrapped line: file:line: field: message
    raise typer.Exit(2)


def _load_channels(path: Path | None) -> ChannelConfig:
    try:
        return ChannelConfig.load(path)
    except ChannelError as e:
        _fail(str(e))
        raise  # unreachable


def _fmt_s(seconds: float | None) -> str:
    if not seconds:
        return "-"
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= n and seconds % n == 0:
            return f"{int(seconds // n)}{unit}"
    return f"{seconds:g}s"


@app.command()
def validate(
    directory: Path = typer.Argument(None, help="Rules directory (default: packaged rules)."),
    channels: Path = typer.Option(None, "--channels", help="channels.yaml "
                                  "(default: $MW_ALERT_CHANNELS or the packaged file)."),
) -> None:
    """Load every rule and the channels; check routing references. Exit 2 on any error."""
    from matrixwatch.alerts.dispatch import Dispatcher

    try:
        rules = load_rules(directory)
    except RuleError as e:
        _fail(str(e))
        return
    if not rules:  # the worker would run and never alert: surely not what was meant
        _fail(f"no rule files (*.yaml) in {directory}")
    cfg = _load_channels(channels)
    try:
        Dispatcher(rules, cfg)
    except ChannelError as e:
        _fail(str(e))
    for r in rules:
        quiet = ",".join(f"{q.start // 60:02d}:{q.start % 60:02d}-{q.end // 60:02d}:"
                         f"{q.end % 60:02d}<{q.min_severity}" for q in r.quiet_hours) or "-"
        sys.stdout.write(
            f"{r.name}{'' if r.enabled else ' (disabled)'}\t{r.type}\t"
            f"severity={r.severity or 'auto'}\trealert={_fmt_s(r.realert)}\t"
            f"escalate={_fmt_s(r.escalate_after)}\tquiet={quiet}\t"
            f"{Path(r.file).name}:{r.line}\n")
    enabled = cfg.enabled()
    err.print(f"{len(rules)} rules OK; channels: {len(cfg.channels)} defined, "
              f"{len(enabled)} enabled ({', '.join(enabled) or 'none'})", highlight=False)


@app.command("channels")
def list_channels(
    channels: Path = typer.Option(None, "--channels", help="channels.yaml to read."),
) -> None:
    """List the channels, where they point (host only), their send budget per worker
    (before MW_NOTIFY_BUDGET_WORKERS divides it) and what is missing to enable them."""
    cfg = _load_channels(channels)
    for c in cfg.channels.values():
        state = "enabled" if c.enabled else f"disabled (missing {', '.join(c.missing)})"
        budget = ", ".join(f"{n}/{unit}" for n, unit in ((c.max_per_minute, "min"),
                                                          (c.max_per_second, "s")) if n)
        sys.stdout.write(f"{c.name}\t{c.type}\t{c.public_target()}\t"
                         f"budget {budget or 'unlimited'}\t{state}\n")


def _read_events(path: Path, as_of: datetime) -> tuple[list[Any], int]:
    from matrixwatch.streams.normalize import InvalidInput, normalize_line

    events, bad = [], 0
    with path.open("rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                events.append(normalize_line(line, collected_at=as_of))
            except InvalidInput:
                bad += 1
    return events, bad


def run_rules(rules: Sequence[Rule], events: list[Any], registry: Registry,
              channels: ChannelConfig, deadline: float = 86400.0) -> list[dict[str, Any]]:
    """The alerts ``rules`` fire on ``events`` (scored, in order), with decisions.

    The stream's order of work, in one process: per-owner rule state (and the author's,
    for a post or repost keyed to another owner: :meth:`RuleEngine.activity_key`),
    linkage tasks that all close at the end of the data (checkpoints judged first), one
    sweep at the data's last event time, then the dispatcher per alert key.
    """
    from matrixwatch.alerts.dispatch import Dispatcher
    from matrixwatch.alerts.engine import RuleEngine
    from matrixwatch.streams.linkage import LinkagePolicy, LinkageTracker

    engine = RuleEngine(rules, registry)
    fired = []
    states: dict[str, Any] = {}
    max_ts = -math.inf
    tracker = LinkageTracker(registry, LinkagePolicy(deadline=deadline))
    boxes: dict[str, Any] = {}
    linkage = any(r.type.startswith("linkage") for r in rules)
    for e in events:
        key = f"{e.platform}:{e.owner_id}"
        states[key], out = engine.on_event(states.get(key), e)
        fired += out
        # As the stream's activity agent: a repost keyed to another owner also counts
        # as its author's update (stale_account).
        if (akey := engine.activity_key(e)) is not None:
            states[akey], out = engine.on_author_activity(states.get(akey), e)
            fired += out
        max_ts = max(max_ts, e.ts)
        if linkage:
            for bkey in tracker.route(e):
                box = tracker.apply(boxes.get(bkey), e, bkey)
                if box is not None:
                    boxes[bkey] = box
    # At the end of the data every task closes (as at the end of a replay); its checkpoints
    # are judged first, on the final reposts.
    for bkey in sorted(boxes):
        for task in boxes[bkey]["tasks"].values():
            fired += engine.on_linkage_progress(task, END_WATERMARK)
            fired += engine.on_linkage_closed(tracker.close(task))
    if math.isfinite(max_ts):
        for key in sorted(states):
            states[key], out = engine.sweep(key, states[key], max_ts)
            fired += out
    dispatcher = Dispatcher(rules, channels)
    dstates: dict[str, Any] = {}
    rows = []
    for a in fired:
        k = dispatcher.key(a)
        dstates[k], d = dispatcher.decide(dstates.get(k), a)
        rows.append({**d.alert.asdict(), "decision": {
            "store": d.store, "reason": d.reason, "held": d.held, "channels": d.channels,
            "skipped_channels": d.skipped}})
    return rows


@app.command("test")
def test_rule(
    rule: str = typer.Argument(..., help="A rule name (in --rules-dir) or a rule YAML path."),
    input: Path = typer.Option(..., "--input", help="JSONL of native Weibo objects."),
    registry: Path = typer.Option(None, "--registry", help="matrix.yaml"),
    rules_dir: Path = typer.Option(None, "--rules-dir", help="Where rule names are looked up."),
    channels: Path = typer.Option(None, "--channels", help="channels.yaml for routing."),
    as_of: str = typer.Option(None, "--as-of", help="ISO time relative Weibo times resolve "
                              "against (default: the file's modification time)."),
    sentiment: str = typer.Option("default", "--sentiment", help="Sentiment model name."),
    deadline: float = typer.Option(86400.0, "--deadline", help="Linkage deadline, seconds."),
) -> None:
    """Show what RULE would have fired on past data (one JSON line per alert, stdout)."""
    from matrixwatch.streams.sentiment import get_model

    try:
        r = find_rule(rule, rules_dir)
    except RuleError as e:
        _fail(str(e))
        return
    if not input.is_file():
        _fail(f"no such file: {input}")
    try:
        reg = Registry.load(registry) if registry else Registry()
    except RegistryError as e:
        _fail(str(e))
        return
    if registry is None:
        err.print("note: no --registry: the rule's filter applies to every account "
                  "(registered_only off); units, levels and names are unknown", highlight=False)
        r = replace(r, filter=replace(r.filter, registered_only=False))
    cfg = _load_channels(channels)
    from matrixwatch.streams.normalize import reference_time

    try:
        when = reference_time(as_of) if as_of else datetime.fromtimestamp(
            int(input.stat().st_mtime), tz=UTC)
    except ValueError as e:
        _fail(f"--as-of: {e}")
        return
    if not (math.isfinite(deadline) and deadline > 0):
        _fail(f"--deadline must be a positive number of seconds, not {deadline:g}")
    try:
        model = get_model(sentiment)
    except KeyError as e:
        _fail(f"--sentiment: {e.args[0]}")
        return
    events, bad = _read_events(input, when)
    scored = []
    for i in range(0, len(events), 512):
        chunk = events[i:i + 512]
        for e, s in zip(chunk, model.score_batch([e.text for e in chunk]), strict=True):
            scored.append(e.derive(sentiment=round(s.score, 4), sentiment_label=s.label))
    try:
        rows = run_rules([r], scored, reg, cfg, deadline)
    except ChannelError as e:
        _fail(str(e))
        return
    for row in rows:
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
    stored = sum(1 for x in rows if x["decision"]["store"])
    by_sev: dict[str, int] = {}
    for x in rows:
        if x["decision"]["store"]:
            by_sev[x["severity"]] = by_sev.get(x["severity"], 0) + 1
    err.print(f"{r.name} ({r.type}): {len(scored)} events ({bad} invalid lines skipped), "
              f"{len(rows)} alerts fired, {stored} stored "
              f"({', '.join(f'{k} {v}' for k, v in sorted(by_sev.items())) or 'none'}), "
              f"{sum(1 for x in rows if x['decision']['held'])} held by quiet hours",
              highlight=False)
