"""The docker deployment, checked without a Docker engine.

* docker/docker-compose.yml validates against the Compose Specification's JSON schema
  (vendored: tests/data/compose-spec.json, from the check-jsonschema 0.39.0 wheel,
  sha256 d549057e…; Apache-2.0, tests/data/compose-spec.LICENSE), before and after
  variable interpolation with docker/.env.example.
* The services, ports, volumes, health checks and start order are the ones the stack
  needs, and every command a container runs exists in our CLI with those options.
* Prometheus: the scrape target is the workers' web port, and every metric a rule uses
  is one the code registers; promtool checks and unit-tests the rules when installed.
* `docker-compose config` (Debian's docker-compose) runs when the binary is present.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DATA = ROOT / "tests" / "data"
COMPOSE = DOCKER / "docker-compose.yml"
SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"
VAR = re.compile(r"\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")


def env_example() -> dict[str, str]:
    out = {}
    for line in (DOCKER / ".env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation: ${V}, ${V:-default}, ${V:?error}; $$ is a literal $."""
    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        value = env.get(name, "")
        if op and op.endswith("-") and not value:
            return arg or ""
        if op and op.endswith("?") and not value:
            raise AssertionError(f"{name} required: {arg}")
        return value

    text = text.replace("$$", "\x00")
    return VAR.sub(sub, text).replace("\x00", "$")


def raw() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text(encoding="utf-8")))


def resolved() -> dict[str, Any]:
    return dict(yaml.safe_load(interpolate(COMPOSE.read_text(encoding="utf-8"),
                                           env_example())))


