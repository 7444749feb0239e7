"""`matrixwatch dashboards import` against a loopback fake Kibana, and `setup-es` against
the fake ES: the exact request Kibana's saved-objects import API needs (multipart file,
``kbn-xsrf``, basic auth, ``overwrite=true``), idempotence, and failures reported."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from typer.testing import CliRunner

from matrixwatch.dashboards import kibana
from matrixwatch.dashboards.cli import app
from matrixwatch.settings import get_settings
from tests.streams.sinks.test_elasticsearch import FakeES

runner = CliRunner()


class FakeKibana:
    """Records every request; answers like Kibana 9 (or with a scripted import result)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.import_result: dict[str, Any] | None = None
        self.status_codes: list[int] = []  # /api/status answers, then 200
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def _handle(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                fake.requests.append({"method": self.command, "path": self.path,
                                      "headers": {k.lower(): v for k, v in self.headers.items()},
                                      "body": body})
                path = urlsplit(self.path).path
                if path.endswith("/api/status"):
                    code = fake.status_codes.pop(0) if fake.status_codes else 200
                    self._reply(code, {"status": {"overall": {"level": "available"}}})
                elif self.headers.get("kbn-xsrf") is None and self.command == "POST":
                    self._reply(400, {"statusCode": 400, "error": "Bad Request",
                                      "message": 'Request must contain a kbn-xsrf header.'})
                elif path.endswith("/api/saved_objects/_import"):
                    n_objs = sum(1 for line in fake.file_of(body).splitlines() if line.strip())
                    self._reply(200, fake.import_result or {
                        "success": True, "successCount": n_objs, "errors": [],
                        "successResults": []})
                elif path.endswith("/api/kibana/settings"):
                    self._reply(200, {"settings": {}})
                else:
                    self._reply(404, {"statusCode": 404})

            do_GET = do_POST = _handle

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def parts(self, req: dict[str, Any]) -> list[Any]:
        ctype = req["headers"]["content-type"]
        msg = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {ctype}\r\n\r\n".encode() + req["body"])
        return list(msg.iter_parts())

    def file_of(self, body: bytes) -> bytes:
        # the boundary is the first line of a multipart body
        boundary = body.split(b"\r\n", 1)[0]
        chunk = body.split(boundary)[1]
        return chunk.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n", 1)[0]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def kb() -> Iterator[FakeKibana]:
    k = FakeKibana()
    yield k
    k.close()


def test_import_sends_one_multipart_file_with_xsrf_auth_and_overwrite(
        kb: FakeKibana, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIBANA_PW", "s3cret")
    monkeypatch.delenv("MW_ES_INDEX_PREFIX", raising=False)
    get_settings.cache_clear()
    args = ["import", "--kibana", kb.url, "--user", "elastic", "--password-env", "KIBANA_PW"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    imp, settings = kb.requests
    assert imp["method"] == "POST"
    url = urlsplit(imp["path"])
    assert url.path == "/api/saved_objects/_import"
    assert parse_qs(url.query) == {"overwrite": ["true"]}
    h = imp["headers"]
    assert h["kbn-xsrf"]
    assert h["authorization"] == "Basic " + base64.b64encode(b"elastic:s3cret").decode()
    assert h["content-type"].startswith("multipart/form-data; boundary=")
    (part,) = kb.parts(imp)
    assert part.get_param("name", header="content-disposition") == "file"
    assert part.get_filename().endswith(".ndjson")
    sent = [json.loads(line) for line in part.get_payload(decode=True).splitlines()]
    expected = kibana.load_objects()
    assert sent == json.loads(json.dumps(expected))  # every object, data views included
    assert sent[0]["type"] == "index-pattern"
    assert urlsplit(settings["path"]).path == "/api/kibana/settings"
    assert json.loads(settings["body"]) == {"changes": {"dateFormat:tz": "Asia/Shanghai"}}
    assert settings["headers"]["kbn-xsrf"]
    assert "s3cret" not in res.output
    # idempotent: a second import sends the same bytes (fixed ids, overwrite=true)
    assert runner.invoke(app, args).exit_code == 0
    (again,) = kb.parts(kb.requests[2])
    assert again.get_payload(decode=True) == part.get_payload(decode=True)


def test_import_into_a_space_with_another_prefix(kb: FakeKibana) -> None:
    res = runner.invoke(app, ["import", "--kibana", kb.url + "/", "--space", "ops",
                              "--index-prefix", "gov", "--no-settings"])
    assert res.exit_code == 0, res.output
    (imp,) = kb.requests
    assert urlsplit(imp["path"]).path == "/s/ops/api/saved_objects/_import"
    assert "authorization" not in imp["headers"]
    (part,) = kb.parts(imp)
    titles = {o["attributes"]["title"] for o in map(json.loads, part.get_payload(
        decode=True).splitlines()) if o["type"] == "index-pattern"}
    assert "gov-events" in titles


def test_import_failures_exit_1_with_the_reason(kb: FakeKibana) -> None:
    kb.import_result = {"success": False, "successCount": 31, "errors": [
        {"id": "mw-lens-laggards", "type": "lens",
         "error": {"type": "missing_references", "references": [
             {"type": "index-pattern", "id": "mw-dv-linkage-items"}]}}]}
    res = runner.invoke(app, ["import", "--kibana", kb.url])
    assert res.exit_code == 1
    assert "mw-lens-laggards" in res.output and "missing_references" in res.output


def test_import_waits_for_kibana_and_needs_the_password_env(
        kb: FakeKibana, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE", raising=False)
    res = runner.invoke(app, ["import", "--kibana", kb.url, "--user", "elastic",
                              "--password-env", "NOPE"])
    assert res.exit_code == 2 and "NOPE" in res.output and kb.requests == []
    kb.status_codes = [503, 503]
    monkeypatch.setattr("matrixwatch.dashboards.kibana.time.sleep", lambda s: None)
    res = runner.invoke(app, ["import", "--kibana", kb.url, "--wait", "60"])
    assert res.exit_code == 0, res.output
    assert [urlsplit(r["path"]).path for r in kb.requests][:3] == ["/api/status"] * 3


def test_import_to_nothing_fails_cleanly() -> None:
    from matrixwatch.broker import free_port

    res = runner.invoke(app, ["import", "--kibana", f"http://127.0.0.1:{free_port()}"])
    assert res.exit_code == 1 and "error" in res.output


def test_setup_es_installs_templates_idempotently(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeES()
    try:
        monkeypatch.setenv("MW_ES_URL", fake.url)
        monkeypatch.setenv("MW_ES_INDEX_PREFIX", "mwsetup")
        get_settings.cache_clear()
        for _ in range(2):
            res = runner.invoke(app, ["setup-es"])
            assert res.exit_code == 0, res.output
        names = {k.split("/", 1)[1] for k in fake.templates}
        assert {"mwsetup-settings", "mwsetup-posts", "mwsetup-linkage-items"} <= names
        assert set(fake.indices) == {f"mwsetup-{n}" for n in (
            "posts", "comments", "alerts", "linkage", "linkage-items", "measures",
            "dead-letters", "index-scores", "compliance")}
        assert fake.indices["mwsetup-comments"]["aliases"] == {"mwsetup-events"}
    finally:
        get_settings.cache_clear()
        fake.close()


def test_setup_es_without_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MW_ES_URL", raising=False)
    get_settings.cache_clear()
    try:
        res = runner.invoke(app, ["setup-es"])
        assert res.exit_code == 2 and "MW_ES_URL" in res.output
    finally:
        get_settings.cache_clear()


def test_check_command() -> None:
    res = runner.invoke(app, ["check"])
    assert res.exit_code == 0 and "47 objects, 0 problems" in res.output
