#!/usr/bin/env python3
"""Cross-check neonblue's ClickHouse DDL and analytics SQL against its Parquet.

Given the Parquet output root of a neonblue run, this script

  1. applies every schemas/clickhouse/0*.sql in chDB (ClickHouse in-process),
     twice (the DDL must be idempotent), and loads the Parquet datasets into
     those tables (the Parquet-path partition keys must equal the columns the
     tables derive: event_date, date, hour);
  2. runs schemas/analytics/clickhouse/*.sql on the tables and
     schemas/analytics/duckdb/*.sql (`{root}` substituted) on the Parquet;
  3. asserts both give identical results (rows sorted, floats compared with a
     relative tolerance);
  4. shows that a re-delivered batch cannot double count: with merges stopped
     it inserts every dataset a second time, checks that count() doubled while
     count() FINAL did not and that the analytics (which use FINAL) are
     unchanged; checks that a retried insert carrying the same
     insert_deduplication_token is dropped; then OPTIMIZE ... FINAL collapses
     the duplicates for good.

Exits 1 with a message naming the query and the first differing row on any
mismatch.  Needs the PyPI packages chdb, duckdb and pyarrow.

    python3 scripts/analytics_check.py /tmp/nb-demo/out
"""
from __future__ import annotations

import argparse
import datetime as dt
import glob
import math
import os
import shutil
import sys
import tempfile

import chdb
import duckdb
from chdb import session as chs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Parquet dataset directory -> (ClickHouse table, glob under the root,
# SQL condition that is true when a row's path partition disagrees with the
# value ClickHouse derives for it).
DATASETS = {
    "events": ("events_processed", "events/*/*.parquet",
               "toString(toDate(timestamp)) != extract(_path, '/event_date=([0-9-]+)/[^/]*$')"),
    "agg_hourly": ("agg_hourly", "agg_hourly/*/*/*.parquet",
                   "toString(toDate(window_start)) != extract(_path, '/date=([0-9-]+)/hour=')"
                   " OR toHour(window_start) != toUInt8OrZero(extract(_path, '/hour=([0-9]+)/[^/]*$'))"),
    "agg_daily": ("agg_daily", "agg_daily/*/*.parquet",
                  "toString(toDate(window_start)) != extract(_path, '/date=([0-9-]+)/[^/]*$')"),
    "user_daily": ("user_journeys", "user_daily/*/*.parquet",
                   "toString(toDate(first_ts)) != extract(_path, '/date=([0-9-]+)/[^/]*$')"),
}


class CheckFailed(Exception):
    pass


def sql_str(s: str) -> str:
    """A single-quoted SQL string literal (both engines use '' and \\)."""
    return "'" + s.replace("\\", "\\\\").replace("'", "''") + "'"


# ---------------------------------------------------------------- ClickHouse
class ClickHouse:
    def __init__(self, path: str):
        self.s = chs.Session(path)

    def q(self, sql: str, fmt: str = "CSV"):
        return self.s.query(sql, fmt)

    def scalar(self, sql: str) -> int:
        return int(str(self.q(sql, "TSV")).strip())

    def table(self, sql: str):
        return self.q(sql, "ArrowTable")

    def close(self):
        self.s.close()


def apply_ddl(ch: ClickHouse, ddl_dir: str) -> list[str]:
    files = sorted(glob.glob(os.path.join(ddl_dir, "0*.sql")))
    if not files:
        raise CheckFailed(f"no DDL files in {ddl_dir}")
    for _round in range(2):  # the second round proves IF NOT EXISTS everywhere
        for f in files:
            with open(f, encoding="utf-8") as fh:
                ch.q(fh.read())
            if os.path.basename(f).startswith("001_"):
                ch.q("USE neonblue")  # tables are unqualified: pick the database
    return files


def insert_sql(ch: ClickHouse, table: str, src: str, settings: str = "") -> str:
    """INSERT ... SELECT from a Parquet file()/glob. Columns with a DEFAULT
    (event_date, date, hour) are left to the table; non-nullable String
    columns get '' for a Parquet null (SPEC 6.1: String, not Nullable)."""
    cols = str(ch.q(
        "SELECT name, type FROM system.columns WHERE database = currentDatabase()"
        f" AND table = {sql_str(table)} AND default_kind = '' ORDER BY position", "TSV"))
    names, exprs = [], []
    for line in cols.strip().splitlines():
        name, typ = line.split("\t")
        names.append(f"`{name}`")
        plain_string = typ in ("String", "LowCardinality(String)")
        exprs.append(f"ifNull(`{name}`, '')" if plain_string else f"`{name}`")
    tail = f" SETTINGS {settings}" if settings else ""
    return (f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(exprs)}"
            f" FROM file({sql_str(src)}, Parquet){tail}")


