"""Security properties that must not regress (SECURITY.md lists them).

* Deserialization: only safe YAML loaders and no pickle/eval in the package; the loaders
  refuse Python tags, and hostile YAML (bad characters, unconvertible tagged scalars,
  recursive aliases, alias bombs: found by fuzzing) is a RuleError with file:line, fast.
* TLS verification is on by default for Elasticsearch, the notifiers (DingTalk, WeCom,
  Feishu, webhook, SMTP), the collectors and Kibana; a self-signed server is refused.
* Secrets never reach a log or the store: a worker (DEBUG logging) writing to a loopback
  Elasticsearch that is down at first, alerting to a loopback DingTalk robot that fails,
  and the push endpoint taking good and bad tokens, with every secret set in the
  environment; every log they produced and everything they sent is grepped for them.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
import yaml

import matrixwatch
from matrixwatch.alerts.rules import RuleError, rule_from_text

PACKAGE = Path(matrixwatch.__file__).resolve().parent

# --------------------------------------------------------------------------- loaders

# The brief's literal patterns, plus their relatives.
_UNSAFE_TEXT = [
    re.compile(r"\byaml\.(load|load_all|unsafe_load|unsafe_load_all|full_load|full_load_all)\s*\("),
    re.compile(r"\byaml\.(Loader|UnsafeLoader|FullLoader|CLoader|CUnsafeLoader|CFullLoader)\b"),
    re.compile(r"\b(c?[Pp]ickle|dill|jsonpickle|marshal)\.(load|loads|Unpickler)\b"),
    re.compile(r"allow_pickle\s*=\s*True"),
]
_UNSAFE_MODULES = {"pickle", "cPickle", "dill", "jsonpickle", "marshal", "shelve"}
_UNSAFE_YAML_NAMES = {"load", "load_all", "unsafe_load", "unsafe_load_all", "full_load",
                      "full_load_all", "Loader", "UnsafeLoader", "FullLoader", "CLoader",
                      "CUnsafeLoader", "CFullLoader"}


def unsafe_uses(source: str, name: str = "<src>") -> list[str]:
    """Unsafe deserialization or evaluation in Python source, as "file:line: what"."""
    found = []
    for i, line in enumerate(source.splitlines(), 1):
        code = line.split("#", 1)[0]
        found += [f"{name}:{i}: {m.group(0)}" for rx in _UNSAFE_TEXT for m in rx.finditer(code)]
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            found += [f"{name}:{line}: import {a.name}" for a in node.names
                      if a.name.split(".")[0] in _UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in _UNSAFE_MODULES:
                found.append(f"{name}:{line}: from {node.module} import")
            if node.module == "yaml":
                found += [f"{name}:{line}: from yaml import {a.name}" for a in node.names
                          if a.name in _UNSAFE_YAML_NAMES]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("eval", "exec"):
            found.append(f"{name}:{line}: {node.func.id}()")
    return found


def test_the_checker_catches_what_it_looks_for() -> None:
    planted = ("import yaml, pickle\nfrom yaml import Loader\nyaml.load(s, Loader=yaml.Loader)\n"
               "pickle.loads(b)\neval('1')\nnp.load(f, allow_pickle=True)\n")
    found = " | ".join(unsafe_uses(planted))
    for what in ("yaml.load(", "yaml.Loader", "pickle.loads", "import pickle",
                 "from yaml import Loader", "eval()", "allow_pickle=True"):
        assert what in found, what
    assert unsafe_uses("yaml.safe_load(s)\nyaml.SafeLoader(s)\n# yaml.load(x)\n") == []


def test_no_unsafe_deserialization_in_the_package() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 30
    found = [hit for f in files
             for hit in unsafe_uses(f.read_text(encoding="utf-8"), str(f.relative_to(PACKAGE)))]
    assert found == []


def test_yaml_inputs_refuse_python_tags(tmp_path: Path) -> None:
    """Rules, channels, registry and feeds: a Python tag is an error, never a call."""
    from matrixwatch.alerts.channels import ChannelConfig, ChannelError
    from matrixwatch.collectors.rss import load_feeds
    from matrixwatch.registry import Registry, RegistryError

    marker = tmp_path / "pwned"
    tag = f"!!python/object/apply:os.system ['touch {marker}']"
    with pytest.raises(RuleError, match=r"fuzz\.yaml:2"):
        rule_from_text(f"type: keyword\ndescription: {tag}\n", file="fuzz.yaml")
    (tmp_path / "channels.yaml").write_text(f"channels:\n  x: {tag}\n", encoding="utf-8")
    with pytest.raises(ChannelError):
        ChannelConfig.load(tmp_path / "channels.yaml")
    (tmp_path / "matrix.yaml").write_text(f"accounts: {tag}\n", encoding="utf-8")
    with pytest.raises(RegistryError):
        Registry.load(tmp_path / "matrix.yaml")
    (tmp_path / "feeds.yaml").write_text(f"feeds: {tag}\n", encoding="utf-8")
    with pytest.raises(yaml.YAMLError, match="python/object"):  # refused, never called
        load_feeds(tmp_path / "feeds.yaml")
    assert not marker.exists()


@pytest.mark.parametrize("value", ["a\x1fb", "!!int abc", "!!float abc", "!!bool abc",
                                   "!!timestamp 2001-13-45",
                                   # empty: IndexError inside PyYAML (found by the fuzzer)
                                   "!!int", "!!float", "!!bool", "!!timestamp"])
def test_rule_loader_reports_bad_yaml_as_rule_error(value: str, tmp_path: Path) -> None:
    """PyYAML's own errors (a control character: ReaderError, raised when the loader is
    built; a tagged scalar that does not convert: ValueError/KeyError from the
    constructor) are RuleError/ChannelError 'file:line: field: message', not tracebacks
    out of `matrixwatch rules validate` or worker start-up."""
    from matrixwatch.alerts.channels import ChannelConfig, ChannelError

    with pytest.raises(RuleError, match=r"^r\.yaml:2: [^:]+: invalid YAML: "):
        rule_from_text(f"type: spike\ndescription: {value}\n", file="r.yaml")
    (tmp_path / "channels.yaml").write_text(f"channels:\n  x: {value}\n", encoding="utf-8")
    with pytest.raises(ChannelError, match=r"channels\.yaml:2: "):
        ChannelConfig.load(tmp_path / "channels.yaml")


@pytest.mark.parametrize(("text", "where"), [
    ("type: spike\nfilter: &f {accounts: *f}\n", "r.yaml:2: filter.accounts: "),
    ("type: spike\nx: &x [1, *x]\n", "r.yaml:2: x[1]: "),
    ("type: spike\nx: &x\n  <<: *x\n", "r.yaml:2: x.<<: "),  # through a merge key
])
def test_rule_loader_recursive_alias(text: str, where: str) -> None:
    """A self-containing anchor is refused, not walked until RecursionError."""
    with pytest.raises(RuleError, match=re.escape(where) + "invalid YAML: recursive alias"):
        rule_from_text(text, file="r.yaml")


@pytest.mark.parametrize("merge", [False, True])
def test_rule_loader_alias_expansion_is_bounded(merge: bool) -> None:
    """Billion laughs: 8 levels of 10-way aliases (10^8 values once expanded, as lists or
    through merge keys) are refused in milliseconds; walking them took minutes and GBs."""
    if merge:
        levels = ["a0: &a0 {" + ", ".join(f"k{j}: x" for j in range(10)) + "}"]
        levels += [f"a{i}: &a{i} {{<<: [" + ", ".join([f"*a{i - 1}"] * 10) + "]}"
                   for i in range(1, 9)]
    else:
        levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    started = time.perf_counter()
    with pytest.raises(RuleError, match=r"^r\.yaml:\d+: a\d.*: invalid YAML: more than \d+ "
                                        r"values once aliases are expanded"):
        rule_from_text("\n".join(levels) + "\n", file="r.yaml")
    took = time.perf_counter() - started
    assert took < 0.25, f"{took:.2f}s for a {len(chr(10).join(levels))}-byte rule file"


def test_rule_loader_keeps_ordinary_aliases() -> None:
    """The bound is on expansion, not on aliases: a reused list still loads."""
    text = ("type: keyword\nparams:\n  lists:\n    - {name: a, words: &w [x, y]}\n"
            "    - {name: b, words: *w}\n")
    rule = rule_from_text(text, file="r.yaml")
    assert [k.words for k in rule.params.lists] == [("x", "y"), ("x", "y")]


# --------------------------------------------------------------------------- TLS


def _verifies(ctx: Any) -> bool:
    return isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_REQUIRED \
        and ctx.check_hostname


def _httpx_context(client: httpx.AsyncClient | httpx.Client) -> ssl.SSLContext:
    """The collectors' client (httpx); the notifiers' exposes ``ssl_context``."""
    return client._transport._pool._ssl_context  # type: ignore[union-attr,attr-defined]


def test_es_verifies_certificates_by_default() -> None:
    from matrixwatch.settings import Settings
    from matrixwatch.streams.sinks import make_store

    assert Settings.model_fields["es_verify_certs"].default is True
    s = Settings(_env_file=None, es_url="https://127.0.0.1:9", es_username="u",  # type: ignore[call-arg]
                 es_password="p")
    assert s.es_verify_certs is True
    store = make_store(s)
    assert store.verify_certs is True  # type: ignore[attr-defined]
    client = store._new_client(async_=False)  # type: ignore[attr-defined]
    try:
        (node,) = client.transport.node_pool.all()
        assert node.config.verify_certs is True
        assert node.config.scheme == "https"
    finally:
        client.close()


def test_notifiers_collectors_and_kibana_verify_by_default(tmp_path: Path) -> None:
    import inspect
    from dataclasses import replace

    from matrixwatch.alerts.channels import ChannelConfig
    from matrixwatch.alerts.notifiers import smtp
    from matrixwatch.alerts.notifiers.base import client_for
    from matrixwatch.collectors.http import Fetcher
    from matrixwatch.dashboards import kibana

    cfg = ChannelConfig.load(env={})  # the packaged channels.yaml
    http_channels = [c for c in cfg.channels.values() if c.type != "email"]
    assert {c.type for c in http_channels} >= {"dingtalk", "wecom", "feishu", "webhook"}
    for ch in http_channels:
        assert ch.verify is True, ch.name
        client = client_for(ch)
        assert _verifies(client.ssl_context), ch.name
        asyncio.run(client.aclose())
    assert not _verifies(client_for(replace(ch, verify=False)).ssl_context)  # opt-out only
    email = next(c for c in cfg.channels.values() if c.type == "email")
    assert email.verify is True
    assert "create_default_context" in inspect.getsource(smtp)
    fetcher = Fetcher("test")
    assert _verifies(_httpx_context(fetcher.client))
    asyncio.run(fetcher.close())
    for fn in (kibana.wait_for_kibana, kibana.import_objects):
        assert inspect.signature(fn).parameters["verify"].default is True


@pytest.fixture
def self_signed_server(tmp_path: Path) -> Iterator[str]:
    """An HTTPS server on 127.0.0.1 with a self-signed certificate (openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make a self-signed certificate")
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)

    class Ok(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b'{"errcode": 0}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/robot/send"
    finally:
        server.shutdown()
        server.server_close()


def test_a_notifier_refuses_a_self_signed_server(self_signed_server: str,
                                                 tmp_path: Path) -> None:
    from dataclasses import replace

    from matrixwatch.alerts.channels import Channel, RetryPolicy
    from matrixwatch.alerts.notifiers.base import NotifyError, client_for, post

    ch = Channel(name="x", type="webhook", url=self_signed_server,
                 retry=RetryPolicy(attempts=1, timeout=5))

    async def send(channel: Channel) -> Any:
        client = client_for(channel)
        try:
            return await post(client, self_signed_server, b"{}")
        finally:
            await client.aclose()

    with pytest.raises(NotifyError) as e:
        asyncio.run(send(ch))
    assert e.value.reason == "network"  # the TLS handshake failed: certificate refused
    assert asyncio.run(send(replace(ch, verify=False))) == {"errcode": 0}  # explicit opt-out
    ca = str(tmp_path / "c.pem")  # the fixture's certificate, as a channel's CA bundle
    assert asyncio.run(send(replace(ch, verify=ca))) == {"errcode": 0}


# --------------------------------------------------------------------------- secrets

SECRETS = {
    "MW_ES_PASSWORD": "es-pass-Q7f3Zr9wPq",
    "MW_DINGTALK_TOKEN": "dingtoken-Lk29Vd0xYb",
    "MW_DINGTALK_SECRET": "SECding-8Hq2Mn5pTz",
    "MW_PUSH_TOKEN": "push-token-Xc81Rt4eWm",
    "MW_FEISHU_SECRET": "feishu-secret-3Jd7Kq1v",
    "MW_SMTP_PASSWORD": "smtp-pass-6Vb4Nc8x",
    "MW_WEIBO_COOKIE": "SUB=weibo-cookie-2Gh5Ls9k",
    "MW_WEIBO_TOKEN": "weibo-token-7Rt3Yp2q",
}
ES_USER = "elastic"


def secret_forms() -> dict[str, str]:
    """Each secret as it could leak: raw, URL-quoted, and (ES) inside a Basic header."""
    forms: dict[str, str] = {}
    for name, value in SECRETS.items():
        forms[name] = value
        forms[f"{name} (url-quoted)"] = quote_plus(value)
        forms[f"{name} (percent)"] = quote(value, safe="")
    basic = base64.b64encode(f"{ES_USER}:{SECRETS['MW_ES_PASSWORD']}".encode()).decode()
    forms["MW_ES_PASSWORD (basic auth)"] = basic
    return {k: v for k, v in forms.items() if len(v) >= 8}


def leaks(text: str) -> list[str]:
    return sorted({name for name, form in secret_forms().items() if form in text})


class FakeRobot:
    """A loopback DingTalk robot: first answer 500, then "sign not match" (permanent)."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        robot = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                robot.requests.append(f"{self.path}\n{self.headers}\n{body.decode()}")
                status, answer = (500, b"busy") if len(robot.requests) == 1 else (
                    200, b'{"errcode": 310000, "errmsg": "sign not match"}')
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *a: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/robot/send"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.broker
def test_secrets_never_reach_logs_or_the_store(tmp_path: Path) -> None:
    from matrixwatch.broker import free_port
    from tests.faults.harness import Cluster, read_log, simulated_feed, wait_for
    from tests.streams.sinks.test_elasticsearch import FakeES

    registry, lines = simulated_feed(tmp_path / "sim", 600)
    es, robot = FakeES(), FakeRobot()
    channels = tmp_path / "channels.yaml"
    channels.write_text(
        "channels:\n  duty_dingtalk:\n    type: dingtalk\n"
        f"    url: {robot.url}\n    token_env: MW_DINGTALK_TOKEN\n"
        "    secret_env: MW_DINGTALK_SECRET\n"
        "    retry: {attempts: 2, initial: 0.1, max_wait: 0.2, timeout: 2}\n"
        "routes:\n  - channels: [duty_dingtalk]\n", encoding="utf-8")
    push_log = tmp_path / "push.log"
    env = {**SECRETS, "MW_ES_URL": es.url, "MW_ES_USERNAME": ES_USER,
           "MW_ALERT_CHANNELS": str(channels), "MW_SWEEP_INTERVAL": "2"}
    es.outage_until = time.monotonic() + 600  # ES down at start-up: set-up fails
    push: subprocess.Popen[bytes] | None = None
    try:
        with Cluster(tmp_path, registry) as c:
            c.start_worker("w", loglevel="DEBUG", **env)
            port = free_port()
            with open(push_log, "wb") as out:
                push = subprocess.Popen(
                    [sys.executable, "-m", "matrixwatch", "collect", "push", "--port", str(port)],
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                    env={**os.environ, **SECRETS, "MW_KAFKA_URL": c.url,
                         "MW_DATA_DIR": str(tmp_path / "push")})
            url = f"http://127.0.0.1:{port}/v1/events"
            good = {"Authorization": f"Bearer {SECRETS['MW_PUSH_TOKEN']}",
                    "Content-Type": "application/x-ndjson"}

            def up() -> bool:
                try:
                    httpx.get(url.replace("/v1/events", "/healthz"), timeout=1)
                    return True
                except httpx.HTTPError:
                    return False

            wait_for(up, 30, "push endpoint up")
            c.wait_ready("w")
            es.outage_until = time.monotonic() + 4  # and for the first writes
            answers = [httpx.post(url, content=b"\n".join(lines[i:i + 100]), headers=good,
                                  timeout=30).status_code for i in range(0, len(lines), 100)]
            wrong = httpx.post(url, content=lines[0], timeout=10, headers={
                "Authorization": f"Bearer {SECRETS['MW_PUSH_TOKEN'][:-1]}x"}).status_code
            wait_for(lambda: len(robot.requests) >= 2, 120, "alerts at the robot")
            c.drain(120)
            worker_log = c.log("w")
    finally:
        if push is not None:
            push.terminate()
            push.wait(timeout=20)
        robot.close()
        es.close()
    assert answers == [202] * len(answers) and wrong == 401
    logs = {"worker": worker_log, "push": read_log(push_log),
            "broker": read_log(tmp_path / "broker.log")}
    # The outage happened and was logged: the set-up, then bulk writes, answered 503.
    assert "set-up deferred" in logs["worker"] and "pending (503)" in logs["worker"]
    assert "attempt 1 failed" in logs["worker"]  # the robot's 500 was logged
    assert len(logs["worker"]) > 100_000  # DEBUG: there was plenty to leak into
    assert "MW_ES_PASSWORD" in leaks(f"x{SECRETS['MW_ES_PASSWORD']}x")  # the probe works
    for name, text in logs.items():
        assert leaks(text) == [], f"{name} log leaks {leaks(text)}"
    sent_to_es = "\n".join(body.decode("utf-8", "replace") + path for _, path, body in es.requests)
    assert "delivery failed" in sent_to_es  # the DLQ record of the failed delivery
    assert leaks(sent_to_es) == []
    # The robot needs its token in the URL, but the signing secret only keys the HMAC.
    at_robot = "\n".join(robot.requests)
    assert SECRETS["MW_DINGTALK_TOKEN"] in at_robot
    assert "MW_DINGTALK_SECRET" not in leaks(at_robot)
    print(json.dumps({k: len(v) for k, v in logs.items()}))
