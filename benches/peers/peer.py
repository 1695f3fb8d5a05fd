"""The bench side of a Python peer (benches/peers/mod.rs): warm-up, the "ready"/"go" handshake,
the timed polls, each result checked, and the timings as one JSON line on stdout."""

import json
import os
import sys
import time


def read_job():
    """The job the bench wrote as one JSON line on stdin."""
    return json.loads(sys.stdin.readline())


def serve(job, poll, client):
    """Warms up with job["warmup"] polls, says "ready", waits for "go", then times job["runs"]
    polls; every poll must return job["expected"]. `client` names the library and its version."""
    for _ in range(job["warmup"]):
        check(poll(), job["expected"])
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        fail("expected 'go' from the bench")
    times = []
    for _ in range(job["runs"]):
        started = time.perf_counter_ns()
        found = poll()
        times.append(time.perf_counter_ns() - started)
        check(found, job["expected"])
    client = f"{client}, Python {sys.version.split()[0]}"
    print(json.dumps({"client": client, "times_ns": times}), flush=True)


def check(found, expected):
    if found != expected:
        fail(f"a poll found {found}, expected {expected}")


def fail(message):
    sys.exit(f"benches/peers/{os.path.basename(sys.argv[0])}: {message}")
