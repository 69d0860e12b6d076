#!/usr/bin/env python3
"""Kills file-mode runs at random moments for a long time; every restart must
open its state and every completed run must equal an uninterrupted one.

    scripts/kill_soak.py --bin target/release/neonblue [--minutes 20]
        [--records 40000] [--partitions 2] [--seed 1]

The crash tests in `tests/crash_recovery.rs` do a few kills per run in CI;
this is their long version, to run and report. A cycle starts from an empty
state directory and kills runs until one finishes by itself, then compares
its output objects and summary byte for byte with a reference run. Half of
the kills land in the first tenth of a run (opening the state, where sled
recovers its log and writes its snapshot), the rest anywhere in the first
half. A restart that fails (exit status other than 0 or SIGKILL) stops the
soak with its stderr. Prints cycles, kills and failures at the end.
"""

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NOW = "2100-01-01T00:00:00Z"


def tree(root):
    """Every file under root: relative path -> bytes."""
    root = Path(root)
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--records", type=int, default=40_000)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kill-soak-"))
    source = work / "cdc.jsonl"
    subprocess.run(
        [args.bin, "generate", "--records", str(args.records), "--seed", "7", "--output", str(source)],
        check=True,
        stderr=subprocess.DEVNULL,
    )

    def command(dir):
        return [
            args.bin, "run", "--input", str(source),
            "--output", str(dir / "output"), "--state", str(dir / "state"),
            "--summary", str(dir / "summary.json"),
            "--partitions", str(args.partitions), "--checkpoint-records", "3000",
            "--now", NOW, "--no-progress",
        ]

    env = dict(os.environ, NEONBLUE_LOG="warn")
    reference = work / "reference"
    started = time.monotonic()
    done = subprocess.run(command(reference), env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"the reference run failed:\n{done.stderr[-2000:]}")
    full = time.monotonic() - started
    expected = tree(reference / "output")
    expected_summary = (reference / "summary.json").read_text()

    rng = random.Random(args.seed)
    crashed = work / "crashed"
    deadline = time.monotonic() + args.minutes * 60
    cycles = kills = early_kills = 0
    while time.monotonic() < deadline:
        shutil.rmtree(crashed, ignore_errors=True)
        while True:
            child = subprocess.Popen(
                command(crashed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            early = rng.random() < 0.5
            time.sleep(rng.uniform(0, full * (0.1 if early else 0.5)))
            if child.poll() is None:
                child.kill()
            _, stderr = child.communicate()
            if child.returncode == -signal.SIGKILL:
                kills += 1
                early_kills += early
                continue
            if child.returncode != 0:
                print(f"FAILED: a restart after {kills} kills exited {child.returncode}:")
                print(stderr.decode(errors="replace")[-2000:])
                print(f"state directory kept in {crashed / 'state'}")
                sys.exit(1)
            break
        got = tree(crashed / "output")
        if got != expected or (crashed / "summary.json").read_text() != expected_summary:
            differing = sorted(k for k in set(got) | set(expected) if got.get(k) != expected.get(k))
            print(f"FAILED: cycle {cycles + 1} differs from the reference: {differing[:10]}")
            sys.exit(1)
        cycles += 1
        print(f"cycle {cycles}: identical after {kills} kills so far", flush=True)
    print(
        f"kill soak: {cycles} cycles, {kills} SIGKILLs ({early_kills} in the first tenth of a run), "
        f"every restart opened its state, every completed run byte-identical to the reference "
        f"({len(expected)} objects; reference run {full:.2f} s, {args.partitions} partitions, "
        f"{args.records} records)"
    )
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