def load(ch: ClickHouse, root: str, settings: str = "") -> dict[str, int]:
    counts = {}
    for ds, (table, pattern, bad_path) in DATASETS.items():
        src = os.path.join(root, pattern)
        if not glob.glob(src):
            raise CheckFailed(f"dataset {ds!r} has no files under {root} ({pattern})")
        if not settings:  # first load: check path partitions once
            bad = ch.scalar(f"SELECT count() FROM file({sql_str(src)}, Parquet) WHERE {bad_path}")
            if bad:
                raise CheckFailed(f"{ds}: {bad} rows whose path partition disagrees with their timestamp")
        ch.q(insert_sql(ch, table, src, settings))
        counts[table] = ch.scalar(f"SELECT count() FROM {table}")
    return counts


# -------------------------------------------------------------- comparison
def norm(v):
    """A type-tagged, sortable form of one value; floats stay floats."""
    if v is None:
        return ("n",)
    if isinstance(v, bool):
        return ("b", v)
    if isinstance(v, int):
        return ("i", v)
    if isinstance(v, float):
        return ("f", v)
    if isinstance(v, str):
        return ("s", v)
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            raise CheckFailed(f"naive timestamp {v!r}: every timestamp must be UTC-aware")
        return ("t", v.astimezone(dt.timezone.utc).isoformat())
    if isinstance(v, dt.date):
        return ("d", v.isoformat())
    if isinstance(v, (list, tuple)):
        return ("l", tuple(norm(x) for x in v))
    raise CheckFailed(f"unexpected value type {type(v).__name__}: {v!r}")


def sort_key(row):
    def k(x):  # floats rounded so tiny sum-order differences do not reorder rows
        if x[0] == "f":
            return ("f", float(f"{x[1]:.9g}"))
        if x[0] == "l":
            return ("l", tuple(k(y) for y in x[1]))
        return x
    return tuple(k(x) for x in row)


def undefined(x) -> bool:
    """NULL or NaN: an undefined statistic (e.g. the sample variance of one
    user: DuckDB's var_samp gives NULL, ClickHouse's varSamp NaN)."""
    return x[0] == "n" or (x[0] == "f" and math.isnan(x[1]))


def same(a, b, rel=1e-9, abs_=1e-9) -> bool:
    if undefined(a) and undefined(b):
        return True
    if a[0] != b[0]:
        return False
    if a[0] == "f":
        return math.isclose(a[1], b[1], rel_tol=rel, abs_tol=abs_) or (math.isnan(a[1]) and math.isnan(b[1]))
    if a[0] == "l":
        return len(a[1]) == len(b[1]) and all(same(x, y) for x, y in zip(a[1], b[1]))
    return a == b


def rows_of(tbl):
    names = tbl.column_names
    return names, sorted((tuple(norm(r[n]) for n in names) for r in tbl.to_pylist()), key=sort_key)


def compare(name: str, left_label: str, left, right_label: str, right) -> int:
    ln, lrows = rows_of(left)
    rn, rrows = rows_of(right)
    if ln != rn:
        raise CheckFailed(f"{name}: columns differ\n  {left_label}: {ln}\n  {right_label}: {rn}")
    if len(lrows) != len(rrows):
        raise CheckFailed(f"{name}: {left_label} has {len(lrows)} rows, {right_label} {len(rrows)}")
    for i, (a, b) in enumerate(zip(lrows, rrows)):
        if len(a) != len(b) or not all(same(x, y) for x, y in zip(a, b)):
            diff = [c for c, x, y in zip(ln, a, b) if not same(x, y)]
            raise CheckFailed(f"{name}: row {i} differs in {diff}\n  {left_label}: {a}\n  {right_label}: {b}")
    return len(lrows)


def duck_table(con, sql: str):
    rel = con.sql(sql)
    for name in ("to_arrow_table", "fetch_arrow_table"):  # newer, older DuckDB
        if hasattr(rel, name):
            return getattr(rel, name)()
    return rel.arrow().read_all()


