#!/usr/bin/env python3
"""Static checks of neonblue's operations surface (no Prometheus, no promtool):

* src/metric_names.rs is the catalogue: every `neonblue_*` metric the Rust
  code emits (`metrics::counter!/gauge!/histogram!`, by literal or by a
  `names::` constant) is in it, each constant is listed in `ALL`;
* the README lists every metric of the catalogue, and names no other;
* deploy/prometheus/alerts.yml: the structure Prometheus requires (groups,
  rules with alert/expr/for/labels/annotations), durations, balanced PromQL
  brackets and quotes, metric names from the catalogue, counters only inside
  rate()/increase()/irate(), histograms only through their _bucket/_sum/_count
  series, `by (...)` labels that the metrics have; the file is loaded by
  deploy/prometheus/prometheus.yml (rule_files) and mounted by docker-compose.yml;
* the Grafana dashboards use only metrics of the catalogue.

    scripts/check_ops.py          # exit 0 when everything holds
"""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "src" / "metric_names.rs"
README = ROOT / "README.md"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
COMPOSE = ROOT / "docker-compose.yml"
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
# Labels every series has or histograms add.
BUILTIN_LABELS = {"instance", "job", "le"}
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
SEVERITIES = {"critical", "warning", "info"}

failures: list[str] = []
passes = 0


def ok(msg: str) -> None:
    global passes
    passes += 1
    print(f"  PASS  {msg}")


def fail(msg: str) -> None:
    failures.append(msg)
    print(f"  FAIL  {msg}")


def catalogue() -> dict[str, dict]:
    """name -> {kind, labels} from src/metric_names.rs."""
    text = CATALOGUE.read_text()
    consts = dict(re.findall(r'pub const (\w+): &str = "(neonblue_\w+)";', text))
    entries = re.findall(r"m\(\s*(\w+),\s*(Counter|Gauge|Histogram),\s*\"([^\"]*)\"", text)
    listed = {c for c, _, _ in entries}
    for c in consts:
        if c not in listed:
            fail(f"src/metric_names.rs: {c} is not in ALL (no HELP text would be registered)")
    out = {}
    for c, kind, labels in entries:
        if c not in consts:
            fail(f"src/metric_names.rs: ALL lists {c}, which is not a constant")
            continue
        out[consts[c]] = {"const": c, "kind": kind, "labels": {l for l in labels.split(",") if l}}
    ok(f"src/metric_names.rs: {len(out)} metrics")
    return out


def base_name(series: str, cat: dict) -> str | None:
    if series in cat:
        return series
    m = re.match(r"(.*)_(bucket|sum|count)$", series)
    if m and m.group(1) in cat and cat[m.group(1)]["kind"] == "Histogram":
        return m.group(1)
    return None


def check_sources(cat: dict) -> None:
    print("== metrics the Rust code emits are in the catalogue")
    consts = {v["const"]: k for k, v in cat.items()}
    emitted: set[str] = set()
    for d in ("src", "topology", "state"):
        for p in sorted((ROOT / d).rglob("*.rs")):
            if p == CATALOGUE:
                continue
            text = p.read_text(errors="replace")
            for m in re.finditer(r"metrics::(counter|gauge|histogram)!\(\s*([^,)\s]+)", text):
                kind, arg = m.group(1), m.group(2)
                rel = p.relative_to(ROOT)
                if arg.startswith('"'):
                    name = arg.strip('"')
                elif arg.split("::")[-1] in consts:
                    name = consts[arg.split("::")[-1]]
                elif arg in ("m.name", "name"):
                    continue  # the catalogue's own loops (ops/metrics.rs)
                else:
                    fail(f"{rel}: metrics::{kind}!({arg}): not a literal nor a catalogue constant")
                    continue
                emitted.add(name)
                if name not in cat:
                    fail(f"{rel}: {name} is emitted but not in src/metric_names.rs (no HELP, not documented)")
                elif cat[name]["kind"].lower() != kind:
                    fail(f"{rel}: {name} is emitted as a {kind} but catalogued as a {cat[name]['kind']}")
    ok(f"{len(emitted)} metric names emitted by the code")
    for name in sorted(set(cat) - emitted):
        print(f"  info  {name} is catalogued but emitted nowhere yet")


