#!/usr/bin/env python3
"""Side-by-side benchmark: neonblue vs a bare parse vs DuckDB vs chDB.

Called by scripts/bench.sh (which builds, installs and generates the input);
usable on its own:

    run.py --bin target/release/neonblue --input FILE --records N \
           [--threads 1,2] [--work DIR] [--runs 1] [--engines duckdb,chdb]

Every case runs as a child process, measured with os.wait4: wall time,
user+sys CPU (all threads) and peak RSS. For the SQL engines the child is
scripts/bench/sql_job.py; its rates use the time the engine itself took (from
its first statement to its last, interpreter start-up and imports excluded),
which favours the engines. Prints a table, checks the SPEC 9 targets, and
writes the results as JSON to WORK/results.json.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# SPEC 9
TARGET_PER_CORE = 500_000
TARGET_VS_SQL = 5.0
TARGET_VS_PARSE = 0.5


def measure(cmd, stdout_path=None, env=None):
    """Run cmd; return (rc, wall s, cpu s, peak RSS MiB, stdout text)."""
    out = open(stdout_path, "w+") if stdout_path else subprocess.DEVNULL
    err = open(stdout_path + ".err", "w") if stdout_path else subprocess.DEVNULL
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    text = ""
    if stdout_path:
        out.seek(0)
        text = out.read()
        out.close()
        err.close()
    return p.returncode, wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0, text


def tail(path, n=20):
    try:
        with open(path) as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def warm(path):
    """Read the file once so every case starts with it in the page cache."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def fresh(*dirs):
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def parquet_rows(root):
    """Rows per dataset under an output root (None when unreadable)."""
    try:
        import duckdb
    except ImportError:
        return {}
    con = duckdb.connect()
    rows = {}
    for ds in ("events", "agg_hourly", "agg_daily", "user_daily"):
        d = os.path.join(root, ds)
        if not os.path.isdir(d):
            continue
        files = [os.path.join(dp, f) for dp, _, fs in os.walk(d) for f in fs if f.endswith(".parquet")]
        if not files:
            rows[ds] = 0
            continue
        try:
            rows[ds] = con.execute("SELECT count(*) FROM read_parquet(?)", [files]).fetchone()[0]
        except Exception:  # noqa: BLE001 - informational only
            rows[ds] = None
    return rows


def valid_events(root):
    """Σ events of agg_daily (valid, non-late events counted in aggregates)."""
    try:
        import duckdb
        d = os.path.join(root, "agg_daily")
        files = [os.path.join(dp, f) for dp, _, fs in os.walk(d) for f in fs if f.endswith(".parquet")]
        if not files:
            return None
        return int(duckdb.connect().execute("SELECT sum(events) FROM read_parquet(?)", [files]).fetchone()[0] or 0)
    except Exception:  # noqa: BLE001
        return None


