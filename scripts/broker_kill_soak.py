#!/usr/bin/env python3
"""Kills the broker under a running instance, again and again; every run
must either equal an undisturbed one or stop, naming the records the broker
lost.

    scripts/broker_kill_soak.py --bin target/release/neonblue [--minutes 20]
        [--records 20000] [--partitions 4] [--seed 1]

A rolling restart or a crashed broker is the most common fault under a
stream processor. This starts a Tansu broker whose logs outlive it (its S3
storage engine, on moto from scripts/services/s3.sh), produces a generated
stream keyed by user, and measures an undisturbed `run --until-end`. Then,
until the time is up, each cycle runs a fresh application id, throttled to
last a few times the broker's downtime, and SIGKILLs the broker one to three
times at random moments, restarting it after a random 1-6 s. A cycle ends:

- recovered: the run exits 0 and its rows equal the undisturbed run's
  (`compare_outputs.rows_of`), or
- loss detected: the run stops on records of a repartition partition that
  were lost or skipped. Tansu loses an idempotent producer's batches that
  are in flight when it is killed, though it acknowledges them after its
  restart (README, Guarantees); a join task then finds offsets missing (a
  hole, checked here with a plain consumer: the log must hold none of the
  offsets named), or a task's last checkpoints lost behind the group's
  committed offset, and stops rather than output rows without those
  records. Kafka keeps what it acknowledged, so there every cycle should
  end as recovered.

Anything else fails the soak with the run's log: a run that exits 0 with
other rows (records lost without a word), another error, or a run that
does not end within ten minutes. Prints the counts at the end.
"""

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from compare_outputs import generate, produce_keyed, rows_of, soak_arguments  # noqa: E402

NOW = "2100-01-01T00:00:00Z"
BROKER_PORT = 19192
S3_PORT = 19990
# What a join task says when it stops on lost records (engine.rs, check_no_hole).
HOLE = re.compile(r"(\S+)\[(\d+)\] holds no records from offset (\d+) to (\d+)")
SKIPPED = "past the join task's checkpoint"


def hole_is_real(brokers, topic, partition, first, last):
    """True when the log of topic[partition] holds no record in [first, last]."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": brokers, "group.id": "broker-kill-soak-check",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        c.assign([TopicPartition(topic, partition, first)])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            m = c.poll(1)
            if m is None:
                continue
            if m.error():
                return m.error().code() == -191  # the end of the log: nothing after
            return m.offset() > last
        return False
    finally:
        c.close()


def main():
    ap = soak_arguments(__doc__, records=20_000, partitions=4)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    work = Path(tempfile.mkdtemp(prefix="broker-kill-soak-"))
    env = dict(
        os.environ,
        S3_DIR=str(work / "s3"),
        TANSU_DIR=str(work / "tansu"),
        TANSU_STORAGE="s3://tansu/",
        AWS_ENDPOINT=f"http://127.0.0.1:{S3_PORT}",
        AWS_ACCESS_KEY_ID="soak",
        AWS_SECRET_ACCESS_KEY="soak",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ALLOW_HTTP="true",
    )
    services = HERE / "services"
    brokers = f"127.0.0.1:{BROKER_PORT}"
    pid_file = work / "tansu" / "tansu.pid"

    def start_broker():
        subprocess.run([services / "tansu.sh", "start", str(BROKER_PORT)], env=env,
                       check=True, stdout=subprocess.DEVNULL)

    def kill_broker():
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        # Until it is reaped, the killed broker still counts as running for
        # tansu.sh, which would then not start a new one.
        pid_file.unlink()

    try:
        subprocess.run([services / "s3.sh", "start", str(S3_PORT)], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{S3_PORT}/tansu", method="PUT"), timeout=30).close()
        start_broker()
        source = work / "cdc.jsonl"
        generate(args.bin, source, args.records, for_kafka=True)
        topic = f"broker-kill-soak-{int(time.time())}"
        produce_keyed(source, brokers, topic, args.partitions)

        run_env = dict(env, NEONBLUE_LOG="warn,neonblue::drivers::kafka=info",
                       NEONBLUE_KAFKA__SESSION_TIMEOUT="10s")

        def run(name, pace=None):
            d = work / name
            d.mkdir()
            cmd = [args.bin, "run", "--no-progress", "--now", NOW, "--until-end",
                   "--brokers", brokers, "--topics", topic, "--app-id", f"{topic}-{name}",
                   "--commit-interval", "200ms",
                   "--state", str(d / "state"), "--output", str(d / "output")]
            if pace:
                cmd += ["--max-records-per-second", str(pace)]
            log = d / "run.log"
            return subprocess.Popen(cmd, env=run_env, stdout=subprocess.DEVNULL,
                                    stderr=open(log, "w")), d, log

        child, ref, log = run("reference")
        started = time.monotonic()
        if child.wait(timeout=600) != 0:
            sys.exit(f"the reference run failed:\n{log.read_text()[-2000:]}")
        expected = rows_of(ref / "output")
        print(f"reference run: {time.monotonic() - started:.1f} s, "
              f"{sum(map(len, expected.values()))} rows", flush=True)

        deadline = time.monotonic() + args.minutes * 60
        cycles = recovered = detected = kills = 0
        while time.monotonic() < deadline:
            cycles += 1
            # About 15 s of records at this pace, beside the kills' downtime.
            child, d, log = run(f"cycle-{cycles}", pace=max(args.records // 15, 1))
            try:
                for _ in range(rng.randint(1, 3)):
                    time.sleep(rng.uniform(1, 6))
                    if child.poll() is not None:
                        break
                    kill_broker()
                    kills += 1
                    time.sleep(rng.uniform(1, 6))
                    start_broker()
                code = child.wait(timeout=600)
            except subprocess.TimeoutExpired:
                sys.exit(f"FAILED: cycle {cycles} did not end in 10 minutes (log {log})")
            finally:
                if child.poll() is None:
                    child.kill()
            text = log.read_text(errors="replace")
            hole = HOLE.search(text)
            if code == 0 and rows_of(d / "output") == expected:
                recovered += 1
            elif code != 0 and (SKIPPED in text or hole and hole_is_real(
                    brokers, hole[1], int(hole[2]), int(hole[3]), int(hole[4]))):
                detected += 1
                said = next(line for line in text.splitlines() if SKIPPED in line or HOLE.search(line))
                print(f"cycle {cycles}: loss detected: {said[-400:]}", flush=True)
            else:
                print(f"FAILED: cycle {cycles} exited {code}"
                      + (" with other rows than the undisturbed run" if code == 0 else ""))
                print(text[-3000:])
                print(f"kept in {d}")
                sys.exit(1)
            shutil.rmtree(d)
            print(f"cycle {cycles}: {recovered} recovered, {detected} stopped on a loss, "
                  f"{kills} broker kills so far", flush=True)
        print(f"broker kill soak: {cycles} cycles, {kills} broker SIGKILLs: {recovered} runs "
              f"recovered row for row equal to the undisturbed run, {detected} stopped on "
              f"records the broker lost; none ended otherwise ({args.records} records, "
              f"{args.partitions} partitions)")
    finally:
        subprocess.run([services / "tansu.sh", "stop"], env=env, stdout=subprocess.DEVNULL)
        subprocess.run([services / "s3.sh", "stop"], env=env, stdout=subprocess.DEVNULL)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
