#!/usr/bin/env python3
"""Run one SQL engine's version of neonblue's job on a JSONL file.

    sql_job.py {duckdb|chdb} INPUT OUT_DIR THREADS

Reads scripts/bench/<engine>.sql, fills in @INPUT@, @OUT@ and @THREADS@, runs
the statements in order in-process, and prints one JSON line to stdout:
{"engine", "threads", "seconds" (wall, from the first statement to the last,
imports excluded), "cpu_seconds" (user+sys of this process over the same
span), "steps": [[name, seconds], ...], "rows": {dataset: rows written}}.
"""
import json
import os
import re
import resource
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def statements(engine, input_path, out_dir, threads):
    with open(os.path.join(HERE, engine + ".sql")) as f:
        text = f.read()
    text = (text.replace("@INPUT@", input_path.replace("'", "''"))
                .replace("@OUT@", out_dir.replace("'", "''"))
                .replace("@THREADS@", str(int(threads))))
    out = []
    for chunk in text.split(";\n"):
        lines = [l for l in chunk.splitlines() if l.strip() and not l.strip().startswith("--")]
        if lines:
            out.append("\n".join(lines))
    return out


def label(sql):
    """Short name of a statement for the per-step timings."""
    m = re.match(r"\s*CREATE\s+(?:TEMP\s+)?TABLE\s+(\w+)", sql, re.I)
    if m:
        return "create " + m.group(1)
    m = re.search(r"@?/(events|agg_hourly|agg_daily|user_daily)\b", sql)
    if m and re.match(r"\s*(COPY|INSERT)", sql, re.I):
        return "write " + m.group(1)
    return " ".join(sql.split()[:4])


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    engine, input_path, out_dir, threads = sys.argv[1], os.path.abspath(sys.argv[2]), os.path.abspath(sys.argv[3]), int(sys.argv[4])
    # the datasets are rewritten from scratch (Parquet files cannot be appended to)
    for ds in ("events", "agg_hourly", "agg_daily", "user_daily"):
        shutil.rmtree(os.path.join(out_dir, ds), ignore_errors=True)
    os.makedirs(out_dir, exist_ok=True)
    stmts = statements(engine, input_path, out_dir, threads)
    if engine == "duckdb":
        import duckdb
        con = duckdb.connect(":memory:")
        run = lambda s: con.execute(s)
        count = lambda t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
    elif engine == "chdb":
        from chdb import session
        sess = session.Session()
        run = lambda s: sess.query(s)
        count = lambda t: int(str(sess.query(f"SELECT count() FROM {t}", "CSV")).strip() or 0)
    else:
        sys.exit("engine must be duckdb or chdb")
    steps = []
    c0, t0 = cpu(), time.perf_counter()
    for s in stmts:
        t = time.perf_counter()
        run(s)
        steps.append([label(s), round(time.perf_counter() - t, 3)])
    seconds, cpu_seconds = time.perf_counter() - t0, cpu() - c0
    rows = {}
    try:
        rows["events"] = count("enriched")
    except Exception as e:  # noqa: BLE001 - informational only
        rows["events"] = str(e)
    print(json.dumps({"engine": engine, "threads": threads, "seconds": round(seconds, 3),
                      "cpu_seconds": round(cpu_seconds, 3), "steps": steps, "rows": rows}))


if __name__ == "__main__":
    main()