def bench_bin(a):
    """The bare-parse baseline, built next to the binary with `--features bench`."""
    return os.path.join(os.path.dirname(a.bin), "neonblue-bench-parse")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--records", type=int, required=True, help="records (lines) in the input")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--work", default="target/bench")
    ap.add_argument("--runs", type=int, default=1, help="runs per case; the median is reported")
    ap.add_argument("--engines", default="duckdb,chdb", help="comma list, or empty for none")
    ap.add_argument("--now", default="2100-01-01T00:00:00Z")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    a = ap.parse_args()

    threads = [int(t) for t in a.threads.split(",") if t.strip()]
    engines = [e for e in a.engines.split(",") if e.strip()]
    size = os.path.getsize(a.input)
    work = os.path.abspath(a.work)
    os.makedirs(work, exist_ok=True)
    warm(a.input)
    results = []

    def record(name, kind, n, wall, cpu, rss, extra=None):
        r = {"case": name, "kind": kind, "threads": n, "wall_s": wall, "cpu_s": cpu, "rss_mib": rss,
             "records_per_s": a.records / wall if wall > 0 else 0.0,
             "records_per_core_s": a.records / cpu if cpu > 0 else 0.0,
             "mb_per_s": size / 1e6 / wall if wall > 0 else 0.0}
        r.update(extra or {})
        results.append(r)
        print(f"  {name:<22} {wall:8.2f} s wall {cpu:8.2f} s cpu {rss:8.0f} MiB  {r['records_per_s']:>12,.0f} rec/s",
              flush=True)
        return r

    def median_run(make_cmd, setup, log):
        runs = []
        for _ in range(a.runs):
            setup()
            rc, wall, cpu, rss, text = measure(make_cmd(), log)
            if rc != 0:
                return rc, None, tail(log + ".err") or tail(log)
            runs.append((wall, cpu, rss, text))
        runs.sort(key=lambda r: r[0])
        return 0, runs[len(runs) // 2], ""

    print(f"input: {a.input} ({a.records:,} records, {size / 1e6:,.1f} MB, {size / max(a.records, 1):,.0f} B/record)")

    # (b) bare parse
    for flags, name, kind in [([], "bare parse (serde_json)", "parse"),
                              (["--typed"], "typed skip-parse (serde_json)", "parse-typed"),
                              (["--neonblue"], "neonblue line parser", "parse-neonblue")]:
        log = os.path.join(work, f"bench-{kind}.out")
        rc, run, err = median_run(lambda: [bench_bin(a), *flags, a.input], lambda: None, log)
        if rc == 0:
            wall, cpu, rss, text = run
            record(name, kind, 1, wall, cpu, rss, {"count": text.strip()})
        else:
            print(f"  {name} FAILED (rc={rc}):\n{err}")

    # (a) neonblue run
    for n in threads:
        out, state = os.path.join(work, f"neonblue-p{n}-out"), os.path.join(work, f"neonblue-p{n}-state")
        summary = os.path.join(work, f"neonblue-p{n}-summary.json")
        cmd = [a.bin, "--log", "warn", "run", "--input", a.input, "--output", out, "--state", state,
               "--partitions", str(n), "--now", a.now, "--summary", summary, "--no-progress"]
        log = os.path.join(work, f"neonblue-p{n}.out")
        rc, run, err = median_run(lambda: cmd, lambda: fresh(out, state), log)
        if rc != 0:
            print(f"  neonblue --partitions {n} FAILED (rc={rc}):\n{err}")
            continue
        wall, cpu, rss, _ = run
        extra = {"out": out}
        try:
            with open(summary) as f:
                extra["summary"] = json.load(f)
        except (OSError, ValueError):
            pass
        record(f"neonblue --partitions {n}", "neonblue", n, wall, cpu, rss, extra)

    # (c), (d) SQL engines
    for eng in engines:
        for n in threads:
            out = os.path.join(work, f"{eng}-t{n}-out")
            log = os.path.join(work, f"{eng}-t{n}.out")
            cmd = [sys.executable, os.path.join(HERE, "sql_job.py"), eng, a.input, out, str(n)]
            rc, run, err = median_run(lambda: cmd, lambda: fresh(out), log)
            if rc != 0:
                print(f"  {eng} threads={n} FAILED (rc={rc}):\n{err}")
                continue
            pwall, pcpu, rss, text = run
            try:
                job = json.loads(text.strip().splitlines()[-1])
            except (ValueError, IndexError):
                job = {"seconds": pwall, "cpu_seconds": pcpu}
            record(f"{eng} threads={n}", eng, n, job["seconds"], job["cpu_seconds"], rss,
                   {"out": out, "process_wall_s": pwall, "process_cpu_s": pcpu, "steps": job.get("steps")})

    # table
    print()
    hdr = f"| {'case':<24} | {'records/s':>12} | {'rec/s per core':>14} | {'MB/s':>8} | {'wall s':>7} | {'CPU s':>7} | {'peak RSS MiB':>12} |"
    print(hdr)
    print("|" + "|".join("-" * (len(c)) for c in hdr.split("|")[1:-1]) + "|")
    for r in results:
        print(f"| {r['case']:<24} | {r['records_per_s']:>12,.0f} | {r['records_per_core_s']:>14,.0f} | {r['mb_per_s']:>8,.1f} "
              f"| {r['wall_s']:>7.2f} | {r['cpu_s']:>7.2f} | {r['rss_mib']:>12,.0f} |")
    print("SQL engines: wall/CPU measured inside the engine process from the first statement to the last "
          "(interpreter start-up and imports excluded); RSS is the whole process.")

    # outputs side by side
    print()
    print("outputs (rows written; Σ agg_daily.events = valid non-late events counted in aggregates):")
    for r in results:
        if "out" in r:
            rows = parquet_rows(r["out"])
            r["rows"] = rows
            r["aggregated_events"] = valid_events(r["out"])
            s = r.get("summary")
            acc = ""
            if s:
                acc = (f"  [records_in {s.get('records_in')}, events_emitted {s.get('events_emitted')}, "
                       f"assignments_applied {s.get('assignments_applied')}, dead_lettered {s.get('dead_lettered')}, "
                       f"duplicate {s.get('skipped', {}).get('duplicate')}]")
            print(f"  {r['case']:<24} {rows}  aggregated {r['aggregated_events']}{acc}")

    # targets
    print()
    print("SPEC 9 targets:")
    ok = True

    def check(label, value, target, fmt):
        nonlocal ok
        passed = value >= target
        ok &= passed
        print(f"  [{'PASS' if passed else 'MISS'}] {label}: {fmt(value)} (target ≥ {fmt(target)})")

    by = {(r["kind"], r["threads"]): r for r in results}
    nb = [r for r in results if r["kind"] == "neonblue"]
    for r in nb:
        check(f"{r['case']}: envelopes/s per core", r["records_per_core_s"], TARGET_PER_CORE, lambda v: f"{v:,.0f}")
    parse = by.get(("parse", 1))
    if parse and ("neonblue", 1) in by:
        check("neonblue --partitions 1 vs bare parse (same parser, 1 core)",
              by[("neonblue", 1)]["records_per_s"] / parse["records_per_s"], TARGET_VS_PARSE, lambda v: f"{v:.2f}×")
    typed = by.get(("parse-typed", 1))
    if typed and ("neonblue", 1) in by:
        check("neonblue --partitions 1 vs typed skip-parse (same parser, 1 core)",
              by[("neonblue", 1)]["records_per_s"] / typed["records_per_s"], TARGET_VS_PARSE, lambda v: f"{v:.2f}×")
    for eng in engines:
        for n in threads:
            if ("neonblue", n) in by and (eng, n) in by:
                check(f"neonblue --partitions {n} vs {eng} threads={n}",
                      by[("neonblue", n)]["records_per_s"] / by[(eng, n)]["records_per_s"], TARGET_VS_SQL,
                      lambda v: f"{v:.1f}×")
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump({"input": a.input, "records": a.records, "bytes": size, "results": results,
                   "all_targets_met": ok}, f, indent=2, default=str)
    print(f"\nresults: {os.path.join(work, 'results.json')}")
    if a.strict and not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
