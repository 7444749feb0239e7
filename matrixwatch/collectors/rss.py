"""RSS/Atom feeds: government websites, and WeChat official accounts via an RSS bridge.

Items become normalized events (``platform`` web or wechat, ``kind`` post) because
these platforms have no native object the pipeline knows. Feeds are fetched through
the same polite :class:`~matrixwatch.collectors.http.Fetcher` (rate limits, backoff)
with conditional GET (``ETag`` / ``Last-Modified`` kept in the cursor store), parsed
with feedparser, and de-duplicated by item id in the seen-id store.

Ids: a WeChat article link (``mp.weixin.qq.com/s?__biz=…&mid=…&idx=…``) gives the
native id ``<mid>_<idx>`` and the account id ``__biz``, whichever bridge served it;
otherwise the item's ``guid``/``id`` (or its link), hashed if longer than 200
characters. Times: ``published`` (else ``updated``) converted to +08:00; an item with
neither gets its first collection time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from matrixwatch.collectors.base import (
    CollectorError,
    HealthTracker,
    HttpError,
    MalformedResponse,
    Sink,
    describe,
    now_iso,
)
from matrixwatch.collectors.cursors import CursorStore
from matrixwatch.collectors.engine import Publisher
from matrixwatch.collectors.http import Fetcher
from matrixwatch.streams.normalize import html_to_text
from matrixwatch.streams.weibo_time import CST

SOURCE = "rss"
PLATFORMS = ("web", "wechat")
_MAX_TEXT_CHARS = 16000


@dataclass(frozen=True)
class FeedSpec:
    url: str
    platform: str = "web"
    account_id: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.platform not in PLATFORMS:
            raise ValueError(f"feed platform must be one of {PLATFORMS}: {self.platform!r}")
        if urlsplit(self.url).scheme not in ("http", "https"):
            raise ValueError(f"feed URL must be http(s): {self.url!r}")


def load_feeds(path: Path) -> list[FeedSpec]:
    """A feeds.yaml: ``feeds: [{url, platform, account_id, name}, …]``."""
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    rows = doc.get("feeds") if isinstance(doc, dict) else None
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a mapping with a 'feeds' list")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not row.get("url"):
            raise ValueError(f"{path}: feeds[{i}]: missing field 'url'")
        out.append(FeedSpec(str(row["url"]), str(row.get("platform") or "web"),
                            None if row.get("account_id") is None else str(row["account_id"]),
                            row.get("name")))
    return out


def _wechat_ids(link: str) -> tuple[str, str] | None:
    """(account __biz, "<mid>_<idx>") from an mp.weixin.qq.com article link."""
    parts = urlsplit(link)
    if not parts.netloc.endswith("mp.weixin.qq.com"):
        return None
    q = parse_qs(parts.query)
    biz, mid, idx = (q.get(k, [None])[0] for k in ("__biz", "mid", "idx"))
    if biz and mid:
        return biz, f"{mid}_{idx or 1}"
    return None


def _entry_id(entry: Any) -> str | None:
    raw = entry.get("id") or entry.get("guid") or entry.get("link")
    if not raw:
        title = entry.get("title") or ""
        stamp = entry.get("published") or entry.get("updated") or ""
        if not title:
            return None
        raw = f"{title}|{stamp}"
    raw = str(raw).strip()
    if len(raw) > 200:
        return "sha1:" + hashlib.sha1(raw.encode()).hexdigest()
    return raw


def _entry_time(entry: Any) -> str | None:
    for k in ("published_parsed", "updated_parsed"):
        st = entry.get(k)
        if st:
            return datetime(*st[:6], tzinfo=UTC).astimezone(CST).isoformat()
    return None


def _entry_text(entry: Any) -> str:
    title = html_to_text(str(entry.get("title") or ""))
    body = ""
    content = entry.get("content")
    if isinstance(content, list) and content and isinstance(content[0], dict):
        body = str(content[0].get("value") or "")
    if not body:
        body = str(entry.get("summary") or "")
    body = html_to_text(body)
    text = title if not body or body == title else f"{title}\n{body}" if title else body
    return text[:_MAX_TEXT_CHARS]


def feed_events(spec: FeedSpec, parsed: Any, collected: str) -> list[tuple[str, dict[str, Any]]]:
    """Parsed feed → (id, normalized event dict) in feed order."""
    feed = parsed.get("feed", {}) if hasattr(parsed, "get") else {}
    feed_title = str(feed.get("title") or "") or None
    default_account = spec.account_id or (
        urlsplit(str(feed.get("link") or spec.url)).netloc or spec.url)
    out = []
    for entry in parsed.get("entries", []):
        link = str(entry.get("link") or "") or None
        eid = _entry_id(entry)
        account = default_account
        wx = _wechat_ids(link) if link and spec.platform == "wechat" else None
        if wx:
            account = spec.account_id or wx[0]
            eid = wx[1]
        if eid is None:
            continue
        created = _entry_time(entry) or collected
        ev = {
            "platform": spec.platform, "id": eid, "kind": "post",
            "account_id": account, "owner_id": account,
            "account_name": spec.name or feed_title,
            "text": _entry_text(entry), "created_at": created, "collected_at": collected,
            "url": link,
        }
        out.append((eid, ev))
    return out


class RssCollector:
    """Polls a list of feeds; one scope (seen ids, validators) per feed URL."""

    def __init__(self, settings: Any, sink: Sink, store: CursorStore,
                 feeds: list[FeedSpec], *, fetcher: Fetcher | None = None) -> None:
        self.settings = settings
        self.feeds = feeds
        self.store = store
        self.fetcher = fetcher or Fetcher.from_settings(
            SOURCE, settings, headers={"Accept": "application/rss+xml, application/atom+xml, "
                                                 "application/xml;q=0.9, */*;q=0.5"})
        self.pub = Publisher(SOURCE, sink, store)
        self.health = HealthTracker(sink, SOURCE, settings.failure_threshold, platform="web")

    async def close(self) -> None:
        await self.fetcher.close()

    async def poll_feed(self, spec: FeedSpec) -> int:
        import feedparser

        scope = f"feed:{spec.url}"
        st = self.store.get(SOURCE, scope) or {}
        headers = {}
        if st.get("etag"):
            headers["If-None-Match"] = st["etag"]
        if st.get("modified"):
            headers["If-Modified-Since"] = st["modified"]
        r = await self.fetcher.get(spec.url, headers=headers)
        if r.status == 304:
            return 0
        if r.status >= 400:
            raise HttpError(f"HTTP {r.status} from {spec.url}")
        parsed = feedparser.parse(r.content, response_headers={
            k.lower(): v for k, v in r.headers.items()})
        if parsed.get("bozo") and not parsed.get("entries"):
            err = parsed.get("bozo_exception")
            raise MalformedResponse(f"not a feed: {spec.url}: {type(err).__name__}: {err}")
        events = feed_events(spec, parsed, now_iso())
        validators = {"etag": r.headers.get("etag"), "modified": r.headers.get("last-modified")}
        return await self.pub.publish(scope, events, {scope: validators}, kind="post")

    async def poll_all(self, specs: list[FeedSpec] | None = None) -> dict[str, int | str]:
        """Each feed once; a failing feed is reported and does not stop the others.

        Any exception is a failed feed (an unexpected one is logged with its traceback
        by the health tracker): one escaping here would fail every other feed of the
        call and, in the scheduler, reach APScheduler's per-run traceback.
        """
        out: dict[str, int | str] = {}
        failed = False
        for spec in self.feeds if specs is None else specs:
            try:
                out[spec.url] = await self.poll_feed(spec)
            except Exception as e:
                failed = True
                out[spec.url] = describe(e)
                await self.health.failure(e, spec.account_id,
                                          unexpected=not isinstance(e, CollectorError | OSError))
        if not failed:
            await self.health.success()
        return out
