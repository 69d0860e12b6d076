#!/usr/bin/env python3
"""Benchmark neonblue through a real broker (Tansu on loopback).

Reports, for the same generated envelopes:
  * produce:     records/s loading the input topic (the broker's write path);
  * consume:     records/s of a bare librdkafka consumer reading it (the
                 broker's read path: what any consumer can reach);
  * round trip:  records/s of the bare repartition round trip
                 (`neonblue-bench-kafka`, built next to --bin with
                 `--features bench`): one consumer reads the input and
                 produces a record like neonblue's repartition records (its
                 default `--bytes`) to a topic it reads back, with
                 neonblue's producer settings and no processing: a lower
                 bound of the ceiling the broker puts on neonblue's
                 catch-up (the round trip itself uses CPU on the same cores);
  * neonblue:    records/s of one instance, from its first assignment to the
                 end (`run --until-end`: parse, repartition through the broker,
                 join, windows, changelogs, Parquet), and its peak RSS;
  * latency:     produce of one event -> its Parquet object visible (p50/max)
                 on an idle running instance;
  * CPU/record:  the instance's user+sys CPU per record, against a file-mode
                 run of the same generated records with as many partitions;
  * steady:      events produced at a steady rate (default 20,000/s) for a
                 while; each event's produce time -> the moment the Parquet
                 object holding it became visible (p50/p99/max), and the
                 instance's CPU per record over that phase.

Usage: scripts/bench/kafka.py --bin target/release/neonblue --brokers HOST:PORT
       [--records N] [--steady-rate 20000] [--steady-seconds 30]

When a phase fails, or the steady phase falls behind, the instances' logs
are kept in a directory whose path is printed.
"""
import argparse, json, os, re, shutil, subprocess, sys, tempfile, threading, time, uuid


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


def round_trip_rate(binary, brokers, topic):
    """The bare repartition round trip over the whole topic: (records,
    seconds, CPU s), or None when `neonblue-bench-kafka` is not built."""
    resolved = os.path.abspath(shutil.which(binary) or binary)
    bare = os.path.join(os.path.dirname(resolved), "neonblue-bench-kafka")
    if not os.path.exists(bare):
        return None
    r = subprocess.run(["/usr/bin/time", "-f", "cpu %U %S", bare, "--brokers", brokers, "--topic", topic],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"neonblue-bench-kafka failed:\n{r.stderr}")
    m = re.search(r"(\d+) records back in ([\d.]+) s", r.stdout)
    if not m:
        sys.exit(f"neonblue-bench-kafka printed no result:\n{r.stdout}{r.stderr}")
    n, secs = m.groups()
    user, sys_ = re.findall(r"^cpu ([\d.]+) ([\d.]+)$", r.stderr, re.M)[-1]
    return int(n), float(secs), float(user) + float(sys_)


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
    cpu = sum(float(re.search(rf"{kind} time \(seconds\): ([\d.]+)", text).group(1))
              for kind in ("User", "System"))
    busy = (last - first) if first and last else wall
    return records / busy, busy, wall, rss, cpu


