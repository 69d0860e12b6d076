#!/usr/bin/env python3
"""Where a Kafka-mode catch-up's threads wait instead of working.

Runs one `neonblue run --until-end` on TOPIC under a system-wide
`perf record -e sched:sched_switch --call-graph dwarf` (switch-ins of a
thread are recorded on other threads' stacks, hence system-wide) and prints,
for the busy part of the run (first assignment to the end of input), each
named thread's time off the CPU by the neonblue frames it waited in: by
default the consumer thread (`neonblue`, which polls and parses) and the
apply thread (`apply`, which runs the tasks).

Usage (root, perf installed; a broker with the topic loaded, e.g. by
`neonblue generate --topic`):

    scripts/bench/offcpu.py --bin target/release/neonblue --brokers HOST:PORT --topic T

Needs `libc6-dbg` for stacks through glibc's futex waits; when the top
lines still show only kernel frames (`futex_do_wait`), perf's unwinder gave
up on that run: run it again.
"""
import argparse, collections, os, re, subprocess, tempfile, time, uuid
from datetime import datetime


def log_time(line):
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z", line)
    if not m:
        return None
    return datetime.strptime(m.group(1)[:26], "%Y-%m-%dT%H:%M:%S.%f").timestamp()


def switches(script_text, offset):
    """(time, prev tid, next tid, prev comm, stack) of every sched_switch."""
    head = re.compile(r"\s*(\S.*?)\s+(\d+)\s+([\d.]+):\s+prev_comm=(.*?) prev_pid=(\d+).*next_pid=(\d+)")
    for block in script_text.split("\n\n"):
        lines = block.strip().splitlines()
        m = head.match(lines[0]) if lines else None
        if m:
            stack = [re.sub(r"^\s*[0-9a-f]+\s+", "", f).strip() for f in lines[1:]]
            yield float(m.group(3)) + offset, int(m.group(5)), int(m.group(6)), m.group(4), stack


def waited_in(stack, depth):
    own = [f.split("(")[0][:70] for f in stack
           if ("neonblue::" in f or "neonblue_" in f) and "{{closure}}" not in f]
    return " < ".join(own[:depth]) or " < ".join(stack[:3])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--depth", type=int, default=3, help="neonblue frames per line")
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--threads", nargs="+", default=["neonblue", "apply"],
                    help="thread names (the first thread of each name)")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="neonblue-offcpu-")
    data, log = os.path.join(work, "perf.data"), os.path.join(work, "neonblue.log")
    # perf stamps events with CLOCK_MONOTONIC; the log with the wall clock.
    offset = time.time() - time.clock_gettime(time.CLOCK_MONOTONIC)
    with open(log, "w") as f:
        subprocess.run(["perf", "record", "-q", "-k", "CLOCK_MONOTONIC", "-a", "-e", "sched:sched_switch",
                        "--call-graph", "dwarf,16384", "-o", data, "--",
                        a.bin, "run", "--no-progress", "--until-end", "--brokers", a.brokers,
                        "--topics", a.topic, "--app-id", "offcpu-" + uuid.uuid4().hex[:8],
                        "--state", os.path.join(work, "state"), "--output", os.path.join(work, "out"),
                        "--now", "2100-01-01T00:00:00Z"],
                       stderr=f, stdout=subprocess.DEVNULL, check=True,
                       env={**os.environ, "NEONBLUE_LOG": "info"})
    text = subprocess.run(["perf", "script", "-i", data, "-F", "comm,tid,time,trace,ip,sym"],
                          capture_output=True, text=True, check=True).stdout
    lines = open(log).read().splitlines()
    start = next(log_time(l) for l in lines if "partitions assigned" in l)
    end = next(log_time(l) for l in lines if "reached the end of input" in l)
    events = list(switches(text, offset))
    print(f"busy {end - start:.2f} s")
    for name in a.threads:
        tids = [tid for _, tid, _, comm, _ in events if comm == name]
        if not tids:
            print(f"no thread named {name}")
            continue
        thread = min(tids)
        total, count, off, out = collections.Counter(), collections.Counter(), 0.0, None
        for t, prev, nxt, _, stack in events:
            if not start <= t <= end:
                continue
            if prev == thread:
                out = (t, waited_in(stack, a.depth))
            elif nxt == thread and out:
                total[out[1]] += t - out[0]
                count[out[1]] += 1
                off += t - out[0]
                out = None
        print(f"thread {name}: off the CPU {off:.2f} s")
        for where, secs in total.most_common(a.top):
            print(f"{secs * 1000:8.0f} ms {count[where]:6d}x  {where}")
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
