#!/usr/bin/env python3
"""Jobs calls on PostgreSQL must not stall the event loop (issue 14 item
2), measured:

    bench/pg-jobs-stall.py [BUILD_DIR] [--moad PATH] [--seconds N]

Starts a private PostgreSQL server (tests/integration/pgtest.py: needs the
postgresql package) and moad (BUILD_DIR/daemon/moad, or --moad: e.g. an
older build for a "before" figure) with knowledge.backend: postgresql, so
the Files and Batches API is in the database. One file is uploaded and
one batch created (its one line fails at once: no upstream). Then:

1. latency: 300 GET /v1/batches/{id} one after the other: p50, p99.
2. load: N seconds (default 20) of 2 clients reading jobs (GET
   /v1/batches/{id} and GET /v1/batches in turn) while 1 client asks
   /healthz every 10 ms: jobs requests per second, /healthz p50, p99, max.
3. slow database: the same load while another session locks the batches
   table for 1 s out of every 2 (every jobs read waits for it; below
   jobs.db_timeout_ms, so they answer 200 late): the same figures. A loop
   that waits for the jobs store cannot answer /healthz meanwhile.

Prints one line per figure. Not a test: nothing is asserted."""
import json
import os
import sys
import threading
import time

from unixhttp import pct, request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
args = sys.argv[1:]
moad = None
seconds = 20
if "--moad" in args:
    i = args.index("--moad")
    moad = os.path.abspath(args[i + 1])
    del args[i:i + 2]
if "--seconds" in args:
    i = args.index("--seconds")
    seconds = int(args[i + 1])
    del args[i:i + 2]
BUILD = os.path.abspath(args[0] if args else os.path.join(ROOT, "build"))
os.environ["MOAD_BIN"] = moad or os.path.join(BUILD, "daemon", "moad")
os.environ.setdefault("MOAD_TEST_BUILDDIR", BUILD)
os.environ.setdefault("MOAD_TEST_SRCDIR", ROOT)
os.environ.setdefault("MOAD_PLUGIN_DIR", os.path.join(BUILD, "plugins"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import pgtest  # noqa: E402
from moadtest import Daemon  # noqa: E402
from test_jobs import ENDPOINT, JobsClient  # noqa: E402


def load(sock, batch_id, seconds, pg=None, db=None):
    stop = time.time() + seconds
    health, jobs, slow, locks, lock = [], [], [], [], threading.Lock()

    def healthz():
        while time.time() < stop:
            t = time.monotonic()
            st, _ = request(sock, "GET", "/healthz")
            with lock:
                health.append((time.monotonic() - t) * 1000.0 if st == 200 else float("inf"))
            time.sleep(0.01)

    def read(k):
        i = k
        while time.time() < stop:
            path = "/v1/batches/" + batch_id if i % 2 == 0 else "/v1/batches?limit=5"
            t = time.monotonic()
            st, _ = request(sock, "GET", path)
            ms = (time.monotonic() - t) * 1000.0
            i += 1
            with lock:
                jobs.append(st)
                if ms > 100:
                    slow.append(ms)

    def locker():
        while time.time() < stop - 1:
            p = pg.lock_chunks(db, "moa_jobs_batches")
            locks.append(1)
            time.sleep(1.0)
            pg.release(p)
            time.sleep(1.0)

    threads = [threading.Thread(target=healthz)] + [threading.Thread(target=read, args=(k,)) for k in range(2)]
    if pg:
        threads.append(threading.Thread(target=locker))
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - t0
    print("  jobs reads: %d in %.1f s (%.1f/s), %d answered 200, %d took over 100 ms%s"
          % (len(jobs), took, len(jobs) / took, jobs.count(200), len(slow),
             " (%d lock periods)" % len(locks) if pg else ""))
    print("  healthz: %d requests, p50 %.1f ms, p99 %.1f ms, max %.1f ms"
          % (len(health), pct(health, 50), pct(health, 99), max(health) if health else float("nan")))


def main():
    pg = pgtest.PgServer()
    db = "moa_bench_jobs"
    pg.createdb(db)
    d = Daemon(config=pg.config(db, "jobs:\n  concurrency: 1\n"))
    try:
        print("moad: %s" % os.environ["MOAD_BIN"])
        c = JobsClient()
        c.d = d
        line = json.dumps({"custom_id": "c0", "method": "POST", "url": ENDPOINT,
                           "body": {"model": "no-such-pipeline", "messages": [{"role": "user", "content": "hi"}]}})
        st, f = c.upload((line + "\n").encode())
        assert st == 200, f
        st, b = c.create(f["id"])
        assert st == 200, b
        lat = []
        for i in range(300):
            t = time.monotonic()
            st, _ = request(d.socket, "GET", "/v1/batches/" + b["id"])
            lat.append((time.monotonic() - t) * 1000.0)
            assert st == 200, st
        print("latency: 300 GET /v1/batches/{id} one at a time, p50 %.2f ms, p99 %.2f ms"
              % (pct(lat, 50), pct(lat, 99)))
        print("load, %d s:" % seconds)
        load(d.socket, b["id"], seconds)
        print("load with the batches table locked 1 s in 2, %d s:" % seconds)
        load(d.socket, b["id"], seconds, pg, db)
    finally:
        d.cleanup()
        pg.stop()


if __name__ == "__main__":
    main()