def check_readme(cat: dict) -> None:
    print("== the README lists every metric")
    text = README.read_text()
    mentioned = {m for m in re.findall(r"`(neonblue_[a-z0-9_]+)", text)}
    for name in sorted(cat):
        if name in mentioned:
            ok(f"README lists {name}")
        else:
            fail(f"README does not list {name}")
    for name in sorted(mentioned):
        if base_name(name, cat) is None:
            fail(f"README names {name}, which is not a metric of src/metric_names.rs")


def strip_strings(expr: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


def check_promql(where: str, expr: str, cat: dict) -> None:
    bare = strip_strings(expr)
    if bare.count('"') % 2:
        fail(f"{where}: unbalanced quotes in {expr!r}")
    pairs = {")": "(", "]": "[", "}": "{"}
    stack = []
    for ch in bare:
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs:
            if not stack or stack.pop() != pairs[ch]:
                fail(f"{where}: unbalanced {ch!r} in {expr!r}")
                return
    if stack:
        fail(f"{where}: unclosed {stack[-1]!r} in {expr!r}")
        return
    for rng in re.findall(r"\[([^\]]+)\]", bare):
        if not DURATION.match(rng.replace("$__rate_interval", "1m").replace("$__range", "1h").replace("$__interval", "1m")):
            fail(f"{where}: bad range [{rng}]")
    names = set(re.findall(r"\bneonblue_[a-z0-9_]+", bare))
    labels_here = set(BUILTIN_LABELS)
    for series in names:
        base = base_name(series, cat)
        if base is None:
            fail(f"{where}: {series} is not a metric of src/metric_names.rs")
            continue
        labels_here |= cat[base]["labels"]
        kind = cat[base]["kind"]
        if kind == "Histogram" and series == base:
            fail(f"{where}: histogram {base} is used without _bucket/_sum/_count")
        if kind == "Counter" or series.endswith(("_bucket", "_sum", "_count")):
            for m in re.finditer(rf"\b{re.escape(series)}\b", bare):
                before = bare[: m.start()].rstrip()
                if not re.search(r"\b(rate|irate|increase)\($", before):
                    fail(f"{where}: counter series {series} outside rate()/increase()")
        if kind == "Gauge" and re.search(rf"\b(rate|irate|increase)\(\s*{re.escape(series)}\b", bare):
            fail(f"{where}: gauge {series} inside rate()/increase() (use deriv() or delta())")
    for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", bare):
        for label in filter(None, (l.strip() for l in group.split(","))):
            if label not in labels_here:
                fail(f"{where}: label {label!r} is not a label of {sorted(names) or 'its metrics'}")


def check_alerts(cat: dict, yaml) -> None:
    print("== deploy/prometheus/alerts.yml")
    if not ALERTS.is_file():
        fail("deploy/prometheus/alerts.yml does not exist")
        return
    doc = yaml.safe_load(ALERTS.read_text())
    groups = (doc or {}).get("groups")
    if not isinstance(groups, list) or not groups:
        fail("alerts.yml: no `groups` list")
        return
    seen_alerts: set[str] = set()
    used: set[str] = set()
    for g in groups:
        if not isinstance(g, dict) or not isinstance(g.get("name"), str):
            fail(f"alerts.yml: a group without a name: {g!r}")
            continue
        unknown = set(g) - {"name", "interval", "rules", "limit", "query_offset", "labels"}
        if unknown:
            fail(f"group {g['name']}: unknown fields {sorted(unknown)}")
        for r in g.get("rules") or []:
            name = r.get("alert") or r.get("record")
            where = f"rule {name}"
            if not name or ("alert" in r) == ("record" in r):
                fail(f"group {g['name']}: a rule needs exactly one of alert/record: {r!r}")
                continue
            unknown = set(r) - {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
            if unknown:
                fail(f"{where}: unknown fields {sorted(unknown)}")
            if "alert" in r:
                if name in seen_alerts:
                    fail(f"{where}: defined twice")
                seen_alerts.add(name)
                if not re.match(r"^[A-Z][A-Za-z0-9]+$", name):
                    fail(f"{where}: alert names are CamelCase")
                sev = (r.get("labels") or {}).get("severity")
                if sev not in SEVERITIES:
                    fail(f"{where}: labels.severity {sev!r} not one of {sorted(SEVERITIES)}")
                ann = r.get("annotations") or {}
                if not ann.get("summary") or not ann.get("description"):
                    fail(f"{where}: needs annotations summary and description")
                for k, v in list((r.get("labels") or {}).items()) + list(ann.items()):
                    if not isinstance(v, str):
                        fail(f"{where}: {k} must be a string")
                    elif v.count("{{") != v.count("}}"):
                        fail(f"{where}: unbalanced template braces in {k}")
            for key in ("for", "keep_firing_for"):
                if key in r and not DURATION.match(str(r[key])):
                    fail(f"{where}: {key} {r[key]!r} is not a Prometheus duration")
            expr = r.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                fail(f"{where}: no expr")
                continue
            before = len(failures)
            check_promql(where, expr, cat)
            used |= {base_name(s, cat) for s in re.findall(r"\bneonblue_[a-z0-9_]+", expr)} - {None}
            if len(failures) == before:
                ok(f"{where}: {expr}")
    for need, why in (
        ("neonblue_consumer_lag", "lag growing"),
        ("neonblue_dead_letters_total", "DLQ rate"),
        ("neonblue_commit_failures_total", "commit failures"),
        ("neonblue_commit_seconds", "commit latency"),
        ("neonblue_restoring_tasks", "a restore that does not finish"),
    ):
        if need in used:
            ok(f"an alert covers {why} ({need})")
        else:
            fail(f"no alert covers {why} ({need})")
    # Loaded by Prometheus and mounted.
    prom = yaml.safe_load(PROMETHEUS.read_text()) or {}
    files = prom.get("rule_files") or []
    compose = yaml.safe_load(COMPOSE.read_text()) or {}
    svc = next(
        (s for s in (compose.get("services") or {}).values() if str(s.get("image", "")).startswith("prom/prometheus")),
        None,
    )
    mounts = {}
    for v in (svc or {}).get("volumes") or []:
        if isinstance(v, str) and ":" in v:
            src, dst = v.split(":")[:2]
            mounts[dst] = (ROOT / src).resolve()
    if not files:
        fail("deploy/prometheus/prometheus.yml has no rule_files")
    for f in files:
        if mounts.get(f) == ALERTS.resolve():
            ok(f"prometheus.yml rule_files {f} is deploy/prometheus/alerts.yml, mounted by docker-compose.yml")
        else:
            fail(f"prometheus.yml rule_files {f} is not deploy/prometheus/alerts.yml mounted into the prometheus service")


def check_dashboards(cat: dict) -> None:
    print("== Grafana dashboards use catalogued metrics")
    for p in sorted(DASHBOARDS.glob("*.json")):
        dash = json.loads(p.read_text())
        stack = list(dash.get("panels") or [])
        while stack:
            panel = stack.pop()
            stack += panel.get("panels") or []
            for t in panel.get("targets") or []:
                expr = t.get("expr")
                if expr and "neonblue_" in expr:
                    before = len(failures)
                    check_promql(f"{p.name}: {panel.get('title')}", expr, cat)
                    if len(failures) == before:
                        ok(f"{p.name}: {panel.get('title')}: {expr}")
        titles = " ".join(str(x.get("title", "")) for x in dash.get("panels") or [])
        for need in ("ClickHouse", "Commit", "Restore"):
            if need.lower() in titles.lower():
                ok(f"{p.name} has {need} panels")
            else:
                fail(f"{p.name} has no {need} panel")


def main() -> int:
    try:
        import yaml  # noqa: PLC0415
    except ImportError:
        print("check_ops: PyYAML is needed (pip install pyyaml)", file=sys.stderr)
        return 2
    print("== src/metric_names.rs")
    cat = catalogue()
    check_sources(cat)
    check_readme(cat)
    check_alerts(cat, yaml)
    check_dashboards(cat)
    if failures:
        print(f"\ncheck_ops: {len(failures)} failure(s), {passes} passed")
        return 1
    print(f"\ncheck_ops: OK, {passes} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