def file_mode_cpu(binary, records, seed, partitions, work):
    """The same generated records from a file, as many partitions: (CPU s, wall s)."""
    path = os.path.join(work, "same-records.jsonl")
    sh(binary, "generate", "--records", str(records), "--seed", str(seed),
       "--set", f"partitions={partitions}", "--output", path, stderr=subprocess.DEVNULL)
    t0 = time.time()
    child = subprocess.Popen([binary, "run", "--no-progress", "--input", path,
                              "--partitions", str(partitions), "--state", os.path.join(work, "file-state"),
                              "--output", os.path.join(work, "file-out"), "--now", "2100-01-01T00:00:00Z"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise SystemExit(f"the file-mode run failed (status {status})")
    return usage.ru_utime + usage.ru_stime, time.time() - t0


def envelope(agg_type, event_type, payload, oid):
    """An outbox change envelope as Debezium writes it (JSON converter, no schema)."""
    after = {"id": oid, "aggregate_type": agg_type, "aggregate_id": str(oid), "event_type": event_type,
             "payload": json.dumps(payload), "created_at": "2025-10-01T00:00:00Z", "processed_at": None}
    return json.dumps({"before": None, "after": after, "source": {}, "op": "c", "ts_ms": 0})


def cpu_seconds(pid):
    """user+sys CPU of a running process, from /proc."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_instance(binary, brokers, work, name, partitions, extra=()):
    """A fresh topic `bench-NAME-…` and a running instance reading it into
    WORK/NAME-out (its log in WORK/NAME.log): (topic, output root, process)."""
    from confluent_kafka.admin import AdminClient, NewTopic
    topic = f"bench-{name}-" + uuid.uuid4().hex[:8]
    admin = AdminClient({"bootstrap.servers": brokers})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result()
    out = os.path.join(work, f"{name}-out")
    log = open(os.path.join(work, f"{name}.log"), "w")
    proc = subprocess.Popen([binary, "run", "--no-progress", "--brokers", brokers, "--topics", topic,
                             "--app-id", f"{name}-" + uuid.uuid4().hex[:8], *extra,
                             "--state", os.path.join(work, f"{name}-state"), "--output", out],
                            stderr=log)
    return topic, out, proc


def steady_latency(binary, brokers, work, rate, seconds, partitions, users):
    """Events at a steady `rate` for `seconds` into a running instance (default
    commit interval); per event, produce -> its Parquet object visible."""
    import pyarrow.parquet as pq
    from confluent_kafka import Producer
    topic, out, proc = start_instance(binary, brokers, work, "steady", partitions)
    events_dir = os.path.join(out, "events")
    p = Producer({"bootstrap.servers": brokers, "linger.ms": 5, "queue.buffering.max.messages": 1_000_000})
    seen = {}  # object path -> when it was first listed
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            now = time.time()
            for root, _, files in os.walk(events_dir):
                for f in files:
                    if f.endswith(".parquet"):
                        seen.setdefault(os.path.join(root, f), now)
            time.sleep(0.01)

    def event(i, prefix):
        user = f"u{(i * 7919) % users}"
        secs = i / rate
        ts = f"2025-10-01T{int(secs // 3600):02d}:{int(secs // 60 % 60):02d}:{secs % 60:06.3f}Z"
        return user, envelope("event", "EVENT_CREATED",
                              {"id": f"{prefix}{i}", "experiment_id": 1, "user_id": user,
                               "event_type": "click", "timestamp": ts}, 10_000_000 + i)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        for u in range(users):
            p.produce(topic, envelope("assignment", "ASSIGNMENT_CREATED",
                                      {"id": f"a{u}", "experiment_id": 1, "user_id": f"u{u}",
                                       "variant_id": 1 + u % 2, "assigned_at": "2025-10-01T00:00:00Z"}, u + 1),
                      key=f"u{u}")
        # Warm up: wait until the group is joined and a first event is out.
        user, value = event(0, "warm-")
        p.produce(topic, value, key=user)
        p.flush()
        deadline = time.time() + 120
        while not seen:
            if time.time() > deadline:
                raise SystemExit("no Parquet object within 120 s; see steady.log")
            time.sleep(0.05)
        time.sleep(3)  # let the warm-up commit settle
        sent = {}
        total = int(rate * seconds)
        cpu0, t0 = cpu_seconds(proc.pid), time.time()
        i = 0
        while i < total:
            due = min(total, int((time.time() - t0) * rate))
            now = time.time()
            while i < due:
                user, value = event(i, "s")
                while True:
                    try:
                        p.produce(topic, value, key=user)
                        break
                    except BufferError:
                        p.poll(0.01)
                sent[f"s{i}"] = now
                i += 1
            p.poll(0)
            time.sleep(0.002)
        produced_in = time.time() - t0
        p.flush()
        # Every event visible: count them in the objects seen so far.
        deadline = time.time() + 180
        found, done_paths = {}, set()
        while len(found) < total and time.time() < deadline:
            for path, at in sorted(list(seen.items()), key=lambda kv: kv[1]):
                if path in done_paths:
                    continue
                done_paths.add(path)
                for eid in pq.read_table(path, columns=["event_id"]).column("event_id").to_pylist():
                    if eid in sent and eid not in found:
                        found[eid] = at
            time.sleep(0.2)
        cpu = cpu_seconds(proc.pid) - cpu0
        lat = sorted(found[e] - sent[e] for e in found) or [float("nan")]
        pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
        return {"events": total, "visible": len(found), "achieved_rate": total / produced_in,
                "p50": pick(0.5), "p99": pick(0.99), "max": lat[-1],
                "cpu_us_per_record": cpu / max(len(found), 1) * 1e6}
    finally:
        stop.set()
        proc.terminate()
        proc.wait(timeout=60)


def latency(binary, brokers, work, samples):
    """An idle instance; one assignment, then single events; time to Parquet."""
    from confluent_kafka import Producer
    topic, out, proc = start_instance(binary, brokers, work, "lat", 1, ["--commit-interval", "200ms"])
    p = Producer({"bootstrap.servers": brokers, "linger.ms": 0})

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
    ap.add_argument("--steady-rate", type=int, default=20_000)
    ap.add_argument("--steady-seconds", type=float, default=30)
    ap.add_argument("--steady-users", type=int, default=100_000,
                    help="users of the steady phase, each assigned first, events spread over them")
    a = ap.parse_args()
    # State and outputs of every run: close to a GB, removed whatever happens;
    # the instances' logs are kept when a phase fails.
    work = tempfile.mkdtemp(prefix="nb-kbench-")
    try:
        bench(a, work)
    except BaseException:
        keep_logs(work)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def keep_logs(work):
    """Copies the instances' logs (WORK/*.log) out of the work directory,
    which is removed at the end, and says where they are."""
    logs = [name for name in os.listdir(work) if name.endswith(".log")]
    if not logs:
        return
    kept = tempfile.mkdtemp(prefix="nb-kbench-logs-")
    for name in logs:
        shutil.copy(os.path.join(work, name), kept)
    print(f"instance logs kept in {kept}", file=sys.stderr)


def bench(a, work):
    """Every measurement, printed as it completes; `work` holds their files."""
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
    rate, busy, wall, rss, kafka_cpu = neonblue_rate(a.bin, a.brokers, topic, a.records, work)
    print(f"neonblue {rate:.0f}/s", file=sys.stderr)
    file_cpu, file_wall = file_mode_cpu(a.bin, a.records, a.seed, a.partitions, work)
    p50, pmax = latency(a.bin, a.brokers, work, a.samples)
    print(f"input: {a.records} envelopes, {size / 1e6:.0f} MB, {a.partitions} partitions, broker {a.brokers}")
    print(f"{'case':<34}{'records/s':>12}{'seconds':>10}")
    print(f"{'produce (generate --topic)':<34}{a.records / produce_secs:>12,.0f}{produce_secs:>10.1f}")
    print(f"{'bare consumer (librdkafka)':<34}{n / max(consume_secs, 1e-9):>12,.0f}{consume_secs:>10.1f}")
    print(f"{'neonblue run --until-end':<34}{rate:>12,.0f}{busy:>10.1f}   (wall {wall:.1f} s incl. group join; peak RSS {rss / 2**20:.0f} MiB)")
    print(f"produce -> Parquet visible: p50 {p50 * 1000:.0f} ms, max {pmax * 1000:.0f} ms ({a.samples} single events, commit interval 200 ms)")
    print(f"CPU per record: Kafka mode {kafka_cpu / a.records * 1e6:.1f} µs, file mode {file_cpu / a.records * 1e6:.1f} µs "
          f"({a.partitions} partitions, same records; file mode wall {file_wall:.1f} s)")
    sys.stdout.flush()
    steady = steady_latency(a.bin, a.brokers, work, a.steady_rate, a.steady_seconds, a.partitions,
                            a.steady_users)
    if steady["visible"] < steady["events"]:
        print(f"steady {a.steady_rate:,} events/s: FELL BEHIND, only {steady['visible']:,} of "
              f"{steady['events']:,} events visible 180 s after the last was produced")
        keep_logs(work)
    print(f"steady {steady['achieved_rate']:,.0f} events/s for {a.steady_seconds:.0f} s ({steady['visible']:,} events seen, "
          f"default commit interval): produce -> Parquet visible p50 {steady['p50'] * 1000:.0f} ms, "
          f"p99 {steady['p99'] * 1000:.0f} ms, max {steady['max'] * 1000:.0f} ms; "
          f"CPU {steady['cpu_us_per_record']:.1f} µs per event")
    # Last: it writes as many records again into the broker, which would
    # slow the phases above on a broker like Tansu.
    round_trip = round_trip_rate(a.bin, a.brokers, topic)
    if round_trip:
        rt_n, rt_secs, rt_cpu = round_trip
        print(f"bare repartition round trip (the broker's ceiling is at least this): {rt_n / rt_secs:,.0f} records/s, "
              f"{rt_secs:.1f} s, CPU {rt_cpu / rt_n * 1e6:.1f} µs per record")
    else:
        print("bare repartition round trip: not measured (build with `cargo build --release --features bench`)")


if __name__ == "__main__":
    sys.exit(main())
