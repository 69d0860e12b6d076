#!/usr/bin/env python3
"""Freezes one of two instances of a group for longer than its session,
again and again; every run must equal an undisturbed one.

    scripts/freeze_soak.py --bin target/release/neonblue [--minutes 20]
        [--records 6000] [--partitions 4] [--seed 1]

A member stopped (SIGSTOP, a VM paused, a long stall) past its group
session loses its partitions to the other member, which restores them from
the last commit; the frozen one learns it only when it runs again, and must
then commit nothing of them (README, Guarantees). This starts a Tansu
broker, produces a generated stream keyed by user, and measures an
undisturbed `run --until-end`. Then, until the time is up, each cycle runs
two instances of a fresh application id (6 s session, a commit every
200 ms, throttled), freezes one of them for 7 - 12 s at a random moment,
and then either resumes it, or sends it SIGTERM before resuming it and
starts it again on the same state a second later. A cycle passes when both
instances exit 0 and the rows equal the undisturbed run's
(`compare_outputs.rows_of`); anything else fails the soak with the logs.
Prints the counts at the end.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from compare_outputs import generate, produce_keyed, rows_of, soak_arguments  # noqa: E402

NOW = "2100-01-01T00:00:00Z"
BROKER_PORT = 19292
SESSION_S = 6
# What the instance logs when the group took its partitions (group.rs).
LOST = "partitions lost"


def main():
    ap = soak_arguments(__doc__, records=6000, partitions=4)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    work = Path(tempfile.mkdtemp(prefix="freeze-soak-"))
    env = dict(os.environ, TANSU_DIR=str(work / "tansu"))
    services = HERE / "services"
    brokers = f"127.0.0.1:{BROKER_PORT}"
    children = []
    try:
        subprocess.run([services / "tansu.sh", "start", str(BROKER_PORT)], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        source = work / "cdc.jsonl"
        generate(args.bin, source, args.records, for_kafka=True)
        topic = f"freeze-soak-{int(time.time())}"
        produce_keyed(source, brokers, topic, args.partitions)
        run_env = dict(env, NEONBLUE_LOG="warn,neonblue::drivers::kafka=info",
                       NEONBLUE_KAFKA__SESSION_TIMEOUT=f"{SESSION_S}s")

        def start(app, d, name, pace=None):
            cmd = [args.bin, "run", "--no-progress", "--now", NOW, "--until-end",
                   "--brokers", brokers, "--topics", topic, "--app-id", app,
                   "--commit-interval", "200ms",
                   "--state", str(d / f"state-{name}"), "--output", str(d / "output")]
            if pace:
                cmd += ["--max-records-per-second", str(pace)]
            log = d / f"{name}.log"
            child = subprocess.Popen(cmd, env=run_env, stdout=subprocess.DEVNULL,
                                     stderr=open(log, "a"))
            children.append(child)
            return child, log

        ref = work / "reference"
        ref.mkdir()
        child, log = start(f"{topic}-reference", ref, "a")
        started = time.monotonic()
        if child.wait(timeout=600) != 0:
            sys.exit(f"the reference run failed:\n{log.read_text()[-2000:]}")
        expected = rows_of(ref / "output")
        print(f"reference run: {time.monotonic() - started:.1f} s, "
              f"{sum(map(len, expected.values()))} rows", flush=True)

        deadline = time.monotonic() + args.minutes * 60
        cycles = freezes = lost = stopped = 0
        while time.monotonic() < deadline:
            cycles += 1
            d = work / f"cycle-{cycles}"
            d.mkdir()
            app = f"{topic}-cycle-{cycles}"
            # Both together take about 20 s of records at this pace.
            pace = max(args.records // 40, 1)
            members = {name: start(app, d, name, pace) for name in ("a", "b")}
            frozen = rng.choice(["a", "b"])
            time.sleep(rng.uniform(2, 8))
            child, log = members[frozen]
            if child.poll() is not None:
                frozen = None  # it had finished already
            else:
                child.send_signal(signal.SIGSTOP)
                time.sleep(rng.uniform(SESSION_S + 1, 2 * SESSION_S))
                if rng.random() < 0.5:
                    child.send_signal(signal.SIGTERM)
                    child.send_signal(signal.SIGCONT)
                    code = child.wait(timeout=120)
                    if code != 0:
                        fail(cycles, f"{frozen} exited {code} on SIGTERM after its freeze", d)
                    stopped += 1
                    time.sleep(1)
                    members[frozen] = start(app, d, frozen, pace)
                else:
                    child.send_signal(signal.SIGCONT)
            for name, (child, log) in members.items():
                try:
                    code = child.wait(timeout=600)
                except subprocess.TimeoutExpired:
                    fail(cycles, f"{name} did not end in 10 minutes", d)
                if code != 0:
                    fail(cycles, f"{name} exited {code}", d)
            if rows_of(d / "output") != expected:
                fail(cycles, "rows differ from the undisturbed run", d)
            if frozen:
                freezes += 1
                lost += LOST in (d / f"{frozen}.log").read_text(errors="replace")
            shutil.rmtree(d)
            print(f"cycle {cycles}: equal; froze {frozen or 'nothing (the run had ended)'}; "
                  f"{freezes} freezes, {lost} lost partitions, {stopped} stopped after the "
                  "freeze, so far", flush=True)
        print(f"freeze soak: {cycles} cycles, each equal to the undisturbed run; {freezes} "
              f"freezes past the session, in {lost} of them the frozen member lost its "
              f"partitions, {stopped} were stopped (SIGTERM) before resuming "
              f"({args.records} records, {args.partitions} partitions, {SESSION_S} s session)")
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGCONT)
                child.kill()
        subprocess.run([services / "tansu.sh", "stop"], env=env, stdout=subprocess.DEVNULL)
    shutil.rmtree(work, ignore_errors=True)


def fail(cycle, why, d):
    """Ends the soak, printing the cycle's logs (kept in `d`)."""
    print(f"FAILED: cycle {cycle}: {why}")
    for log in sorted(d.glob("*.log")):
        print(f"--- {log.name} (last 3000 characters)")
        print(log.read_text(errors="replace")[-3000:])
    print(f"kept in {d}")
    sys.exit(1)


if __name__ == "__main__":
    main()
