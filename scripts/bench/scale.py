#!/usr/bin/env python3
"""State at scale (SPEC 9.1), in one run: peak RSS and records/s of file mode
with 1M and 10M users, throughput with the state far larger than the cache
against in-cache, the time a restart on the 10M-user state needs before it
can process, and a 30-simulated-day run with a constant population sampling
RSS and state size every simulated day.

    scripts/bench/scale.py --bin target/release/neonblue [--work DIR] [--cases 1m,cache,10m,30d]

Inputs are generated once into zstd files under --work (the 10M-user stream
is 32 GB as JSONL) and fed through a named pipe (`zstd -dc`), so disk use
stays small; the decompressor's CPU is not counted (RSS and CPU are
neonblue's alone, from wait4).
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

NOW = "2100-01-01T00:00:00Z"


def generate(bin_, work: Path, name: str, args: list) -> tuple:
    """The stream as a zstd file (cached); returns (path, records, bytes)."""
    zst = work / f"{name}.jsonl.zst"
    meta = work / f"{name}.json"
    if not (zst.exists() and meta.exists()):
        print(f"generating {name}: {' '.join(args)}", file=sys.stderr)
        with open(zst, "wb") as out:
            gen = subprocess.Popen([bin_, "generate", *args, "--output", "-"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            z = subprocess.Popen(["zstd", "-1", "-T2", "-q", "-c"], stdin=gen.stdout, stdout=out)
            gen.stdout.close()
            err = gen.stderr.read().decode()
            gen.wait()
            z.wait()
        if gen.returncode != 0 or z.returncode != 0:
            sys.exit(f"generate failed: {err}")
        words = err.split()
        records, size = int(words[words.index("generated") + 1]), int(words[words.index("records") + 1].strip("("))
        meta.write_text(json.dumps({"records": records, "bytes": size}))
    m = json.loads(meta.read_text())
    return zst, m["records"], m["bytes"]


def run(bin_, zst: Path, work: Path, name: str, extra: list, sample=None) -> dict:
    """Runs file mode on the stream through a named pipe; returns figures."""
    fifo = work / f"{name}.pipe"
    state, out = work / f"{name}-state", work / f"{name}-out"
    for p in (fifo, state, out):
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    os.mkfifo(fifo)
    # -f: zstd skips a symbolic link otherwise, and the run would read nothing.
    feeder = subprocess.Popen(f"zstd -dcfq {zst} > {fifo}", shell=True)
    started = time.time()
    proc = subprocess.Popen([bin_, "--log", "warn", "run", "--no-progress", "--now", NOW,
                             "--input", fifo, "--state", state, "--output", out, *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples = []
    stop = threading.Event()
    if sample:
        threading.Thread(target=sample, args=(proc.pid, state, samples, stop), daemon=True).start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.time() - started
    stop.set()
    err = proc.stderr.read().decode()
    feeder.wait()
    fifo.unlink()
    if feeder.returncode != 0:
        sys.exit(f"{name}: zstd could not read {zst}")
    if status != 0:
        sys.exit(f"{name}: neonblue failed:\n{err[-2000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
            "rss_mib": usage.ru_maxrss / 1024, "state": state, "out": out,
            "state_mib": dir_size(state) / 2**20, "samples": samples}


def dir_size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def rss_mib(pid: int) -> float:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def read_bytes(pid: int) -> int:
    try:
        for line in open(f"/proc/{pid}/io"):
            if line.startswith("rchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def row(name, records, r):
    print(f"| {name} | {records:,} | {records / r['wall']:,.0f} | {r['cpu'] / records * 1e6:.1f} | "
          f"{r['rss_mib']:,.0f} | {r['state_mib']:,.0f} | {r['wall']:.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", default="target/bench/scale")
    ap.add_argument("--cases", default="1m,cache,10m,30d")
    ap.add_argument("--partitions", default="2")
    a = ap.parse_args()
    work = Path(a.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    cases = a.cases.split(",")
    p = ["--partitions", a.partitions]
    print("| case | records | records/s | CPU µs/record | peak RSS MiB | state MiB | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    if "1m" in cases or "cache" in cases:
        zst, n, _ = generate(a.bin, work, "users-1m",
                             ["--records", "3000000", "--users", "1000000", "--seed", "11"])
        r = run(a.bin, zst, work, "users-1m", p)
        row("1M users, default cache", n, r)
        if "cache" in cases:
            big = run(a.bin, zst, work, "users-1m-big", [*p, "--state-cache-bytes", str(4 << 30)])
            row("1M users, 4 GiB cache (all in cache)", n, big)
            small = run(a.bin, zst, work, "users-1m-small", [*p, "--state-cache-bytes", str(32 << 20)])
            row("1M users, 32 MiB cache (state ≫ cache)", n, small)
            print(f"\nstate far larger than the cache: {big['wall'] / small['wall']:.2f}× the "
                  f"in-cache throughput (target ≥ 0.5)\n")
    if "10m" in cases:
        zst, n, _ = generate(a.bin, work, "users-10m",
                             ["--records", "25000000", "--users", "10000000", "--seed", "12"])
        r = run(a.bin, zst, work, "users-10m", p)
        row("10M users, default cache", n, r)
        # A restart on that state: open it and every task's stores, up to
        # where processing would begin (the input is complete, so it stops there).
        # The same input path (the job fingerprint must match); the pipe is
        # never opened, since the checkpoint says the input is all processed.
        fifo = work / "users-10m.pipe"
        os.mkfifo(fifo)
        t = time.time()
        subprocess.run([a.bin, "--log", "warn", "run", "--no-progress", "--now", NOW, *p,
                        "--input", fifo, "--state", r["state"], "--output", r["out"]],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                       timeout=600)
        print(f"\nrestart on the 10M-user state ({r['state_mib']:,.0f} MiB): ready after "
              f"{time.time() - t:.2f} s (target < 5 s)\n")
        fifo.unlink()
    if "30d" in cases:
        zst, n, size = generate(a.bin, work, "days-30",
                                ["--records", "9000000", "--users", "1000000", "--seed", "21",
                                 "--set", "span_secs=2592000"])

        def sample(pid, state, samples, stop):
            while not stop.is_set():
                samples.append((read_bytes(pid), rss_mib(pid), dir_size(state) if state.exists() else 0))
                time.sleep(2)

        r = run(a.bin, zst, work, "days-30", p, sample=sample)
        row("30 days, 1M users", n, r)
        print("\n| simulated day | RSS MiB (max in the day) | state MiB (end of day) |")
        print("|---:|---:|---:|")
        per_day = {}
        for b, rss, st in r["samples"]:
            day = min(29, int(b / size * 30))
            m = per_day.setdefault(day, [0, 0])
            m[0] = max(m[0], rss)
            m[1] = st / 2**20
        for day in sorted(per_day):
            print(f"| {day + 1} | {per_day[day][0]:,.0f} | {per_day[day][1]:,.0f} |")


if __name__ == "__main__":
    main()
