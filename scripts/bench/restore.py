#!/usr/bin/env python3
"""Restoring large tasks from their changelogs (SPEC 9.1), on a real broker.

    scripts/bench/restore.py --bin target/release/neonblue --brokers HOST:PORT \
        [--records 3000000] [--users 1000000] [--partitions 2] [--cache-bytes N]

Loads a generated stream into a topic, processes it with one instance
(`run --until-end`), then starts a second instance with an empty state
directory on the same application id, after a few more records were written,
so that every join task is restored from its changelogs before its first
record. Prints, per task, the changelog records applied and the time taken,
and the restoring instance's peak RSS (from wait4) against its cache budget:
restores write to sled in batches, so memory does not grow with the state.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(bin_, args, env=None) -> tuple:
    """Runs neonblue; returns (wall seconds, peak RSS MiB, stderr)."""
    started = time.time()
    proc = subprocess.Popen([bin_, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})
    err = []
    for line in proc.stderr:
        err.append(line.decode(errors="replace"))
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        sys.exit(f"neonblue {' '.join(args[:1])} failed:\n{''.join(err)[-3000:]}")
    return time.time() - started, usage.ru_maxrss / 1024, "".join(err)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--records", type=int, default=3_000_000)
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--cache-bytes", default=None, help="state.cache_bytes (default: neonblue's)")
    ap.add_argument("--work", default=None, help="keep state and outputs here (default: a temporary directory, removed)")
    a = ap.parse_args()
    if a.work:
        bench(a, Path(a.work))
        return
    # A directory of our own holds two state directories: removed at the end.
    work = Path(tempfile.mkdtemp(prefix="neonblue-restore-"))
    try:
        bench(a, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench(a, work: Path) -> None:
    """Loads the topic, runs the first instance, then the restoring one."""
    work.mkdir(parents=True, exist_ok=True)
    tag = f"restore{int(time.time())}"
    topic, app = f"{tag}-input", f"{tag}-app"
    common = ["--brokers", a.brokers]
    gen = [a.bin, "generate", *common, "--topic", topic, "--topic-partitions", str(a.partitions)]
    print(f"loading {a.records:,} records ({a.users:,} users) into {topic}", file=sys.stderr)
    t = time.time()
    subprocess.run([*gen, "--records", str(a.records), "--users", str(a.users), "--seed", "11"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"  produced in {time.time() - t:.1f} s", file=sys.stderr)
    cache = ["--state-cache-bytes", a.cache_bytes] if a.cache_bytes else []
    run_args = ["--log", "info", "run", "--no-progress", *common, "--app-id", app, "--topics", topic,
                "--repartition-partitions", str(a.partitions), "--until-end", "--now",
                "2100-01-01T00:00:00Z", *cache]
    wall, rss, _ = run(a.bin, [*run_args, "--state", str(work / "first-state"),
                              "--output", str(work / "out")])
    print(f"| first instance | {a.records:,} records in {wall:.1f} s "
          f"({a.records / wall:,.0f}/s) | peak RSS {rss:,.0f} MiB |")
    # A few more records reach every partition: each join task restores
    # before its first one.
    subprocess.run([*gen, "--records", "2000", "--users", str(a.users), "--seed", "12"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall, rss, err = run(a.bin, [*run_args, "--state", str(work / "second-state"),
                                "--output", str(work / "out")])
    restored = [(m.group(1), int(m.group(2)), int(m.group(3)))
                for m in re.finditer(r'restored.*?task[=:]"?([\w-]+)"?.*?records[=:](\d+).*?ms[=:](\d+)',
                                     err)]
    size = sum(f.stat().st_size for f in (work / "second-state").rglob("*") if f.is_file())
    print("\n| task | changelog records | restore s |")
    print("|---|---:|---:|")
    for task, records, ms in restored:
        if records:
            print(f"| {task} | {records:,} | {ms / 1000:.2f} |")
    total = sum(r for _, r, _ in restored)
    print(f"\nrestoring instance: {total:,} changelog records, whole run {wall:.1f} s, "
          f"peak RSS {rss:,.0f} MiB, state directory after restore {size / 2**20:,.0f} MiB")
    if not restored:
        sys.exit("no 'restored' line in the log")


if __name__ == "__main__":
    main()
