#!/usr/bin/env python3
"""Kills runs at random moments for a long time; every restart must open its
state and every completed run must equal an uninterrupted one.

    scripts/kill_soak.py --bin target/release/neonblue [--minutes 20]
        [--records 40000] [--partitions 2] [--seed 1] [--brokers HOST:PORT]

The crash tests in `tests/crash_recovery.rs` do a few kills per run in CI;
this is their long version, to run and report. A cycle starts from an empty
state directory and kills runs until one finishes by itself, then compares
its output objects and summary byte for byte with a reference run. Half of
the kills land in the first tenth of a run (opening the state, where sled
recovers its log and writes its snapshot), the rest anywhere in the first
half. A restart that fails (exit status other than 0 or SIGKILL) stops the
soak with its stderr. Prints cycles, kills and failures at the end.

With `--brokers`, Kafka mode: the stream goes once into a topic of
`--partitions` partitions keyed by user, and each cycle is `run --until-end`
of a fresh application id (commits every 200 ms, so kills often land while a
commit is in flight), killed and restarted on its state until it finishes;
the kill window grows by half with each restart of a cycle, as restores
take their time.
Kafka mode cuts segments where its commits fall, so a cycle's rows (not its
objects) must equal the reference run's (`compare_outputs.rows_of`). A
killed instance stays in the group until its session timeout (6 s here), so
a restart waits for that.
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_outputs import generate, soak_arguments  # noqa: E402

NOW = "2100-01-01T00:00:00Z"
# A cycle fails once a restart's kill window would exceed this many times
# the reference run's time (it grows with every attempt, see below).
MAX_WINDOW = 100


def tree(root):
    """Every file under root: relative path -> bytes."""
    root = Path(root)
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def main():
    ap = soak_arguments(__doc__, records=40_000, partitions=2)
    ap.add_argument("--brokers", help="Kafka mode through these brokers")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kill-soak-"))
    source = work / "cdc.jsonl"
    generate(args.bin, source, args.records, for_kafka=bool(args.brokers))

    topic = f"kill-soak-{int(time.time())}"
    if args.brokers:
        from compare_outputs import produce_keyed, rows_of
        produce_keyed(source, args.brokers, topic, args.partitions)

    def command(dir):
        common = [
            args.bin, "run", "--output", str(dir / "output"), "--state", str(dir / "state"),
            "--summary", str(dir / "summary.json"), "--now", NOW, "--no-progress",
        ]
        if args.brokers:
            return common + [
                "--brokers", args.brokers, "--topics", topic, "--app-id", f"{topic}-{dir.name}",
                "--until-end", "--commit-interval", "200ms",
            ]
        return common + [
            "--input", str(source), "--partitions", str(args.partitions),
            "--checkpoint-records", "3000",
        ]

    def outputs(dir):
        return rows_of(dir / "output") if args.brokers else tree(dir / "output")

    env = dict(os.environ, NEONBLUE_LOG="warn,neonblue::drivers::kafka=info",
               NEONBLUE_KAFKA__SESSION_TIMEOUT="6s")

    def start(dir, attempt):
        """Starts a run; returns it once it can process (Kafka mode: once the
        group assigned it partitions, which takes a session timeout after a
        kill)."""
        dir.mkdir(parents=True, exist_ok=True)
        log = dir / f"run-{attempt}.log"
        child = subprocess.Popen(command(dir), env=env, stdout=subprocess.DEVNULL,
                                 stderr=open(log, "w"))
        while args.brokers and child.poll() is None and \
                "partitions assigned partitions=[(" not in log.read_text(errors="replace"):
            time.sleep(0.02)
        return child, log

    reference = work / "reference"
    child, log = start(reference, 0)
    started = time.monotonic()
    if child.wait() != 0:
        sys.exit(f"the reference run failed:\n{log.read_text()[-2000:]}")
    full = time.monotonic() - started
    expected = outputs(reference)
    # Kafka mode: the summary counts what the last instance held, not the run.
    expected_summary = None if args.brokers else (reference / "summary.json").read_text()

    rng = random.Random(args.seed)
    deadline = time.monotonic() + args.minutes * 60
    cycles = kills = early_kills = 0
    while time.monotonic() < deadline:
        crashed = work / f"crashed-{cycles}"
        attempt = 0
        while True:
            attempt += 1
            child, log = start(crashed, attempt)
            early = rng.random() < 0.5
            # The window grows with every attempt of a cycle, else a cycle
            # whose restarts need longer than the window to reach their next
            # checkpoint never finishes (seen in file mode: 9,000 kills at
            # one checkpoint). It grows faster in Kafka mode, where a restart
            # first restores its tasks from the changelogs.
            window = full * (1.5 if args.brokers else 1.05) ** (attempt - 1)
            if window > MAX_WINDOW * full:
                print(f"FAILED: cycle {cycles + 1}: {attempt - 1} restarts in a row were killed "
                      f"before they finished, the last ones given {MAX_WINDOW}x the reference "
                      f"run's time: restarts make no progress (logs in {crashed})")
                sys.exit(1)
            time.sleep(rng.uniform(0, window * (0.1 if early else 0.5)))
            if child.poll() is None:
                child.kill()
            child.wait()
            if child.returncode == -signal.SIGKILL:
                kills += 1
                early_kills += early
                continue
            if child.returncode != 0:
                print(f"FAILED: a restart after {kills} kills exited {child.returncode}:")
                print(log.read_text(errors="replace")[-2000:])
                print(f"state directory kept in {crashed / 'state'}")
                sys.exit(1)
            break
        got = outputs(crashed)
        summary = None if args.brokers else (crashed / "summary.json").read_text()
        if got != expected or summary != expected_summary:
            differing = sorted(k for k in set(got) | set(expected) if got.get(k) != expected.get(k))
            print(f"FAILED: cycle {cycles + 1} differs from the reference: {differing[:10]}")
            sys.exit(1)
        cycles += 1
        shutil.rmtree(crashed)
        print(f"cycle {cycles}: identical after {kills} kills so far", flush=True)
    print(
        f"kill soak: {cycles} cycles, {kills} SIGKILLs ({early_kills} in the first tenth of a run), "
        f"every restart opened its state, every completed run "
        + (f"row for row equal to the reference ({sum(map(len, expected.values()))} rows"
           if args.brokers else f"byte-identical to the reference ({len(expected)} objects")
        + f"; reference run {full:.2f} s, {args.partitions} partitions, {args.records} records)"
    )
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
