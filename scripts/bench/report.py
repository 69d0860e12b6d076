#!/usr/bin/env python3
"""Benchmark `neonblue report` against DuckDB on the same `user_daily` files.

    scripts/bench/report.py [--bin target/release/neonblue] [--rows 10000000]
                            [--days 14] [--work target/bench/report] [--threads 2] [--runs 1]

1. Writes ROWS `user_daily` rows (SPEC 6.3, the exact Arrow schema of the
   sink, zstd, 128 Ki-row row groups) with pyarrow straight into
   WORK/user_daily/date=YYYY-MM-DD/part-pNNNN-….parquet, once (kept for the
   next run): DAYS days, 3 experiments with 2 variants, about 1.2 M users per
   experiment active on a few days each, ~97 % of rows exposed, 10 % / 12 %
   converted, a few users reassigned to the other variant, journeys of 1-12
   events.
2. Measures, each as a child process (os.wait4: wall, user+sys CPU, peak RSS):
   - `neonblue report --output WORK --format json` (every statistic of every
     experiment, plus the cumulative daily trajectory);
   - DuckDB (THREADS threads) running schemas/analytics/duckdb/experiment_arms.sql:
     the same per-user aggregation (GROUP BY experiment, user with the
     exposed / single-variant filter) and per-arm n, mean, variance. Its time
     is also taken inside the process from the query's start to its last row
     (import and start-up excluded), which favours DuckDB; the table shows both.
3. Prints rows/s, CPU seconds, peak RSS, and checks that both give the same
   per-arm users.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DAY_US = 86_400_000_000
START_DAY = 20_361  # 2025-09-30


def write_dataset(root: str, rows: int, days: int, seed: int = 7) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    marker = os.path.join(root, f"_generated_{rows}_{days}")
    if os.path.exists(marker):
        return
    import shutil
    shutil.rmtree(os.path.join(root, "user_daily"), ignore_errors=True)
    rng = np.random.default_rng(seed)
    item = pa.field("item", pa.string(), nullable=False)
    ts = pa.timestamp("us", tz="UTC")
    schema = pa.schema([
        pa.field("experiment_id", pa.uint32(), False), pa.field("variant_id", pa.uint32(), False),
        pa.field("user_id", pa.string(), False), pa.field("variant_key", pa.string(), True),
        pa.field("events", pa.uint64(), False), pa.field("journey", pa.list_(item), False),
        pa.field("value_sum", pa.float64(), False), pa.field("sessions", pa.uint64(), False),
        pa.field("exposed", pa.bool_(), False), pa.field("converted", pa.bool_(), False),
        pa.field("first_ts", ts, False), pa.field("last_ts", ts, False),
        pa.field("partition", pa.int32(), False),
    ])
    experiments, pool = 3, 1_200_000
    types = pa.array(["exposure", "page_view", "click", "conversion"], pa.string())
    per_day = rows // days
    t0 = time.perf_counter()
    for d in range(days):
        n = per_day if d < days - 1 else rows - per_day * (days - 1)
        per_exp = [n // experiments] * experiments
        per_exp[-1] += n - sum(per_exp)
        exp = np.concatenate([np.full(k, e + 1, np.uint32) for e, k in enumerate(per_exp)])
        users = np.concatenate([rng.choice(pool, k, replace=False) for k in per_exp]).astype(np.int64)
        h = (users * 2654435761 + exp.astype(np.int64) * 97) % 1_000_003
        arm = (h % 2).astype(np.uint32)
        flip = rng.random(n) < 0.002  # reassigned users: rows in the other variant
        arm = np.where(flip, 1 - arm, arm)
        variant = exp * 100 + arm + 1
        key = np.where(arm == 0, "control", "treatment")
        exposed = rng.random(n) < 0.97
        converted = exposed & (rng.random(n) < np.where(arm == 0, 0.10, 0.12))
        events = 1 + rng.geometric(0.3, n).clip(max=11) + converted
        value = np.where(converted, rng.integers(500, 20_000, n) / 100.0, 0.0)
        sessions = 1 + (events > 5)
        first = (START_DAY + d) * DAY_US + rng.integers(0, 20 * 3600, n) * 1_000_000
        last = first + rng.integers(0, 3600, n) * 1_000_000
        offsets = np.zeros(n + 1, np.int32)
        np.cumsum(events, out=offsets[1:])
        kinds = rng.integers(1, 3, int(offsets[-1]), dtype=np.int8)
        kinds[offsets[:-1]] = np.where(exposed, 0, 1)
        kinds[offsets[1:][converted] - 1] = 3
        journey = pa.ListArray.from_arrays(
            pa.array(offsets), pa.DictionaryArray.from_arrays(pa.array(kinds), types).cast(pa.string()),
            type=pa.list_(item))
        user_ids = pa.array(np.char.add("user_", np.char.zfill(users.astype(str), 7)), pa.string())
        part = (h % 2).astype(np.int32)
        table = pa.Table.from_arrays([
            pa.array(exp), pa.array(variant), user_ids, pa.array(key, pa.string()),
            pa.array(events.astype(np.uint64)), journey, pa.array(value), pa.array(sessions.astype(np.uint64)),
            pa.array(exposed), pa.array(converted), pa.array(first, ts), pa.array(last, ts), pa.array(part),
        ], schema=schema)
        date = np.datetime64("1970-01-01") + np.timedelta64(START_DAY + d, "D")
        folder = os.path.join(root, "user_daily", f"date={date}")
        os.makedirs(folder, exist_ok=True)
        for p in (0, 1):
            sel = table.filter(pa.array(part == p))
            pq.write_table(sel, os.path.join(folder, f"part-p{p:04d}-{d * 1000:020d}.parquet"),
                           compression="zstd", row_group_size=128 * 1024)
        print(f"  {date}: {n:,} rows ({time.perf_counter() - t0:.0f} s)", flush=True)
    open(marker, "w").close()


def measure(cmd, stdout_path):
    with open(stdout_path, "w+") as out, open(stdout_path + ".err", "w") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        out.seek(0)
        text = out.read()
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        with open(stdout_path + ".err") as f:
            sys.exit(f"{cmd[0]} failed ({rc}):\n{f.read()[-2000:]}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0, text


DUCKDB_JOB = r"""
import json, resource, sys, time
import duckdb
sql, threads = open(sys.argv[1]).read(), int(sys.argv[2])
con = duckdb.connect(":memory:")
con.execute(f"SET threads = {threads}")
cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
c0, t0 = cpu(), time.perf_counter()
rows = con.execute(sql).fetchall()
print(json.dumps({"seconds": time.perf_counter() - t0, "cpu_seconds": cpu() - c0,
                  "arms": {f"{r[0]}/{r[1]}": r[3] for r in rows if r[2] == "conversion_rate"}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(REPO, "target", "release", "neonblue"))
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--work", default=os.path.join(REPO, "target", "bench", "report"))
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--runs", type=int, default=1, help="runs per case; the median wall is reported")
    ap.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    work = os.path.abspath(a.work)
    os.makedirs(work, exist_ok=True)
    if a.generate_only:
        write_dataset(work, a.rows, a.days)
        return
    print(f"writing {a.rows:,} user_daily rows over {a.days} days under {work} (once)")
    # In a child: this process stays small, so the children it measures do not
    # inherit a large resident set at fork (it would count in their peak RSS).
    subprocess.run([sys.executable, os.path.abspath(__file__), "--generate-only", "--rows", str(a.rows),
                    "--days", str(a.days), "--work", work], check=True)
    size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(os.path.join(work, "user_daily"))
               for f in fs)
    print(f"dataset: {size / 1e6:,.0f} MB of Parquet")
    for dp, _, fs in os.walk(os.path.join(work, "user_daily")):  # page cache, as for every case
        for f in fs:
            with open(os.path.join(dp, f), "rb") as fh:
                while fh.read(1 << 24):
                    pass

    sql_path = os.path.join(work, "experiment_arms.sql")
    with open(os.path.join(REPO, "schemas", "analytics", "duckdb", "experiment_arms.sql")) as f:
        sql = f.read().replace("{root}", work.replace("'", "''"))
    with open(sql_path, "w") as f:
        f.write(sql)
    job = os.path.join(work, "duckdb_job.py")
    with open(job, "w") as f:
        f.write(DUCKDB_JOB)

    def median(cmd, log):
        runs = sorted((measure(cmd, log) for _ in range(a.runs)), key=lambda r: r[0])
        return runs[len(runs) // 2]

    results = []
    wall, cpu, rss, text = median([a.bin, "--log", "warn", "report", "--output", work, "--format", "json"],
                                  os.path.join(work, "report.json"))
    rep = json.loads(text)
    nb_arms = {f"{e['experiment_id']}/{v}": n for e in rep["experiments"] for v, n in e["srm"]["users"].items()}
    results.append(("neonblue report", wall, cpu, rss, None))
    pwall, pcpu, rss, text = median([sys.executable, job, sql_path, str(a.threads)], os.path.join(work, "duckdb.out"))
    inner = json.loads(text.strip().splitlines()[-1])
    results.append((f"DuckDB {a.threads} threads", pwall, pcpu, rss, inner))
    if inner["arms"] != nb_arms:
        sys.exit(f"per-arm users differ:\n  report {nb_arms}\n  duckdb {inner['arms']}")

    print(f"\n{a.rows:,} user_daily rows, {size / 1e6:,.0f} MB; both give the same users per arm {nb_arms}\n")
    print("| case | rows/s | wall s | CPU s | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|")
    out = []
    for name, wall, cpu, rss, inner in results:
        print(f"| {name} | {a.rows / wall:,.0f} | {wall:.2f} | {cpu:.2f} | {rss:,.0f} |")
        out.append({"case": name, "rows_per_s": a.rows / wall, "wall_s": wall, "cpu_s": cpu, "rss_mib": rss})
        if inner:
            print(f"| {name}, query only (in-process) | {a.rows / inner['seconds']:,.0f} | {inner['seconds']:.2f} "
                  f"| {inner['cpu_seconds']:.2f} | |")
            out.append({"case": name + " (query only)", "rows_per_s": a.rows / inner["seconds"],
                        "wall_s": inner["seconds"], "cpu_s": inner["cpu_seconds"]})
    ratio = results[1][1] / results[0][1]
    q_ratio = inner["seconds"] / results[0][1]
    print(f"\nneonblue report vs DuckDB: {ratio:.2f}× (process), {q_ratio:.2f}× (DuckDB query time only)")
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump({"rows": a.rows, "bytes": size, "results": out}, f, indent=2)


if __name__ == "__main__":
    main()
