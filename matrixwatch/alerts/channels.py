"""Notification channels (channels.yaml): where alerts can go, and how to reach them.

The default file is the packaged ``matrixwatch/alerts/channels.yaml``; ``MW_ALERT_CHANNELS``
names another. Every secret — robot tokens, signing secrets, webhook URLs that embed a
token, SMTP passwords — comes only from an environment variable named in the file
(``*_env``) or from a file (``*_file``), never from the YAML itself, and is held in a
:class:`Secret` that prints as ``***``: channels, their reprs, logs and the errors of a
failed delivery show the channel name, type and host only. A channel whose secret is not
provided is *disabled* (listed, with what is missing), so the shipped file can name every
kind of channel and an installation enables the ones it has keys for.

Schema::

    channels:
      duty_dingtalk:
        type: dingtalk               # dingtalk | wecom | feishu | webhook | email
        url: https://oapi.dingtalk.com/robot/send   # base URL (tests point it at 127.0.0.1)
        token_env: MW_DINGTALK_TOKEN # access_token (dingtalk), key (wecom), hook id (feishu)
        secret_env: MW_DINGTALK_SECRET   # 加签 secret; omit for keyword/IP-secured robots
        at_mobiles: ["138..."]       # dingtalk, wecom (@ by phone)
        at_userids: []               # wecom <@userid>, feishu <at id=...>
        at_all: false
        verify: true                 # TLS verification, or a CA bundle path
        retry: {attempts: 4, initial: 0.5, max_wait: 10, timeout: 10}
        max_per_minute: 20           # send budget; default by type (below)
        max_per_second: 5            # optional; feishu defaults to 5
      ops_webhook: {type: webhook, url_env: MW_ALERT_WEBHOOK_URL, secret_env: ...}
      duty_email: {type: email, host: smtp.example.gov.cn, port: 587, tls: starttls,
                   username: alerts@..., password_env: MW_SMTP_PASSWORD,
                   sender: alerts@..., to: [duty@...]}
    routes:                          # used by rules without their own routing
      - {channels: [duty_dingtalk], min_severity: blue}

Send budget (``max_per_minute``, ``max_per_second``; whole numbers >= 1, any type). The
platforms rate-limit custom robots, and a burst of alerts must not get a robot banned
at night, so each worker sends at most this many messages per sliding 60 s (and per
second) to the channel; the rest are summarised (alerts/throttle.py). Defaults by type,
the limits the platforms document for custom robots:

* dingtalk 20/minute — 自定义机器人, 消息发送频率限制: 20 messages a minute per robot;
  beyond it the robot is throttled for 10 minutes (errcode 130101);
* wecom 20/minute — 群机器人配置说明: 20 messages a minute per robot (errcode 45009);
  a WeCom channel with ``at_mobiles`` posts two messages per alert and is charged two;
* feishu 100/minute and 5/second — 自定义机器人使用指南, 频率控制 (errcode 11232);
* webhook, email: unlimited unless set.

Lower values are fine (a robot shared with another system); higher ones only for a
platform that grants more. Each worker process keeps its own budget: with W workers
set ``MW_NOTIFY_BUDGET_WORKERS=W`` (settings.py), which divides these per worker.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from matrixwatch.alerts.rules import Route, RuleError, parse_routes
from matrixwatch.alerts.yamlsrc import Doc, SourceError, load, parse

__all__ = ["CHANNEL_TYPES", "Channel", "ChannelConfig", "ChannelError", "RetryPolicy", "Secret"]

CHANNEL_TYPES = ("dingtalk", "wecom", "feishu", "webhook", "email")
# The platforms' limits for custom robots (module docstring); None: unlimited.
DEFAULT_MAX_PER_MINUTE: dict[str, int | None] = {
    "dingtalk": 20, "wecom": 20, "feishu": 100, "webhook": None, "email": None}
DEFAULT_MAX_PER_SECOND: dict[str, int | None] = {
    "dingtalk": None, "wecom": None, "feishu": 5, "webhook": None, "email": None}
DEFAULT_CHANNELS_FILE = Path(__file__).parent / "channels.yaml"
ENV_CHANNELS = "MW_ALERT_CHANNELS"


class ChannelError(ValueError):
    """A channels file that cannot be used: ``file:line: field: message``."""


class Secret:
    """A string that never prints. ``get()`` is the only way to the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts in all (1 = no retry), exponential backoff, per-attempt timeout; seconds."""

    attempts: int = 4
    initial: float = 0.5
    max_wait: float = 10.0
    timeout: float = 10.0


@dataclass(frozen=True)
class EmailSettings:
    host: str
    port: int
    tls: str  # starttls | ssl | none
    sender: str
    to: tuple[str, ...]
    username: str | None = None
    password: Secret | None = None


@dataclass(frozen=True, repr=False)
class Channel:
    name: str
    type: str
    url: str | None = None
    token: Secret | None = None
    secret: Secret | None = None
    url_secret: Secret | None = None
    at_mobiles: tuple[str, ...] = ()
    at_userids: tuple[str, ...] = ()
    at_all: bool = False
    verify: bool | str = True
    trust_env: bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    headers: tuple[tuple[str, str], ...] = ()
    email: EmailSettings | None = None
    missing: tuple[str, ...] = ()
    where: str = ""
    max_per_minute: int | None = None  # None: the type's default (DEFAULT_MAX_PER_MINUTE)
    max_per_second: int | None = None  # None: the type's default (DEFAULT_MAX_PER_SECOND)

    def __post_init__(self) -> None:
        # The platform's limit however the channel was built: a robot is never unlimited.
        if self.max_per_minute is None:
            object.__setattr__(self, "max_per_minute", DEFAULT_MAX_PER_MINUTE.get(self.type))
        if self.max_per_second is None:
            object.__setattr__(self, "max_per_second", DEFAULT_MAX_PER_SECOND.get(self.type))

    @property
    def enabled(self) -> bool:
        return not self.missing

    @property
    def messages_per_alert(self) -> int:
        """Messages one delivery posts: a WeCom @-by-mobile is a second, text message."""
        return 2 if self.type == "wecom" and self.at_mobiles else 1

    def endpoint(self) -> str:
        """The full URL with its token. Secret: pass it to the HTTP client, never print it."""
        if self.url_secret is not None:
            return self.url_secret.get()
        base = self.url or ""
        if self.token is None:
            return base
        tok = self.token.get()
        if self.type == "feishu":
            return base.rstrip("/") + "/" + tok
        param = "key" if self.type == "wecom" else "access_token"
        return f"{base}{'&' if '?' in base else '?'}{param}={tok}"

    def public_target(self) -> str:
        """What may be shown: scheme and host only (paths and queries carry tokens)."""
        if self.type == "email" and self.email is not None:
            return f"smtp://{self.email.host}:{self.email.port}"
        if self.url_secret is not None:
            parts = urlsplit(self.url_secret.get())
        else:
            parts = urlsplit(self.url or "")
        return f"{parts.scheme}://{parts.hostname or ''}" if parts.scheme else "(unset)"

    def __repr__(self) -> str:
        state = "enabled" if self.enabled else f"disabled: missing {', '.join(self.missing)}"
        return f"<Channel {self.name} {self.type} → {self.public_target()} ({state})>"

    __str__ = __repr__


@dataclass
class ChannelConfig:
    channels: dict[str, Channel] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    source: str = "<memory>"

    @classmethod
    def load(cls, path: str | Path | None = None,
             env: dict[str, str] | None = None) -> ChannelConfig:
        """From ``path``, else ``$MW_ALERT_CHANNELS``, else the packaged channels.yaml."""
        env = dict(os.environ) if env is None else env
        p = Path(path) if path else Path(env[ENV_CHANNELS]) if env.get(ENV_CHANNELS) \
            else DEFAULT_CHANNELS_FILE
        try:
            doc = load(p)
        except SourceError as e:
            raise ChannelError(str(e)) from None
        return cls.from_doc(doc, env)

    @classmethod
    def from_text(cls, text: str, env: dict[str, str] | None = None,
                  file: str = "<channels>") -> ChannelConfig:
        try:
            doc = parse(text, file)
        except SourceError as e:
            raise ChannelError(str(e)) from None
        return cls.from_doc(doc, dict(os.environ) if env is None else env)

    @classmethod
    def from_doc(cls, doc: Doc, env: dict[str, str]) -> ChannelConfig:
        data = doc.data if doc.data is not None else {}
        if not isinstance(data, dict):
            raise ChannelError(str(doc.error((), "expected a mapping with channels and routes")))
        for k in data:
            if k not in ("channels", "routes"):
                raise ChannelError(str(doc.error((str(k),), "unknown key; allowed: channels, "
                                                            "routes")))
        raw = data.get("channels") or {}
        if not isinstance(raw, dict):
            raise ChannelError(str(doc.error(("channels",), "expected a mapping name → channel")))
        chans = {str(n): _channel(doc, str(n), v, env) for n, v in raw.items()}
        try:
            routes = parse_routes(doc, ("routes",), data.get("routes")) or ()
        except RuleError as e:
            raise ChannelError(str(e)) from None
        cfg = cls(channels=chans, routes=routes, source=doc.file)
        for r in routes:
            cfg.check_route(r)
        return cfg

    def check_route(self, route: Route) -> None:
        for c in route.channels:
            if c not in self.channels:
                raise ChannelError(f"{route.where}: channels: unknown channel {c!r}; "
                                   f"defined in {self.source}: {', '.join(self.channels) or '-'}")

    def enabled(self) -> list[str]:
        return [n for n, c in self.channels.items() if c.enabled]

    def get(self, name: str) -> Channel:
        try:
            return self.channels[name]
        except KeyError:
            raise ChannelError(f"unknown channel {name!r}") from None


# --- parsing ----------------------------------------------------------------------------
_COMMON = ("type", "verify", "trust_env", "retry", "description", "max_per_minute",
           "max_per_second")
_KEYS: dict[str, tuple[str, ...]] = {
    "dingtalk": (*_COMMON, "url", "token_env", "token_file", "secret_env", "secret_file",
                 "at_mobiles", "at_all"),
    "wecom": (*_COMMON, "url", "token_env", "token_file", "at_mobiles", "at_userids", "at_all"),
    "feishu": (*_COMMON, "url", "token_env", "token_file", "secret_env", "secret_file",
               "at_userids", "at_all"),
    "webhook": (*_COMMON, "url", "url_env", "url_file", "secret_env", "secret_file", "headers"),
    "email": (*_COMMON, "host", "port", "tls", "username", "password_env", "password_file",
              "sender", "to"),
}
_DEFAULT_URLS = {
    "dingtalk": "https://oapi.dingtalk.com/robot/send",
    "wecom": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send",
    "feishu": "https://open.feishu.cn/open-apis/bot/v2/hook",
}


def _err(doc: Doc, path: tuple, msg: str) -> ChannelError:
    return ChannelError(str(doc.error(path, msg)))


def _secret(doc: Doc, path: tuple, d: dict, stem: str, env: dict[str, str],
            missing: list[str]) -> Secret | None:
    """``{stem}_env`` or ``{stem}_file`` → Secret; records what is missing."""
    e, f = d.get(f"{stem}_env"), d.get(f"{stem}_file")
    if e is not None and f is not None:
        raise _err(doc, (*path, f"{stem}_file"), f"give {stem}_env or {stem}_file, not both")
    if e is not None:
        if not isinstance(e, str) or not e:
            raise _err(doc, (*path, f"{stem}_env"), "expected an environment variable name")
        val = env.get(e)
        if not val:
            missing.append(f"env {e}")
            return None
        return Secret(val.strip())
    if f is not None:
        if not isinstance(f, str) or not f:
            raise _err(doc, (*path, f"{stem}_file"), "expected a file path")
        try:
            val = Path(f).expanduser().read_text(encoding="utf-8").strip()
        except OSError:
            missing.append(f"file {f}")
            return None
        if not val:
            missing.append(f"file {f} (empty)")
            return None
        return Secret(val)
    return None


def _strs(doc: Doc, path: tuple, v: Any) -> tuple[str, ...]:
    if v is None:
        return ()
    if not isinstance(v, list) or not all(isinstance(x, str | int) and not isinstance(x, bool)
                                          for x in v):
        raise _err(doc, path, "expected a list of strings")
    return tuple(str(x) for x in v)


def _retry(doc: Doc, path: tuple, v: Any) -> RetryPolicy:
    if v is None:
        return RetryPolicy()
    if not isinstance(v, dict):
        raise _err(doc, path, "expected {attempts, initial, max_wait, timeout}")
    vals: dict[str, Any] = {}
    for k, x in v.items():
        if k not in ("attempts", "initial", "max_wait", "timeout"):
            raise _err(doc, (*path, str(k)), "unknown key; allowed: attempts, initial, "
                                             "max_wait, timeout")
        if isinstance(x, bool) or not isinstance(x, int | float) or x < 0:
            raise _err(doc, (*path, str(k)), f"expected a number >= 0, got {x!r}")
        if k == "attempts" and (int(x) != x or x < 1):
            raise _err(doc, (*path, str(k)), "expected a whole number >= 1")
        vals[str(k)] = int(x) if k == "attempts" else float(x)
    return RetryPolicy(**vals)


def _budget(doc: Doc, path: tuple, raw: dict, key: str, ctype: str) -> int | None:
    """A send budget: a whole number >= 1, or absent for the type's default."""
    if key not in raw:
        return None
    v = raw[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        unit = "minute" if key == "max_per_minute" else "second"
        default = (DEFAULT_MAX_PER_MINUTE if unit == "minute" else DEFAULT_MAX_PER_SECOND)[ctype]
        raise _err(doc, (*path, key), f"expected a whole number >= 1 (messages per {unit}), "
                                      f"got {v!r}; omit it for the {ctype} default "
                                      f"({default or 'unlimited'})")
    return v


def _url(doc: Doc, path: tuple, v: Any) -> str:
    if not isinstance(v, str) or urlsplit(v).scheme not in ("http", "https"):
        raise _err(doc, path, f"expected an http(s) URL, got {v!r}")
    return v


def _channel(doc: Doc, name: str, raw: Any, env: dict[str, str]) -> Channel:
    path: tuple = ("channels", name)
    if not isinstance(raw, dict):
        raise _err(doc, path, "expected a mapping with a type")
    ctype = raw.get("type")
    if ctype not in CHANNEL_TYPES:
        raise _err(doc, (*path, "type"), f"expected one of {', '.join(CHANNEL_TYPES)}, "
                                         f"got {ctype!r}")
    for k in raw:
        if k not in _KEYS[ctype]:
            raise _err(doc, (*path, str(k)), f"unknown key for {ctype}; allowed: "
                                              f"{', '.join(_KEYS[ctype])}")
    missing: list[str] = []
    verify = raw.get("verify", True)
    if not isinstance(verify, bool | str):
        raise _err(doc, (*path, "verify"), "expected true/false or a CA bundle path")
    trust_env = raw.get("trust_env", True)
    if not isinstance(trust_env, bool):
        raise _err(doc, (*path, "trust_env"), "expected true or false")
    at_all = raw.get("at_all", False)
    if not isinstance(at_all, bool):
        raise _err(doc, (*path, "at_all"), "expected true or false")
    common: dict[str, Any] = dict(
        name=name, type=ctype, verify=verify, trust_env=trust_env, at_all=at_all,
        retry=_retry(doc, (*path, "retry"), raw.get("retry")), where=doc.where(path),
        at_mobiles=_strs(doc, (*path, "at_mobiles"), raw.get("at_mobiles")),
        at_userids=_strs(doc, (*path, "at_userids"), raw.get("at_userids")),
        max_per_minute=_budget(doc, path, raw, "max_per_minute", ctype),
        max_per_second=_budget(doc, path, raw, "max_per_second", ctype),
    )
    if ctype == "email":
        for req in ("host", "sender", "to"):
            if not raw.get(req):
                raise _err(doc, (*path, req), f"email channels need {req}")
        tls = raw.get("tls", "starttls")
        if tls not in ("starttls", "ssl", "none"):
            raise _err(doc, (*path, "tls"), f"expected starttls, ssl or none, got {tls!r}")
        port = raw.get("port", {"starttls": 587, "ssl": 465, "none": 25}[tls])
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise _err(doc, (*path, "port"), f"expected a port number, got {port!r}")
        password = _secret(doc, path, raw, "password", env, missing)
        username = raw.get("username")
        if password is not None and not username:
            raise _err(doc, (*path, "username"), "a password needs a username")
        to = _strs(doc, (*path, "to"), raw.get("to") if isinstance(raw.get("to"), list)
                   else [raw.get("to")])
        email = EmailSettings(host=str(raw["host"]), port=port, tls=tls,
                              sender=str(raw["sender"]), to=to,
                              username=None if username is None else str(username),
                              password=password)
        return Channel(**common, email=email, missing=tuple(missing))
    url = None
    url_secret = None
    if ctype == "webhook":
        if ("url" in raw) + ("url_env" in raw) + ("url_file" in raw) != 1:
            raise _err(doc, path, "webhook channels need exactly one of url, url_env, url_file")
        if "url" in raw:
            url = _url(doc, (*path, "url"), raw["url"])
        else:
            url_secret = _secret(doc, path, raw, "url", env, missing)
            if url_secret is not None and urlsplit(url_secret.get()).scheme not in (
                    "http", "https"):
                key = "url_env" if "url_env" in raw else "url_file"
                raise _err(doc, (*path, key), "the value is not an http(s) URL")
        headers = raw.get("headers") or {}
        if not isinstance(headers, dict):
            raise _err(doc, (*path, "headers"), "expected a mapping of header → value")
        hdrs = tuple((str(k), str(v)) for k, v in headers.items())
        token = None
    else:
        url = _url(doc, (*path, "url"), raw.get("url", _DEFAULT_URLS[ctype]))
        token = _secret(doc, path, raw, "token", env, missing)
        if token is None and "token_env" not in raw and "token_file" not in raw:
            q = urlsplit(url)
            has_token = ("access_token=" in q.query or "key=" in q.query
                         or (ctype == "feishu" and q.path.rstrip("/").split("/")[-1] != "hook"))
            if not has_token:
                raise _err(doc, path, f"{ctype} channels need token_env or token_file")
        hdrs = ()
    secret = _secret(doc, path, raw, "secret", env, missing)
    return Channel(**common, url=url, url_secret=url_secret, token=token, secret=secret,
                   headers=hdrs, missing=tuple(missing))
