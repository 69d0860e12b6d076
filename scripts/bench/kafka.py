#!/usr/bin/env python3
"""Benchmark neonblue through a real broker (Tansu on loopback).

Reports, for the same generated envelopes:
  * produce:     records/s loading the input topic (the broker's write path);
  * consume:     records/s of a bare librdkafka consumer reading it (the
                 broker's read path: what any consumer can reach);
  * neonblue:    records/s of one instance, from its first assignment to the
                 end (`run --until-end`: parse, repartition through the broker,
                 join, windows, changelogs, Parquet), and its peak RSS;
  * latency:     produce of one event -> its Parquet object visible (p50/max)
                 on an idle running instance.

Usage: scripts/bench/kafka.py --bin target/release/neonblue --brokers HOST:PORT
"""
import argparse, json, os, re, subprocess, sys, tempfile, time, uuid


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def consume_rate(brokers, topic, expected):
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": brokers, "group.id": "bench-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    n, start = 0, None
    deadline = time.time() + 600
    while n < expected and time.time() < deadline:
        msgs = c.consume(10000, 1.0)
        if msgs and start is None:
            start = time.time()
        n += sum(1 for m in msgs if m.error() is None)
    secs = time.time() - (start or time.time())
    c.close()
    return n, secs


def parse_ts(line):
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z", line)
    if not m:
        return None
    from datetime import datetime, timezone
    return datetime.strptime(m.group(1)[:26], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc).timestamp()


def neonblue_rate(binary, brokers, topic, records, work):
    app = "bench-" + uuid.uuid4().hex[:8]
    log = os.path.join(work, "neonblue.log")
    with open(log, "w") as f:
        cmd = ["/usr/bin/time", "-v", binary, "run", "--no-progress", "--until-end",
               "--brokers", brokers, "--topics", topic, "--app-id", app,
               "--state", os.path.join(work, "state"), "--output", os.path.join(work, "out"),
               "--now", "2100-01-01T00:00:00Z"]
        t0 = time.time()
        sh(*cmd, stderr=f, env={**os.environ, "NEONBLUE_LOG": "info"})
        wall = time.time() - t0
    text = open(log).read()
    first = next((parse_ts(l) for l in text.splitlines() if "partitions assigned" in l), None)
    last = next((parse_ts(l) for l in text.splitlines() if "reached the end of input" in l), None)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) * 1024
    busy = (last - first) if first and last else wall
    return records / busy, busy, wall, rss


def latency(binary, brokers, work, samples):
    """An idle instance; one assignment, then single events; time to Parquet."""
    from confluent_kafka import Producer
    topic = "bench-lat-" + uuid.uuid4().hex[:8]
    out = os.path.join(work, "lat-out")
    p = Producer({"bootstrap.servers": brokers, "linger.ms": 0})
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": brokers})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result()
    log = open(os.path.join(work, "lat.log"), "w")
    proc = subprocess.Popen([binary, "run", "--no-progress", "--brokers", brokers, "--topics", topic,
                             "--app-id", "lat-" + uuid.uuid4().hex[:8], "--commit-interval", "200ms",
                             "--state", os.path.join(work, "lat-state"), "--output", out],
                            stderr=log)

    def envelope(agg_type, event_type, payload, oid):
        after = {"id": oid, "aggregate_type": agg_type, "aggregate_id": str(oid), "event_type": event_type,
                 "payload": json.dumps(payload), "created_at": "2025-10-01T00:00:00Z", "processed_at": None}
        return json.dumps({"before": None, "after": after, "source": {}, "op": "c", "ts_ms": 0})

    def objects():
        found = set()
        for root, _, files in os.walk(os.path.join(out, "events")):
            found.update(os.path.join(root, f) for f in files)
        return found

    try:
        p.produce(topic, envelope("assignment", "ASSIGNMENT_CREATED",
                                  {"id": "a1", "experiment_id": 1, "user_id": "u1", "variant_id": 1,
                                   "assigned_at": "2025-10-01T00:00:00Z"}, 1))
        p.flush()
        # Wait for the group join (first event visible).
        lat = []
        for i in range(samples + 1):
            before = objects()
            t0 = time.time()
            p.produce(topic, envelope("event", "EVENT_CREATED",
                                      {"id": f"e{i}", "experiment_id": 1, "user_id": "u1", "event_type": "click",
                                       "timestamp": f"2025-10-01T00:{i // 60:02d}:{i % 60:02d}Z"}, 100 + i))
            p.flush()
            while objects() == before:
                if time.time() - t0 > 120:
                    raise SystemExit("no Parquet object within 120 s; see lat.log")
                time.sleep(0.005)
            if i > 0:  # the first one includes the group join
                lat.append(time.time() - t0)
            time.sleep(0.3)
        lat.sort()
        return lat[len(lat) // 2], lat[-1]
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--samples", type=int, default=10)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="nb-kbench-")
    topic = "bench-in-" + uuid.uuid4().hex[:8]
    t0 = time.time()
    r = subprocess.run([a.bin, "generate", "--records", str(a.records), "--seed", str(a.seed),
                        "--set", f"partitions={a.partitions}", "--topic", topic,
                        "--topic-partitions", str(a.partitions), "--brokers", a.brokers],
                       check=True, capture_output=True, text=True)
    produce_secs = time.time() - t0
    size = int(re.search(r"\((\d+) bytes\)", r.stderr).group(1))
    n, consume_secs = consume_rate(a.brokers, topic, a.records)
    print(f"consumed {n} in {consume_secs:.1f} s", file=sys.stderr)
    rate, busy, wall, rss = neonblue_rate(a.bin, a.brokers, topic, a.records, work)
    print(f"neonblue {rate:.0f}/s", file=sys.stderr)
    p50, pmax = latency(a.bin, a.brokers, work, a.samples)
    print(f"input: {a.records} envelopes, {size / 1e6:.0f} MB, {a.partitions} partitions, broker {a.brokers}")
    print(f"{'case':<34}{'records/s':>12}{'seconds':>10}")
    print(f"{'produce (generate --topic)':<34}{a.records / produce_secs:>12,.0f}{produce_secs:>10.1f}")
    print(f"{'bare consumer (librdkafka)':<34}{n / max(consume_secs, 1e-9):>12,.0f}{consume_secs:>10.1f}")
    print(f"{'neonblue run --until-end':<34}{rate:>12,.0f}{busy:>10.1f}   (wall {wall:.1f} s incl. group join; peak RSS {rss / 2**20:.0f} MiB)")
    print(f"produce -> Parquet visible: p50 {p50 * 1000:.0f} ms, max {pmax * 1000:.0f} ms ({a.samples} single events, commit interval 200 ms)")


if __name__ == "__main__":
    sys.exit(main())