def read(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


# -------------------------------------------------------------------- main
def run(root: str, schemas: str) -> None:
    root = os.path.abspath(root)
    ch_dir = os.path.join(schemas, "analytics", "clickhouse")
    dk_dir = os.path.join(schemas, "analytics", "duckdb")
    queries = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ch_dir, "*.sql")))
    missing = [q for q in queries if not os.path.exists(os.path.join(dk_dir, q))]
    extra = sorted(set(os.path.basename(p) for p in glob.glob(os.path.join(dk_dir, "*.sql"))) - set(queries))
    if not queries or missing or extra:
        raise CheckFailed(f"analytics SQL must come in pairs: no DuckDB twin for {missing}, no ClickHouse twin for {extra}")

    tmp = tempfile.mkdtemp(prefix="nb-analytics-chdb-")
    ch = ClickHouse(tmp)
    try:
        print(f"chDB {chdb.__version__} (ClickHouse {str(ch.q('SELECT version()', 'TSV')).strip()}),"
              f" DuckDB {duckdb.__version__}; root {root}")
        files = apply_ddl(ch, os.path.join(schemas, "clickhouse"))
        print(f"DDL applied twice: {', '.join(os.path.basename(f) for f in files)}")
        counts = load(ch, root)
        print("loaded: " + ", ".join(f"{t} {n}" for t, n in counts.items()))

        con = duckdb.connect()
        con.sql("SET TimeZone = 'UTC'")
        ch_results = {}
        for q in queries:
            ch_results[q] = ch.table(read(os.path.join(ch_dir, q)))
            dk = duck_table(con, read(os.path.join(dk_dir, q)).replace("{root}", root.replace("'", "''")))
            n = compare(q, "clickhouse", ch_results[q], "duckdb", dk)
            print(f"  {q:<28} {n:>7} rows  ClickHouse == DuckDB")

        # Re-delivery: every dataset inserted again. Merges are stopped so the
        # duplicates really sit in the table; insert_deduplicate=0 so the
        # insert-time block dedup does not hide them: FINAL has to do the work.
        tables = [t for t, _, _ in DATASETS.values()]
        for t in tables:
            ch.q(f"SYSTEM STOP MERGES {t}")
        again = load(ch, root, settings="insert_deduplicate = 0")
        for t in tables:
            final = ch.scalar(f"SELECT count() FROM {t} FINAL")
            if again[t] != 2 * counts[t] or final != counts[t]:
                raise CheckFailed(f"{t}: after a second insert count() = {again[t]} (want {2 * counts[t]}),"
                                  f" FINAL = {final} (want {counts[t]})")
        for q in queries:
            compare(q + " (after re-insert)", "first load", ch_results[q],
                    "re-inserted", ch.table(read(os.path.join(ch_dir, q))))
        print("re-delivered batch: count() doubled, count() FINAL and all analytics unchanged")

        # A retried insert with the same dedup token is dropped at insert time
        # (non_replicated_deduplication_window). One file, one thread: the
        # same blocks both times.
        one = sorted(glob.glob(os.path.join(root, DATASETS["events"][1])))[0]
        before = ch.scalar("SELECT count() FROM events_processed")
        tok = "max_threads = 1, insert_deduplicate = 1, insert_deduplication_token = 'nb-check-1'"
        ch.q(insert_sql(ch, "events_processed", one, tok))
        mid = ch.scalar("SELECT count() FROM events_processed")
        ch.q(insert_sql(ch, "events_processed", one, tok))
        after = ch.scalar("SELECT count() FROM events_processed")
        if mid == before or after != mid:
            raise CheckFailed(f"insert_deduplication_token: counts {before} -> {mid} -> {after}")
        print(f"retried insert with the same token: +{mid - before} rows once, +0 on the retry")

        for t in tables:
            ch.q(f"SYSTEM START MERGES {t}")
            ch.q(f"OPTIMIZE TABLE {t} FINAL")
            n = ch.scalar(f"SELECT count() FROM {t}")
            if n != counts[t]:
                raise CheckFailed(f"{t}: {n} rows after OPTIMIZE FINAL, want {counts[t]}")
        print("OPTIMIZE FINAL: every table back to one row per natural key")
    finally:
        ch.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", nargs="?", default="/tmp/nb-demo/out", help="Parquet output root of a neonblue run")
    ap.add_argument("--schemas", default=os.path.join(REPO, "schemas"), help="the repo's schemas/ directory")
    args = ap.parse_args()
    try:
        run(args.root, args.schemas)
    except CheckFailed as e:
        print(f"analytics check FAILED: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # an SQL error in chDB or DuckDB: still one clear line
        print(f"analytics check FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print("analytics check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