def schema_validator() -> Any:
    schema = json.loads((DATA / "compose-spec.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


# --- the schema ---------------------------------------------------------------------------
def test_vendored_schema_is_the_recorded_file() -> None:
    digest = hashlib.sha256((DATA / "compose-spec.json").read_bytes()).hexdigest()
    assert digest == SCHEMA_SHA256
    assert (DATA / "compose-spec.LICENSE").read_text().lstrip().startswith("Apache License")


@pytest.mark.parametrize("which", ["as written", "interpolated"])
def test_compose_file_validates_against_the_compose_spec(which: str) -> None:
    doc = raw() if which == "as written" else resolved()
    errors = [f"{list(e.path)}: {e.message}" for e in schema_validator().iter_errors(doc)]
    assert errors == []


def test_the_schema_does_reject_mistakes() -> None:
    """A validation that accepts anything proves nothing."""
    v = schema_validator()
    bad = resolved()
    bad["services"]["worker"]["healthcheck"]["intervall"] = "5s"
    bad["services"]["kafka"]["ports"] = [{"target": "not-a-port"}]
    bad["volumez"] = {}
    assert len(list(v.iter_errors(bad))) >= 3


# --- what the stack defines ---------------------------------------------------------------
LONG_RUNNING = {"kafka", "elasticsearch", "kibana", "prometheus", "worker", "push"}
ONE_SHOT = {"es-passwords", "setup"}


def test_services_ports_volumes_and_health_checks() -> None:
    doc = resolved()
    s = doc["services"]
    assert set(s) == LONG_RUNNING | ONE_SHOT | {"simulator", "scheduler"}
    assert s["kafka"]["image"].startswith("apache/kafka:")
    es_image = "docker.elastic.co/elasticsearch/elasticsearch:9."
    assert s["elasticsearch"]["image"].startswith(es_image)
    assert s["kibana"]["image"].startswith("docker.elastic.co/kibana/kibana:9.")
    assert s["elasticsearch"]["image"].split(":")[1] == s["kibana"]["image"].split(":")[1]
    for name, svc in s.items():
        assert not svc.get("image", "").endswith(":latest"), name
    ports = {n: sorted(p.split(":", 1)[1] for p in svc.get("ports", []))
             for n, svc in s.items() if svc.get("ports")}
    assert ports == {"kafka": ["29092:29092"], "elasticsearch": ["9200:9200"],
                     "kibana": ["5601:5601"], "prometheus": ["9090:9090"],
                     "push": ["8088:8088"]}
    for svc in s.values():  # published on loopback only: nothing open to the network
        assert all(p.startswith("127.0.0.1:") for p in svc.get("ports", []))
    for name in LONG_RUNNING:
        hc = s[name]["healthcheck"]
        assert hc["test"] and hc["interval"] and hc["retries"] >= 3, name
    mounts = {n: {v.split(":")[0]: v.split(":")[1] for v in svc.get("volumes", [])}
              for n, svc in s.items()}
    assert mounts["kafka"] == {"kafka-data": "/var/lib/kafka/data"}
    assert s["kafka"]["environment"]["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"
    assert mounts["elasticsearch"] == {"es-data": "/usr/share/elasticsearch/data"}
    assert mounts["kibana"] == {"kibana-data": "/usr/share/kibana/data"}
    assert mounts["prometheus"]["prometheus-data"] == "/prometheus"
    assert mounts["worker"] == {"registry": "/data"}
    assert set(doc["volumes"]) == {"kafka-data", "es-data", "kibana-data", "prometheus-data",
                                   "registry", "collector-state"}
    for n, m in mounts.items():  # bind mounts point at files in the repository
        for src in m:
            if src.startswith("."):
                assert (DOCKER / src).exists(), (n, src)


def test_start_order_and_one_shot_jobs() -> None:
    s = resolved()["services"]

    def deps(name: str) -> dict[str, str]:
        return {k: v["condition"] for k, v in s[name].get("depends_on", {}).items()}

    assert deps("kibana") == {"es-passwords": "service_completed_successfully"}
    assert deps("es-passwords") == {"elasticsearch": "service_healthy"}
    assert deps("setup") == {"kafka": "service_healthy", "elasticsearch": "service_healthy",
                             "kibana": "service_healthy"}
    for name in ("worker", "simulator", "push", "scheduler"):
        assert deps(name) == {"setup": "service_completed_successfully"}, name
    for name in ONE_SHOT:
        assert s[name]["restart"] == "no"
    assert s["worker"]["deploy"]["replicas"] == 2
    assert s["scheduler"]["profiles"] == ["live"]  # real collection is opt-in


def test_secrets_come_from_the_env_file_only() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    for key in ("ELASTIC_PASSWORD", "KIBANA_PASSWORD", "KIBANA_ENCRYPTION_KEY",
                "MW_PUSH_TOKEN"):
        assert f"${{{key}:?" in text, key  # required, no default
    env = env_example()
    for name in VAR.findall(text):
        var, op, _ = name
        assert var in env or op == ":-", f"{var} has no default and is not in .env.example"
    assert all("CHANGE-ME" in env[k] for k in ("ELASTIC_PASSWORD", "KIBANA_PASSWORD",
                                               "KIBANA_ENCRYPTION_KEY", "MW_PUSH_TOKEN"))
    assert (DOCKER / ".gitignore").read_text().split() == ["#", "real", "passwords", "live",
                                                          "here,", "never", "in", "git",
                                                          ".env"]
    es = resolved()["services"]["elasticsearch"]["environment"]
    assert es["xpack.security.enabled"] == "true"
    assert es["ELASTIC_PASSWORD"] == env["ELASTIC_PASSWORD"]


def _commands(svc: dict[str, Any]) -> list[list[str]]:
    """The matrixwatch command lines a service runs (its shell script split on ';')."""
    entry, cmd = svc.get("entrypoint"), svc.get("command")
    if entry == ["sh", "-c"]:
        lex = shlex.shlex(cmd[0], posix=True, punctuation_chars=";&|")
        lex.whitespace_split = True
        out, words = [], []
        for tok in [*lex, ";"]:
            if tok in (";", "&&", "||"):
                if words and words[0] == "matrixwatch":
                    out.append(words[1:])
                words = []
            else:
                words.append(tok)
        return out
    if entry is None and cmd:
        return [list(cmd)]
    return []


def test_every_command_in_the_compose_file_exists_with_those_options() -> None:
    from matrixwatch.cli import app

    s = resolved()["services"]
    seen = []
    for name, svc in s.items():
        if svc.get("image", "").startswith("matrixwatch:"):
            for args in _commands(svc):
                res = CliRunner().invoke(app, [*args, "--help"])
                assert res.exit_code == 0, (name, args, res.output)
                seen.append(args[:2] if args[0] in ("collect", "dashboards") else args[:1])
    assert sorted(map(tuple, seen)) == sorted([
        ("simulate",), ("dashboards", "setup-es"), ("dashboards", "import"), ("worker",),
        ("collect", "push"), ("collect", "run")])
    setup = s["setup"]["command"][0]
    assert "--password-env MW_KIBANA_PASSWORD" in setup and "prepare_topics" in setup
    assert s["simulator"]["entrypoint"] == ["python", "/opt/matrixwatch/live_feed.py"]


def test_workers_serve_metrics_where_prometheus_scrapes() -> None:
    s = resolved()["services"]
    env = s["worker"]["environment"]
    assert env["MW_WEB_BIND"] == "0.0.0.0"  # reachable from the prometheus container
    prom = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "matrixwatch-worker"]
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["worker"] and str(sd["port"]) == str(env["MW_WEB_PORT"])
    assert job["metrics_path"] == "/metrics"
    assert "6066" in s["worker"]["healthcheck"]["test"][-1]
    assert prom["rule_files"] == ["/etc/prometheus/rules/*.yml"]


def test_dockerfile_builds_the_package_and_runs_unprivileged() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert [ln.split()[0] for ln in lines if ln.split()[0] == "FROM"] == ["FROM", "FROM"]
    assert "pip wheel --wheel-dir /wheels ." in text
    assert "COPY docker/live_feed.py /opt/matrixwatch/live_feed.py" in text
    assert re.search(r"^USER matrixwatch$", text, re.M)
    assert 'ENTRYPOINT ["matrixwatch"]' in text
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    assert "docker/.env" in ignore and ".git" in ignore


# --- Prometheus rules ----------------------------------------------------------------------
RULES = DOCKER / "prometheus" / "rules" / "matrixwatch.yml"


def registered_metric_names() -> set[str]:
    from prometheus_client import REGISTRY

    for mod in ("matrixwatch.metrics", "matrixwatch.streams.sinks.elasticsearch",
                "matrixwatch.collectors.metrics"):
        importlib.import_module(mod)
    return set(REGISTRY._names_to_collectors)


def test_alert_rules_cover_the_four_areas_and_use_real_metrics() -> None:
    doc = yaml.safe_load(RULES.read_text())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    names = {r["alert"] for r in rules}
    assert {"MatrixwatchConsumerLagHigh", "MatrixwatchDeadLettersHigh", "MatrixwatchSinkErrors",
            "MatrixwatchCollectorFailures", "MatrixwatchNotificationsOverflowed"} <= names
    known = registered_metric_names()
    for r in rules:
        assert r["labels"]["severity"] in ("warning", "critical")
        for metric in re.findall(r"\b(matrixwatch_[a-z_]+)\b", r["expr"]):
            assert metric in known, f"{r['alert']}: {metric} is not a registered metric"


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
def test_promtool_checks_config_and_unit_tests_the_rules() -> None:
    assert PROMTOOL is not None
    for args in (["check", "rules", str(RULES)],
                 ["check", "config", "--syntax-only",
                  str(DOCKER / "prometheus" / "prometheus.yml")],
                 ["test", "rules", str(DATA / "prometheus-rules-test.yml")]):
        res = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stdout + res.stderr


COMPOSE_BIN = shutil.which("docker-compose")


@pytest.mark.skipif(COMPOSE_BIN is None, reason="docker-compose not installed")
def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    """Debian's docker-compose (no engine needed) parses and interpolates the file."""
    assert COMPOSE_BIN is not None
    env = tmp_path / "compose.env"
    env.write_text((DOCKER / ".env.example").read_text())
    res = subprocess.run([COMPOSE_BIN, "--env-file", str(env), "-f", str(COMPOSE), "config"],
                         capture_output=True, text=True, timeout=60, cwd=DOCKER)
    assert res.returncode == 0, res.stderr
    services = yaml.safe_load(res.stdout)["services"]
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["scheduler"]["profiles"] == ["live"]
